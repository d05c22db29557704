package loader

import (
	"testing"

	"github.com/cgrstat/cgrstat/bpf"
)

// TestInfoSpec: the info map's shape that verify expects is the embedded
// object's.
func TestInfoSpec(t *testing.T) {
	spec, err := bpf.LoadCgrstat()
	if err != nil {
		t.Fatal(err)
	}
	got := spec.Maps[bpf.CgrstatMapInfo]
	if got.Type != infoSpec.Type || got.KeySize != infoSpec.KeySize || got.ValueSize != infoSpec.ValueSize || got.MaxEntries != infoSpec.MaxEntries {
		t.Fatalf("the object's info map is %s, key %d, value %d, %d entries; verify expects %s, %d, %d, %d",
			got.Type, got.KeySize, got.ValueSize, got.MaxEntries, infoSpec.Type, infoSpec.KeySize, infoSpec.ValueSize, infoSpec.MaxEntries)
	}
}
