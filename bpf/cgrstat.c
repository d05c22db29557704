//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * cgrstat: memory-cgroup reclaim latency, aggregated up the cgroup tree.
 *
 * State: one entry per cgroup in one hash map (stats, BPF_F_NO_PREALLOC, so
 * memory grows with the cgroups that reclaimed, not with --max-cgroups x
 * CPUs: about 4 KiB per cgroup, two struct counters). A cgroup's first event
 * makes the entries of its ancestors that lack one, so that an entry's
 * parent has an entry and the flush need not allocate. An entry holds
 *  - pending: what this cgroup's tasks recorded and what flushed children
 *    passed up, not yet folded in. Collectors and flushes of children add to
 *    it with atomic adds from any CPU; no per-CPU copy, so no preemption
 *    games are needed on kernels without bpf_preempt_disable (6.1-6.9).
 *  - total: the hierarchical total (this cgroup and every descendant), only
 *    ever added to by the flush.
 *  - adds: bumped (atomically) after every group of adds to pending, so a
 *    flush tells "nothing new" from one load, and a flush that ran in the
 *    middle of a collector's adds leaves adds set for the rest.
 *
 * The one flush routine (flush_step) for a cgroup c: take adds; drain
 * pending field by field with an atomic exchange; add what it got to
 * c.total and, atomically, to parent.pending. O(fields) per cgroup with new
 * data, O(1) (one lookup) per cgroup without: nothing is per CPU. If the
 * parent has no entry and none can be made (a full map), the delta waits in
 * c.pending, counted once, and goes up with a later flush.
 *
 * Who drives the flush is the flush mode:
 *  - fentry/kprobe on bpf_rstat_flush: collectors mark (cgroup, CPU) updated
 *    in rstat; rstat calls the routine bottom-up for the marked pairs. The
 *    first CPU's call of a cgroup drains it; the others find adds == 0.
 *  - walk: reading a stat file walks its subtree in post-order (children
 *    first, as rstat would) under cgroup_mutex (held by the cgroup iterator)
 *    and calls the routine once per cgroup. Used where the hook cannot be
 *    attached.
 *
 * Removed cgroups, in every mode: tp_btf/cgroup_rmdir (under cgroup_mutex,
 * after the cgroup went offline: it has no tasks and no live children)
 * flushes the cgroup into its parent's pending at once, so every ancestor
 * keeps its reclaim, including what no read had flushed. The entry stays
 * while the kernel holds the dying cgroup: an rstat flush of a child may
 * still be adding to it on another CPU (fentry mode), and a dying memcg can
 * see a rare late event (an exiting task charging after cgroup_exit, a
 * remote charge). tp_btf/cgroup_release flushes it once more and deletes
 * it: it fires in css_release_work_fn before rstat's last flushes of the
 * cgroup (there, and in css_free_rwork_fn's css_rstat_exit), which find no
 * entry and create none (a flush creates no entry for the flushed cgroup).
 * Its children were released before it (each holds a reference on its
 * parent), so nothing adds to it any more. So the map holds the live
 * cgroups that reclaimed, their ancestors, and the dying ones the kernel
 * still holds.
 *
 * Consistent reads: a reader that wants many cgroups at once (read --all)
 * reads every entry and computes a cgroup's hierarchical value as
 * total(c) + the pending of every cgroup in c's subtree: each event is in
 * exactly one pending and in the totals of the cgroups it was flushed
 * through, so this is exact whatever flushes did, provided no flush step
 * ran while the map was read. flush_seq counts begun and finished flush
 * steps: the reader reads done, the map, then begun, and retries unless
 * they are equal. Collectors' adds need no such care: each pending is read
 * once and counted in every ancestor from that one copy.
 *
 * Counts that must agree are derived, not stored twice: memory-cgroup
 * reclaim's count is the sum of its histogram, so "buckets sum to count"
 * holds in every copy, even one taken in the middle of a collector's adds.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "rstat.h"

char LICENSE[] SEC("license") = "GPL";

enum flush_how {
	FLUSH_RSTAT = 0, /* fentry or kprobe on bpf_rstat_flush */
	FLUSH_WALK = 1,
};

/* Each counts one lost thing once. */
enum lost_counter {
	LOST_EVENT,   /* map full: a reclaim event was not recorded */
	LOST_PARENT,  /* no entry for the parent: a delta waits in its cgroup (counted once) */
	LOST_RSTAT,   /* no trusted cgroup for rstat: a pair was not marked */
	LOST_REMOVED, /* map full: a removed cgroup's delta could not reach its parent */
	LOST_MAX,
};

enum cause {
	CAUSE_LIMIT = 0,     /* memcg reclaim at charge time, memory.high, limit writes */
	CAUSE_PROACTIVE = 1, /* memory.reclaim */
	CAUSE_DIRECT = 2,    /* global direct reclaim */
};

/*
 * Latency buckets, log-linear: bucket 0 is [0, 1024) ns; bucket b in
 * 1..104 has e = 10 + (b-1)/4, s = (b-1)%4 and covers
 * [(4+s) << (e-2), (5+s) << (e-2)) ns; bucket 105 is [2^36 ns, inf).
 */
#define NR_BUCKETS 106

/* Set by the loader before the program is loaded. */
const volatile enum flush_how flush_mode = FLUSH_RSTAT;
const volatile __u32 memcg_v1_hierarchy; /* 0 when memory is on cgroup v2 */

struct cause_counters {
	__u64 delay_ns;
	__u64 count;
	__u64 reclaimed;
};

/*
 * Everything but max_delay_ns is a plain sum, drained and passed up as an
 * array of NR_SUMS u64 (keep them first). Memory-cgroup reclaim (limit and
 * proactive) has no count field: its count is its histogram's sum.
 */
struct counters {
	__u64 limit_delay_ns;
	__u64 limit_reclaimed;
	__u64 proactive_delay_ns;
	__u64 proactive_reclaimed;
	struct cause_counters direct;
	/* reclaim whose target (the memcg whose limit was enforced) is this cgroup */
	struct cause_counters forced;
	__u64 limit_hist[NR_BUCKETS];
	__u64 proactive_hist[NR_BUCKETS];
	__u64 max_delay_ns; /* memory-cgroup reclaim; the maximum, not a sum */
};

#define NR_SUMS (__builtin_offsetof(struct counters, max_delay_ns) / sizeof(__u64))

struct cgstat {
	/*
	 * Non-zero while pending has something a flush has not taken. First,
	 * next to the key in the hash element: a walk that finds nothing new
	 * touches one cache line per cgroup.
	 */
	__u64 adds;
	__u64 stuck; /* pending waits for an entry for the parent */
	struct counters pending;
	struct counters total;
};

/* Flush steps begun and finished, for readers of the whole map. */
struct flush_seq {
	__u64 begun;
	__u64 done;
};

/* What the begin tracepoint saw, for the end tracepoint. */
struct reclaim_start {
	__u64 start_ns;
	__u64 target_id;
	__u32 cause;
	__u32 pad;
};

/* A cgroup as the tree iterator found it: read --all's view of the tree. */
struct tree_node {
	__u64 id;
	__u64 parent_id;
	char name[256]; /* NAME_MAX + 1 */
};

/* One JSON document written by the loader: what was loaded and why. */
struct load_record {
	char json[2048];
};

/* Max entries set by the loader (--max-cgroups). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct cgstat);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct reclaim_start);
} reclaim_starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flush_seq);
} seq SEC(".maps");

/*
 * Per iterator session: the last cgroup dump visited (the one its final call
 * prints), or the number of cgroups tree visited. Session ids are unique
 * across all iterators.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, __u64);
} sessions SEC(".maps");

/*
 * The cgroups of the last tree walk, in visiting order. Sized by the loader
 * like stats. Readers take a lock (flock on the pinned maps directory)
 * around walk and read, since every walk writes from slot 0.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct tree_node);
} tree_nodes SEC(".maps");

/*
 * The copies of a cgroup's counters that stat-file reads print from (one
 * does not fit the stack), one per read, keyed by its iterator session
 * (unique across all iterators) and deleted when printed. A read prints
 * several lines from its copy, and iterators (iter.s too) run with
 * migration, not preemption, disabled: a per-CPU copy was refilled by
 * another reader on the same CPU between two prints (seen on 7.2, where BPF
 * is preemptible). Preallocated, so that taking one never allocates nor
 * sleeps: task storage, tried first, failed on 6.1, whose task storage
 * keeps a per-CPU busy count that another reader held while it slept
 * allocating its copy. PRINT_COPIES reads can print at once; one more
 * says it is busy.
 */
#define PRINT_COPIES 64

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PRINT_COPIES);
	__type(key, __u64);
	__type(value, struct counters);
} print_copies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOST_MAX);
	__type(key, enum lost_counter);
	__type(value, __u64);
} lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct load_record);
} info SEC(".maps");

static __always_inline void count_lost(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &which);

	if (n)
		*n += 1;
}

/*
 * Direct loads through BTF pointers cost far less than bpf_probe_read_kernel
 * (BPF_CORE_READ); only the kprobe, whose pointers are plain integers, needs
 * the latter.
 */
static __always_inline __u64 cgroup_id(struct cgroup *cgrp)
{
	return cgrp->kn->id;
}

static __always_inline __u64 parent_id(struct cgroup *cgrp)
{
	struct cgroup_subsys_state *parent = cgrp->self.parent;

	return parent ? cgroup_id(parent->cgroup) : 0;
}

/* The memory cgroup a task charges to: the first one up with memory enabled. */
static __always_inline struct cgroup *task_memcg(struct task_struct *task)
{
	int id = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);

	return task->cgroups->subsys[id]->cgroup;
}

static __always_inline struct cgstat *stat_of(__u64 cgid, bool create)
{
	static const struct cgstat zero;
	struct cgstat *s = bpf_map_lookup_elem(&stats, &cgid);

	if (s || !create)
		return s;
	bpf_map_update_elem(&stats, &cgid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&stats, &cgid);
}

/*
 * A cgroup's first event makes the entries of its ancestors that lack one
 * too, so that the flush never has to. rstat's flush runs with interrupts
 * off under its per-CPU lock, where bpf_mem_alloc cannot refill its
 * per-CPU cache (a few 4 KiB objects: measured, a fentry flush that made
 * parents lost one or two deltas per 188 cgroups churned); a collector runs with
 * interrupts on, so a second try after the refill's irq_work succeeds.
 */
static __always_inline struct cgstat *make_entry(__u64 cgid)
{
	struct cgstat *s = NULL;

	for (int i = 0; i < 3 && !s; i++)
		s = stat_of(cgid, true);
	return s;
}

static __always_inline struct cgstat *stat_with_ancestors(struct cgroup *memcg, __u64 cgid)
{
	struct cgroup_subsys_state *css = memcg->self.parent;
	struct cgstat *s = bpf_map_lookup_elem(&stats, &cgid);
	__u64 id;

	if (s)
		return s;
	for (int i = 0; i < 32 && css; i++) {
		id = cgroup_id(css->cgroup);
		if (bpf_map_lookup_elem(&stats, &id) || !make_entry(id))
			break;
		css = css->parent;
	}
	return make_entry(cgid);
}

/* No atomic max in BPF: compare-and-swap until v is in or a larger value is. */
static __always_inline void atomic_max(__u64 *p, __u64 v)
{
	__u64 old = *p, prev;

	/* Each failed try means another CPU stored a new value; 8 are plenty. */
	for (int i = 0; i < 8 && v > old; i++) {
		prev = __sync_val_compare_and_swap(p, old, v);
		if (prev == old)
			break;
		old = prev;
	}
}

static __always_inline void seq_add(int done)
{
	__u32 zero = 0;
	struct flush_seq *s = bpf_map_lookup_elem(&seq, &zero);

	if (!s)
		return;
	if (done)
		__sync_fetch_and_add(&s->done, 1);
	else
		__sync_fetch_and_add(&s->begun, 1);
}

/*
 * The one flush routine of every mode: move what pending holds into the
 * total and the parent's pending. The parent's entry is made first. When
 * that fails (the map is full, or, on 6.1, bpf_mem_alloc's per-CPU cache of
 * 4 KiB objects is empty until its irq_work refills it) the delta waits in
 * pending for a later flush, counted once in LOST_PARENT: stat files of the
 * cgroup still show it (print_stat adds pending) and read --all counts it
 * at every ancestor. Returns false then.
 */
static __noinline bool flush_step(struct cgstat *s, __u64 pid)
{
	struct cgstat *ps = NULL;
	__u64 *from, *to, *up, v;

	if (!s || !s->adds)
		return true;
	if (pid) {
		ps = stat_of(pid, true);
		if (!ps) {
			if (!__sync_lock_test_and_set(&s->stuck, 1))
				count_lost(LOST_PARENT);
			return false;
		}
	}
	s->stuck = 0;
	seq_add(0);
	/* Before the drain: a collector's adds after this set it again. */
	__sync_lock_test_and_set(&s->adds, 0);
	from = (__u64 *)&s->pending;
	to = (__u64 *)&s->total;
	up = ps ? (__u64 *)&ps->pending : NULL;
	for (int i = 0; i < NR_SUMS; i++) {
		if (!from[i])
			continue;
		v = __sync_lock_test_and_set(&from[i], 0);
		__sync_fetch_and_add(&to[i], v);
		if (up)
			__sync_fetch_and_add(&up[i], v);
	}
	v = __sync_lock_test_and_set(&s->pending.max_delay_ns, 0);
	if (v) {
		atomic_max(&s->total.max_delay_ns, v);
		if (ps)
			atomic_max(&ps->pending.max_delay_ns, v);
	}
	if (ps)
		__sync_fetch_and_add(&ps->adds, 1);
	seq_add(1);
	return true;
}

/* floor(log2(v)) for v > 0, without relying on a clz instruction. */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) r += 1;
	return r;
}

static __always_inline __u32 bucket_of(__u64 ns)
{
	__u32 e;

	if (ns < 1024)
		return 0;
	if (ns >= 1ULL << 36)
		return NR_BUCKETS - 1;
	e = log2_u64(ns); /* 10..35 */
	return 1 + (e - 10) * 4 + ((ns >> (e - 2)) & 3);
}

static __always_inline void begin(__u32 cause, __u64 target_id)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct reclaim_start *st;

	st = bpf_task_storage_get(&reclaim_starts, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st)
		return;
	st->cause = cause;
	st->target_id = target_id;
	st->start_ns = bpf_ktime_get_ns();
}

/*
 * try_to_free_mem_cgroup_pages sets current->reclaim_state to the
 * reclaim_state inside its scan_control just before the begin tracepoint, so
 * the scan_control of this reclaim is reachable: whether it is proactive
 * (memory.reclaim) and whose limit it enforces. The tracepoints' own
 * arguments are not read at all: they are about to change order.
 */
SEC("tp_btf/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(vmscan_start)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct scan_control *sc;
	__u64 rs, target_id = 0;
	__u32 cause = CAUSE_LIMIT;

	rs = (__u64)BPF_CORE_READ(task, reclaim_state);
	if (rs) {
		sc = (struct scan_control *)(rs - bpf_core_field_offset(struct scan_control, reclaim_state));
		if (BPF_CORE_READ_BITFIELD_PROBED(sc, proactive))
			cause = CAUSE_PROACTIVE;
		target_id = BPF_CORE_READ(sc, target_mem_cgroup, css.cgroup, kn, id);
	}
	begin(cause, target_id);
	return 0;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_begin")
int BPF_PROG(direct_start)
{
	begin(CAUSE_DIRECT, 0);
	return 0;
}

/* Is the cgroup target_id memcg or one of its ancestors (seen from memcg)? */
static __always_inline bool is_ancestor(struct cgroup *memcg, __u64 target_id)
{
	struct cgroup_subsys_state *css = &memcg->self;

	for (int i = 0; i < 32 && css; i++) {
		if (cgroup_id(css->cgroup) == target_id)
			return true;
		css = css->parent;
	}
	return false;
}

/*
 * Marks target_id updated on this CPU when marking the task's memcg does not
 * (rstat marks a cgroup's ancestors with it). Needs a trusted cgroup from the
 * id, which bpf_cgroup_from_id gives on cgroup v2 from 6.2.
 */
static __always_inline bool mark_target(__u64 target_id, int cpu)
{
	struct cgroup *trusted;

	if (!bpf_ksym_exists(bpf_cgroup_from_id) || memcg_v1_hierarchy)
		return false;
	trusted = bpf_cgroup_from_id(target_id);
	if (!trusted)
		return false;
	if (bpf_ksym_exists(cgroup_rstat_updated))
		cgroup_rstat_updated(trusted, cpu);
	else if (bpf_ksym_exists(css_rstat_updated))
		css_rstat_updated(&trusted->self, cpu);
	bpf_cgroup_release(trusted);
	return true;
}

static __always_inline void add_forced(struct cgstat *t, __u64 dur, __u64 nr)
{
	__sync_fetch_and_add(&t->pending.forced.delay_ns, dur);
	__sync_fetch_and_add(&t->pending.forced.count, 1);
	__sync_fetch_and_add(&t->pending.forced.reclaimed, nr);
}

static __always_inline void end(unsigned long nr_reclaimed, bool direct)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct reclaim_start *st;
	struct cgroup *memcg;
	struct cgstat *s, *t;
	__u64 dur, cgid, target_id;
	__u32 cause, b;
	int cpu;

	st = bpf_task_storage_get(&reclaim_starts, task, 0, 0);
	if (!st || !st->start_ns || (st->cause == CAUSE_DIRECT) != direct)
		return;
	dur = bpf_ktime_get_ns() - st->start_ns;
	st->start_ns = 0;
	cause = st->cause;
	target_id = st->target_id;
	memcg = task_memcg(task);
	cgid = cgroup_id(memcg);

	s = stat_with_ancestors(memcg, cgid);
	if (!s) {
		count_lost(LOST_EVENT);
		return;
	}
	/*
	 * bucket_of is below NR_BUCKETS already; the clamp bounds the index
	 * for the verifier without dropping an event (direct reclaim needs no
	 * bucket at all).
	 */
	b = bucket_of(dur);
	if (b >= NR_BUCKETS)
		b = NR_BUCKETS - 1;
	if (cause == CAUSE_LIMIT) {
		__sync_fetch_and_add(&s->pending.limit_delay_ns, dur);
		__sync_fetch_and_add(&s->pending.limit_reclaimed, nr_reclaimed);
		__sync_fetch_and_add(&s->pending.limit_hist[b], 1);
	} else if (cause == CAUSE_PROACTIVE) {
		__sync_fetch_and_add(&s->pending.proactive_delay_ns, dur);
		__sync_fetch_and_add(&s->pending.proactive_reclaimed, nr_reclaimed);
		__sync_fetch_and_add(&s->pending.proactive_hist[b], 1);
	} else {
		__sync_fetch_and_add(&s->pending.direct.delay_ns, dur);
		__sync_fetch_and_add(&s->pending.direct.count, 1);
		__sync_fetch_and_add(&s->pending.direct.reclaimed, nr_reclaimed);
	}
	if (cause != CAUSE_DIRECT)
		atomic_max(&s->pending.max_delay_ns, dur);

	t = NULL;
	if (target_id == cgid) {
		add_forced(s, dur, nr_reclaimed);
	} else if (target_id) {
		t = make_entry(target_id);
		if (t) {
			add_forced(t, dur, nr_reclaimed);
			__sync_fetch_and_add(&t->adds, 1);
		} else {
			count_lost(LOST_EVENT);
		}
	}
	/* Last: a flush that sees adds takes everything above. */
	__sync_fetch_and_add(&s->adds, 1);

	if (flush_mode != FLUSH_RSTAT)
		return;
	cpu = bpf_get_smp_processor_id();
	/* Since 6.17 css_rstat_updated wants preemption off where the kernel can. */
	preempt_off();
	if (!rstat_mark(task, memcg, cgid, cpu, memcg_v1_hierarchy))
		count_lost(LOST_RSTAT);
	if (t && !is_ancestor(memcg, target_id) && !mark_target(target_id, cpu))
		count_lost(LOST_RSTAT);
	preempt_on();
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(vmscan_end, unsigned long nr_reclaimed)
{
	end(nr_reclaimed, false);
	return 0;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_end")
int BPF_PROG(direct_end, unsigned long nr_reclaimed)
{
	end(nr_reclaimed, true);
	return 0;
}

/*
 * rstat calls this for every updated (cgroup, CPU) pair; the cgroup's first
 * call drains it whatever the CPU.
 */
SEC("fentry/bpf_rstat_flush")
int BPF_PROG(flush_fentry, struct cgroup *cgrp, struct cgroup *parent, int cpu)
{
	flush_step(stat_of(cgroup_id(cgrp), false), parent ? cgroup_id(parent) : 0);
	return 0;
}

SEC("kprobe/bpf_rstat_flush")
int BPF_KPROBE(flush_kprobe, struct cgroup *cgrp, struct cgroup *parent, int cpu)
{
	__u64 cgid = BPF_CORE_READ(cgrp, kn, id);

	flush_step(stat_of(cgid, false), parent ? BPF_CORE_READ(parent, kn, id) : 0);
	return 0;
}

/*
 * A cgroup of the memory hierarchy leaves: at rmdir its reclaim goes to its
 * parent at once; at release, after any late delta went the same way, its
 * entry goes. The entry is not deleted at rmdir because until release an
 * rstat flush of a child (fentry mode, another CPU) may still add to it;
 * once a cgroup is released its children are too, so nothing can. cgroup
 * v1 has a hierarchy per controller, with ids of their own, so others'
 * cgroups are left alone.
 */
static __always_inline void forget(struct cgroup *cgrp, bool released)
{
	__u64 cgid;
	struct cgstat *s;

	if (cgrp->root->hierarchy_id != memcg_v1_hierarchy)
		return;
	cgid = cgroup_id(cgrp);
	s = stat_of(cgid, false);
	if (!s)
		return;
	if (!flush_step(s, parent_id(cgrp)) && released)
		count_lost(LOST_REMOVED);
	if (released)
		bpf_map_delete_elem(&stats, &cgid);
}

/* Runs under cgroup_mutex, after the cgroup went offline: no tasks, no live children. */
SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(on_rmdir, struct cgroup *cgrp, const char *path)
{
	forget(cgrp, false);
	return 0;
}

/* In css_release_work_fn, before rstat's last flushes of the cgroup. */
SEC("tp_btf/cgroup_release")
int BPF_PROG(on_release, struct cgroup *cgrp, const char *path)
{
	forget(cgrp, true);
	return 0;
}

static __always_inline void rstat_flush(struct cgroup *cgrp)
{
	if (bpf_ksym_exists(cgroup_rstat_flush))
		cgroup_rstat_flush(cgrp);
	else if (bpf_ksym_exists(css_rstat_flush))
		css_rstat_flush(&cgrp->self);
}

static __always_inline __u64 hist_sum(const __u64 *h)
{
	__u64 n = 0;

	for (int i = 0; i < NR_BUCKETS; i++)
		n += h[i];
	return n;
}

static __always_inline void print_cause(struct seq_file *seq, const char *name, __u64 delay, __u64 count,
					__u64 reclaimed)
{
	BPF_SEQ_PRINTF(seq, "%s: delay_ns %llu, count %llu, reclaimed %llu\n", name, delay, count, reclaimed);
}

/* Only the buckets with a count: "hist_limit: 12:3 13:40\n". */
static __always_inline void print_hist(struct seq_file *seq, const char *name, const __u64 *h)
{
	BPF_SEQ_PRINTF(seq, "%s:", name);
	for (int i = 0; i < NR_BUCKETS; i++)
		if (h[i])
			BPF_SEQ_PRINTF(seq, " %d:%llu", i, h[i]);
	BPF_SEQ_PRINTF(seq, "\n");
}

/*
 * The seed's line first, byte for byte (its fields are memory-cgroup
 * reclaim: limit plus proactive), then one line per cause, the maximum
 * and the histograms, all from one copy of the counters that is this
 * read's own (print_copies).
 */
static __noinline void print_stat(struct seq_file *seq, __u64 cgid, __u64 session)
{
	struct cgstat *s = stat_of(cgid, false);
	static const struct counters none;
	const struct counters *c = &none;
	struct counters *sc;
	__u64 *sum, *total, *pending;

	/* Without a copy the read says so in its one line: never lines that need not agree. */
	bpf_map_update_elem(&print_copies, &session, &none, BPF_NOEXIST);
	sc = bpf_map_lookup_elem(&print_copies, &session);
	if (!sc) {
		BPF_SEQ_PRINTF(seq, "cg_id: %llu, busy: no room to copy the counters, read again\n", cgid);
		return;
	}
	/* Total plus what still waits here (a delta whose parent had no entry). */
	if (s) {
		sum = (__u64 *)sc;
		total = (__u64 *)&s->total;
		pending = (__u64 *)&s->pending;
		for (int i = 0; i < NR_SUMS; i++)
			sum[i] = total[i] + pending[i];
		sc->max_delay_ns = s->total.max_delay_ns;
		if (s->pending.max_delay_ns > sc->max_delay_ns)
			sc->max_delay_ns = s->pending.max_delay_ns;
		c = sc;
	}

	__u64 limit_count = hist_sum(c->limit_hist), proactive_count = hist_sum(c->proactive_hist);

	BPF_SEQ_PRINTF(seq, "cg_id: %llu, total_vmscan_delay: %llu, vmscan_count: %llu, nr_reclaimed: %llu\n",
		       cgid, c->limit_delay_ns + c->proactive_delay_ns, limit_count + proactive_count,
		       c->limit_reclaimed + c->proactive_reclaimed);
	print_cause(seq, "limit", c->limit_delay_ns, limit_count, c->limit_reclaimed);
	print_cause(seq, "proactive", c->proactive_delay_ns, proactive_count, c->proactive_reclaimed);
	print_cause(seq, "direct", c->direct.delay_ns, c->direct.count, c->direct.reclaimed);
	print_cause(seq, "forced", c->forced.delay_ns, c->forced.count, c->forced.reclaimed);
	BPF_SEQ_PRINTF(seq, "max_delay_ns: %llu\n", c->max_delay_ns);
	print_hist(seq, "hist_limit", c->limit_hist);
	print_hist(seq, "hist_proactive", c->proactive_hist);
	bpf_map_delete_elem(&print_copies, &session);
}

/*
 * Reading a pinned stat file. Each visit flushes; the final call (NULL cgroup)
 * prints the last cgroup visited, which in walk mode's post-order walk is the
 * cgroup the file is pinned for. A second read() gets another final call,
 * which finds its session gone and prints nothing.
 */
static __always_inline int dump_visit(struct bpf_iter__cgroup *ctx, bool walk)
{
	struct cgroup *cgrp = ctx->cgroup;
	__u64 session = ctx->meta->session_id;
	__u64 cgid, *last;

	last = bpf_map_lookup_elem(&sessions, &session);
	if (!cgrp) {
		if (!last)
			return 0;
		cgid = *last;
		bpf_map_delete_elem(&sessions, &session);
		print_stat(ctx->meta->seq, cgid, session);
		return 0;
	}
	cgid = cgroup_id(cgrp);
	if (walk) {
		/* One lookup for a cgroup with nothing new: the walk does not grow with CPUs. */
		struct cgstat *s = stat_of(cgid, false);

		if (s && s->adds)
			flush_step(s, parent_id(cgrp));
	} else {
		rstat_flush(cgrp);
	}
	if (last)
		*last = cgid;
	else
		bpf_map_update_elem(&sessions, &session, &cgid, BPF_ANY);
	return 0;
}

/* fentry/kprobe modes: sleepable, since the rstat flush kfunc may sleep. */
SEC("iter.s/cgroup")
int dump(struct bpf_iter__cgroup *ctx)
{
	return dump_visit(ctx, false);
}

/*
 * Walk mode: not sleepable, so that the map lookups of its per-cgroup
 * visits are inlined (in a sleepable program each is a helper call, several
 * times the cost); the loader pins it as "dump".
 */
SEC("iter/cgroup")
int dump_walk(struct bpf_iter__cgroup *ctx)
{
	return dump_visit(ctx, true);
}

/*
 * Walking a subtree (DESCENDANTS_PRE) for read --all: each cgroup goes into
 * the next slot of tree_nodes, and the final call prints the session and
 * how many cgroups it visited. Nothing else is printed, so the walk of any
 * number of cgroups fits one read of the iterator's bounded buffer.
 */
SEC("iter/cgroup")
int tree(struct bpf_iter__cgroup *ctx)
{
	__u64 session = ctx->meta->session_id, one = 1, *visited;
	struct cgroup *cgrp = ctx->cgroup;
	struct tree_node *node;
	__u32 slot = 0;

	visited = bpf_map_lookup_elem(&sessions, &session);
	if (!cgrp) {
		if (!visited)
			return 0;
		BPF_SEQ_PRINTF(ctx->meta->seq, "session: %llu, visited: %llu\n", session, *visited);
		bpf_map_delete_elem(&sessions, &session);
		return 0;
	}
	/* Counted even past the last slot, so the reader can tell it is short. */
	if (visited) {
		slot = *visited;
		*visited += 1;
	} else {
		bpf_map_update_elem(&sessions, &session, &one, BPF_NOEXIST);
	}
	node = bpf_map_lookup_elem(&tree_nodes, &slot);
	if (!node)
		return 0;
	node->id = cgroup_id(cgrp);
	node->parent_id = parent_id(cgrp);
	bpf_probe_read_kernel_str(node->name, sizeof(node->name), cgrp->kn->name);
	return 0;
}
