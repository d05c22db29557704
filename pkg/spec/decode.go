package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// decoder turns the yaml.v3 node tree into Nodes. It works on yaml.Node
// rather than structs so that every message can carry a line number and
// unknown keys can be rejected at any level.
type decoder struct {
	src   string
	count int // nodes seen so far, checked against MaxNodes
}

func (d *decoder) errorf(line int, format string, args ...any) error {
	return &Error{Source: d.src, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// decodeDocument returns the single top-level mapping of data.
func decodeDocument(data []byte, src string) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return nil, &Error{Source: src, Line: 1, Msg: "empty document"}
	}
	if err != nil {
		return nil, syntaxError(data, src, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxError(data, src, err)
	default:
		return nil, &Error{Source: src, Line: next.Line, Msg: "more than one document (found a second one)"}
	}
	if len(doc.Content) == 0 {
		return nil, &Error{Source: src, Line: 1, Msg: "empty document"}
	}
	top := doc.Content[0]
	switch {
	case top.Kind == yaml.ScalarNode && top.Tag == "!!null":
		return nil, &Error{Source: src, Line: doc.Line, Msg: "empty document"}
	case top.Kind != yaml.MappingNode:
		return nil, &Error{Source: src, Line: top.Line, Msg: "document: want a mapping, got " + describe(top)}
	}
	return top, nil
}

var yamlLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`) })

// syntaxError rewrites a yaml.v3 error into source:line form. yaml.v3 omits
// the line when it is the first one, and for byte-level problems (control
// characters, bad UTF-8) it has none, so we locate those ourselves.
func syntaxError(data []byte, src string, err error) error {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if m := yamlLineRE().FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Source: src, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	return &Error{Source: src, Line: badByteLine(data), Msg: "invalid YAML: " + msg}
}

// badByteLine returns the line of the first byte YAML rejects outright, or 1.
func badByteLine(data []byte) int {
	line := 1
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		if r == utf8.RuneError && n <= 1 {
			return line
		}
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f {
			return line
		}
		if r == '\n' {
			line++
		}
		data = data[n:]
	}
	return 1
}

var nodeKeys = []string{"name", "memory", "stress", "children"}

// node decodes one cgroup mapping at the given depth, with the stress its
// parent passes down.
func (d *decoder) node(y *yaml.Node, depth int, inherited Stress) (*Node, error) {
	if depth > MaxDepth {
		return nil, d.errorf(y.Line, "hierarchy deeper than %d levels", MaxDepth)
	}
	if d.count++; d.count > MaxNodes {
		return nil, d.errorf(y.Line, "more than %d cgroups in total", MaxNodes)
	}
	f, err := d.fields(y, "cgroup", nodeKeys)
	if err != nil {
		return nil, err
	}
	n := &Node{Line: y.Line}
	if n.Name, err = d.name(y, f["name"]); err != nil {
		return nil, err
	}
	if n.Memory, err = d.memory(f["memory"]); err != nil {
		return nil, err
	}
	if n.Stress, err = d.stress(f["stress"], inherited); err != nil {
		return nil, err
	}
	if n.Children, err = d.children(f["children"], depth, n.Stress); err != nil {
		return nil, err
	}
	return n, nil
}

// fields checks that y is a mapping with only known, unique keys and
// returns the values by key.
func (d *decoder) fields(y *yaml.Node, what string, known []string) (map[string]*yaml.Node, error) {
	if err := d.want(y, yaml.MappingNode, what); err != nil {
		return nil, err
	}
	out := make(map[string]*yaml.Node, len(known))
	for i := 0; i+1 < len(y.Content); i += 2 {
		k, v := y.Content[i], y.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, d.errorf(k.Line, "%s: keys must be plain strings, got %s", what, describe(k))
		}
		if !contains(known, k.Value) {
			return nil, d.errorf(k.Line, "unknown key %q in %s (want %s)", k.Value, what, strings.Join(known, ", "))
		}
		if _, dup := out[k.Value]; dup {
			return nil, d.errorf(k.Line, "duplicate key %q in %s", k.Value, what)
		}
		out[k.Value] = v
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// want checks the kind of y. Aliases are refused everywhere: they would let
// a small file describe a huge or cyclic tree.
func (d *decoder) want(y *yaml.Node, kind yaml.Kind, what string) error {
	if y.Kind == kind && !(kind == yaml.ScalarNode && y.Tag == "!!null") {
		return nil
	}
	want := map[yaml.Kind]string{yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list", yaml.ScalarNode: "a scalar"}[kind]
	return d.errorf(y.Line, "%s: want %s, got %s", what, want, describe(y))
}

// describe names the YAML type of y for messages.
func describe(y *yaml.Node) string {
	switch y.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias (aliases are not supported)"
	case yaml.DocumentNode:
		return "a document"
	}
	// Values and tags are quoted: an explicit tag or escape can put a
	// newline in either, and messages must stay on one line.
	switch y.Tag {
	case "!!null":
		return "null"
	case "!!str":
		return fmt.Sprintf("string %q", y.Value)
	case "!!int":
		return fmt.Sprintf("integer %q", y.Value)
	case "!!bool":
		return fmt.Sprintf("boolean %q", y.Value)
	case "!!float":
		return fmt.Sprintf("float %q", y.Value)
	}
	return fmt.Sprintf("%q tagged %q", y.Value, y.Tag)
}

// name decodes and validates the required name of the cgroup mapping m.
// Plain scalars such as 42 are taken as written: "42" is a fine cgroup name.
func (d *decoder) name(m, y *yaml.Node) (string, error) {
	if y == nil {
		return "", d.errorf(m.Line, "cgroup has no name (missing key \"name\")")
	}
	if err := d.want(y, yaml.ScalarNode, "name"); err != nil {
		return "", err
	}
	switch y.Tag {
	case "!!str", "!!int", "!!float", "!!bool":
	default:
		return "", d.errorf(y.Line, "name: want a string, got %s", describe(y))
	}
	if err := ValidateName(y.Value); err != nil {
		return "", d.errorf(y.Line, "%v", err)
	}
	return y.Value, nil
}

var memoryKeys = []string{"max", "high", "limit"}

func (d *decoder) memory(y *yaml.Node) (Memory, error) {
	var m Memory
	if y == nil {
		return m, nil
	}
	f, err := d.fields(y, "memory", memoryKeys)
	if err != nil {
		return m, err
	}
	for _, k := range []struct {
		key string
		dst *Size
	}{{"max", &m.Max}, {"high", &m.High}, {"limit", &m.Limit}} {
		if *k.dst, err = d.limit(f[k.key], "memory."+k.key); err != nil {
			return m, err
		}
	}
	return m, nil
}

// limit decodes a memory limit. Zero is refused because 0 means "not set"
// in Memory; anything below MinLimit because the kernel rounds a limit down
// to whole pages (1 would become 0) and a cgroup limited that low cannot run
// a process without the OOM killer.
func (d *decoder) limit(y *yaml.Node, what string) (Size, error) {
	if y == nil {
		return 0, nil
	}
	z, err := d.size(y, what)
	switch {
	case err != nil:
	case z == 0:
		err = d.errorf(y.Line, "%s: must be greater than 0 or \"max\"", what)
	case z != Unlimited && z < MinLimit:
		err = d.errorf(y.Line, "%s: %v is below the minimum %v: the kernel rounds limits down to whole pages, and a cgroup limited below %v OOM-kills the process stress runs in it",
			what, z, MinLimit, MinLimit)
	}
	return z, err
}

// size decodes any size scalar. Integers and strings go through the same
// ParseSize, so "4096" and 4096 mean the same thing.
func (d *decoder) size(y *yaml.Node, what string) (Size, error) {
	if err := d.want(y, yaml.ScalarNode, what); err != nil {
		return 0, err
	}
	z, err := ParseSize(y.Value)
	if err != nil {
		return 0, d.errorf(y.Line, "%s: %v", what, err)
	}
	return z, nil
}

var stressKeys = []string{"size", "rounds"}

// stress returns the effective stress: inherited, overridden field by field
// by what y sets.
func (d *decoder) stress(y *yaml.Node, inherited Stress) (Stress, error) {
	s := inherited
	if y == nil {
		return s, nil
	}
	f, err := d.fields(y, "stress", stressKeys)
	if err != nil {
		return s, err
	}
	if v := f["size"]; v != nil {
		if s.Size, err = d.stressSize(v); err != nil {
			return s, err
		}
	}
	if v := f["rounds"]; v != nil {
		if s.Rounds, err = d.rounds(v); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (d *decoder) stressSize(y *yaml.Node) (Size, error) {
	z, err := d.size(y, "stress.size")
	switch {
	case err != nil:
		return 0, err
	case z == Unlimited:
		return 0, d.errorf(y.Line, "stress.size: \"max\" is not allowed, want a size")
	case z <= 0:
		return 0, d.errorf(y.Line, "stress.size: must be greater than 0")
	case z > MaxStressSize:
		return 0, d.errorf(y.Line, "stress.size: %v is more than the maximum %v", z, MaxStressSize)
	}
	return z, nil
}

func (d *decoder) rounds(y *yaml.Node) (int, error) {
	if err := d.want(y, yaml.ScalarNode, "stress.rounds"); err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(y.Value, 10, 64)
	if y.Tag != "!!int" || err != nil {
		return 0, d.errorf(y.Line, "stress.rounds: want an integer, got %s", describe(y))
	}
	if n < 1 || n > MaxRounds {
		return 0, d.errorf(y.Line, "stress.rounds: %d is out of range 1..%d", n, MaxRounds)
	}
	return int(n), nil
}

// children decodes the child list of a node at depth, checking that
// sibling names are unique since they become sibling directories.
func (d *decoder) children(y *yaml.Node, depth int, inherited Stress) ([]*Node, error) {
	if y == nil {
		return nil, nil
	}
	if err := d.want(y, yaml.SequenceNode, "children"); err != nil {
		return nil, err
	}
	seen := make(map[string]int, len(y.Content))
	out := make([]*Node, 0, len(y.Content))
	for _, c := range y.Content {
		n, err := d.node(c, depth+1, inherited)
		if err != nil {
			return nil, err
		}
		if first, dup := seen[n.Name]; dup {
			return nil, d.errorf(n.Line, "duplicate sibling name %q (first at line %d)", n.Name, first)
		}
		seen[n.Name] = n.Line
		out = append(out, n)
	}
	return out, nil
}
