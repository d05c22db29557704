package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

// defaultPinPath is where loads are pinned unless --pin-path says otherwise.
const defaultPinPath = "/sys/fs/bpf/cgrstat"

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
		Long: `cgrstat times every memory-cgroup reclaim with BPF, keeps one reading per
cgroup, and lets rstat (or a walk of the tree) aggregate them bottom-up, so
that each cgroup's stat file shows its hierarchical total.

Typical use:
  cgrstat load
  cgrstat hierarchy create --pin
  cgrstat stress
  cgrstat read --all --json
  cgrstat unload`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: needRoot,
		Version:           versionString(),
	}
	root.SetVersionTemplate("cgrstat {{.Version}}\n")
	root.PersistentFlags().StringVar(&g.pinPath, "pin-path", defaultPinPath, "bpffs directory that holds cgrstat's pins")
	root.PersistentFlags().StringVar(&g.cgroupRoot, "cgroup-root", "", "mount point of the memory cgroup hierarchy, or the directory of the v1 hierarchies (default: found in /proc/self/mountinfo)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	ex, sh := lockExclusive, lockShared
	root.AddCommand(locking(ex, making(newLoadCmd(g))), locking(ex, newUnloadCmd(g)), locking(sh, newStatusCmd(g)),
		locking(ex, making(newPinCmd(g))), locking(ex, newUnpinCmd(g)), locking(sh, newReadCmd(g)),
		newHierarchyCmd(g), locking(sh, making(newStressCmd(g))), locking(ex, making(newCheckCmd(g))),
		// serve and watch run for long: they lock the pin path themselves,
		// around a load, each read and the unload (see session).
		newServeCmd(g), newWatchCmd(g), newManCmd(), newStressChildCmd())
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
			unlock, err := lockPinPath(cmd)
			if err != nil {
				return ranError{err}
			}
			defer unlock()
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
	cmd, err := root.ExecuteContextC(ctx)
	var ran ranError
	if err != nil && !errors.As(err, &ran) {
		return usage(err)
	}
	if err != nil && errors.Is(ran.err, context.Canceled) {
		return interrupted{cleaned: cmd.Annotations[makes] != ""}
	}
	if err != nil {
		return ran.err
	}
	return nil
}

// makes marks a command that creates something, and so removes it when interrupted.
const makes = "makes"

// making annotates cmd as one that removes what it made when interrupted.
func making(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[makes] = "yes"
	return cmd
}

// Lock annotations: commands that change what is pinned take the pin path's
// lock exclusively, those that read it shared, so that no interleaving of
// load, unload, pin, unpin and read leaves orphans.
const (
	lockKey       = "lock"
	lockExclusive = "exclusive"
	lockShared    = "shared"
)

func locking(mode string, cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[lockKey] = mode
	return cmd
}

// lockPinPath takes the lock cmd's annotation asks for. Without root there
// is no lock to take: needRoot has refused already.
func lockPinPath(cmd *cobra.Command) (func(), error) {
	mode := cmd.Annotations[lockKey]
	if mode == "" || os.Geteuid() != 0 {
		return func() {}, nil
	}
	pinPath, err := cmd.Root().PersistentFlags().GetString("pin-path")
	if err != nil {
		return nil, err
	}
	return loader.Lock(cmd.Context(), pinPath, mode == lockExclusive)
}

// rootless are the commands that touch neither BPF nor cgroups.
var rootless = map[string]bool{"help": true, "completion": true, "version": true, "man": true,
	cobra.ShellCompRequestCmd: true, cobra.ShellCompNoDescRequestCmd: true}

// needRoot refuses to go on without root, in one line, before anything
// fails half way with a permission error.
func needRoot(cmd *cobra.Command, _ []string) error {
	for c := cmd; c != nil; c = c.Parent() {
		if rootless[c.Name()] {
			return nil
		}
	}
	// serve, as a container's non-root user, runs with CAP_BPF and
	// CAP_PERFMON from its file capabilities (deploy/kubernetes): it makes
	// no cgroups and needs nothing more.
	if cmd.Name() == "serve" && loader.Capable() {
		return nil
	}
	if os.Geteuid() != 0 {
		return usage(errors.New("needs root: cgrstat loads BPF programs and manages cgroups (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)"))
	}
	return nil
}

// hierarchy finds the memory cgroup hierarchy.
func (g *globals) hierarchy() (*cgroup.Hierarchy, error) {
	h, err := cgroup.Detect(g.cgroupRoot)
	return h, usage(err)
}

// open opens the pinned load.
func (g *globals) open() (*loader.Pinned, error) {
	p, err := loader.Open(g.pinPath)
	if errors.Is(err, loader.ErrNotLoaded) {
		return nil, fmt.Errorf("%w at %s (run: %s)", err, g.pinPath, g.command("load"))
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
			return nil, nil, usage(err)
		}
		cgs = append(cgs, c)
	}
	return h, cgs, nil
}

// command spells a cgrstat command line with the --pin-path this one was given.
func (g *globals) command(args string) string {
	if g.pinPath == defaultPinPath {
		return "cgrstat " + args
	}
	return fmt.Sprintf("cgrstat --pin-path %s %s", shellQuote(g.pinPath), args)
}

// loadOptions describe a load at this command's pin path of the memory
// hierarchy h.
func (g *globals) loadOptions(h *cgroup.Hierarchy, mode loader.Mode, maxCgroups uint32) loader.Options {
	return loader.Options{PinPath: g.pinPath, Flush: mode, MaxCgroups: maxCgroups, CgroupVersion: h.Version,
		MemcgV1Hierarchy: h.V1ID, CgroupRoot: h.Mount, Version: versionString()}
}
