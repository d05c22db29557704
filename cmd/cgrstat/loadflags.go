package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

// loadFlags are the flags of the commands that load the collectors: load
// itself, and serve and watch when nothing is loaded yet.
type loadFlags struct {
	maxCgroups uint32
	flush      string
	cmd        *cobra.Command
}

func (f *loadFlags) register(cmd *cobra.Command) {
	cmd.Flags().Uint32Var(&f.maxCgroups, "max-cgroups", loader.DefaultMaxCgroups,
		fmt.Sprintf("how many cgroups the maps can track, live and dying (1 to %d; when loading)", loader.MaxCgroupsLimit))
	f.cmd = cmd
	cmd.Flags().StringVar(&f.flush, "flush", string(loader.Auto), "flush mode when loading: auto, fentry, kprobe or walk")
	_ = cmd.RegisterFlagCompletionFunc("flush", cobra.FixedCompletions(
		[]string{string(loader.Auto), string(loader.Fentry), string(loader.Kprobe), string(loader.Walk)}, cobra.ShellCompDirectiveNoFileComp))
}

// check validates the flags before anything touches the kernel.
func (f *loadFlags) check() (loader.Mode, error) {
	mode, err := loader.ParseMode(f.flush)
	if err != nil {
		return "", usage(err)
	}
	if f.maxCgroups == 0 || f.maxCgroups > loader.MaxCgroupsLimit {
		return "", loader.ErrMaxCgroups
	}
	return mode, nil
}

// options of the load. --max-cgroups left at its default asks for the
// default of a new load and accepts any size of an existing one.
func (f *loadFlags) options(g *globals, h *cgroup.Hierarchy, mode loader.Mode) loader.Options {
	max := f.maxCgroups
	if f.cmd != nil && !f.cmd.Flags().Changed("max-cgroups") {
		max = 0
	}
	return g.loadOptions(h, mode, max)
}
