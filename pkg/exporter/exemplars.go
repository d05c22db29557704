package exporter

import (
	"bytes"
	"cmp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cgrstat/cgrstat/pkg/escape"
	"github.com/cgrstat/cgrstat/pkg/events"
	"github.com/cgrstat/cgrstat/pkg/readout"
	"github.com/cgrstat/cgrstat/pkg/reclaim"
)

// Resolver names a cgroup by its id: its path as readout.Row.Path has
// it (cgroup.Paths.Path); false if it cannot. pid is the event's task, in
// the cgroup or below it, if that helps.
type Resolver func(id uint64, pid int) (string, bool)

// Exemplars keeps, for each cgroup, cause and exported latency bucket, the
// most recent reclaim of the cgroup's subtree in that bucket: what a
// scrape attaches to the bucket in the OpenMetrics format, so that a
// dashboard can go from a latency spike to the process that stalled.
//
// An event is placed when it arrives, in its cgroup and every ancestor
// (their histograms are hierarchical), by path: the cgroup may be gone by
// the next scrape (a job, or v1 stress's scratch cgroup), and its
// ancestors' buckets still counted it. The store holds only buckets that
// had an event, in fixed-size records keyed by a path that the cgroup's
// records share; a scrape forgets the cgroups it does not find (removed,
// or above the served subtree); past its limit the store drops its older
// half. Safe for concurrent use: events arrive from a reader goroutine
// while scrapes read.
type Exemplars struct {
	mu       sync.Mutex
	limit    int
	resolve  Resolver
	recent   map[exemplarKey]exemplarRecord
	names    map[uint64]string // ids resolved
	index    []idPath          // the last snapshot's cgroups, by id, once the resolver failed
	indexing bool              // the resolver failed: keep the index
	pending  []events.Event    // events no name was found for, until the next scrape's
	top      string            // the served subtree's top
	unplaced uint64            // events whose cgroup could not be named (gone before they were read)
}

// idPath is a cgroup of a snapshot.
type idPath struct {
	id   uint64
	path string
}

// exemplarKey is a cgroup, a cause with a distribution and a Prometheus
// bucket (len(bounds) is +Inf).
type exemplarKey struct {
	path          string
	cause, bucket uint8
}

type exemplarRecord struct {
	unixNano   int64
	durationNS uint64
	targetID   uint64
	target     string // its path; "" where it could not be resolved
	pid        uint32
	comm       [16]byte
}

// DefaultExemplarLimit bounds the records, and the cache of names: full,
// with both, the store took 2.1 MB of heap (100,000 events into 6,700
// cgroups, measured), next to serve's 48 MiB at 10,000 cgroups. An event
// takes one record in its cgroup and one in each ancestor (a bucket's
// newest for each).
const DefaultExemplarLimit = 8192

// NewExemplars returns an empty store of at most limit records for the
// subtree below top (a path as readout.Row.Path, "/" for every cgroup),
// that names cgroups with resolve.
func NewExemplars(limit int, top string, resolve Resolver) *Exemplars {
	return &Exemplars{limit: max(limit, 2), top: top, resolve: resolve,
		recent: map[exemplarKey]exemplarRecord{}, names: map[uint64]string{}}
}

// histCauses are the latency distributions (reclaim.Stat.Dists: limit, for
// max and high, and proactive), which the exemplars are kept by.
const histCauses = len(distNames)

// Add records e as the most recent reclaim of its bucket in its cgroup and
// every ancestor up to the served subtree's top. Direct reclaim has no
// distribution and is ignored; an event older than the one it would
// replace leaves it (events of several CPUs may arrive out of order).
func (x *Exemplars) Add(e events.Event) {
	if histCause(e.Cause) < 0 || e.Duration < 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.place(e, false)
}

// maxPending bounds the events kept for the next scrape's cgroups.
const maxPending = 256

// place records e; an event whose cgroup cannot be named waits for the
// next scrape's cgroups (see indexCgroups), unless last says that this is
// that chance.
func (x *Exemplars) place(e events.Event, last bool) {
	path := x.name(e.Cgroup, e.PID)
	if path == "" {
		if !last && len(x.pending) < maxPending {
			x.pending = append(x.pending, e)
		} else {
			x.unplaced++
		}
		return
	}
	if !below(path, x.top) {
		return // not served (serve subscribes to its subtree only)
	}
	r := exemplarRecord{unixNano: e.Time.UnixNano(), durationNS: uint64(e.Duration), pid: uint32(e.PID), targetID: e.Target}
	if e.Target != 0 {
		r.target = x.name(e.Target, e.PID)
	}
	copy(r.comm[:], e.Comm)
	cause, bucket := uint8(histCause(e.Cause)), uint8(promBucket(uint64(e.Duration)))
	for p := path; ; p = parentPath(p) {
		k := exemplarKey{path: p, cause: cause, bucket: bucket}
		if old, ok := x.recent[k]; !ok || old.unixNano <= r.unixNano {
			if !ok && len(x.recent) >= x.limit {
				x.dropOlderHalf()
			}
			x.recent[k] = r
		}
		if p == "/" || p == x.top {
			break
		}
	}
}

// histCause is the distribution (index in reclaim.Stat.Dists) of an
// event's cause by name, -1 for one without a distribution (direct).
func histCause(name string) int {
	switch name {
	case reclaim.Max.String(), reclaim.High.String():
		return 0 // limit
	case reclaim.Proactive.String():
		return 1
	}
	return -1
}

// name resolves a cgroup id, "" if it cannot, once: an id is never reused
// for another cgroup. A failure is not kept: the next event's task may
// name the cgroup. The cache is bounded like the records.
func (x *Exemplars) name(id uint64, pid int) string {
	if p, ok := x.names[id]; ok {
		return p
	}
	p, ok := x.resolve(id, pid)
	if !ok {
		x.indexing = true
		i, ok := slices.BinarySearchFunc(x.index, id, func(c idPath, id uint64) int { return cmp.Compare(c.id, id) })
		if !ok {
			return ""
		}
		// A copy: the index's paths share one buffer per walk, which a
		// name kept across scrapes would otherwise hold whole.
		p = strings.Clone(x.index[i].path)
	}
	if len(x.names) >= x.limit {
		clear(x.names)
	}
	x.names[id] = p
	return p
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

// Unplaced is the number of events dropped because their cgroup was gone
// before they were read, so that no path was known for them.
func (x *Exemplars) Unplaced() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.unplaced
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

// forScrape returns the exemplars of snap's cgroups, by path, and forgets
// the cgroups that snap does not hold (removed, or outside the served
// subtree) unless their event came after snap was read. With nothing
// recorded it costs nothing.
func (x *Exemplars) forScrape(snap *readout.Snapshot) map[string]*cgroupExemplars {
	if x == nil || len(snap.Rows) == 0 {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.indexing {
		x.indexCgroups(snap)
		for _, e := range x.pending {
			x.place(e, true)
		}
		x.pending = x.pending[:0]
	}
	if len(x.recent) == 0 {
		return nil
	}
	found := map[string]bool{}
	for k := range x.recent {
		found[k.path] = false
	}
	for i := range snap.Rows {
		if _, ok := found[snap.Rows[i].Path]; ok {
			found[snap.Rows[i].Path] = true
		}
	}
	read := snap.At.UnixNano()
	out := map[string]*cgroupExemplars{}
	for k, r := range x.recent {
		if !found[k.path] {
			if r.unixNano < read {
				delete(x.recent, k)
			}
			continue
		}
		ce := out[k.path]
		if ce == nil {
			ce = &cgroupExemplars{}
			out[k.path] = ce
		}
		if ce[k.cause] == nil {
			ce[k.cause] = make([]*dto.Exemplar, promBuckets)
		}
		ce[k.cause][k.bucket] = r.exemplar(k.path)
	}
	return out
}

// below says whether path is top or a cgroup below it.
func below(path, top string) bool {
	return top == "/" || path == top || strings.HasPrefix(path, top) && path[len(top)] == '/'
}

// indexCgroups keeps snap's cgroups by id, for the events whose cgroup the
// resolver cannot name: in a container without the host's pids (no
// /proc/PID/cgroup) and without CAP_DAC_READ_SEARCH, the cgroups that
// existed at the last scrape are still named. Kept only once the resolver
// has failed: 24 bytes per cgroup, and the paths, the snapshot's own
// strings (about 1 MB at 10,000 cgroups).
func (x *Exemplars) indexCgroups(snap *readout.Snapshot) {
	x.index = slices.Grow(x.index[:0], len(snap.Rows))
	for i := range snap.Rows {
		x.index = append(x.index, idPath{snap.Rows[i].ID, snap.Rows[i].Path})
	}
	slices.SortFunc(x.index, func(a, b idPath) int { return cmp.Compare(a.id, b.id) })
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
// not the series' cgroup (a reclaim its own limit forced needs no more);
// a target whose path could not be resolved (gone before its event was
// read) is named by its id, as target_id. The comm comes from
// the task and may be anything: it is escaped as cgrstat escapes names for
// a terminal, which also makes it valid UTF-8, as the exposition requires.
// A target too long for the 128 runes loses its head, not its leaf end,
// marked with "…".
func (r *exemplarRecord) exemplar(path string) *dto.Exemplar {
	n := bytes.IndexByte(r.comm[:], 0)
	if n < 0 {
		n = len(r.comm)
	}
	comm := escape.String(string(r.comm[:n]))
	pid := strconv.FormatUint(uint64(r.pid), 10)
	labels := []*dto.LabelPair{{Name: &commName, Value: &comm}, {Name: &pidName, Value: &pid}}
	switch {
	case r.target == "" && r.targetID != 0:
		id := strconv.FormatUint(r.targetID, 10)
		labels = append(labels, &dto.LabelPair{Name: &targetIDName, Value: &id})
	case r.target != "" && r.target != path:
		target := escape.String(r.target)
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
