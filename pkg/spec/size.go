package spec

import (
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Size is a number of bytes. Unlimited stands for the cgroup keyword "max".
type Size int64

// Unlimited is the value of the size "max" (no limit).
const Unlimited Size = -1

// Binary multiples, exported so callers can write 64 * spec.MiB.
const (
	B   Size = 1
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

// units lists the accepted suffixes. K, M, G, T are binary too, because the
// kernel and most cgroup tooling read "1K" as 1024.
var units = map[string]Size{
	"B": B, "KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": TiB,
	"K": KiB, "M": MiB, "G": GiB, "T": TiB,
}

// printUnits is the order String tries, largest first, so it prints the
// shortest exact form.
var printUnits = []struct {
	name string
	mult Size
}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}}

var sizeRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([0-9]+)(\.[0-9]+)?(?: ?(B|KiB|MiB|GiB|TiB|K|M|G|T))?$`)
})

// maxSizeLen bounds the input so that the exact big.Rat arithmetic below
// cannot be made slow by a megabyte of digits; no valid size needs more.
const maxSizeLen = 64

const sizeSyntax = "want bytes or a number with unit B, KiB, MiB, GiB, TiB, K, M, G or T (e.g. 5MiB), or max"

// ParseSize parses "5MiB", "5 MiB", "1.5GiB", "4096" or "max". Units are
// binary and case-sensitive. A fractional number is accepted only when it
// comes out as a whole number of bytes ("1.5KiB" = 1536, but not "1.3B"),
// so that no rounding happens silently.
func ParseSize(s string) (Size, error) {
	if s == "max" {
		return Unlimited, nil
	}
	if len(s) > maxSizeLen {
		return 0, fmt.Errorf("invalid size %.20q...: longer than %d bytes", s, maxSizeLen)
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("invalid size %q: negative", s)
	}
	m := sizeRE().FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid size %q: %s", s, sizeSyntax)
	}
	mult := B
	if m[3] != "" {
		mult = units[m[3]]
	}
	if m[2] == "" {
		return scaleInt(s, m[1], mult)
	}
	return scaleFrac(s, m[1]+m[2], mult)
}

func scaleInt(s, digits string, mult Size) (Size, error) {
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > int64(maxInt64/mult) {
		return 0, fmt.Errorf("invalid size %q: overflows int64 bytes", s)
	}
	return Size(n) * mult, nil
}

const maxInt64 = Size(1<<63 - 1)

// scaleFrac uses exact rational arithmetic: going through float64 would
// accept "0.1B"-style values that merely round to an integer.
func scaleFrac(s, decimal string, mult Size) (Size, error) {
	r, ok := new(big.Rat).SetString(decimal)
	if !ok {
		return 0, fmt.Errorf("invalid size %q: %s", s, sizeSyntax)
	}
	r.Mul(r, new(big.Rat).SetInt64(int64(mult)))
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("invalid size %q: overflows int64 bytes", s)
	}
	return Size(r.Num().Int64()), nil
}

// String returns the shortest exact form, which ParseSize reads back to the
// same value: "max", "5MiB", "1536KiB", "1234B".
func (z Size) String() string {
	if z == Unlimited {
		return "max"
	}
	if z > 0 {
		for _, u := range printUnits {
			if z%u.mult == 0 {
				return strconv.FormatInt(int64(z/u.mult), 10) + u.name
			}
		}
	}
	// Other negative values are invalid and do not round-trip; printing
	// them plainly still helps debugging.
	return strconv.FormatInt(int64(z), 10) + "B"
}
