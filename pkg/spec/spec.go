// Package spec parses the YAML description of a cgroup tree that
// cgrstat creates and stresses. It is pure logic: nothing here touches the
// cgroup filesystem, so a spec can be fully validated before anything is
// created.
package spec

import (
	_ "embed"
	"fmt"
	"os"
)

// Limits on the tree, so that a typo or a generated file cannot make
// cgrstat create an unbounded number of cgroups.
const (
	MaxDepth = 32    // the top cgroup is depth 1
	MaxNodes = 10000 // cgroups in total
)

// MinLimit is the lowest memory limit a spec may set.
const MinLimit = 4 * MiB

// Limits on the stress parameters of a leaf.
const (
	MaxStressSize = 64 * GiB
	MaxRounds     = 1000
)

// DefaultStress applies to leaves when the file says nothing.
var DefaultStress = Stress{Size: 5 * MiB, Rounds: 1}

// Memory holds memory controller limits; 0 means not set, Unlimited "max".
// Max and High are cgroup v2 (memory.max, memory.high), Limit is cgroup v1
// (memory.limit_in_bytes). All may be set, so one file can serve both.
type Memory struct {
	Max, High, Limit Size
}

// Stress is what the stressor does in a leaf cgroup. In a parsed spec it
// holds effective values, after inheritance; the zero Stress means not set.
type Stress struct {
	Size   Size
	Rounds int
}

// Node is one cgroup of the hierarchy.
type Node struct {
	Name   string
	Memory Memory
	// Stress is the effective stress: inherited from the ancestors, then
	// overridden by this node. It is set on every node of a parsed spec,
	// not only on leaves.
	Stress   Stress
	Children []*Node
	Line     int // line of the node in the source, for messages
}

// IsLeaf reports whether n has no children, i.e. is where stress runs.
func (n *Node) IsLeaf() bool { return len(n.Children) == 0 }

// Spec is a validated hierarchy.
type Spec struct {
	Root   *Node
	Source string // file name used in messages
}

// Error is a problem in a spec, located by source and line. Its message is
// always a single line.
type Error struct {
	Source string
	Line   int
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.Source, e.Line, e.Msg)
}

// Parse parses and validates a spec. It returns either a complete valid
// spec or an *Error describing the first problem found, never a partial
// tree, so callers can create cgroups only after a successful parse.
func Parse(data []byte, source string) (*Spec, error) {
	doc, err := decodeDocument(data, source)
	if err != nil {
		return nil, err
	}
	d := &decoder{src: source}
	root, err := d.node(doc, 1, DefaultStress)
	if err != nil {
		return nil, err
	}
	return &Spec{Root: root, Source: source}, nil
}

// ParseFile reads and parses the spec at path; errors name the path.
func ParseFile(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	return Parse(data, path)
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultSource is the Source of the spec returned by Default.
const DefaultSource = "default.yaml (built in)"

// Default returns the built-in seed hierarchy. Each call returns a fresh
// copy, so callers may modify it (e.g. to apply --size).
func Default() *Spec {
	s, err := Parse(defaultYAML, DefaultSource)
	if err != nil {
		panic("spec: built-in default.yaml is invalid: " + err.Error())
	}
	return s
}
