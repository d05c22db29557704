package exporter

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/monitor"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// Event is one reclaim that a latency bucket can show as its exemplar:
// who stalled (pid, comm), where (the task's memory cgroup), whose limit
// forced it (the target), why and how long.
type Event struct {
	Time     time.Time // when it ended
	Duration time.Duration
	PID      int
	Comm     string // raw, from the kernel
	Cgroup   uint64 // the stalled task's memory cgroup, by ID (monitor.Cgroup.ID)
	Target   uint64 // the cgroup whose limit was enforced, by ID
	Cause    reclaim.Cause
}

// Exemplars keeps, for each cgroup, cause and exported latency bucket, the
// most recent reclaim seen there: what a scrape attaches to the bucket, in
// the OpenMetrics format, so that a dashboard can go from a latency spike to
// the process that stalled. It holds only buckets that had an event, in
// fixed-size records, and forgets a cgroup once a scrape no longer finds it;
// past its limit it drops its older half. Safe for concurrent use: events
// arrive from a reader goroutine while scrapes read.
type Exemplars struct {
	mu     sync.Mutex
	limit  int
	recent map[exemplarKey]exemplarRecord
}

// exemplarKey is a stalled task's cgroup, a cause with a distribution and
// a Prometheus bucket (len(bounds) is +Inf).
type exemplarKey struct {
	cgroup        uint64
	cause, bucket uint8
}

type exemplarRecord struct {
	unixNano   int64
	durationNS uint64
	pid        uint32
	comm       [16]byte
	target     uint64
}

// DefaultExemplarLimit bounds the records: 16,384 of about 100 bytes each
// (map overhead included) is 1.6 MiB at most, next to serve's 48 MiB at
// 10,000 cgroups. A host where more buckets than that see slow reclaim
// between two scrapes keeps the most recent half.
const DefaultExemplarLimit = 16384

// NewExemplars returns an empty store of at most limit records.
func NewExemplars(limit int) *Exemplars {
	return &Exemplars{limit: max(limit, 2), recent: map[exemplarKey]exemplarRecord{}}
}

// histCauses are the causes with a latency distribution (see duration).
const histCauses = reclaim.Proactive + 1

// Add records e as the most recent reclaim of its cgroup, cause and bucket.
// Direct reclaim has no distribution and is ignored; so is an event older
// than the one it would replace (events of several CPUs may arrive out of
// order).
func (x *Exemplars) Add(e Event) {
	if e.Cause < 0 || e.Cause >= histCauses {
		return
	}
	if e.Duration < 0 {
		return
	}
	k := exemplarKey{cgroup: e.Cgroup, cause: uint8(e.Cause), bucket: uint8(promBucket(uint64(e.Duration)))}
	r := exemplarRecord{unixNano: e.Time.UnixNano(), durationNS: uint64(e.Duration), pid: uint32(e.PID), target: e.Target}
	copy(r.comm[:], e.Comm)
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.recent[k]; ok {
		if old.unixNano <= r.unixNano {
			x.recent[k] = r
		}
		return
	}
	if len(x.recent) >= x.limit {
		x.dropOlderHalf()
	}
	x.recent[k] = r
}

// dropOlderHalf makes room: one pass that sorts the times, so that filling
// the store costs O(log n) per event amortized, not a scan per event.
func (x *Exemplars) dropOlderHalf() {
	times := make([]int64, 0, len(x.recent))
	for _, r := range x.recent {
		times = append(times, r.unixNano)
	}
	slices.Sort(times)
	median := times[len(times)/2]
	for k, r := range x.recent {
		if r.unixNano < median {
			delete(x.recent, k)
		}
	}
	if len(x.recent) >= x.limit { // all of one time: keep none of them
		clear(x.recent)
	}
}

// Len is the number of records held.
func (x *Exemplars) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.recent)
}

// promBucket is the exported bucket that counts a reclaim of ns: the
// first bound whose cumulative count includes ns's kernel bucket (see
// cumulative), len(bounds) for +Inf.
func promBucket(ns uint64) int {
	i := reclaim.BucketOf(ns)
	for j, b := range boundBucket {
		if i < b {
			return j
		}
	}
	return len(bounds)
}

// cgroupExemplars are one exported cgroup's exemplars, by cause and
// bucket; nil where none.
type cgroupExemplars [histCauses][]*dto.Exemplar

// promBuckets are the exported buckets with +Inf: len(bounds)+1, checked
// by TestExemplarBuckets.
const promBuckets = 15

// forScrape returns the exemplars of snap's cgroups, by path. A cgroup's
// histograms are hierarchical, so its exemplar of a bucket is the most
// recent reclaim of that bucket anywhere in its subtree: each record is
// offered to its cgroup and every ancestor up to the snapshot's top. It
// also forgets the cgroups that snap does not hold and that had no event
// since it was read (removed, or outside the served subtree). With nothing
// recorded it costs nothing.
func (x *Exemplars) forScrape(snap *monitor.Snapshot) map[string]*cgroupExemplars {
	if x == nil || len(snap.Cgroups) == 0 {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.recent) == 0 {
		return nil
	}
	// The paths of the records' cgroups and targets, from the snapshot.
	paths := map[uint64]string{}
	for k, r := range x.recent {
		paths[k.cgroup] = ""
		paths[r.target] = ""
	}
	for i := range snap.Cgroups {
		if _, ok := paths[snap.Cgroups[i].ID]; ok {
			paths[snap.Cgroups[i].ID] = snap.Cgroups[i].Path
		}
	}
	top := snap.Cgroups[0].Path
	read := snap.At.UnixNano()
	newest := map[string]*[histCauses][promBuckets]*exemplarRecord{}
	for k, r := range x.recent {
		path := paths[k.cgroup]
		if path == "" {
			if r.unixNano < read {
				delete(x.recent, k)
			}
			continue
		}
		for p := path; ; p = parentPath(p) {
			slots := newest[p]
			if slots == nil {
				slots = &[histCauses][promBuckets]*exemplarRecord{}
				newest[p] = slots
			}
			if old := slots[k.cause][k.bucket]; old == nil || old.unixNano < r.unixNano {
				slots[k.cause][k.bucket] = &r
			}
			if len(p) <= len(top) || p == "/" {
				break
			}
		}
	}
	out := make(map[string]*cgroupExemplars, len(newest))
	for p, slots := range newest {
		ce := &cgroupExemplars{}
		for c := range slots {
			for b, r := range slots[c] {
				if r == nil {
					continue
				}
				if ce[c] == nil {
					ce[c] = make([]*dto.Exemplar, len(bounds)+1)
				}
				ce[c][b] = r.exemplar(p, paths[r.target])
			}
		}
		out[p] = ce
	}
	return out
}

// parentPath is the parent of a cgroup path such as /a/b; / is its own.
func parentPath(p string) string {
	i := len(p) - 1
	for i > 0 && p[i] != '/' {
		i--
	}
	if i == 0 {
		return "/"
	}
	return p[:i]
}

// exemplarRunes is OpenMetrics' limit on an exemplar's label names and
// values together; Prometheus drops an exemplar above it.
const exemplarRunes = 128

var (
	commName     = "comm"
	pidName      = "pid"
	targetName   = "target"
	targetIDName = "target_id"
)

// exemplar is r as the exemplar of series path's bucket: labels comm, pid,
// and target, the path of the cgroup whose limit was enforced, where it is
// not the series' cgroup (a reclaim its own limit forced needs no more). A target outside the snapshot (above the
// served subtree) is named by its ID, as target_id. The comm comes from
// the task and may be anything: it is escaped as cgrstat escapes names for
// a terminal, which also makes it valid UTF-8, as the exposition requires.
// A target too long for the 128 runes loses its head, not its leaf end,
// marked with "…".
func (r *exemplarRecord) exemplar(path, target string) *dto.Exemplar {
	n := bytes.IndexByte(r.comm[:], 0)
	if n < 0 {
		n = len(r.comm)
	}
	comm := escape.String(string(r.comm[:n]))
	pid := strconv.FormatUint(uint64(r.pid), 10)
	labels := []*dto.LabelPair{{Name: &commName, Value: &comm}, {Name: &pidName, Value: &pid}}
	switch {
	case target == "" && r.target != 0:
		id := strconv.FormatUint(r.target, 10)
		labels = append(labels, &dto.LabelPair{Name: &targetIDName, Value: &id})
	case target != "" && target != path:
		target = escape.String(target)
		room := exemplarRunes - len(commName) - utf8.RuneCountInString(comm) - len(pidName) - len(pid) - len(targetName)
		if n := utf8.RuneCountInString(target); n > room {
			rs := []rune(target)
			target = "…" + string(rs[n-room+1:])
		}
		labels = append(labels, &dto.LabelPair{Name: &targetName, Value: &target})
	}
	v := float64(r.durationNS) / 1e9
	return &dto.Exemplar{Label: labels, Value: &v, Timestamp: timestamppb.New(time.Unix(0, r.unixNano))}
}
