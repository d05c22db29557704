package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/pin"
)

func newUnpinCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "unpin CGROUP...|--all",
		Short: "Remove the stat files of cgroups",
		Long: `Remove the stat file of each CGROUP, all or nothing: if one has none, none is
removed. With --all, every stat file of the load. Only stat files of a
verified cgrstat load are ever removed. Each removed file is printed.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return usage(errors.New("give either CGROUP arguments or --all"))
			}
			p, err := g.open() // proves that the pin path holds a load
			if err != nil {
				return err
			}
			p.Close()
			if all {
				// Listed first, under the pin path's exclusive lock: the
				// files UnpinAll removes, printed as unpin CGROUP prints them.
				rels, err := pin.List(g.pinPath)
				if err != nil {
					return err
				}
				if err := pin.UnpinAll(g.pinPath); err != nil {
					return err
				}
				printStatFiles(cmd.OutOrStdout(), g.pinPath, rels)
				return nil
			}
			rels, err := g.statFileRels(args)
			if err != nil {
				return err
			}
			for _, rel := range rels {
				if err := pin.Unpin(g.pinPath, rel); err != nil {
					return err
				}
				printStatFiles(cmd.OutOrStdout(), g.pinPath, []string{rel})
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove every stat file")
	return cmd
}

// statFileRels finds the pinned stat file of each CGROUP argument, all or
// nothing. The cgroup may be gone already, so its path is not resolved; on
// v1 a relative path is also looked up below the caller's own cgroup, as
// Resolve does.
func (g *globals) statFileRels(args []string) ([]string, error) {
	h, err := g.hierarchy()
	if err != nil {
		return nil, err
	}
	var rels []string
	for _, a := range args {
		cands, err := h.Candidates(a)
		if err != nil {
			return nil, usage(err)
		}
		found := ""
		for _, rel := range cands {
			if _, err := os.Lstat(pin.StatFile(g.pinPath, rel)); err == nil {
				found = rel
				break
			}
		}
		if found == "" {
			return nil, usage(fmt.Errorf("cgroup %s has no stat file; nothing unpinned", cgroup.Show(a)))
		}
		rels = append(rels, found)
	}
	return rels, nil
}

// printStatFiles prints the stat files of the cgroups at rels, one a line.
func printStatFiles(w io.Writer, pinPath string, rels []string) {
	for _, rel := range rels {
		fmt.Fprintln(w, escape.String(pin.StatFile(pinPath, rel)))
	}
}
