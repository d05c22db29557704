package readout

import (
	"regexp"
	"testing"

	"github.com/cgrstat/cgrstat/pkg/identity"
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
	uid := "/kubepods/burstable/pod0b3c9a5e-8f2d-4c1e-9a7b-2d4e6f8a1c3b"
	paths = append(paths, uid, uid+"/3f9c2a1b6d8e4f70a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718")
	for i := range cases {
		cases[i].want = append(cases[i].want, cases[i].f.Depth != 0, cases[i].f.Depth < 0)
		if cases[i].f.Match != nil && cases[i].f.Match.String() == "pod" {
			cases[i].want[4] = true
		}
	}
	sel := func(s string) identity.Selector {
		sel, err := identity.ParseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		return sel
	}
	cases = append(cases,
		struct {
			f    Filter
			want []bool
		}{Filter{Depth: -1, Select: sel("pod=0b3c9a5e")}, []bool{false, false, false, false, true, true}},
		struct {
			f    Filter
			want []bool
		}{Filter{Depth: -1, Select: sel("qos=burstable,kind=container")}, []bool{false, false, false, false, false, true}},
		struct {
			f    Filter
			want []bool
		}{Filter{Depth: -1, Select: sel("unit=x.service")}, []bool{false, true, false, false, false, false}},
	)
	for _, c := range cases {
		for i, p := range paths {
			if got := c.f.keep(p, Depth(p)); got != c.want[i] {
				t.Errorf("%+v keeps %s: %v, want %v", c.f, p, got, c.want[i])
			}
		}
	}
}
