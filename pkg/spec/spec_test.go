package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const src = "hier.yaml"

// y joins lines, so that a test's line numbers can be read off the source.
func y(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// deep returns a chain of n nested cgroups; the cgroup at depth k is on
// line 2k-1.
func deep(n int) string {
	var b strings.Builder
	for k := 1; k <= n; k++ {
		ind := strings.Repeat("    ", k-1)
		if k == 1 {
			b.WriteString("name: l1\n")
		} else {
			fmt.Fprintf(&b, "%s- name: l%d\n", ind[2:], k)
		}
		if k < n {
			fmt.Fprintf(&b, "%schildren:\n", ind)
		}
	}
	return b.String()
}

// wide returns a root with n children, child i on line 2+i.
func wide(n int) string {
	var b strings.Builder
	b.WriteString("name: r\nchildren:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  - {name: c%d}\n", i)
	}
	return b.String()
}

type errCase struct {
	name string
	in   string
	line int
	want string // substring of the message
}

var errCases = []errCase{
	// Documents.
	{"empty", "", 1, "empty document"},
	{"only comment", "# nothing\n", 1, "empty document"},
	{"explicit empty", "---\n", 1, "empty document"},
	{"null document", "~\n", 1, "empty document"},
	{"sequence document", y("- name: a"), 1, "document: want a mapping, got a list"},
	{"scalar document", y("hello"), 1, "document: want a mapping, got string"},
	{"two documents", y("name: a", "---", "name: b"), 2, "more than one document"},
	{"trailing separator", y("name: a", "---"), 2, "more than one document"},
	{"syntax error", y("name: a", "children: [", ""), 3, "invalid YAML"},
	{"syntax error line 1", y("name: {"), 1, "invalid YAML"},
	{"syntax error in second document", y("name: a", "---", "a: ["), 3, "invalid YAML"},
	{"tab indentation", y("name: a", "children:", "\t- name: b"), 3, "invalid YAML"},
	{"control character", y("name: a", "memory: \x01"), 2, "invalid YAML: control characters"},
	{"invalid utf-8", y("name: a", "", "memory: \xff"), 3, "invalid YAML"},
	{"alias", y("name: &n a", "children:", "  - name: *n"), 3, "alias"},
	{"alias node", y("name: a", "stress: &s {size: 1M}", "children:", "  - name: b", "    stress: *s"), 5, "alias"},

	// Keys.
	{"unknown top key", y("name: a", "colour: blue"), 2, `unknown key "colour" in cgroup`},
	{"unknown child key", y("name: a", "children:", "  - name: b", "    nmae: c"), 4, `unknown key "nmae"`},
	{"unknown memory key", y("name: a", "memory:", "  min: 1M"), 3, `unknown key "min" in memory`},
	{"unknown stress key", y("name: a", "stress: {size: 1M,", "  round: 2}"), 3, `unknown key "round" in stress`},
	{"case of keys matters", y("Name: a"), 1, `unknown key "Name"`},
	{"merge key", y("name: a", "<<: {stress: {}}"), 2, `unknown key "<<"`},
	{"duplicate key", y("name: a", "memory: {}", "name: b"), 3, `duplicate key "name" in cgroup`},
	{"duplicate memory key", y("name: a", "memory: {max: 1M, max: 2M}"), 2, `duplicate key "max" in memory`},
	{"non-scalar key", y("name: a", "? [x]", ": 1"), 2, "keys must be plain strings"},

	// Types.
	{"memory scalar", y("name: a", "memory: 5M"), 2, "memory: want a mapping, got string"},
	{"memory null", y("name: a", "memory:"), 2, "memory: want a mapping, got null"},
	{"stress list", y("name: a", "stress: [1]"), 2, "stress: want a mapping, got a list"},
	{"children mapping", y("name: a", "children: {name: b}"), 2, "children: want a list, got a mapping"},
	{"children null", y("name: a", "children:"), 2, "children: want a list, got null"},
	{"child scalar", y("name: a", "children:", "  - b"), 3, "cgroup: want a mapping, got string"},
	{"child list", y("name: a", "children:", "  - [b]"), 3, "cgroup: want a mapping, got a list"},
	{"size list", y("name: a", "memory: {max: [1]}"), 2, "memory.max: want a scalar, got a list"},
	{"size bool", y("name: a", "memory:", "  high: true"), 3, `memory.high: invalid size "true"`},
	{"size null", y("name: a", "memory:", "  limit: ~"), 3, "memory.limit: want a scalar, got null"},
	{"rounds string", y("name: a", `stress: {rounds: "3"}`), 2, `stress.rounds: want an integer, got string "3"`},
	{"rounds float", y("name: a", "stress: {rounds: 1.5}"), 2, "stress.rounds: want an integer, got float \"1.5\""},
	{"rounds hex", y("name: a", "stress: {rounds: 0x10}"), 2, "stress.rounds: want an integer"},
	{"rounds huge", y("name: a", "stress: {rounds: 99999999999999999999}"), 2, "stress.rounds: want an integer"},
	{"rounds mapping", y("name: a", "stress: {rounds: {}}"), 2, "stress.rounds: want a scalar, got a mapping"},

	// Names.
	{"missing name", y("memory: {max: 1M}"), 1, `no name (missing key "name")`},
	{"missing child name", y("name: a", "children:", "  - stress: {size: 1M}"), 3, "no name"},
	{"empty flow child", y("name: a", "children: [{}]"), 2, "no name"},
	{"null name", y("name:"), 1, "name: want a scalar, got null"},
	{"tilde name", y("name: ~"), 1, "name: want a scalar, got null"},
	{"list name", y("name: [a]"), 1, "name: want a scalar, got a list"},
	{"binary name", y("name: !!binary YWJj"), 1, "name: want a string"},
	{"empty name", y(`name: ""`), 1, "name is empty"},
	{"dot", y("name: ."), 1, `name "." is not allowed`},
	{"dotdot", y("name: a", "children:", "  - name: .."), 3, `name ".." is not allowed`},
	{"slash", y("name: a/b"), 1, `contains '/'`},
	{"nul", y(`name: "a\0b"`), 1, "NUL byte"},
	{"newline", y(`name: "a\nb"`), 1, "control character"},
	{"too long", y("name: " + strings.Repeat("x", 256)), 1, "longer than 255"},
	{"cgroup.procs", y("name: cgroup.procs"), 1, `starts with "cgroup."`},
	{"memory prefix", y("name: a", "children:", "  - name: memory.max"), 3, `starts with "memory."`},
	{"bare prefix", y("name: io."), 1, `starts with "io."`},
	{"cpu prefix", y("name: cpu.x"), 1, `starts with "cpu."`},
	{"cpuacct prefix", y("name: cpuacct.usage"), 1, `starts with "cpuacct."`},
	{"cpuset prefix", y("name: cpuset.cpus"), 1, `starts with "cpuset."`},
	{"blkio prefix", y("name: blkio.weight"), 1, `starts with "blkio."`},
	{"pids prefix", y("name: pids.max"), 1, `starts with "pids."`},
	{"hugetlb prefix", y("name: hugetlb.2MB.max"), 1, `starts with "hugetlb."`},
	{"rdma prefix", y("name: rdma.max"), 1, `starts with "rdma."`},
	{"misc prefix", y("name: misc.max"), 1, `starts with "misc."`},
	{"devices prefix", y("name: devices.allow"), 1, `starts with "devices."`},
	{"freezer prefix", y("name: freezer.state"), 1, `starts with "freezer."`},
	{"net_cls prefix", y("name: net_cls.classid"), 1, `starts with "net_cls."`},
	{"net_prio prefix", y("name: net_prio.ifpriomap"), 1, `starts with "net_prio."`},
	{"perf_event prefix", y("name: perf_event.x"), 1, `starts with "perf_event."`},
	{"tasks", y("name: tasks"), 1, `name "tasks" is reserved`},
	{"notify_on_release", y("name: notify_on_release"), 1, "reserved"},
	{"release_agent", y("name: release_agent"), 1, "reserved"},
	{"vmscan.stat", y("name: a", "children: [{name: vmscan.stat}]"), 2, `name "vmscan.stat" is reserved`},
	{"duplicate siblings", y(
		"name: a",
		"children:",
		"  - name: child1",
		"  - name: child2",
		"  - name: child1",
	), 5, `duplicate sibling name "child1" (first at line 3)`},
	{"duplicate numeric siblings", y("name: a", "children: [{name: 1}, {name: \"1\"}]"), 2, `duplicate sibling name "1"`},

	// Sizes.
	{"bad unit", y("name: a", "memory: {max: 5XB}"), 2, `memory.max: invalid size "5XB"`},
	{"lowercase unit", y("name: a", "memory: {max: 5mib}"), 2, `invalid size "5mib"`},
	{"two spaces", y("name: a", `memory: {max: "5  MiB"}`), 2, "invalid size"},
	{"negative", y("name: a", "memory: {high: -5MiB}"), 2, "memory.high: invalid size \"-5MiB\": negative"},
	{"negative int", y("name: a", "memory: {high: -1}"), 2, "negative"},
	{"fraction", y("name: a", "stress: {size: 1.3B}"), 2, "not a whole number of bytes"},
	{"float bytes", y("name: a", "stress: {size: 100.5}"), 2, "not a whole number of bytes"},
	{"overflow", y("name: a", "memory: {limit: 9999999TiB}"), 2, "overflows"},
	{"overflow int", y("name: a", "memory: {limit: 9223372036854775808}"), 2, "overflows"},
	{"hex size", y("name: a", "memory: {max: 0x1000}"), 2, "invalid size"},
	{"zero max", y("name: a", "memory: {max: 0}"), 2, `memory.max: must be greater than 0 or "max"`},
	{"one byte limit", y("name: a", "memory: {limit: 1}"), 2, `memory.limit: 1B is below the minimum 4MiB`},
	{"high below minimum", y("name: a", "memory: {high: 4095KiB}"), 2, `memory.high: 4095KiB is below the minimum 4MiB`},
	{"zero stress", y("name: a", "stress: {size: 0MiB}"), 2, "stress.size: must be greater than 0"},
	{"max stress", y("name: a", "stress: {size: max}"), 2, `stress.size: "max" is not allowed`},
	{"huge stress", y("name: a", "stress: {size: 65GiB}"), 2, "stress.size: 65GiB is more than the maximum 64GiB"},
	{"just over stress", y("name: a", "stress: {size: 68719476737}"), 2, "more than the maximum 64GiB"},
	{"zero rounds", y("name: a", "stress: {rounds: 0}"), 2, "stress.rounds: 0 is out of range 1..1000"},
	{"negative rounds", y("name: a", "stress: {rounds: -1}"), 2, "out of range"},
	{"too many rounds", y("name: a", "children:", "  - name: b", "    stress: {rounds: 1001}"), 4, "1001 is out of range 1..1000"},

	// Limits.
	{"too deep", deep(MaxDepth + 1), 2*(MaxDepth+1) - 1, "deeper than 32 levels"},
	{"too many", wide(MaxNodes), MaxNodes + 2, "more than 10000 cgroups"},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.in), src)
			if err == nil {
				t.Fatalf("Parse succeeded (%d nodes), want error containing %q", s.Len(), tc.want)
			}
			if s != nil {
				t.Errorf("Parse returned a spec along with error %v", err)
			}
			checkErrorMessage(t, err, tc.line, tc.want)
		})
	}
}

func checkErrorMessage(t *testing.T, err error, line int, want string) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("message is not one line: %q", msg)
	}
	prefix := fmt.Sprintf("%s:%d: ", src, line)
	if !strings.HasPrefix(msg, prefix) {
		t.Errorf("message %q does not start with %q", msg, prefix)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("message %q does not contain %q", msg, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Source != src || e.Line != line {
		t.Errorf("error %#v is not an *Error for %s:%d", err, src, line)
	}
}

func TestLimitsAreInclusive(t *testing.T) {
	for name, in := range map[string]string{"depth": deep(MaxDepth), "nodes": wide(MaxNodes - 1)} {
		if _, err := Parse([]byte(in), src); err != nil {
			t.Errorf("%s at the limit: %v", name, err)
		}
	}
}

// relsAndStress flattens a spec for comparison.
func relsAndStress(s *Spec, post bool) []string {
	var out []string
	walk := s.Walk
	if post {
		walk = s.WalkPost
	}
	_ = walk(func(rel string, n *Node) error {
		out = append(out, fmt.Sprintf("%s %v x%d", rel, n.Stress.Size, n.Stress.Rounds))
		return nil
	})
	return out
}

func TestDefault(t *testing.T) {
	s := Default()
	if s.Source != DefaultSource {
		t.Errorf("Source = %q", s.Source)
	}
	want := []string{
		"test 5MiB x1",
		"test/child1 5MiB x1",
		"test/child1/child1_1 5MiB x1",
		"test/child1/child1_2 5MiB x1",
		"test/child2 5MiB x1",
		"test/child2/child2_1 5MiB x1",
		"test/child2/child2_2 5MiB x1",
	}
	if got := relsAndStress(s, false); !reflect.DeepEqual(got, want) {
		t.Errorf("Walk = %q\nwant %q", got, want)
	}
	wantPost := []string{
		"test/child1/child1_1 5MiB x1",
		"test/child1/child1_2 5MiB x1",
		"test/child1 5MiB x1",
		"test/child2/child2_1 5MiB x1",
		"test/child2/child2_2 5MiB x1",
		"test/child2 5MiB x1",
		"test 5MiB x1",
	}
	if got := relsAndStress(s, true); !reflect.DeepEqual(got, wantPost) {
		t.Errorf("WalkPost = %q\nwant %q", got, wantPost)
	}
	if s.Len() != 7 {
		t.Errorf("Len = %d, want 7", s.Len())
	}
	_ = s.Walk(func(rel string, n *Node) error {
		if n.Memory != (Memory{}) {
			t.Errorf("%s: memory %+v, want unset", rel, n.Memory)
		}
		return nil
	})
	var leaves []string
	for _, l := range s.Leaves() {
		leaves = append(leaves, l.Rel)
	}
	wantLeaves := []string{"test/child1/child1_1", "test/child1/child1_2", "test/child2/child2_1", "test/child2/child2_2"}
	if !reflect.DeepEqual(leaves, wantLeaves) {
		t.Errorf("Leaves = %q, want %q", leaves, wantLeaves)
	}
	// Callers may modify what Default returns (e.g. for --size).
	s.Root.Name = "changed"
	if Default().Root.Name != "test" {
		t.Error("Default returned a shared spec")
	}
}

func TestExample(t *testing.T) {
	s, err := ParseFile(filepath.Join("testdata", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"test 5MiB x1",
		"test/child1 5MiB x1",
		"test/child1/child1_1 5MiB x1",
		"test/child1/child1_2 8MiB x1",
		"test/child2 5MiB x1",
		"test/child2/child2_1 5MiB x1",
		"test/child2/child2_2 5MiB x1",
	}
	if got := relsAndStress(s, false); !reflect.DeepEqual(got, want) {
		t.Errorf("Walk = %q\nwant %q", got, want)
	}
	if s.Root.Memory != (Memory{Max: 256 * MiB}) {
		t.Errorf("root memory = %+v", s.Root.Memory)
	}
	// Memory limits are per cgroup, not inherited.
	if m := s.Root.Children[0].Memory; m != (Memory{}) {
		t.Errorf("child1 memory = %+v, want unset", m)
	}
	lines := map[string]int{}
	_ = s.Walk(func(rel string, n *Node) error { lines[rel] = n.Line; return nil })
	wantLines := map[string]int{"test": 1, "test/child1": 5, "test/child1/child1_1": 7,
		"test/child1/child1_2": 8, "test/child2": 10, "test/child2/child2_1": 11, "test/child2/child2_2": 11}
	if !reflect.DeepEqual(lines, wantLines) {
		t.Errorf("lines = %v, want %v", lines, wantLines)
	}
}

func TestInheritance(t *testing.T) {
	in := y(
		"name: r",
		"children:",
		"  - name: a",
		"    stress: {rounds: 3}",
		"    children:",
		"      - name: a1",
		"      - name: a2",
		"        stress: {size: 1G}",
		"      - name: a3",
		"        stress: {size: 1K, rounds: 7}",
		"        children: []",
		"  - name: b",
	)
	s, err := Parse([]byte(in), src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"r 5MiB x1",
		"r/a 5MiB x3",
		"r/a/a1 5MiB x3",
		"r/a/a2 1GiB x3",
		"r/a/a3 1KiB x7",
		"r/b 5MiB x1",
	}
	if got := relsAndStress(s, false); !reflect.DeepEqual(got, want) {
		t.Errorf("Walk = %q\nwant %q", got, want)
	}
	if n := s.Root.Children[0].Children[2]; !n.IsLeaf() {
		t.Error("a node with an empty children list is a leaf")
	}
}

func TestParseSuccess(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Memory
		rels []string
	}{
		{"flow style", "{name: t, children: [{name: a, children: [{name: b}]}, {name: c}]}", Memory{},
			[]string{"t", "t/a", "t/a/b", "t/c"}},
		{"integer sizes", y("name: t", "memory: {max: 268435456, high: 4194304, limit: 8388608}"),
			Memory{Max: 256 * MiB, High: 4 * MiB, Limit: 8 * MiB}, []string{"t"}},
		{"max", y("name: t", "memory: {max: max, high: \"max\", limit: 1 GiB}"),
			Memory{Max: Unlimited, High: Unlimited, Limit: GiB}, []string{"t"}},
		{"fraction", y("name: t", "memory: {max: 1.5GiB}"), Memory{Max: 1536 * MiB}, []string{"t"}},
		{"numeric names", y("name: 42", "children: [{name: 1}, {name: true}, {name: 2.5}]"), Memory{},
			[]string{"42", "42/1", "42/true", "42/2.5"}},
		{"lookalike names", y("name: cgroup", "children: [{name: memory}, {name: ...}, {name: vmscan.stats}, {name: tasks2}, {name: a.memory.b}]"),
			Memory{}, []string{"cgroup", "cgroup/memory", "cgroup/...", "cgroup/vmscan.stats", "cgroup/tasks2", "cgroup/a.memory.b"}},
		{"unicode name", y("name: \"caf\u00e9 \u2603\""), Memory{}, []string{"caf\u00e9 \u2603"}},
		{"max length name", y("name: " + strings.Repeat("x", 255)), Memory{}, []string{strings.Repeat("x", 255)}},
		{"same name in different parents", y("name: t", "children:", "  - {name: a, children: [{name: x}]}", "  - {name: b, children: [{name: x}]}"),
			Memory{}, []string{"t", "t/a", "t/a/x", "t/b", "t/b/x"}},
		{"empty maps", y("name: t", "memory: {}", "stress: {}"), Memory{}, []string{"t"}},
		{"document markers", y("---", "name: t", "..."), Memory{}, []string{"t"}},
		{"stress limits", y("name: t", "stress: {size: 64GiB, rounds: 1000}"), Memory{}, []string{"t"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.in), src)
			if err != nil {
				t.Fatal(err)
			}
			if s.Root.Memory != tt.want {
				t.Errorf("memory = %+v, want %+v", s.Root.Memory, tt.want)
			}
			var rels []string
			_ = s.Walk(func(rel string, _ *Node) error { rels = append(rels, rel); return nil })
			if !reflect.DeepEqual(rels, tt.rels) {
				t.Errorf("Walk = %q, want %q", rels, tt.rels)
			}
			checkInvariants(t, s)
		})
	}
}

func TestWalkStops(t *testing.T) {
	s := Default()
	stop := errors.New("stop")
	for name, walk := range map[string]func(func(string, *Node) error) error{"Walk": s.Walk, "WalkPost": s.WalkPost} {
		calls := 0
		err := walk(func(string, *Node) error { calls++; return stop })
		if err != stop || calls != 1 {
			t.Errorf("%s: err %v after %d calls, want stop after 1", name, err, calls)
		}
	}
	var empty *Spec
	if empty.Len() != 0 || empty.Leaves() != nil {
		t.Error("nil spec is not empty")
	}
}

func TestParseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte(y("name: a", "colour: blue")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":2: ") {
		t.Errorf("ParseFile error %v, want it to start with %s:2:", err, path)
	}
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	if _, err := ParseFile(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("ParseFile(missing) error %v, want it to name the path", err)
	}
}

// checkInvariants asserts what callers rely on in any successfully parsed
// spec.
func checkInvariants(t *testing.T, s *Spec) {
	t.Helper()
	if s == nil || s.Root == nil {
		t.Fatal("nil spec without error")
	}
	count := 0
	var check func(n *Node, depth int)
	check = func(n *Node, depth int) {
		count++
		if depth > MaxDepth {
			t.Fatalf("depth %d > %d", depth, MaxDepth)
		}
		if err := ValidateName(n.Name); err != nil {
			t.Fatalf("invalid name accepted: %v", err)
		}
		if n.Line < 1 {
			t.Fatalf("node %q has line %d", n.Name, n.Line)
		}
		st := n.Stress
		if st.Size <= 0 || st.Size > MaxStressSize || st.Rounds < 1 || st.Rounds > MaxRounds {
			t.Fatalf("node %q has stress %+v", n.Name, st)
		}
		for _, z := range []Size{n.Memory.Max, n.Memory.High, n.Memory.Limit} {
			if z < 0 && z != Unlimited {
				t.Fatalf("node %q has memory %+v", n.Name, n.Memory)
			}
		}
		seen := map[string]bool{}
		for _, c := range n.Children {
			if seen[c.Name] {
				t.Fatalf("duplicate sibling %q", c.Name)
			}
			seen[c.Name] = true
			check(c, depth+1)
		}
	}
	check(s.Root, 1)
	if count > MaxNodes || count != s.Len() {
		t.Fatalf("counted %d nodes, Len %d", count, s.Len())
	}
	for _, l := range s.Leaves() {
		if !l.Node.IsLeaf() || l.Node.Stress == (Stress{}) {
			t.Fatalf("leaf %s: %+v", l.Rel, l.Node)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range errCases {
		if len(tc.in) < 4096 { // the limit cases would only slow the fuzzer
			f.Add([]byte(tc.in))
		}
	}
	f.Add(defaultYAML)
	if ex, err := os.ReadFile(filepath.Join("testdata", "example.yaml")); err == nil {
		f.Add(ex)
	}
	f.Add([]byte("{name: t, children: [{name: a, stress: {size: 1.5K, rounds: 2}, memory: {max: max, high: 1G, limit: 5 M}}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, src)
		if err != nil {
			if s != nil {
				t.Fatal("spec returned with error")
			}
			var e *Error
			if !errors.As(err, &e) || e.Line < 1 || strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("bad error %q", err)
			}
			return
		}
		checkInvariants(t, s)
	})
}
