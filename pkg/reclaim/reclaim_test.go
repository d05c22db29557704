package reclaim

import (
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Stat
		ok   bool
	}{
		{
			name: "the line the BPF prints",
			line: "cg_id: 12, total_vmscan_delay: 345, vmscan_count: 6, nr_reclaimed: 7\n",
			want: Stat{ID: 12, DelayNS: 345, Count: 6, Reclaimed: 7}, ok: true,
		},
		{
			name: "without the newline",
			line: "cg_id: 12, total_vmscan_delay: 345, vmscan_count: 6, nr_reclaimed: 7",
			want: Stat{ID: 12, DelayNS: 345, Count: 6, Reclaimed: 7}, ok: true,
		},
		{
			name: "zeros",
			line: "cg_id: 1, total_vmscan_delay: 0, vmscan_count: 0, nr_reclaimed: 0\n",
			want: Stat{ID: 1}, ok: true,
		},
		{
			name: "uint64 maxima",
			line: "cg_id: 18446744073709551615, total_vmscan_delay: 18446744073709551615, vmscan_count: 18446744073709551615, nr_reclaimed: 18446744073709551615\n",
			want: Stat{ID: 1<<64 - 1, DelayNS: 1<<64 - 1, Count: 1<<64 - 1, Reclaimed: 1<<64 - 1}, ok: true,
		},
		{
			name: "trailing fields a later cgrstat may add",
			line: "cg_id: 12, total_vmscan_delay: 345, vmscan_count: 6, nr_reclaimed: 7, max_delay: 99\n",
			want: Stat{ID: 12, DelayNS: 345, Count: 6, Reclaimed: 7}, ok: true,
		},
		{name: "the seed's original two-field line", line: "cg_id: 12, total_vmscan_delay: 345\n"},
		{name: "three fields", line: "cg_id: 12, total_vmscan_delay: 345, vmscan_count: 6\n"},
		{name: "empty (a second read of the stat file)", line: ""},
		{name: "garbage", line: "hello world\n"},
		{name: "fields renamed", line: "id: 12, delay: 345, count: 6, reclaimed: 7\n"},
		{name: "fields out of order", line: "cg_id: 12, vmscan_count: 6, total_vmscan_delay: 345, nr_reclaimed: 7\n"},
		{name: "not a number", line: "cg_id: x, total_vmscan_delay: 345, vmscan_count: 6, nr_reclaimed: 7\n"},
		{name: "negative", line: "cg_id: 12, total_vmscan_delay: -345, vmscan_count: 6, nr_reclaimed: 7\n"},
		{name: "overflows uint64", line: "cg_id: 18446744073709551616, total_vmscan_delay: 1, vmscan_count: 6, nr_reclaimed: 7\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLine(tt.line)
			if !tt.ok {
				if err == nil {
					t.Fatalf("ParseLine(%q) = %+v, want an error", tt.line, got)
				}
				// The error quotes the line, trimmed, so that the user sees what was read.
				want := "malformed stat line " + `"` + strings.TrimSpace(tt.line)
				if !strings.Contains(err.Error(), want) {
					t.Errorf("ParseLine(%q) error %q, want it to contain %q", tt.line, err, want)
				}
				if !got.Equal(Stat{}) {
					t.Errorf("ParseLine(%q) returned %+v with its error, want the zero Stat", tt.line, got)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("ParseLine(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
			}
		})
	}
}

// TestParseStatOneCopy: the lines of one output come from one copy of the
// counters; an output whose lines disagree (a printer that finished from
// someone else's sums) is refused, saying how.
func TestParseStatOneCopy(t *testing.T) {
	good := "cg_id: 9, total_vmscan_delay: 30, vmscan_count: 3, nr_reclaimed: 5\n" +
		"limit: delay_ns 10, count 1, reclaimed 2\n" +
		"max: delay_ns 10, count 1, reclaimed 2\n" +
		"high: delay_ns 0, count 0, reclaimed 0\n" +
		"proactive: delay_ns 20, count 2, reclaimed 3\n" +
		"direct: delay_ns 0, count 0, reclaimed 0\n" +
		"forced: delay_ns 10, count 1, reclaimed 2\n" +
		"throttle: delay_ns 300000000, count 2\n" +
		"hist_throttle: 60:1 62:1\n" +
		"max_delay_ns: 12\n" +
		"hist_limit: 0:1\n" +
		"hist_proactive: 0:1 1:1\n"
	s, err := ParseStat(good)
	if err != nil || s.Count != 3 || s.Causes[Proactive].Count != 2 {
		t.Fatalf("ParseStat(good) = %+v, %v", s, err)
	}
	if th := s.Throttle; !th.Measured || th.Count != 2 || th.DelayNS != 3e8 || th.Hist == nil || th.Hist[60] != 1 || th.Hist[62] != 1 {
		t.Errorf("ParseStat(good) throttle %+v", th)
	}
	for _, tt := range []struct{ name, from, to, want string }{
		{"first line against the causes", "vmscan_count: 3", "vmscan_count: 134", "the first line says"},
		{"a cause against its histogram", "proactive: delay_ns 20, count 2", "proactive: delay_ns 20, count 7", "the histograms"},
		{"a histogram against its cause", "hist_limit: 0:1", "hist_limit: 0:1 5:1", "the first line says"},
		{"high against max's share of the histogram", "high: delay_ns 0, count 0", "high: delay_ns 0, count 1", "the histograms"},
		{"limit against max and high", "limit: delay_ns 10, count 1", "limit: delay_ns 10, count 4", "limit says"},
		{"the throttle against its histogram", "hist_throttle: 60:1 62:1", "hist_throttle: 60:1", "the throttle counts 2 sleeps, its histogram 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := strings.Replace(good, tt.from, tt.to, 1)
			if _, err := ParseStat(bad); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseStat = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
