//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * cgrstat: memory-cgroup reclaim latency, aggregated up the cgroup tree.
 *
 * State: one entry per cgroup in one hash map (stats, BPF_F_NO_PREALLOC, so
 * memory grows with the cgroups that reclaimed, not with --max-cgroups x
 * CPUs: one 4 KiB allocation per cgroup, two struct counters of 1.8 KB). A cgroup's first event
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
 * The throttle after memory.high (a sleep, not reclaim, so no tracepoint
 * brackets it) is timed by fentry/fexit on mem_cgroup_handle_over_high,
 * less the reclaims the same task did inside the call. Only cgroups with
 * memory.high throttle, so its counters and histogram live in a map of
 * their own (throttles, same key, same pending/total scheme), made for a
 * cgroup and its ancestors at its first throttle: stats entries do not
 * grow. A throttle marks the cgroup's cgstat (throttle_adds, then adds),
 * and the one flush step drains both entries between the same flush_seq
 * marks, so the consistent read below covers both maps. Those two programs
 * load apart: where the kernel refuses them the rest works, and stat
 * files print the throttle as unavailable (throttle_measured).
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
 * once and counted in every ancestor from that one copy. A reader copies
 * throttles (then stats) between the same two reads of flush_seq.
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
	/*
	 * No per-task storage (reclaim_starts) for a reclaim's begin or end,
	 * or a throttle's start: out of memory, or on 6.1, whose
	 * bpf_task_storage_get fails while this CPU's task-storage busy count
	 * is held (by a task-storage user this program interrupted, or one
	 * preempted on this CPU). The reclaim (throttle) is not recorded.
	 */
	LOST_TASK_STORAGE,
	LOST_MAX,
};

enum cause {
	CAUSE_MAX = 0,       /* memcg reclaim at charge time against memory.max (v1: the limit), max writes */
	CAUSE_PROACTIVE = 1, /* memory.reclaim */
	CAUSE_DIRECT = 2,    /* global direct reclaim */
	CAUSE_HIGH = 3,      /* memcg reclaim for memory.high (on return to user space, or a kworker), high writes */
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
/*
 * The most pages one charge asks for (a PMD-sized folio: 512 with 4 KiB
 * pages): a charge that fails against memory.max leaves usage above max
 * minus this. Set by the loader from the page size.
 */
const volatile __u64 charge_slack_pages = 512;
/*
 * Set by the loader once the throttle programs are attached (fentry/fexit,
 * which some kernels refuse): until then stat files say the throttle is
 * unavailable rather than print a 0 that was never measured.
 */
volatile __u32 throttle_measured;

struct cause_counters {
	__u64 delay_ns;
	__u64 count;
	__u64 reclaimed;
};

/*
 * The throttle after memory.high, in a map of its own (throttles), since
 * only cgroups with memory.high ever throttle and a histogram in every
 * stats entry would grow them all: the calls to mem_cgroup_handle_over_high
 * that spent THROTTLE_SLEPT_NS or more outside reclaim (the sleep is only
 * taken when the penalty exceeds HZ/100, 10 ms, so such a call slept),
 * their time there and their histogram. The count is the histogram's sum
 * (derived, not stored: see above). fentry/fexit only.
 */
struct throttle_counters {
	__u64 delay_ns;
	__u64 hist[NR_BUCKETS];
};

/*
 * A cgroup's throttle entry, made for the throttled task's memory cgroup
 * and its ancestors at its first throttle: pending and total as in cgstat,
 * drained by the same flush step (flush_throttle, from flush_step when
 * cgstat's throttle_adds says there is something), read by the same
 * consistent-read protocol (the reader copies both maps between the two
 * flush_seq reads).
 */
struct throttle_stat {
	struct throttle_counters pending;
	struct throttle_counters total;
};

#define THROTTLE_SLEPT_NS 1000000

/*
 * Everything but max_delay_ns is a plain sum, drained and passed up as an
 * array of NR_SUMS u64 (keep them first). Memory-cgroup reclaim's counts
 * are histogram sums: proactive's is its histogram's; max and high share
 * limit_hist (one histogram for both keeps an entry, two of these and the
 * hash element's header, within a 4 KiB allocation: with a histogram each,
 * 5.3 KB went to the 8 KiB size class), so high keeps its count and max's
 * is limit_hist's sum minus it. high_limit_count comes before limit_hist
 * and a collector adds to it after the bucket: every copy (the flush's
 * drain, a stat file's copy, a reader's map copy all go up the struct)
 * that has an event's high count has its bucket, so max's count is never
 * negative; at worst a high event caught half-added reads as max until
 * the next read.
 */
struct counters {
	__u64 max_limit_delay_ns; /* CAUSE_MAX */
	__u64 max_limit_reclaimed;
	/*
	 * Reclaim whose target (the memcg whose limit was enforced) is this
	 * cgroup. Here, so that the commonest event, a max reclaim of the
	 * task's own cgroup, finds adds, its cause and forced in the value's
	 * first 56 bytes, one cache line (64 bytes of allocator header, hash
	 * element and key come before the value: see below), and misses one
	 * line fewer after its reclaim evicted them.
	 */
	struct cause_counters forced;
	__u64 high_limit_delay_ns; /* CAUSE_HIGH */
	__u64 high_limit_reclaimed;
	__u64 high_limit_count;
	__u64 proactive_delay_ns;
	__u64 proactive_reclaimed;
	struct cause_counters direct;
	__u64 oom_kills; /* tasks of this cgroup the OOM killer chose (mark_victim) */
	__u64 limit_hist[NR_BUCKETS]; /* CAUSE_MAX and CAUSE_HIGH */
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
	/* Non-zero while the cgroup's throttles entry has pending the flush has not taken. */
	__u64 throttle_adds;
	struct counters pending;
	struct counters total;
};

/*
 * A hash element allocated at update is bpf_mem_alloc's 8-byte header, the
 * 48-byte struct htab_elem (6.1 to 7.x), the 8-byte key and the value, in
 * a kmalloc size class: past 4,032 bytes of value each cgroup costs 8 KiB.
 */
_Static_assert(sizeof(struct cgstat) <= 4096 - 8 - 48 - 8, "a stats entry must fit a 4 KiB allocation");

/* Flush steps begun and finished, for readers of the whole map. */
struct flush_seq {
	__u64 begun;
	__u64 done;
};

/*
 * What the begin tracepoint saw, for the end tracepoint; and, while the
 * task is in mem_cgroup_handle_over_high (fentry to fexit), when that call
 * began and how long the reclaims inside it took so far.
 */
struct reclaim_start {
	__u64 start_ns;
	__u64 target_id;
	__u32 cause;
	__u32 pad;
	__u64 over_high_ns; /* 0 outside the call */
	__u64 over_high_reclaim_ns;
	/*
	 * From 6.2 (begin_direct): the target's struct cgroup, not yet its id
	 * (target_id 0). end compares it with the task's cgroup, whose id it
	 * has anyway, and follows it to the id only when they differ: begin
	 * saves the loads of the target's kernfs node and id.
	 */
	__u64 target_cgrp;
};

enum figures_flags {
	FIG_MEMCG = 1, /* events (and on v1 failcnt) were read: the cgroup has a memcg */
	FIG_PSI = 2,   /* the pressure totals were read (cgroup v2 with PSI) */
};

/*
 * What the kernel itself counts for a cgroup, read as the tree walk passes
 * it: no file opened per cgroup. The events are exact at the walk; the PSI
 * totals are as of the kernel's last fold (every 2 s, or a read of
 * memory.pressure).
 */
struct memcg_figures {
	__u64 high, max, oom, oom_kill; /* memory.events (v1: oom_kill only) */
	__u64 failcnt;                  /* v1's memory.failcnt */
	__u64 psi_some_ns, psi_full_ns; /* memory.pressure totals */
	__u32 flags;                    /* enum figures_flags */
	__u32 pad;
};

/*
 * A cgroup as the tree iterator found it: read --all's view of the tree.
 * In a tree_chunk it is followed by the cgroup's name, NUL-terminated and
 * padded to 8 bytes: most names are short, and a fixed NAME_MAX + 1 bytes
 * per cgroup made the walk's output four times what it says.
 */
struct tree_node {
	__u64 id;
	__u64 parent_id;
	struct memcg_figures fig;
};

#define TREE_NAME_MAX 256 /* NAME_MAX + 1 */
#define TREE_NODE_MAX (sizeof(struct tree_node) + TREE_NAME_MAX)
/*
 * A chunk's value fits one 4 KiB allocation with the hash element's header
 * (48 bytes), its key and bpf_mem_alloc's link (8 bytes each).
 */
#define TREE_CHUNK_DATA 3992

/* Consecutive tree_nodes with their names, as one walk wrote them. */
struct tree_chunk {
	__u32 used;  /* bytes of data written */
	__u32 nodes; /* tree_nodes in data */
	__u8 data[TREE_CHUNK_DATA];
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

/*
 * The throttle's entries (struct throttle_stat), by cgroup id: only
 * throttled cgroups and their ancestors have one. Max entries set by the
 * loader, as stats'.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct throttle_stat);
} throttles SEC(".maps");

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
 * The cgroups of the last tree walk, in visiting order, in chunks 0, 1, ...
 * Not sized by --max-cgroups (the cgroups tracked for reclaim) and not
 * preallocated: a walk allocates the chunks it fills, about 100 bytes per
 * cgroup with a short name, and they stay for the next walk to overwrite.
 * TREE_CHUNKS holds 65,535 cgroups (the kernel's most memory cgroups) with
 * names of NAME_MAX bytes, 32 MiB; a walk that finds no room counts on, so
 * the reader can tell it is short. Readers take a lock around walk and read
 * (the walk lock, pkg/readout), since every walk writes from chunk 0.
 */
#define TREE_CHUNKS 8192

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TREE_CHUNKS);
	__type(key, __u32);
	__type(value, struct tree_chunk);
} tree_chunks SEC(".maps");

/* An empty chunk, that a walk copies to make a new one. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tree_chunk);
} tree_empty SEC(".maps");

/*
 * Kernels before 6.8 pass mark_victim the victim's pid only: the SIGKILL
 * the OOM killer sends just before (signal_generate, same task) leaves the
 * victim's memory cgroup and its ancestors here, by pid.
 */
#define OOM_DEPTH 32
struct oom_victim {
	__u64 ids[OOM_DEPTH]; /* the memcg, its parent, ... up to the root; 0 ends */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct oom_victim);
} oom_victims SEC(".maps");

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

/*
 * The throttle's copies for stat-file reads, as print_copies: a read that
 * holds one of those has room for one of these.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PRINT_COPIES);
	__type(key, __u64);
	__type(value, struct throttle_counters);
} throttle_copies SEC(".maps");

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

/* What a new entry starts from, in stats and in throttles. */
static const struct cgstat stat_zero;
static const struct throttle_stat throttle_zero;

static __always_inline struct cgstat *stat_of(__u64 cgid, bool create)
{
	struct cgstat *s = bpf_map_lookup_elem(&stats, &cgid);

	if (s || !create)
		return s;
	bpf_map_update_elem(&stats, &cgid, &stat_zero, BPF_NOEXIST);
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
static __always_inline void *make_in(void *map, const void *zero, __u64 id)
{
	void *e = bpf_map_lookup_elem(map, &id);

	for (int i = 0; i < 3 && !e; i++) {
		bpf_map_update_elem(map, &id, zero, BPF_NOEXIST);
		e = bpf_map_lookup_elem(map, &id);
	}
	return e;
}

static __always_inline struct cgstat *make_entry(__u64 cgid)
{
	return make_in(&stats, &stat_zero, cgid);
}

/*
 * The entry of memcg (id cgid) in map, stats or throttles (zero is what
 * that map's entries start from), made with those of its ancestors that
 * lack one: the one walk for both maps, inlined with each map as a
 * constant. An ancestor that has an entry has its ancestors' already.
 */
static __always_inline void *with_ancestors(void *map, const void *zero, struct cgroup *memcg, __u64 cgid)
{
	struct cgroup_subsys_state *css = memcg->self.parent;
	void *e = bpf_map_lookup_elem(map, &cgid);
	__u64 id;

	if (e)
		return e;
	for (int i = 0; i < 32 && css; i++) {
		id = cgroup_id(css->cgroup);
		if (bpf_map_lookup_elem(map, &id) || !make_in(map, zero, id))
			break;
		css = css->parent;
	}
	return make_in(map, zero, cgid);
}

static __always_inline struct cgstat *stat_with_ancestors(struct cgroup *memcg, __u64 cgid)
{
	return with_ancestors(&stats, &stat_zero, memcg, cgid);
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

/* cgstat.throttle_adds: something added; waiting for the parent's entry (counted once). */
#define THROTTLE_ADDED 1
#define THROTTLE_STUCK 2

static __always_inline struct throttle_stat *throttle_of(__u64 cgid, bool create)
{
	struct throttle_stat *t = bpf_map_lookup_elem(&throttles, &cgid);

	if (t || !create)
		return t;
	bpf_map_update_elem(&throttles, &cgid, &throttle_zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&throttles, &cgid);
}

/*
 * flush_step's part for the throttle's map (cgroup cgid, its cgstat s,
 * whose throttle_adds was how): the same drain into the total and the
 * parent's pending, between the same flush_seq marks. The collector made
 * the parent's entry; where it could not, the delta waits in pending as
 * flush_step's do (counted once in LOST_PARENT), and s is left marked
 * for a later flush. Returns whether the parent's pending got something.
 */
static __noinline bool flush_throttle(struct cgstat *s, __u64 cgid, __u64 pid, __u64 how)
{
	struct throttle_stat *t = throttle_of(cgid, false), *pt = NULL;
	__u64 *from, *to, *up = NULL, v;
	bool sent = false;

	if (!s || !t)
		return false;
	if (pid) {
		pt = throttle_of(pid, true);
		if (!pt) {
			if (how != THROTTLE_STUCK)
				count_lost(LOST_PARENT);
			__sync_lock_test_and_set(&s->throttle_adds, THROTTLE_STUCK);
			__sync_fetch_and_add(&s->adds, 1);
			return false;
		}
		up = (__u64 *)&pt->pending;
	}
	from = (__u64 *)&t->pending;
	to = (__u64 *)&t->total;
	for (int i = 0; i < sizeof(struct throttle_counters) / sizeof(__u64); i++) {
		if (!from[i])
			continue;
		v = __sync_lock_test_and_set(&from[i], 0);
		__sync_fetch_and_add(&to[i], v);
		if (up) {
			__sync_fetch_and_add(&up[i], v);
			sent = true;
		}
	}
	return sent;
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
static __noinline bool flush_step(struct cgstat *s, __u64 cgid, __u64 pid)
{
	struct cgstat *ps = NULL;
	__u64 *from, *to, *up, v;
	bool throttled;

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
	/*
	 * Two loops, up's test outside them: the verifier walks each of the
	 * NR_SUMS iterations, and in kernels after 6.12 (7.2, 7.3 and this
	 * project's 6.18 host) a test of up inside multiplied the paths it
	 * walked: 139,760 instructions verified in on_rmdir instead of
	 * 37,588 (39,128 on 6.12), and verifying a walk-mode load took 2.5
	 * times as long (on_rmdir, on_release, dump_walk and the flusher
	 * all drain here).
	 */
	if (up) {
		for (int i = 0; i < NR_SUMS; i++) {
			if (!from[i])
				continue;
			v = __sync_lock_test_and_set(&from[i], 0);
			__sync_fetch_and_add(&to[i], v);
			__sync_fetch_and_add(&up[i], v);
		}
	} else {
		for (int i = 0; i < NR_SUMS; i++) {
			if (!from[i])
				continue;
			v = __sync_lock_test_and_set(&from[i], 0);
			__sync_fetch_and_add(&to[i], v);
		}
	}
	v = __sync_lock_test_and_set(&s->pending.max_delay_ns, 0);
	if (v) {
		atomic_max(&s->total.max_delay_ns, v);
		if (ps)
			atomic_max(&ps->pending.max_delay_ns, v);
	}
	/*
	 * After adds is taken: a throttle's adds after this set both again.
	 * A load first: most cgroups never throttle.
	 */
	v = s->throttle_adds ? __sync_lock_test_and_set(&s->throttle_adds, 0) : 0;
	throttled = v && flush_throttle(s, cgid, pid, v);
	if (ps) {
		if (throttled)
			__sync_lock_test_and_set(&ps->throttle_adds, THROTTLE_ADDED);
		__sync_fetch_and_add(&ps->adds, 1);
	}
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

/*
 * ns's bucket, an index the verifier accepts for any histogram: below
 * NR_BUCKETS already, but the verifier cannot follow log2_u64's range, so
 * the result is clamped here (for every caller) rather than an event
 * dropped.
 */
static __always_inline __u32 bucket_of(__u64 ns)
{
	__u32 e, b;

	if (ns < 1024)
		return 0;
	if (ns >= 1ULL << 36)
		return NR_BUCKETS - 1;
	e = log2_u64(ns); /* 10..35 */
	b = 1 + (e - 10) * 4 + ((ns >> (e - 2)) & 3);
	return b < NR_BUCKETS ? b : NR_BUCKETS - 1;
}

static __always_inline void begin(__u32 cause, __u64 target_id, __u64 target_cgrp)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct reclaim_start *st;

	/* NULL: see LOST_TASK_STORAGE. */
	st = bpf_task_storage_get(&reclaim_starts, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		count_lost(LOST_TASK_STORAGE);
		return;
	}
	st->cause = cause;
	st->target_id = target_id;
	st->target_cgrp = target_cgrp;
	st->start_ns = bpf_ktime_get_ns();
}

/*
 * Which limit a memory-cgroup reclaim of target enforces, from target's
 * page counter as the reclaim begins. Both callers raise their memcg event
 * just before: try_charge_memcg (MEMCG_MAX) reclaims the cgroup whose
 * charge failed, so its usage is above max minus one charge; reclaim_high
 * (MEMCG_HIGH: return to user space, the high_work kworker, a charge far
 * over high) reclaims a cgroup whose usage is above high. Writes to
 * memory.max and memory.high reclaim while usage is above the new value,
 * so they land in the limit written. So: near max, or no memory.high
 * below max (always so on v1, which has no memory.high), is max; else
 * high. Only a cgroup with both limits, reclaiming for high within one
 * charge of max, is counted under max. No stack walk, the same on every
 * kernel.
 */
static __always_inline __u32 cause_of(__u64 usage, __u64 high, __u64 max)
{
	if (high >= max || usage + charge_slack_pages > max)
		return CAUSE_MAX;
	return CAUSE_HIGH;
}

/*
 * Before 6.2 (no bpf_rdonly_cast): the scan_control, reached by pointer
 * arithmetic, is read with bpf_probe_read_kernel (BPF_CORE_READ), eight
 * reads at most: high with max, which are neighbours in every layout, and
 * usage only where memory.high is below max (from 6.1 usage has a cache
 * line of its own, far from them).
 * Measured on the development host (bpf_stats, ~2,000 v1 max reclaims per
 * run, three runs each): the three page-counter reads made the begin
 * program 642-669 ns against 460-536 without.
 */
static __always_inline __u32 begin_probed(struct task_struct *task, __u64 *target_id)
{
	struct mem_cgroup *target;
	struct scan_control *sc;
	__u64 rs, usage = 0, limits[2] = {};
	void *pc;
	__u32 high, max;

	rs = (__u64)BPF_CORE_READ(task, reclaim_state);
	if (!rs)
		return CAUSE_MAX;
	sc = (struct scan_control *)(rs - bpf_core_field_offset(struct scan_control, reclaim_state));
	target = BPF_CORE_READ(sc, target_mem_cgroup);
	*target_id = BPF_CORE_READ(target, css.cgroup, kn, id);
	if (BPF_CORE_READ_BITFIELD_PROBED(sc, proactive))
		return CAUSE_PROACTIVE;
	if (!target)
		return CAUSE_MAX;
	pc = (void *)target + bpf_core_field_offset(struct mem_cgroup, memory);
	high = bpf_core_field_offset(struct page_counter, high);
	max = bpf_core_field_offset(struct page_counter, max);
	if (max == high + 8) {
		bpf_probe_read_kernel(limits, sizeof(limits), pc + high);
	} else {
		bpf_probe_read_kernel(&limits[0], 8, pc + high);
		bpf_probe_read_kernel(&limits[1], 8, pc + max);
	}
	if (limits[0] >= limits[1])
		return CAUSE_MAX; /* as begin_direct: usage only where memory.high is below max */
	bpf_probe_read_kernel(&usage, sizeof(usage), pc + bpf_core_field_offset(struct page_counter, usage));
	return cause_of(usage, limits[0], limits[1]);
}

/*
 * From 6.2: bpf_rdonly_cast gives the verifier the scan_control's type, and
 * everything is a direct load (a plain load with an exception-table entry)
 * instead of a helper call each.
 */
static __always_inline __u32 begin_direct(struct task_struct *task, __u64 *target_cgrp)
{
	struct mem_cgroup *target;
	struct scan_control *sc;
	__u64 rs, high, max;

	rs = (__u64)task->reclaim_state;
	if (!rs)
		return CAUSE_MAX;
	sc = bpf_rdonly_cast((void *)(rs - bpf_core_field_offset(struct scan_control, reclaim_state)),
			     bpf_core_type_id_kernel(struct scan_control));
	target = sc->target_mem_cgroup;
	if (!target)
		return BPF_CORE_READ_BITFIELD(sc, proactive) ? CAUSE_PROACTIVE : CAUSE_MAX;
	*target_cgrp = (__u64)target->css.cgroup;
	if (BPF_CORE_READ_BITFIELD(sc, proactive))
		return CAUSE_PROACTIVE;
	high = target->memory.high;
	max = target->memory.max;
	/* Usage, on a cache line of its own, only where memory.high is below max (never on v1). */
	if (high >= max)
		return CAUSE_MAX;
	return cause_of(target->memory.usage.counter, high, max);
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
	__u64 target_id = 0, target_cgrp = 0;
	__u32 cause;

	if (bpf_ksym_exists(bpf_rdonly_cast))
		cause = begin_direct(task, &target_cgrp);
	else
		cause = begin_probed(task, &target_id);
	begin(cause, target_id, target_cgrp);
	return 0;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_begin")
int BPF_PROG(direct_start)
{
	begin(CAUSE_DIRECT, 0, 0);
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

/*
 * The event stream (cgrstat trace, serve's exemplars): each subscriber
 * holds one of TRACE_SLOTS slots, with a ring buffer of its own in
 * trace_rings (so that two subscribers each see every event), its
 * threshold, its cgroup subtrees and its rate limit, decided here. With no
 * subscriber the cost per event is one load and compare: trace_gate holds
 * the lowest threshold of the active slots plus one, 0 when none is
 * active (TRACE_GATE), and a bit per active slot (TRACE_ACTIVE), so that
 * an event past the gate visits only the slots in use. Slots are claimed
 * and released by user space (pkg/readout), which keeps trace_gate; a
 * slot names its owner (pid and start time) so that a killed subscriber's
 * slot is reclaimed by the next one.
 */
#define TRACE_SLOTS 8
#define TRACE_CGROUPS 4
#define TRACE_DEPTH 32 /* cgroup levels searched for a slot's subtrees */
#define TRACE_STACK_DEPTH 32
/*
 * Events are submitted without waking the reader (it polls, every 100 ms):
 * a wakeup is an irq_work, a self-IPI, which in a virtual machine costs a
 * VM exit. Only a ring filling up wakes its reader.
 */
#define TRACE_WAKE_BYTES (64 * 1024)

enum trace_flags {
	TRACE_STACK = 1, /* events carry the kernel stack */
};

enum trace_drop {
	TRACE_DROP_RATE = 0, /* over the slot's rate limit */
	TRACE_DROP_FULL = 1, /* the slot's ring buffer was full */
	TRACE_DROP_MAX,
};

struct trace_slot {
	__u32 active;
	__u32 flags; /* enum trace_flags */
	__u64 min_ns;
	/*
	 * Rate limit as GCRA (a token bucket in one word, so CPUs share it
	 * with a compare-and-swap): an event is let through when tat is at
	 * most burst_ns ahead of now, and moves tat interval_ns on.
	 * interval_ns 0: no limit.
	 */
	__u64 interval_ns;
	__u64 burst_ns;
	__u64 tat;
	__u64 sent;
	__u64 dropped[TRACE_DROP_MAX];
	__u64 cgroups[TRACE_CGROUPS]; /* subtrees of the stalled task's cgroup; cgroups[0] == 0: every cgroup */
	__u32 owner_pid;
	__u32 pad;
	__u64 owner_start; /* the owner's start time, /proc/<pid>/stat field 22 */
};

struct trace_event {
	__u64 end_ns; /* bpf_ktime_get_ns() at the end of the reclaim: CLOCK_MONOTONIC */
	__u64 duration_ns;
	__u64 cgroup_id; /* the stalled task's memory cgroup */
	__u64 target_id; /* the cgroup whose limit the reclaim enforced; 0: global reclaim */
	__u64 reclaimed; /* pages */
	__u32 pid;       /* thread group id */
	__u32 tid;
	__u32 cpu;
	__u32 cause; /* enum cause */
	__s32 stack_bytes; /* of stack filled; 0 without TRACE_STACK, negative: bpf_get_stack failed */
	__u32 pad;
	char comm[16];
	__u64 stack[TRACE_STACK_DEPTH]; /* only with TRACE_STACK: the ring holds the event without it otherwise */
};

enum trace_gate_key {
	TRACE_GATE = 0,	  /* the lowest threshold of the active slots plus one; 0: none */
	TRACE_ACTIVE = 1, /* bit k: slot k is active */
	TRACE_GATE_KEYS,
};

/* Both values share one cache line: an event past the gate loads nothing more. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TRACE_GATE_KEYS);
	__type(key, __u32);
	__type(value, __u64);
} trace_gate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TRACE_SLOTS);
	__type(key, __u32);
	__type(value, struct trace_slot);
} trace_slots SEC(".maps");

/* Each subscriber puts a ring buffer of this size in its slot. */
struct trace_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, TRACE_SLOTS);
	__type(key, __u32);
	__array(values, struct trace_ring);
} trace_rings SEC(".maps");

/* The rate limit: may one more event go to slot sl at now? */
static __always_inline bool trace_admit(struct trace_slot *sl, __u64 now)
{
	__u64 t = sl->interval_ns, old, tat;

	if (!t)
		return true;
	for (int i = 0; i < 4; i++) {
		old = sl->tat;
		tat = old > now ? old : now;
		if (tat - now > sl->burst_ns)
			return false;
		if (__sync_val_compare_and_swap(&sl->tat, old, tat + t) == old)
			return true;
	}
	return false; /* four CPUs took the tokens under us: as good as none left */
}

/* Wake the reader only when its ring fills up (see TRACE_WAKE_BYTES). */
static __always_inline __u64 trace_wakeup(void *ring)
{
	return bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) > TRACE_WAKE_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Does one of slot sl's subtrees hold memcg? A slot that names none takes every cgroup. */
static __always_inline bool trace_wants(struct trace_slot *sl, struct cgroup *memcg)
{
	struct cgroup_subsys_state *css = &memcg->self;
	__u64 id;

	if (!sl->cgroups[0])
		return true;
	for (int i = 0; i < TRACE_DEPTH && css; i++) {
		id = cgroup_id(css->cgroup);
		for (int j = 0; j < TRACE_CGROUPS; j++)
			if (sl->cgroups[j] == id)
				return true;
		css = css->parent;
	}
	return false;
}

/*
 * The event to slot k, if it wants it. A function of its own, called once
 * per slot with nothing carried from one slot to the next: the verifier
 * then meets the caller's loop in one state per slot, however many paths
 * there are inside.
 */
static __noinline void trace_one(void *ctx, struct trace_event *ev, struct cgroup *memcg, __u32 k)
{
	struct trace_slot *sl = bpf_map_lookup_elem(&trace_slots, &k);
	struct trace_event *e;
	void *ring;

	if (!sl || !sl->active || ev->duration_ns < sl->min_ns || !trace_wants(sl, memcg))
		return;
	ring = bpf_map_lookup_elem(&trace_rings, &k);
	if (!ring)
		return;
	if (!trace_admit(sl, ev->end_ns)) {
		__sync_fetch_and_add(&sl->dropped[TRACE_DROP_RATE], 1);
		return;
	}
	/* One branch per size: the verifier must see the stack's room reserved. */
	if (sl->flags & TRACE_STACK) {
		e = bpf_ringbuf_reserve(ring, sizeof(*e), 0);
		if (e) {
			__builtin_memcpy(e, ev, __builtin_offsetof(struct trace_event, stack));
			e->stack_bytes = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
			bpf_ringbuf_submit(e, trace_wakeup(ring));
		}
	} else {
		e = bpf_ringbuf_reserve(ring, __builtin_offsetof(struct trace_event, stack), 0);
		if (e) {
			__builtin_memcpy(e, ev, __builtin_offsetof(struct trace_event, stack));
			bpf_ringbuf_submit(e, trace_wakeup(ring));
		}
	}
	if (e)
		__sync_fetch_and_add(&sl->sent, 1);
	else
		__sync_fetch_and_add(&sl->dropped[TRACE_DROP_FULL], 1);
}

/* The event of a reclaim that took dur, if anyone subscribed to one that long. */
static __always_inline void trace_reclaim(void *ctx, struct cgroup *memcg, __u64 dur, __u64 now, __u32 cause,
					  __u64 target_id, __u64 nr_reclaimed)
{
	__u32 key = TRACE_GATE;
	__u64 *gate = bpf_map_lookup_elem(&trace_gate, &key), *active, slots, pid_tgid;
	struct trace_event ev;

	if (!gate || !*gate || dur < *gate - 1)
		return;
	key = TRACE_ACTIVE;
	active = bpf_map_lookup_elem(&trace_gate, &key);
	if (!active)
		return;
	slots = *active;
	ev.end_ns = now;
	ev.duration_ns = dur;
	ev.cgroup_id = cgroup_id(memcg);
	ev.target_id = target_id;
	ev.reclaimed = nr_reclaimed;
	pid_tgid = bpf_get_current_pid_tgid();
	ev.pid = pid_tgid >> 32;
	ev.tid = (__u32)pid_tgid;
	ev.cpu = bpf_get_smp_processor_id();
	ev.cause = cause;
	ev.stack_bytes = 0;
	ev.pad = 0;
	bpf_get_current_comm(ev.comm, sizeof(ev.comm));
	for (__u32 k = 0; k < TRACE_SLOTS; k++)
		if (slots & (1ULL << k))
			trace_one(ctx, &ev, memcg, k);
}

/* The id of the target begin_direct saw: most often the task's own cgroup. */
static __always_inline __u64 target_id_of(__u64 target_cgrp, struct cgroup *memcg, __u64 cgid)
{
	struct cgroup *target;

	if (target_cgrp == (__u64)memcg)
		return cgid;
	target = bpf_rdonly_cast((void *)target_cgrp, bpf_core_type_id_kernel(struct cgroup));
	return target->kn->id;
}

#define PF_EXITING 0x00000004 /* include/linux/sched.h, 6.1 to 7.x */

/*
 * end() found no task storage. Either the task has none: no begin was
 * recorded (begin counted that, or the reclaim began before the load);
 * or, on 6.1, this CPU's task-storage busy count is held, so a lookup of
 * storage that exists fails: a begun reclaim is lost. A get that may
 * create tells the two apart: it makes missing storage (so that this
 * task's next end finds it with one lookup), and fails only where it
 * cannot take the busy count (or memory is out). An exiting task gets
 * no new storage: its begin counted the miss.
 */
static __always_inline void end_without_storage(struct task_struct *task)
{
	if (task->flags & PF_EXITING)
		return;
	if (!bpf_task_storage_get(&reclaim_starts, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		count_lost(LOST_TASK_STORAGE);
}

static __always_inline void end(void *ctx, unsigned long nr_reclaimed, bool direct)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct reclaim_start *st;
	struct cgroup *memcg;
	struct cgstat *s, *t;
	__u64 now, dur, cgid, target_id;
	__u32 cause, b;
	int cpu;

	st = bpf_task_storage_get(&reclaim_starts, task, 0, 0);
	if (!st) {
		end_without_storage(task);
		return;
	}
	if (!st->start_ns || (st->cause == CAUSE_DIRECT) != direct)
		return;
	now = bpf_ktime_get_ns();
	dur = now - st->start_ns;
	st->start_ns = 0;
	if (st->over_high_ns)
		st->over_high_reclaim_ns += dur; /* not throttle: see over_high_exit */
	cause = st->cause;
	target_id = st->target_id;
	memcg = task_memcg(task);
	cgid = cgroup_id(memcg);
	if (bpf_ksym_exists(bpf_rdonly_cast) && st->target_cgrp)
		target_id = target_id_of(st->target_cgrp, memcg, cgid);

	s = stat_with_ancestors(memcg, cgid);
	if (!s) {
		count_lost(LOST_EVENT);
		return;
	}
	/* Every event in the stream is in the totals too. */
	trace_reclaim(ctx, memcg, dur, now, cause, target_id, nr_reclaimed);
	b = bucket_of(dur);
	if (cause == CAUSE_MAX) {
		__sync_fetch_and_add(&s->pending.max_limit_delay_ns, dur);
		__sync_fetch_and_add(&s->pending.max_limit_reclaimed, nr_reclaimed);
		__sync_fetch_and_add(&s->pending.limit_hist[b], 1);
	} else if (cause == CAUSE_HIGH) {
		__sync_fetch_and_add(&s->pending.high_limit_delay_ns, dur);
		__sync_fetch_and_add(&s->pending.high_limit_reclaimed, nr_reclaimed);
		__sync_fetch_and_add(&s->pending.limit_hist[b], 1);
		/* After the bucket: see struct counters. */
		__sync_fetch_and_add(&s->pending.high_limit_count, 1);
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

/*
 * Marks memcg updated on this CPU for an event of a task other than the
 * current one: before 6.16 rstat takes the pointer walked from that task;
 * since then a trusted cgroup, which only cgroup v2 gives by id here.
 */
static __always_inline bool mark_other(struct cgroup *memcg, __u64 cgid, int cpu)
{
	if (bpf_ksym_exists(cgroup_rstat_updated) && memcg) {
		cgroup_rstat_updated(memcg, cpu);
		return true;
	}
	return mark_target(cgid, cpu);
}

/*
 * One OOM kill of a task of the cgroup ids[0], whose ancestors are
 * ids[1..]: their entries are made first, as a collector does, so that the
 * flush need not. memcg is the cgroup when known (for rstat before 6.16).
 */
static __always_inline void count_oom_kill(const __u64 *ids, struct cgroup *memcg)
{
	struct cgstat *s = NULL;
	int cpu;

	for (int i = OOM_DEPTH - 1; i >= 0; i--) {
		if (!ids[i])
			continue;
		s = make_entry(ids[i]);
		if (!s)
			break;
	}
	if (!s) {
		count_lost(LOST_EVENT);
		return;
	}
	__sync_fetch_and_add(&s->pending.oom_kills, 1);
	__sync_fetch_and_add(&s->adds, 1);
	if (flush_mode != FLUSH_RSTAT)
		return;
	cpu = bpf_get_smp_processor_id();
	preempt_off();
	if (!mark_other(memcg, ids[0], cpu))
		count_lost(LOST_RSTAT);
	preempt_on();
}

/* The ids of a task's memory cgroup and its ancestors, nearest first. */
static __always_inline void memcg_ids(struct cgroup *memcg, __u64 *ids)
{
	struct cgroup_subsys_state *css = &memcg->self;

	for (int i = 0; i < OOM_DEPTH; i++) {
		ids[i] = css ? cgroup_id(css->cgroup) : 0;
		if (css)
			css = css->parent;
	}
}

/*
 * The OOM killer chose task (6.8 on: mark_victim passes the task). Its
 * memory cgroup counts one OOM kill, as memory.events' oom_kill does, on
 * cgroup v1 too.
 */
SEC("tp_btf/mark_victim")
int BPF_PROG(oom_victim, struct task_struct *task)
{
	struct oom_victim v;
	struct cgroup *memcg = task_memcg(task);

	memcg_ids(memcg, v.ids);
	count_oom_kill(v.ids, memcg);
	return 0;
}

/* Before 6.8: mark_victim passes the pid of the task signal_generate saw. */
SEC("tp_btf/mark_victim")
int BPF_PROG(oom_victim_pid, int pid)
{
	__u32 key = pid;
	struct oom_victim *v = bpf_map_lookup_elem(&oom_victims, &key);

	if (!v)
		return 0;
	count_oom_kill(v->ids, NULL);
	bpf_map_delete_elem(&oom_victims, &key);
	return 0;
}

/*
 * Before 6.8 only: every SIGKILL leaves its task's cgroups by pid, since
 * __oom_kill_process sends one to the victim just before mark_victim. Other
 * signals return at once.
 */
SEC("tp_btf/signal_generate")
int BPF_PROG(oom_signal, int sig, void *info, struct task_struct *task)
{
	struct oom_victim v;
	__u32 key;

	if (sig != 9 /* SIGKILL */)
		return 0;
	key = task->pid;
	memcg_ids(task_memcg(task), v.ids);
	bpf_map_update_elem(&oom_victims, &key, &v, BPF_ANY);
	return 0;
}

/*
 * The throttle after memory.high. A task that charged past memory.high
 * runs mem_cgroup_handle_over_high on its way back to user space (and,
 * from 6.6, from a charge far over high): reclaim_high, then, if usage
 * stays over high, a penalty sleep (calculate_high_delay, then
 * schedule_timeout_killable between psi_memstall_enter and _leave). No
 * tracepoint brackets the sleep, so the call is timed with fentry/fexit
 * and the reclaims inside it (the task's own memcg reclaim begin/end,
 * which end() adds up meanwhile) are taken off: what remains is the
 * throttle. A call that slept (THROTTLE_SLEPT_NS) is counted in the task's
 * memory cgroup's throttles entry, with its time and in its histogram.
 * The call runs on every return to user space with work pending; without
 * pages over high it returns at once, and so does this, after one load.
 */
SEC("fentry/mem_cgroup_handle_over_high")
int BPF_PROG(over_high_enter)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct reclaim_start *st;

	if (!task->memcg_nr_pages_over_high)
		return 0;
	st = bpf_task_storage_get(&reclaim_starts, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		count_lost(LOST_TASK_STORAGE);
		return 0;
	}
	st->over_high_reclaim_ns = 0;
	st->over_high_ns = bpf_ktime_get_ns();
	return 0;
}

SEC("fexit/mem_cgroup_handle_over_high")
int BPF_PROG(over_high_exit)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct reclaim_start *st;
	struct throttle_stat *t;
	struct cgroup *memcg;
	struct cgstat *s;
	__u64 dur, cgid;
	__u32 b;

	st = bpf_task_storage_get(&reclaim_starts, task, 0, 0);
	if (!st || !st->over_high_ns)
		return 0;
	dur = bpf_ktime_get_ns() - st->over_high_ns;
	st->over_high_ns = 0;
	dur = dur > st->over_high_reclaim_ns ? dur - st->over_high_reclaim_ns : 0;
	/* Reclaim only, or no penalty worth a sleep: no throttle. */
	if (dur < THROTTLE_SLEPT_NS)
		return 0;
	memcg = task_memcg(task);
	cgid = cgroup_id(memcg);
	s = stat_with_ancestors(memcg, cgid);
	if (!s) {
		count_lost(LOST_EVENT);
		return 0;
	}
	/* Made with its ancestors' the first time, so that the flush need not allocate. */
	t = with_ancestors(&throttles, &throttle_zero, memcg, cgid);
	if (!t) {
		count_lost(LOST_EVENT);
		return 0;
	}
	b = bucket_of(dur);
	__sync_fetch_and_add(&t->pending.delay_ns, dur);
	__sync_fetch_and_add(&t->pending.hist[b], 1);
	/* Then the marks, as end() does: a flush that sees them takes the above. */
	__sync_lock_test_and_set(&s->throttle_adds, THROTTLE_ADDED);
	__sync_fetch_and_add(&s->adds, 1);
	if (flush_mode == FLUSH_RSTAT) {
		int cpu = bpf_get_smp_processor_id();

		preempt_off();
		if (!rstat_mark(task, memcg, cgid, cpu, memcg_v1_hierarchy))
			count_lost(LOST_RSTAT);
		preempt_on();
	}
	return 0;
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(vmscan_end, unsigned long nr_reclaimed)
{
	end(ctx, nr_reclaimed, false);
	return 0;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_end")
int BPF_PROG(direct_end, unsigned long nr_reclaimed)
{
	end(ctx, nr_reclaimed, true);
	return 0;
}

/*
 * rstat calls this for every updated (cgroup, CPU) pair; the cgroup's first
 * call drains it whatever the CPU.
 */
SEC("fentry/bpf_rstat_flush")
int BPF_PROG(flush_fentry, struct cgroup *cgrp, struct cgroup *parent, int cpu)
{
	__u64 cgid = cgroup_id(cgrp);

	flush_step(stat_of(cgid, false), cgid, parent ? cgroup_id(parent) : 0);
	return 0;
}

SEC("kprobe/bpf_rstat_flush")
int BPF_KPROBE(flush_kprobe, struct cgroup *cgrp, struct cgroup *parent, int cpu)
{
	__u64 cgid = BPF_CORE_READ(cgrp, kn, id);

	flush_step(stat_of(cgid, false), cgid, parent ? BPF_CORE_READ(parent, kn, id) : 0);
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
	if (!flush_step(s, cgid, parent_id(cgrp)) && released)
		count_lost(LOST_REMOVED);
	if (released) {
		bpf_map_delete_elem(&stats, &cgid);
		bpf_map_delete_elem(&throttles, &cgid);
	}
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
	for (int i = 0; i < NR_BUCKETS; i++) {
		if (h[i])
			BPF_SEQ_PRINTF(seq, " %d:%llu", i, h[i]);
	}
	BPF_SEQ_PRINTF(seq, "\n");
}

/*
 * The throttle's lines, from a copy of the cgroup's throttles entry (total
 * plus pending) that is this read's own: "throttle: delay_ns N, count N"
 * (the count is the histogram's sum) and "hist_throttle: b:n ...", or
 * "throttle: unavailable" where the kernel refused the throttle's
 * programs. A cgroup that never throttled has no entry: zeros.
 */
static __noinline void print_throttle(struct seq_file *seq, __u64 cgid, __u64 session)
{
	static const struct throttle_counters none;
	struct throttle_stat *t;
	struct throttle_counters *c;
	__u64 *sum, *total, *pending;

	if (!throttle_measured) {
		BPF_SEQ_PRINTF(seq, "throttle: unavailable\n");
		return;
	}
	/* Room: each read that gets here holds one of print_copies, of the same size. */
	bpf_map_update_elem(&throttle_copies, &session, &none, BPF_NOEXIST);
	c = bpf_map_lookup_elem(&throttle_copies, &session);
	if (!c) {
		BPF_SEQ_PRINTF(seq, "throttle: busy, read again\n");
		return;
	}
	t = throttle_of(cgid, false);
	if (t) {
		sum = (__u64 *)c;
		total = (__u64 *)&t->total;
		pending = (__u64 *)&t->pending;
		for (int i = 0; i < sizeof(*c) / sizeof(__u64); i++)
			sum[i] = total[i] + pending[i];
	}
	BPF_SEQ_PRINTF(seq, "throttle: delay_ns %llu, count %llu\n", c->delay_ns, hist_sum(c->hist));
	print_hist(seq, "hist_throttle", c->hist);
	bpf_map_delete_elem(&throttle_copies, &session);
}

/*
 * The seed's line first, byte for byte (its fields are memory-cgroup
 * reclaim: max, high and proactive), then one line per cause, the maximum
 * and the histograms, all from one copy of the counters that is this
 * read's own (print_copies). limit and hist_limit, max plus high, are what
 * the file said before max and high were told apart; max and high share
 * that histogram (struct counters).
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

	__u64 limit_count = hist_sum(c->limit_hist), high_count = c->high_limit_count;
	__u64 max_count = limit_count > high_count ? limit_count - high_count : 0;
	__u64 proactive_count = hist_sum(c->proactive_hist);
	__u64 limit_delay = c->max_limit_delay_ns + c->high_limit_delay_ns;
	__u64 limit_reclaimed = c->max_limit_reclaimed + c->high_limit_reclaimed;

	BPF_SEQ_PRINTF(seq, "cg_id: %llu, total_vmscan_delay: %llu, vmscan_count: %llu, nr_reclaimed: %llu\n",
		       cgid, limit_delay + c->proactive_delay_ns, limit_count + proactive_count,
		       limit_reclaimed + c->proactive_reclaimed);
	print_cause(seq, "limit", limit_delay, limit_count, limit_reclaimed);
	print_cause(seq, "max", c->max_limit_delay_ns, max_count, c->max_limit_reclaimed);
	print_cause(seq, "high", c->high_limit_delay_ns, limit_count - max_count, c->high_limit_reclaimed);
	print_cause(seq, "proactive", c->proactive_delay_ns, proactive_count, c->proactive_reclaimed);
	print_cause(seq, "direct", c->direct.delay_ns, c->direct.count, c->direct.reclaimed);
	print_cause(seq, "forced", c->forced.delay_ns, c->forced.count, c->forced.reclaimed);
	print_throttle(seq, cgid, session);
	BPF_SEQ_PRINTF(seq, "oom_kills: %llu\n", c->oom_kills);
	BPF_SEQ_PRINTF(seq, "max_delay_ns: %llu\n", c->max_delay_ns);
	print_hist(seq, "hist_limit", c->limit_hist);
	print_hist(seq, "hist_proactive", c->proactive_hist);
	bpf_map_delete_elem(&print_copies, &session);
}

/*
 * The stat file of a removed cgroup: the iterator skips a dead cgroup, so
 * the final call comes without any visit. One line says so, rather than an
 * empty file that reads as success (cgrstat read skips such files with a
 * note; cgrstat unpin removes them).
 */
static __noinline void print_stale(struct seq_file *seq)
{
	BPF_SEQ_PRINTF(seq, "stale: the cgroup of this stat file was removed (cgrstat unpin it)\n");
}

/*
 * Reading a pinned stat file. Each visit flushes; the final call (NULL cgroup)
 * prints the last cgroup visited, which in walk mode's post-order walk is the
 * cgroup the file is pinned for. The kernel makes the final call once per
 * open file (bpf_iter's done_stop), so a final call without a session is
 * one that visited nothing: the cgroup is gone.
 */
static __always_inline int dump_visit(struct bpf_iter__cgroup *ctx, bool walk)
{
	struct cgroup *cgrp = ctx->cgroup;
	__u64 session = ctx->meta->session_id;
	__u64 cgid, *last;

	last = bpf_map_lookup_elem(&sessions, &session);
	if (!cgrp) {
		if (!last) {
			print_stale(ctx->meta->seq);
			return 0;
		}
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
			flush_step(s, cgid, parent_id(cgrp));
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
 * The verifier knows memcg as the css it was loaded as: fields beyond the
 * css are read through bpf_probe_read_kernel.
 */
static __always_inline __u64 memcg_event(struct mem_cgroup *memcg, __u32 event)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v),
			      (void *)memcg + bpf_core_field_offset(struct mem_cgroup, memory_events) + event * 8);
	return v;
}

static __always_inline __u64 psi_total(struct psi_group *psi, __u32 state)
{
	__u64 v = 0;

	/* total[PSI_AVGS = 0][state] */
	bpf_probe_read_kernel(&v, sizeof(v), (void *)psi + bpf_core_field_offset(struct psi_group, total) + state * 8);
	return v;
}

/* The kernel's own memory figures of cgrp, see struct memcg_figures. */
static __always_inline void read_figures(struct cgroup *cgrp, struct memcg_figures *f)
{
	int id = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	struct mem_cgroup *memcg = (struct mem_cgroup *)cgrp->subsys[id]; /* css is its first member */
	struct psi_group *psi;

	__builtin_memset(f, 0, sizeof(*f));
	if (memcg) {
		f->flags |= FIG_MEMCG;
		f->oom_kill = memcg_event(memcg, bpf_core_enum_value(enum memcg_memory_event, MEMCG_OOM_KILL));
		if (memcg_v1_hierarchy) {
			f->failcnt = BPF_CORE_READ(memcg, memory.failcnt);
		} else {
			f->high = memcg_event(memcg, bpf_core_enum_value(enum memcg_memory_event, MEMCG_HIGH));
			f->max = memcg_event(memcg, bpf_core_enum_value(enum memcg_memory_event, MEMCG_MAX));
			f->oom = memcg_event(memcg, bpf_core_enum_value(enum memcg_memory_event, MEMCG_OOM));
		}
	}
	/*
	 * PSI follows tasks on cgroup v2 only: v1 cgroups' groups stay empty.
	 * A kernel without CONFIG_PSI, or with the psi_group embedded (before
	 * 6.1), has no such pointer: the relocation says so and the load goes
	 * on without pressure.
	 */
	if (memcg_v1_hierarchy || !bpf_core_field_exists(cgrp->psi))
		return;
	psi = cgrp->psi;
	if (!psi)
		return;
	f->flags |= FIG_PSI;
	f->psi_some_ns = psi_total(psi, bpf_core_enum_value(enum psi_states, PSI_MEM_SOME));
	f->psi_full_ns = psi_total(psi, bpf_core_enum_value(enum psi_states, PSI_MEM_FULL));
}

/*
 * The chunk a walk writes its next tree_node into: chunk number idx, made
 * (or emptied, when an earlier walk left it) if fresh is set.
 */
static __always_inline struct tree_chunk *tree_chunk(__u32 idx, bool fresh)
{
	struct tree_chunk *c = bpf_map_lookup_elem(&tree_chunks, &idx);
	__u32 zero = 0;
	void *empty;

	if (!fresh)
		return c;
	if (c) {
		c->used = 0;
		c->nodes = 0;
		return c;
	}
	empty = bpf_map_lookup_elem(&tree_empty, &zero);
	if (!empty || bpf_map_update_elem(&tree_chunks, &idx, empty, BPF_NOEXIST))
		return NULL;
	return bpf_map_lookup_elem(&tree_chunks, &idx);
}

/*
 * Writes cgrp's tree_node and name at node; returns the name's length with
 * its NUL. Not inlined, so that its argument's type is in the object's BTF
 * (bpf2go reads it there) though no map holds it.
 */
static __noinline long fill_node(struct tree_node *node, struct cgroup *cgrp)
{
	long n;

	if (!node || !cgrp)
		return 1;
	node->id = cgroup_id(cgrp);
	node->parent_id = parent_id(cgrp);
	read_figures(cgrp, &node->fig);
	n = bpf_probe_read_kernel_str((void *)(node + 1), TREE_NAME_MAX, cgrp->kn->name);
	if (n < 1 || n > TREE_NAME_MAX) {
		*(char *)(node + 1) = 0;
		n = 1;
	}
	return n;
}

/*
 * Walking a subtree (DESCENDANTS_PRE) for read --all: each cgroup goes into
 * the chunks of tree_chunks, one after the other, and the final call prints
 * the session, how many cgroups it visited and how many chunks it wrote.
 * Nothing else is printed, so the walk of any number of cgroups fits one
 * read of the iterator's bounded buffer. The session's value is the cgroups
 * visited (low 32 bits) and the chunk being written (high 32 bits).
 */
SEC("iter/cgroup")
int tree(struct bpf_iter__cgroup *ctx)
{
	__u64 session = ctx->meta->session_id, start = 0, *state;
	struct cgroup *cgrp = ctx->cgroup;
	struct tree_chunk *c;
	__u32 idx, off;
	long n;

	state = bpf_map_lookup_elem(&sessions, &session);
	if (!cgrp) {
		if (!state)
			return 0;
		BPF_SEQ_PRINTF(ctx->meta->seq, "session: %llu, visited: %llu, chunks: %llu\n", session,
			       *state & 0xffffffff, (*state >> 32) + 1);
		bpf_map_delete_elem(&sessions, &session);
		return 0;
	}
	if (!state) {
		bpf_map_update_elem(&sessions, &session, &start, BPF_NOEXIST);
		state = bpf_map_lookup_elem(&sessions, &session);
		if (!state)
			return 0;
		c = tree_chunk(0, true);
	} else {
		c = tree_chunk(*state >> 32, false);
	}
	/* Counted even when there is no room, so the reader can tell it is short. */
	*state += 1;
	if (!c)
		return 0;
	off = c->used;
	if (off > TREE_CHUNK_DATA - TREE_NODE_MAX) {
		idx = (*state >> 32) + 1;
		c = tree_chunk(idx, true);
		if (!c)
			return 0;
		*state = (*state & 0xffffffff) | ((__u64)idx << 32);
		off = 0;
	}
	off &= ~7; /* always so; tells the verifier the node is aligned */
	if (off > TREE_CHUNK_DATA - TREE_NODE_MAX)
		return 0;
	n = fill_node((void *)c->data + off, cgrp);
	c->used = off + sizeof(struct tree_node) + ((n + 7) & ~7);
	c->nodes++;
	return 0;
}
