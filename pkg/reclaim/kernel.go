package reclaim

import (
	"strconv"

	"github.com/cgrstat/cgrstat/bpf"
)

// Events are the kernel's own memory-cgroup event counters of a cgroup
// (hierarchical, like the file), read in the same walk as the tree: exact
// at that moment. On cgroup v2 they are memory.events' high, max, oom and
// oom_kill; on v1, memory.failcnt (charges that hit the limit) and
// memory.oom_control's oom_kill.
type Events struct {
	Read                    bool // the cgroup has a memory cgroup, and it was read
	V1                      bool
	High, Max, OOM, OOMKill uint64
	Failcnt                 uint64
}

// Pressure is the cgroup's memory.pressure: total time some (at least
// one) or all of its non-idle tasks stalled on memory, in ns, as of the
// kernel's last fold of its per-CPU times (every 2 s, or when
// memory.pressure is read). cgroup v2 only; not the root's (that is
// /proc/pressure/memory).
type Pressure struct {
	Read           bool
	SomeNS, FullNS uint64
}

// enum figures_flags of bpf/cgrstat.c (constants only: not in its BTF).
const (
	figMemcg = 1 << iota
	figPSI
)

// SetFigures sets s's Events and Pressure from what the tree walk read.
func (s *Stat) SetFigures(f *bpf.CgrstatMemcgFigures, v1 bool) {
	if f.Flags&figMemcg != 0 {
		s.Events = Events{Read: true, V1: v1, High: f.High, Max: f.Max, OOM: f.Oom, OOMKill: f.OomKill, Failcnt: f.Failcnt}
	}
	if f.Flags&figPSI != 0 {
		s.Pressure = Pressure{Read: true, SomeNS: f.PsiSomeNs, FullNS: f.PsiFullNs}
	}
}

// appendKernel appends "events" and "pressure" where they were read.
func (s *Stat) appendKernel(b []byte) []byte {
	if e := &s.Events; e.Read {
		fields := []field{{"high", e.High}, {"max", e.Max}, {"oom", e.OOM}, {"oom_kill", e.OOMKill}}
		if e.V1 {
			fields = []field{{"failcnt", e.Failcnt}, {"oom_kill", e.OOMKill}}
		}
		b = appendObject(appendKey(b, "events"), fields)
	}
	if p := &s.Pressure; p.Read {
		b = appendObject(appendKey(b, "pressure"), []field{{"some_ns", p.SomeNS}, {"full_ns", p.FullNS}})
	}
	return b
}

type field struct {
	key string
	v   uint64
}

func appendObject(b []byte, fields []field) []byte {
	for i, f := range fields {
		if i == 0 {
			b = append(b, `{"`...)
		} else {
			b = append(b, `,"`...)
		}
		b = strconv.AppendUint(append(append(b, f.key...), `":`...), f.v, 10)
	}
	return append(b, '}')
}

// eventsJSON and pressureJSON are the forms UnmarshalJSON reads back.
type eventsJSON struct {
	High    *uint64 `json:"high"`
	Max     *uint64 `json:"max"`
	OOM     *uint64 `json:"oom"`
	OOMKill *uint64 `json:"oom_kill"`
	Failcnt *uint64 `json:"failcnt"`
}

type pressureJSON struct {
	SomeNS uint64 `json:"some_ns"`
	FullNS uint64 `json:"full_ns"`
}

func (j *eventsJSON) events() Events {
	v := func(p *uint64) uint64 {
		if p == nil {
			return 0
		}
		return *p
	}
	return Events{Read: true, V1: j.Failcnt != nil, High: v(j.High), Max: v(j.Max), OOM: v(j.OOM), OOMKill: v(j.OOMKill), Failcnt: v(j.Failcnt)}
}
