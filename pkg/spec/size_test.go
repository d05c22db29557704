package spec

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
	}{
		{"0", 0},
		{"1234", 1234},
		{"1234B", 1234},
		{"1K", KiB},
		{"1KiB", KiB},
		{"5MiB", 5 * MiB},
		{"5 MiB", 5 * MiB},
		{"5M", 5 * MiB},
		{"2G", 2 * GiB},
		{"3GiB", 3 * GiB},
		{"1T", TiB},
		{"1TiB", TiB},
		{"007KiB", 7 * KiB},
		{"1.5KiB", 1536},
		{"0.5GiB", 512 * MiB},
		{"1024.0", 1024},
		{"1.25 K", 1280},
		{"max", Unlimited},
		{"9223372036854775807", Size(maxInt64)},
		{"8388607TiB", 8388607 * TiB},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSizeErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "want bytes or a number"},
		{"abc", "want bytes or a number"},
		{"-5MiB", "negative"},
		{"-1", "negative"},
		{"+5", "want bytes"},
		{"1.3B", "not a whole number of bytes"},
		{"0.1", "not a whole number of bytes"},
		{"1.0000000001KiB", "not a whole number of bytes"},
		{"8388608TiB", "overflows"},
		{"9223372036854775808", "overflows"},
		{"99999999999999999999999K", "overflows"},
		{"99999999999999.5TiB", "overflows"},
		{"5mib", "want bytes"},
		{"5kib", "want bytes"},
		{"5k", "want bytes"},
		{"5Mi", "want bytes"},
		{"5  MiB", "want bytes"},
		{"5 ", "want bytes"},
		{" 5", "want bytes"},
		{"5\tMiB", "want bytes"},
		{"0x10", "want bytes"},
		{"1e6", "want bytes"},
		{"1_000", "want bytes"},
		{".5K", "want bytes"},
		{"5.K", "want bytes"},
		{"MAX", "want bytes"},
		{"Max", "want bytes"},
		{"5MiB5", "want bytes"},
		{strings.Repeat("1", 100), "longer than"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err == nil {
			t.Errorf("ParseSize(%q) = %d, want error", tt.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSize(%q) error %q, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{Unlimited, "max"},
		{0, "0B"},
		{1, "1B"},
		{1234, "1234B"},
		{KiB, "1KiB"},
		{1536, "1536B"},
		{1536 * KiB, "1536KiB"},
		{5 * MiB, "5MiB"},
		{8 * MiB, "8MiB"},
		{64 * GiB, "64GiB"},
		{3 * TiB, "3TiB"},
		{Size(maxInt64), "9223372036854775807B"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
	}
}

func TestSizeRoundTrip(t *testing.T) {
	for _, z := range []Size{Unlimited, 0, 1, 1023, KiB, KiB + 1, 1536, 5 * MiB, 3*GiB + MiB, TiB, 8388607 * TiB, Size(maxInt64)} {
		got, err := ParseSize(z.String())
		if err != nil || got != z {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", z.String(), got, err, int64(z))
		}
	}
	for _, s := range []string{"5MiB", "max", "1234B", "1KiB", "7TiB"} {
		z, err := ParseSize(s)
		if err != nil || z.String() != s {
			t.Errorf("ParseSize(%q).String() = %q, %v", s, z.String(), err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"5MiB", "1.5 GiB", "max", "1234", "-1", "1.3B", "8388608TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		z, err := ParseSize(s)
		if err != nil {
			if strings.ContainsRune(err.Error(), '\n') {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if z < 0 && z != Unlimited {
			t.Fatalf("ParseSize(%q) = %d, negative", s, z)
		}
		back, err := ParseSize(z.String())
		if err != nil || back != z {
			t.Fatalf("round trip of %q: %q -> %d, %v", s, z.String(), back, err)
		}
	})
}
