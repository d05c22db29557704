package escape

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"/kubepods/burstable/pod1234", "/kubepods/burstable/pod1234"},
		{"a b", "a b"},
		{"a\x1b[2J\x1b[31mb", `a\x1b[2J\x1b[31mb`}, // issue 17's name
		{"line\nbreak\ttab\rcr", `line\x0abreak\x09tab\x0dcr`},
		{"del\x7f", `del\x7f`},
		{`back\slash`, `back\\slash`},
		{`\x1b`, `\\x1b`}, // a name that looks escaped stays apart from one that is
		{"café/日本語/🐳", "café/日本語/🐳"},
		{"bad\xff\xfeutf8", `bad\xff\xfeutf8`},
		{"\xe6\x97", `\xe6\x97`},           // a cut multi-byte character
		{"c1\u009bcsi", `c1\u009bcsi`},     // C1 control: CSI in 8 bits
		{"rtl\u202eevil", `rtl\u202eevil`}, // bidirectional override
		{"nb\u00a0sp", `nb\u00a0sp`},       // a space that is not ' '
		{"tag\U000e0041", `tag\U000e0041`}, // an invisible tag character
		{"\ufffd", "\ufffd"},               // U+FFFD itself is printable
		{"nul\x00", `nul\x00`},
	} {
		if got := String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := unescape(t, String(tt.in)); got != tt.in {
			t.Errorf("String(%q) reads back as %q", tt.in, got)
		}
	}
}

// TestPlainIsNotCopied: the common case costs no allocation.
func TestPlainIsNotCopied(t *testing.T) {
	s := "/system.slice/nginx.service"
	if n := testing.AllocsPerRun(100, func() { _ = String(s) }); n != 0 {
		t.Errorf("%v allocations for a plain name, want 0", n)
	}
}

// FuzzString: whatever the input, the output is UTF-8 without a control
// byte or any character a terminal would not print as itself, and it
// reads back to the input (the escaping is unambiguous).
func FuzzString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\x1b[2J\x1b[31mb", `\x41`, "\xff", "\u009b", "\u202e", "日本", "\\", "\x00\x01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := String(s)
		if !utf8.ValidString(out) {
			t.Fatalf("String(%q) = %q: not UTF-8", s, out)
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < ' ' || c == 0x7f {
				t.Fatalf("String(%q) = %q: control byte %#x", s, out, c)
			}
		}
		for _, r := range out {
			if r != ' ' && !unicode.IsPrint(r) {
				t.Fatalf("String(%q) = %q: unprintable %U", s, out, r)
			}
		}
		if back := unescape(t, out); back != s {
			t.Fatalf("String(%q) = %q reads back as %q", s, out, back)
		}
	})
}

// unescape reads String's output back, failing on any backslash that does
// not start one of its escapes.
func unescape(t *testing.T, s string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			t.Fatalf("%q: a lone backslash at the end", s)
		}
		digits := map[byte]int{'\\': 0, 'x': 2, 'u': 4, 'U': 8}[s[i+1]]
		if _, ok := map[byte]bool{'\\': true, 'x': true, 'u': true, 'U': true}[s[i+1]]; !ok || i+2+digits > len(s) {
			t.Fatalf("%q: bad escape at %d", s, i)
		}
		if s[i+1] == '\\' {
			b.WriteByte('\\')
			i++
			continue
		}
		v, err := strconv.ParseUint(s[i+2:i+2+digits], 16, 32)
		if err != nil {
			t.Fatalf("%q: bad escape at %d: %v", s, i, err)
		}
		if s[i+1] == 'x' {
			b.WriteByte(byte(v))
		} else {
			b.WriteRune(rune(v))
		}
		i += 1 + digits
	}
	return b.String()
}
