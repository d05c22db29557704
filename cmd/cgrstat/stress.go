package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/format"
	"github.com/cgrstat/cgrstat/pkg/spec"
	"github.com/cgrstat/cgrstat/pkg/stress"
)

func newStressCmd(g *globals) *cobra.Command {
	var tf treeFlags
	var size string
	var rounds, parallel int
	var asJSON bool
	var scratch string
	cmd := &cobra.Command{
		Use:   "stress [-f SPEC | CGROUP...]",
		Short: "Induce memory-cgroup reclaim in every leaf of a tree, or in the given cgroups",
		Long: `For each leaf (or CGROUP), a child process fills page cache of the given size
and asks the kernel to reclaim it. On cgroup v2 the child joins the cgroup and
writes memory.reclaim. On v1, which has no memory.reclaim, stress makes a
scratch cgroup cgrstat-stress-<pid>-... below it, the child joins that and
lowers that scratch cgroup's memory.limit_in_bytes; its reclaim counts in the
cgroup's total, and the scratch cgroup is removed when the child ends. stress
never changes a setting of a cgroup it did not create. A scratch cgroup left by
a killed stress is removed by the next stress on that cgroup, or by
'cgrstat hierarchy destroy'.
The kernel answering EAGAIN or EBUSY is not an error: the reclaim ran.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkScratchDir(scratch); err != nil {
				return err
			}
			h, err := g.hierarchy()
			if err != nil {
				return err
			}
			sz, err := parseSize(size)
			if err != nil {
				return err
			}
			if rounds < 0 || parallel < 1 {
				return usage(fmt.Errorf("--rounds must be ≥ 0 and --parallel ≥ 1"))
			}
			var jobs []stress.Job
			if len(args) > 0 {
				if tf.file != "" {
					return usage(fmt.Errorf("give either -f SPEC or CGROUP arguments"))
				}
				_, cgs, err := g.cgroups(args)
				if err != nil {
					return err
				}
				for _, c := range cgs {
					jobs = append(jobs, stress.Job{Cgroup: c, Size: orDefault(sz, 5<<20), Rounds: max(rounds, 1)})
				}
			} else {
				t, err := tf.tree(h)
				if err != nil {
					return err
				}
				if exists, err := t.State(); err != nil {
					return usage(err)
				} else if !exists {
					return usage(fmt.Errorf("cgroup %s does not exist: create the tree first (cgrstat hierarchy create)", t.Top().Rel))
				}
				jobs = stress.TreeJobs(t, sz, rounds)
			}
			removed, err := stress.Recover(h, jobs)
			for _, r := range removed {
				fmt.Fprintf(cmd.ErrOrStderr(), "removed cgroup %s, left by an interrupted stress\n", escape.String(r))
			}
			if err != nil {
				return err
			}
			opts := stress.Options{Parallel: parallel, ScratchDir: scratch}
			if p, err := g.openIfLoaded(); err != nil {
				return err
			} else if p != nil {
				defer p.Close()
				opts.Flusher = p
			}
			if !asJSON && isTerminal(os.Stderr) {
				opts.Progress = func(done, total int) {
					fmt.Fprintf(cmd.ErrOrStderr(), "\rstress: %d/%d cgroups done", done, total)
					if done == total {
						fmt.Fprintln(cmd.ErrOrStderr())
					}
				}
			}
			results, err := stress.Run(cmd.Context(), h, jobs, opts)
			if err != nil {
				return err
			}
			if asJSON {
				return format.StressJSON(cmd.OutOrStdout(), results)
			}
			return format.StressTable(cmd.OutOrStdout(), results)
		},
	}
	tf.register(cmd, "cgroup the tree was built under")
	cmd.Flags().StringVar(&size, "size", "", "bytes per leaf and round, e.g. 5MiB (default: the spec's, or 5MiB)")
	cmd.Flags().IntVar(&rounds, "rounds", 0, "rounds per leaf (default: the spec's, or 1)")
	cmd.Flags().IntVar(&parallel, "parallel", 2, "children at once")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&scratch, "scratch-dir", os.TempDir(), "directory for the children's page-cache files")
	return cmd
}

func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	z, err := spec.ParseSize(s)
	if err != nil || z <= 0 {
		return 0, usage(fmt.Errorf("--size %q: want a positive size such as 5MiB", s))
	}
	return int64(z), nil
}

// checkScratchDir refuses a --scratch-dir the children could not write,
// before any child starts or any scratch cgroup is made.
func checkScratchDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return usage(fmt.Errorf("--scratch-dir: %w", err))
	case !fi.IsDir():
		return usage(fmt.Errorf("--scratch-dir %s: not a directory", dir))
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return usage(fmt.Errorf("--scratch-dir %s: cannot write there: %w", dir, err))
	}
	return nil
}

func orDefault(v, d int64) int64 {
	if v > 0 {
		return v
	}
	return d
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// newStressChildCmd is the hidden command stress runs in each cgroup.
func newStressChildCmd() *cobra.Command {
	return &cobra.Command{
		Use:    stress.ChildCommand + " PATH SIZE ROUNDS VERSION SCRATCH",
		Hidden: true,
		Args:   cobra.ExactArgs(5),
		RunE: func(cmd *cobra.Command, args []string) error {
			size, err1 := strconv.ParseInt(args[1], 10, 64)
			rounds, err2 := strconv.Atoi(args[2])
			version, err3 := strconv.Atoi(args[3])
			if err1 != nil || err2 != nil || err3 != nil {
				return usage(fmt.Errorf("bad child arguments %q", args))
			}
			rep, err := stress.Child(args[0], size, rounds, version, args[4])
			if err != nil {
				return err
			}
			return format.ChildJSON(cmd.OutOrStdout(), rep)
		},
	}
}
