package exporter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/expfmt"

	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// everySeries is a snapshot with every kind of series: reclaim of every
// cause with both distributions, forced reclaim, OOM kills, the throttle,
// the kernel's figures of v1 and v2, identities, counts large enough for
// the exponent form, and paths that need escaping or are not UTF-8.
func everySeries() *readout.Snapshot {
	snap := syntheticActive(40, 25)
	snap.Health = readout.Health{Flush: "walk", Throttle: true, Stats: readout.Fill{Entries: 25, MaxEntries: 10240},
		Lost: readout.Lost{Events: 3, RstatMarks: 1 << 40}}
	snap.Took = 21_800 * time.Microsecond
	for i := range snap.Rows {
		r := &snap.Rows[i]
		r.Throttle.Measured = true
		switch i % 5 {
		case 1:
			r.Causes[reclaim.High] = reclaim.Counters{DelayNS: 123_456_789_012, Count: 1_234_567, Reclaimed: 7}
			r.Causes[reclaim.Proactive] = reclaim.Counters{DelayNS: 1, Count: 1, Reclaimed: 1 << 53}
			r.ProactiveHist = &reclaim.Hist{}
			r.ProactiveHist[reclaim.NrBuckets-1] = 1
			r.Forced = reclaim.Counters{DelayNS: 7, Count: 1}
			r.OOMKills = 2
		case 2:
			r.Events = reclaim.Events{Read: true, High: 329, Max: 1, OOM: 1, OOMKill: 1}
			r.Pressure = reclaim.Pressure{Read: true, SomeNS: 5_400_000_000, FullNS: 1}
			r.Causes[reclaim.Direct] = reclaim.Counters{DelayNS: 3e9, Count: 3}
		case 3:
			r.Events = reclaim.Events{Read: true, V1: true, Failcnt: 7, OOMKill: 2, High: 9}
			r.ObserveThrottle(300_000_000)
			r.ObserveThrottle(2_000_000)
			r.MaxNS = 1e9
		}
	}
	odd := []string{"/top/quote\"d", `/top/back\slash`, "/top/new\nline", "/top/not\xffutf8", "/top/ünïcode", "/top/c3/x y{z}=,"}
	for i, p := range odd {
		c := reclaim.Stat{ID: uint64(100 + i), Path: p, DelayNS: 5, Count: 1, Reclaimed: 1, MaxNS: 5}
		c.Own()
		c.LimitHist[0] = 1
		c.Causes[reclaim.Max] = reclaim.Counters{DelayNS: 5, Count: 1, Reclaimed: 1}
		snap.Rows = append(snap.Rows, readout.Row{Stat: c})
	}
	pod := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b3c9a5e_8f2d_4c1e_9a7b_2d4e6f8a1c3b.slice"
	for i, p := range []string{"/kubepods.slice", "/kubepods.slice/kubepods-burstable.slice", pod,
		pod + "/cri-containerd-3f9c2a1b6d8e4f70a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718.scope", "/system.slice/nginx.service",
		"/user.slice/user-1000.slice/session-2.scope"} {
		snap.Rows = append(snap.Rows, readout.Row{Stat: reclaim.Stat{ID: uint64(200 + i), Path: p}})
	}
	snap.Cgroups = len(snap.Rows) + 3
	return snap
}

// exemplarsOf is an empty exemplar store that names snap's cgroups.
func exemplarsOf(snap *readout.Snapshot) *Exemplars {
	names := map[uint64]string{}
	for _, r := range snap.Rows {
		names[r.ID] = r.Path
	}
	return NewExemplars(DefaultExemplarLimit, "/", func(id uint64, _ int) (string, bool) { p, ok := names[id]; return p, ok })
}

// encoded is what expfmt writes for c's families in format.
func encoded(t *testing.T, c *Collector, format expfmt.Format) string {
	mfs, err := c.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// sinkText is what textSink writes for c's snapshot.
func sinkText(t *testing.T, c *Collector, om bool) string {
	snap, done, err := c.read()
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	var b bytes.Buffer
	for parts := 1; parts <= 3; parts++ {
		sinks := make([]*textSink, parts)
		outs := make([]sink, parts)
		for i := range sinks {
			sinks[i] = newTextSink(om)
			outs[i] = sinks[i]
		}
		c.walk(snap, outs...)
		var w bytes.Buffer
		if err := writeText(&w, om, sinks); err != nil {
			t.Fatal(err)
		}
		if parts > 1 && w.String() != b.String() {
			t.Errorf("%d parts write\n%s\none\n%s", parts, firstDiff(w.String(), b.String()), firstDiff(b.String(), w.String()))
		}
		b = w
	}
	return b.String()
}

// TestTextSinkAgrees: the text serve writes itself is byte for byte what
// expfmt's encoders write for the same families, in the text format and
// in OpenMetrics (exemplars included), for every kind of series.
func TestTextSinkAgrees(t *testing.T) {
	snap := everySeries()
	x := exemplarsOf(snap)
	for i, r := range snap.Rows {
		for j := range promBuckets {
			x.Add(events.Event{Time: snap.At.Add(-time.Duration(j+1) * time.Millisecond), PID: i + 1, Comm: "w\"\\\n\xff",
				Cgroup: r.ID, Target: uint64(1 + i%3), Cause: []string{"max", "high", "proactive"}[j%3], Duration: time.Duration(uint64(1) << (10 + 2*j) >> 1)})
		}
	}
	x.Add(events.Event{Time: snap.At.Add(-time.Second), PID: 9, Comm: "gone", Cgroup: 5, Target: 99999, Cause: "max", Duration: 7e6})
	for _, tc := range []struct {
		name string
		c    *Collector
	}{
		{"plain", New(fixed{snap})},
		{"exemplars", New(fixed{snap}).WithExemplars(x)},
		{"empty", New(fixed{&readout.Snapshot{At: snap.At, Health: readout.Health{Flush: "fentry"}}})},
	} {
		for _, f := range []struct {
			format expfmt.Format
			om     bool
		}{
			{expfmt.NewFormat(expfmt.TypeTextPlain), false},
			{expfmt.NewFormat(expfmt.TypeOpenMetrics), true},
		} {
			want, got := encoded(t, tc.c, f.format), sinkText(t, tc.c, f.om)
			if got != want {
				t.Errorf("%s, %s: textSink writes\n%s\nexpfmt\n%s", tc.name, f.format, firstDiff(got, want), firstDiff(want, got))
			}
			if tc.name == "exemplars" && f.om && !strings.Contains(got, " # {comm=") {
				t.Errorf("%s: no exemplars in OpenMetrics", tc.name)
			}
		}
	}
}

// firstDiff is a's lines from the first that b does not have at the same
// place, a few of them.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range al {
		if i >= len(bl) || al[i] != bl[i] {
			return fmt.Sprintf("line %d: %q", i+1, strings.Join(al[i:min(len(al), i+3)], "\n"))
		}
	}
	return "(a prefix of the other)"
}

// TestBadUTF8Names: a cgroup whose name has bytes that are not UTF-8 is
// exported under the name read --json gives it (each such byte U+FFFD,
// as encoding/json writes it), and the scrape stays UTF-8 in every
// format: Prometheus refuses a whole scrape over one such label.
func TestBadUTF8Names(t *testing.T) {
	for _, p := range []string{"/top/not\xffutf8", "/top/\xc3", "/top/\xed\xa0\x80surrogate", "/top/ünïcode"} {
		j, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var want string
		if err := json.Unmarshal(j, &want); err != nil {
			t.Fatal(err)
		}
		if got := labelValue(p); got != want {
			t.Errorf("labelValue(%q) = %q; read --json names it %q", p, got, want)
		}
	}
	c := New(fixed{everySeries()})
	for _, om := range []bool{false, true} {
		text := sinkText(t, c, om)
		if !utf8.ValidString(text) {
			t.Errorf("OpenMetrics %v: the scrape is not UTF-8", om)
		}
		if want := `cgroup="/top/not` + "\uFFFD" + `utf8"`; !strings.Contains(text, want) {
			t.Errorf("OpenMetrics %v: no series has %s", om, want)
		}
	}
	// The protobuf format, which promhttp encodes from the dto families:
	// protobuf's strings must be UTF-8 too.
	mfs, err := c.Gather()
	if err != nil {
		t.Fatal(err)
	}
	enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeProtoDelim))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("protobuf: %s: %v", mf.GetName(), err)
		}
	}
}
