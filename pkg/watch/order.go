package watch

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cgrstat/cgrstat/pkg/identity"
)

// Key is a sort key: the column rows are sorted by, highest first (path:
// alphabetical).
type Key string

// Sort keys.
const (
	ByStall    Key = "stall"
	ByReclaims Key = "reclaims"
	ByPages    Key = "pages"
	ByP99      Key = "p99"
	ByPSI      Key = "psi"
	ByOOM      Key = "oom"
	ByThrottle Key = "throttle"
	ByPath     Key = "path"
)

// Keys lists the sort keys in the order the s key cycles through them.
var Keys = []Key{ByStall, ByReclaims, ByPages, ByP99, ByPSI, ByOOM, ByThrottle, ByPath}

// ParseKey checks a --sort value.
func ParseKey(s string) (Key, error) {
	for _, k := range Keys {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown sort key %q (want one of %s)", s, joinKeys())
}

func joinKeys() string {
	var ks []string
	for _, k := range Keys {
		ks = append(ks, string(k))
	}
	return strings.Join(ks, ", ")
}

// Next is the key after k, for the interactive s key.
func (k Key) Next() Key {
	for i, x := range Keys {
		if x == k {
			return Keys[(i+1)%len(Keys)]
		}
	}
	return ByStall
}

// less orders two rows by k, busiest first, path breaking ties so that
// frames do not flicker between equal rows.
func (k Key) less(a, b *Row) bool {
	var x, y float64
	switch k {
	case ByStall:
		x, y = a.Stall, b.Stall
	case ByReclaims:
		x, y = a.Reclaims, b.Reclaims
	case ByPages:
		x, y = a.Pages, b.Pages
	case ByP99:
		x, y = a.P99, b.P99
	case ByPSI:
		x, y = a.PSI, b.PSI
	case ByOOM:
		x, y = float64(a.OOMKills), float64(b.OOMKills)
	case ByThrottle:
		x, y = a.Throttle, b.Throttle
	}
	if x != y {
		return x > y
	}
	return a.Path < b.Path
}

// Flat sorts rows by k.
func Flat(rows []Row, k Key) []Row {
	out := append([]Row(nil), rows...)
	sort.SliceStable(out, func(i, j int) bool { return k.less(&out[i], &out[j]) })
	for i := range out {
		out[i].Name, out[i].Level = shown(out[i].Path, ""), 0
	}
	return out
}

// Tree orders rows depth-first, each row's children after it, siblings by
// k. A row's subtree stays together, so the busiest subtree comes first.
func Tree(rows []Row, k Key) []Row {
	children := make(map[int][]int, len(rows))
	for i := range rows {
		children[rows[i].Parent] = append(children[rows[i].Parent], i)
	}
	out := make([]Row, 0, len(rows))
	levels := make([]int, len(rows))
	var visit func(parent int)
	visit = func(parent int) {
		kids := children[parent]
		sort.SliceStable(kids, func(i, j int) bool { return k.less(&rows[kids[i]], &rows[kids[j]]) })
		for _, c := range kids {
			r := rows[c]
			r.Name = shown(r.Path, "")
			if parent >= 0 {
				r.Level = levels[parent] + 1
				r.Name = shown(r.Path, rows[parent].Path)
			}
			levels[c] = r.Level
			out = append(out, r)
			visit(c)
		}
	}
	visit(-1)
	return out
}

// shown is what a row shows of the cgroup at path below the row of parent
// ("" for none): a pod's or container's short name, else the path below
// the parent's.
func shown(path, parent string) string {
	if short := identity.Name(path, parent); short != "" {
		return short
	}
	if parent == "" {
		return path
	}
	return strings.TrimPrefix(strings.TrimPrefix(path, parent), "/")
}
