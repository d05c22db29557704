// Package kallsyms names kernel addresses from /proc/kallsyms.
package kallsyms

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Table is the kernel's symbols, sorted by address.
type Table struct {
	addrs []uint64
	names []string
}

// Load reads /proc/kallsyms. Without privileges the kernel shows every
// address as 0: Load then fails rather than name every frame wrongly.
func Load() (*Table, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("/proc/kallsyms: %w", err)
	}
	return t, nil
}

// Parse reads a kallsyms listing: "ADDRESS TYPE NAME [MODULE]" lines.
func Parse(r io.Reader) (*Table, error) {
	type sym struct {
		addr uint64
		name string
	}
	var syms []sym
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		addr, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil || addr == 0 {
			continue
		}
		name := f[2]
		if len(f) > 3 {
			name += " " + f[3] // [module]
		}
		syms = append(syms, sym{addr, name})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(syms) == 0 {
		return nil, fmt.Errorf("no symbol addresses (kptr_restrict hides them from this process)")
	}
	sort.SliceStable(syms, func(i, j int) bool { return syms[i].addr < syms[j].addr })
	t := &Table{addrs: make([]uint64, len(syms)), names: make([]string, len(syms))}
	for i, s := range syms {
		t.addrs[i], t.names[i] = s.addr, s.name
	}
	return t, nil
}

// Name is addr as symbol+0xoffset, or the address in hex when no symbol
// lies at or below it.
func (t *Table) Name(addr uint64) string {
	i := sort.Search(len(t.addrs), func(i int) bool { return t.addrs[i] > addr }) - 1
	if i < 0 {
		return fmt.Sprintf("0x%x", addr)
	}
	name, module, _ := strings.Cut(t.names[i], " ")
	s := fmt.Sprintf("%s+0x%x", name, addr-t.addrs[i])
	if module != "" {
		s += " " + module
	}
	return s
}
