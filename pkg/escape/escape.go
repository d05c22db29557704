// Package escape makes strings that come from the system (cgroup names and
// paths, process names) safe to print on a terminal. Anyone who can name a
// cgroup can put escape sequences in its name; printed raw, they would
// drive the terminal of whoever runs cgrstat (usually root).
package escape

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// String returns s with every character a terminal would not print as
// itself written as an escape: control characters and bytes that are not
// UTF-8 as \xNN (\x1b, \x0a, \xff), other unprintable characters (C1
// controls, format characters such as bidirectional overrides, spaces
// other than ' ') as \uNNNN or \UNNNNNNNN, and the backslash itself as \\,
// so that the escaped text reads back unambiguously. Printable UTF-8 stays
// as it is. JSON and Prometheus output have their own escaping and do not
// use this.
func String(s string) string {
	if plain(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			hex(&b, s[i]) // not UTF-8 (n is 0 only at the end, never here)
		case r == '\\':
			b.WriteString(`\\`)
		case r == ' ' || unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		case r < utf8.RuneSelf:
			hex(&b, byte(r))
		case r <= 0xffff:
			b.WriteString(`\u`)
			pad(&b, uint64(r), 4)
		default:
			b.WriteString(`\U`)
			pad(&b, uint64(r), 8)
		}
		i += n
	}
	return b.String()
}

// plain says that s is printable ASCII without a backslash: the common
// case, returned as it is.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '\\' {
			return false
		}
	}
	return true
}

func hex(b *strings.Builder, c byte) {
	b.WriteString(`\x`)
	pad(b, uint64(c), 2)
}

func pad(b *strings.Builder, v uint64, digits int) {
	h := strconv.FormatUint(v, 16)
	b.WriteString(strings.Repeat("0", digits-len(h)))
	b.WriteString(h)
}
