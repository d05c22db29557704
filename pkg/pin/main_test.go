package pin_test

import (
	"os"
	"testing"

	"github.com/cgrstat/cgrstat/internal/testenv"
)

// The kernel tests share one load (testenv.Shared): what they test is the
// stat files and iterators of a load, not the load, which pkg/loader's
// tests make and remove.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
