package spec

// Leaf is a leaf cgroup with its path relative to the spec's parent.
type Leaf struct {
	Rel  string
	Node *Node
}

// Walk calls fn for every node in pre-order (parents before children, the
// order for creation). rel is the slash-separated path relative to the
// parent the spec is created under, e.g. "test/child1". A non-nil error
// from fn stops the walk and is returned.
func (s *Spec) Walk(fn func(rel string, n *Node) error) error {
	if s == nil || s.Root == nil {
		return nil
	}
	return walk(s.Root, s.Root.Name, fn, false)
}

// WalkPost is Walk with children visited before their parent, the order
// for removal (rmdir fails on a cgroup that still has children).
func (s *Spec) WalkPost(fn func(rel string, n *Node) error) error {
	if s == nil || s.Root == nil {
		return nil
	}
	return walk(s.Root, s.Root.Name, fn, true)
}

func walk(n *Node, rel string, fn func(string, *Node) error, post bool) error {
	if !post {
		if err := fn(rel, n); err != nil {
			return err
		}
	}
	for _, c := range n.Children {
		if err := walk(c, rel+"/"+c.Name, fn, post); err != nil {
			return err
		}
	}
	if post {
		return fn(rel, n)
	}
	return nil
}

// Leaves returns the leaf cgroups in pre-order.
func (s *Spec) Leaves() []Leaf {
	var out []Leaf
	_ = s.Walk(func(rel string, n *Node) error {
		if n.IsLeaf() {
			out = append(out, Leaf{Rel: rel, Node: n})
		}
		return nil
	})
	return out
}

// Len returns the number of nodes (cgroups) in the spec.
func (s *Spec) Len() int {
	count := 0
	_ = s.Walk(func(string, *Node) error { count++; return nil })
	return count
}
