package readout_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// ebpfOwners are the packages under pkg/ that may import cilium/ebpf: the
// loader, which loads, attaches and pins, and this package, the only one
// that reads a load.
var ebpfOwners = []string{"loader", "readout"}

const ebpfPath = "github.com/cilium/ebpf"

// sources parses the non-test Go files of dir.
func sources(t *testing.T, dir string) []*ast.File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

// ebpfImports are the names under which f imports cilium/ebpf or one of
// its packages (link, ...).
func ebpfImports(f *ast.File) map[string]bool {
	names := map[string]bool{}
	for _, im := range f.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		if path != ebpfPath && !strings.HasPrefix(path, ebpfPath+"/") {
			continue
		}
		name := filepath.Base(path)
		if im.Name != nil {
			name = im.Name.Name
		}
		names[name] = true
	}
	return names
}

// TestOneReadSide checks issue 18's boundary: at most loader and readout
// import cilium/ebpf under pkg/, cmd/cgrstat imports none, and no package
// under pkg/ exports a field, function or method that hands out a BPF
// object (a program, map or link) of cilium/ebpf.
func TestOneReadSide(t *testing.T) {
	dirs, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		for _, f := range sources(t, filepath.Join("..", d.Name())) {
			checked++
			names := ebpfImports(f)
			if len(names) > 0 && !slices.Contains(ebpfOwners, d.Name()) {
				t.Errorf("pkg/%s (%s) imports cilium/ebpf: read a load through pkg/readout", d.Name(), f.Name.Name)
			}
			for _, leak := range exportedBPFObjects(f, names) {
				t.Errorf("pkg/%s exports %s", d.Name(), leak)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d files checked under pkg/: not the tree this test expects", checked)
	}
	for _, f := range sources(t, filepath.Join("..", "..", "cmd", "cgrstat")) {
		if len(ebpfImports(f)) > 0 {
			t.Errorf("cmd/cgrstat imports cilium/ebpf")
		}
	}
}

// exportedBPFObjects lists the exported fields, functions and methods of f
// whose types mention a program, map or link of cilium/ebpf (imported as
// names).
func exportedBPFObjects(f *ast.File, names map[string]bool) []string {
	if len(names) == 0 {
		return nil
	}
	mentions := func(n ast.Node) bool {
		found := false
		ast.Inspect(n, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && names[x.Name] && bpfObject(x.Name, sel.Sel.Name) {
				found = true
			}
			return !found
		})
		return found
	}
	var out []string
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Name.IsExported() && (d.Recv == nil || exportedRecv(d.Recv)) && d.Type.Results != nil && mentions(d.Type.Results) {
				out = append(out, "func "+d.Name.Name)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					st, ok := s.Type.(*ast.StructType)
					if !s.Name.IsExported() || !ok {
						continue
					}
					for _, fld := range st.Fields.List {
						for _, n := range fld.Names {
							if n.IsExported() && mentions(fld.Type) {
								out = append(out, s.Name.Name+"."+n.Name)
							}
						}
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() && s.Type != nil && mentions(s.Type) {
							out = append(out, "var "+n.Name)
						}
					}
				}
			}
		}
	}
	return out
}

// bpfObject reports whether pkg.name is a BPF object type: ebpf.Map or
// ebpf.Program, or any type of the link package.
func bpfObject(pkg, name string) bool {
	return name == "Map" || name == "Program" || pkg == "link"
}

func exportedRecv(r *ast.FieldList) bool {
	typ := r.List[0].Type
	if s, ok := typ.(*ast.StarExpr); ok {
		typ = s.X
	}
	if g, ok := typ.(*ast.IndexExpr); ok {
		typ = g.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}
