package events_test

import (
	"os"
	"testing"

	"github.com/cgrstat/cgrstat/internal/testenv"
)

// The kernel tests share one load (testenv.Shared): what they test is the
// event stream of a load, its readers and slots, not the load itself. Each
// test's readers close when it ends, so the next finds every slot free and
// the gate shut; each writes in cgroups of its own. A load each cost 25-35 s
// of the 7.3 arm64 guest's verifier (2026-12-03).
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
