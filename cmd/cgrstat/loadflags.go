package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/loader"
)

// loadFlags are the flags of the commands that load the collectors: load
// itself, and serve and watch when nothing is loaded yet.
type loadFlags struct {
	maxCgroups uint32
	flush      string
}

func (f *loadFlags) register(cmd *cobra.Command) {
	cmd.Flags().Uint32Var(&f.maxCgroups, "max-cgroups", loader.DefaultMaxCgroups, "how many cgroups the maps can track (when loading)")
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
	if f.maxCgroups == 0 {
		return "", usage(errors.New("--max-cgroups must be at least 1"))
	}
	return mode, nil
}

func (f *loadFlags) options(g *globals, h *cgroup.Hierarchy, mode loader.Mode) loader.Options {
	return g.loadOptions(h, mode, f.maxCgroups)
}
