package main

import (
	"fmt"
	"runtime/debug"
)

// version is set for releases with -ldflags "-X main.version=v1.2.3";
// otherwise it comes from the module's build information.
var version = ""

// versionString says which cgrstat this is: its version and the commit it
// was built from, as the load record stores it.
func versionString() string {
	v, commit, dirty := version, "", false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	switch {
	case commit == "":
		return v
	case dirty:
		return fmt.Sprintf("%s (commit %s, modified)", v, commit)
	}
	return fmt.Sprintf("%s (commit %s)", v, commit)
}
