package monitor

import (
	"regexp"
	"testing"
)

func TestDepth(t *testing.T) {
	for path, want := range map[string]int{"/": 0, "": 0, "/system.slice": 1, "/system.slice/x.service": 2,
		"/kubepods/burstable/pod1234/abcd": 4} {
		if got := Depth(path); got != want {
			t.Errorf("Depth(%q) = %d, want %d", path, got, want)
		}
	}
}

func TestFilter(t *testing.T) {
	paths := []string{"/", "/system.slice/x.service", "/kubepods/burstable/pod1", "/kubepods/burstable/pod1/c1"}
	cases := []struct {
		f    Filter
		want []bool
	}{
		{Filter{Depth: DefaultDepth}, []bool{true, true, true, false}},
		{Filter{Depth: -1}, []bool{true, true, true, true}},
		{Filter{Depth: 0}, []bool{true, false, false, false}},
		{Filter{Depth: -1, Match: regexp.MustCompile(`^/kubepods/`)}, []bool{false, false, true, true}},
		{Filter{Depth: DefaultDepth, Match: regexp.MustCompile(`pod`)}, []bool{false, false, true, false}},
	}
	for _, c := range cases {
		for i, p := range paths {
			if got := c.f.Keep(&Cgroup{Path: p}); got != c.want[i] {
				t.Errorf("%+v keeps %s: %v, want %v", c.f, p, got, c.want[i])
			}
		}
	}
}
