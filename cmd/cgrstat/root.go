package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
	"github.com/cgrstat/cgrstat/pkg/readout"
)

// defaultPinPath is where loads are pinned unless --pin-path says otherwise.
const defaultPinPath = "/sys/fs/bpf/cgrstat"

// globals are the flags every command shares.
type globals struct {
	pinPath    string
	cgroupRoot string
}

// buildCommands are the commands that only some builds have (man.go).
var buildCommands []func() *cobra.Command

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
		PersistentPreRunE: preRun,
		Version:           versionString(),
	}
	root.SetVersionTemplate("cgrstat {{.Version}}\n")
	root.PersistentFlags().StringVar(&g.pinPath, "pin-path", defaultPinPath, "bpffs directory that holds cgrstat's pins")
	root.PersistentFlags().StringVar(&g.cgroupRoot, "cgroup-root", "", "mount point of the memory cgroup hierarchy, or the directory of the v1 hierarchies (default: found in /proc/self/mountinfo)")
	root.SetFlagErrorFunc(flagError)
	ex, sh := lockExclusive, lockShared
	root.AddCommand(locking(ex, making(newLoadCmd(g))), locking(ex, newUnloadCmd(g)), locking(sh, newStatusCmd(g)),
		locking(ex, making(newPinCmd(g))), locking(ex, newUnpinCmd(g)), locking(sh, newReadCmd(g)),
		newHierarchyCmd(g), locking(sh, making(newStressCmd(g))), locking(ex, making(newCheckCmd(g))),
		// serve and watch run for long: they lock the pin path themselves,
		// around a load, each read and the unload (see session).
		newServeCmd(g), newWatchCmd(g), newStressChildCmd())
	for _, c := range buildCommands {
		root.AddCommand(c())
	}
	return root
}

// flagError makes a flag that cannot be parsed a usage error of one line
// that says what the flag wants, rather than the parser's own words
// ("strconv.ParseUint: parsing ...").
func flagError(_ *cobra.Command, err error) error {
	var bad *pflag.InvalidValueError
	if !errors.As(err, &bad) {
		return usage(err)
	}
	f := bad.GetFlag()
	want := map[string]string{
		"uint32": "a whole number", "int": "an integer", "duration": "a duration such as 500ms, 2s or 1m",
		"bool": "true or false",
	}[f.Value.Type()]
	if f.Name == "max-cgroups" {
		want = fmt.Sprintf("a number from 1 to %d", loader.MaxCgroupsLimit)
	}
	if want == "" {
		return usage(fmt.Errorf("--%s %q: %w", f.Name, bad.GetValue(), errors.Unwrap(err)))
	}
	return usage(fmt.Errorf("--%s %q: want %s", f.Name, bad.GetValue(), want))
}

// ranError marks an error returned by a command's RunE: everything else
// cobra returns (unknown command, bad arguments) is a usage error.
type ranError struct{ err error }

func (e ranError) Error() string { return e.err.Error() }
func (e ranError) Unwrap() error { return e.err }

func markRun(c *cobra.Command) {
	if c.Run == nil && c.RunE == nil && c.HasSubCommands() {
		c.RunE = groupRun
	}
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
	root.InitDefaultCompletionCmd() // so that markRun sees it (cobra adds it in Execute)
	markRun(root)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	var ran ranError
	if err != nil && !errors.As(err, &ran) {
		return usage(oneLine(err))
	}
	if err != nil && errors.Is(ran.err, context.Canceled) {
		var sig signalCause
		errors.As(context.Cause(ctx), &sig)
		return interrupted{cleaned: cmd.Annotations[makes] != "", sig: sig.sig}
	}
	if err != nil {
		return ran.err
	}
	return nil
}

// groupRun runs a command that only groups others (completion,
// hierarchy): without arguments it shows its help; with one, that is not
// one of its subcommands, it is a usage error. (Cobra shows the help and
// exits 0 for "completion powershell2".)
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usage(fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath()))
	}
	return cmd.Help()
}

// oneLine puts cobra's suggestions ("Did you mean this?" and a line per
// command) on the error's line: an error is one line.
func oneLine(err error) error {
	msg := strings.TrimRight(err.Error(), "\n")
	if !strings.Contains(msg, "\n") {
		return err
	}
	msg = strings.Replace(msg, "\n\nDid you mean this?\n\t", " (did you mean ", 1)
	if msg != strings.TrimRight(err.Error(), "\n") {
		msg = strings.ReplaceAll(msg, "\n\t", " or ") + "?)"
	}
	return errors.New(msg)
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
	return readout.Lock(cmd.Context(), pinPath, mode == lockExclusive)
}

// rootless are the commands that touch neither BPF nor cgroups.
var rootless = map[string]bool{"help": true, "completion": true, "version": true, "man": true,
	cobra.ShellCompRequestCmd: true, cobra.ShellCompNoDescRequestCmd: true}

// preRun checks, before any command runs, what every command that touches
// BPF or cgroups needs: root and a pin path the kernel can take.
func preRun(cmd *cobra.Command, args []string) error {
	if isRootless(cmd) {
		return nil
	}
	pinPath, err := cmd.Root().PersistentFlags().GetString("pin-path")
	if err != nil {
		return err
	}
	if err := checkPinPath(pinPath); err != nil {
		return usage(err)
	}
	if err := needRoot(cmd, args); err != nil {
		return err
	}
	// A --cgroup-root given is checked by every command, also those that
	// look at the hierarchy only later or in some cases: read with nothing
	// pinned said "no stat files are pinned" for --cgroup-root /tmp.
	if f := cmd.Root().PersistentFlags().Lookup("cgroup-root"); f.Changed {
		if _, err := cgroup.Detect(f.Value.String()); err != nil {
			return usage(err)
		}
	}
	return nil
}

// checkPinPath refuses, in one line, a pin path no file system takes: a
// system call would fail on it later, with the path in the message twice.
func checkPinPath(p string) error {
	const nameMax, pathMax = 255, 4095 // NAME_MAX, PATH_MAX less its NUL
	switch {
	case p == "":
		return errors.New("--pin-path is empty")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("--pin-path %s: contains a NUL byte", cgroup.Show(p))
	case len(p) > pathMax:
		return fmt.Errorf("--pin-path %s: longer than %d bytes (PATH_MAX)", cgroup.Show(p), pathMax)
	}
	for _, name := range strings.Split(p, "/") {
		if len(name) > nameMax {
			return fmt.Errorf("--pin-path %s: a name in it is %d bytes long, more than %d (NAME_MAX)", cgroup.Show(p), len(name), nameMax)
		}
	}
	return nil
}

func isRootless(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if rootless[c.Name()] {
			return true
		}
	}
	return false
}

// needRoot refuses to go on without root, in one line, before anything
// fails half way with a permission error.
func needRoot(cmd *cobra.Command, _ []string) error {
	if isRootless(cmd) {
		return nil
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
