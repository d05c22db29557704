//go:build man

package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// The man command is built only with -tags man (make man): its markdown
// renderer's package init alone took 0.5 ms of every cgrstat command.
func init() { buildCommands = append(buildCommands, newManCmd) }

// newManCmd writes a man page per command, generated from the commands
// themselves so that they cannot drift from --help (make man).
func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write cgrstat's man pages (section 1) into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return usage(err)
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // pages stay byte-identical between builds
			header := &doc.GenManHeader{Title: "CGRSTAT", Section: "1", Source: "cgrstat " + versionString(), Manual: "cgrstat manual"}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("writing man pages: %w", err)
			}
			return nil
		},
	}
}
