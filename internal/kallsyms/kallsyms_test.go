package kallsyms

import (
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	tab, err := Parse(strings.NewReader(`ffffffff81000000 T _stext
ffffffff81000100 t do_thing
ffffffffc0000000 t mod_fn	[virtio_blk]
0000000000000000 A fixed_percpu_data
`))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[uint64]string{
		0xffffffff81000000: "_stext+0x0",
		0xffffffff81000123: "do_thing+0x23",
		0xffffffffc0000010: "mod_fn+0x10 [virtio_blk]",
		0x1000:             "0x1000",
	} {
		if got := tab.Name(addr); got != want {
			t.Errorf("Name(%#x) = %q, want %q", addr, got, want)
		}
	}
}

func TestParseHiddenAddresses(t *testing.T) {
	if _, err := Parse(strings.NewReader("0000000000000000 T _stext\n")); err == nil {
		t.Error("a listing without addresses parsed")
	}
}
