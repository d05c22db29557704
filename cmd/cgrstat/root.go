package main

import (
	"context"
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/internal/exitcode"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

// globals are the flags every command shares.
type globals struct {
	pinPath    string
	cgroupRoot string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "cgrstat",
		Short: "Memory-cgroup reclaim latency, aggregated up the cgroup tree by BPF and rstat",
		Long: `cgrstat times every memory-cgroup reclaim with BPF, keeps per-CPU readings per
cgroup, and lets rstat (or a walk of the tree) aggregate them bottom-up, so
that each cgroup's stat file shows its hierarchical total.

Typical use:
  cgrstat load
  cgrstat hierarchy create --pin
  cgrstat stress
  cgrstat read --all --json
  cgrstat unload`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.pinPath, "pin-path", "/sys/fs/bpf/cgrstat", "bpffs directory that holds cgrstat's pins")
	root.PersistentFlags().StringVar(&g.cgroupRoot, "cgroup-root", "", "mount point of the memory cgroup hierarchy (default: found in /proc/self/mountinfo)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitcode.UsageErr(err) })
	root.AddCommand(newLoadCmd(g), newUnloadCmd(g), newStatusCmd(g), newPinCmd(g), newUnpinCmd(g), newReadCmd(g),
		newHierarchyCmd(g), newStressCmd(g), newCheckCmd(g), newStressChildCmd())
	return root
}

// ranError marks an error returned by a command's RunE: everything else
// cobra returns (unknown command, bad arguments) is a usage error.
type ranError struct{ err error }

func (e ranError) Error() string { return e.err.Error() }
func (e ranError) Unwrap() error { return e.err }

func markRun(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return ranError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markRun(sub)
	}
}

func execute(ctx context.Context, root *cobra.Command, args []string) error {
	markRun(root)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var ran ranError
	if err != nil && !errors.As(err, &ran) {
		return exitcode.UsageErr(err)
	}
	if err != nil {
		return ran.err
	}
	return nil
}

// needRoot refuses to go on without root, in one line, before anything
// fails half way with a permission error.
func needRoot() error {
	if os.Geteuid() != 0 {
		return exitcode.UsageErr(errors.New("needs root: cgrstat loads BPF programs and manages cgroups (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)"))
	}
	return nil
}

// hierarchy finds the memory cgroup hierarchy.
func (g *globals) hierarchy() (*cgroup.Hierarchy, error) {
	h, err := cgroup.Detect(g.cgroupRoot)
	return h, exitcode.UsageErr(err)
}

// open opens the pinned load.
func (g *globals) open() (*loader.Pinned, error) {
	p, err := loader.Open(g.pinPath)
	if errors.Is(err, loader.ErrNotLoaded) {
		return nil, exitcode.UsageErr(err)
	}
	return p, err
}

// openIfLoaded opens the load, or returns nil when nothing is loaded.
func (g *globals) openIfLoaded() (*loader.Pinned, error) {
	p, err := g.open()
	if errors.Is(err, loader.ErrNotLoaded) {
		return nil, nil
	}
	return p, err
}

// cgroups finds the memory hierarchy and resolves CGROUP arguments, all or
// nothing.
func (g *globals) cgroups(args []string) (*cgroup.Hierarchy, []cgroup.Cgroup, error) {
	h, err := g.hierarchy()
	if err != nil {
		return nil, nil, err
	}
	var cgs []cgroup.Cgroup
	for _, a := range args {
		c, err := h.Resolve(a)
		if err != nil {
			return nil, nil, exitcode.UsageErr(err)
		}
		cgs = append(cgs, c)
	}
	return h, cgs, nil
}
