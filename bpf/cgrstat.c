//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * cgrstat: memory-cgroup reclaim latency, aggregated up the cgroup tree.
 *
 * The scheme is the one of the kernel selftest cgroup_hierarchical_stats:
 * collectors keep per-CPU readings per cgroup, and one flush routine folds
 * the per-CPU deltas of a (cgroup, CPU) pair into the cgroup's total and
 * hands them to the parent as pending. Children are always flushed before
 * their parents, so after a flush of a cgroup its total covers every CPU and
 * every descendant.
 *
 * Who drives the flush is the flush mode:
 *  - fentry/kprobe on bpf_rstat_flush: rstat calls the routine for exactly the
 *    pairs the collectors marked updated, bottom-up;
 *  - walk: the cgroup iterator walks the subtree in post-order (children
 *    first, as rstat would) and calls the routine for every pair itself.
 *    Used where the hook cannot be attached.
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

enum lost_counter {
	LOST_EVENT,   /* per-CPU map full: a reclaim event was not recorded */
	LOST_FLUSH,   /* totals map full: a delta waits for the next flush */
	LOST_PARENT,  /* totals map full: a delta could not reach the parent */
	LOST_RSTAT,   /* no trusted cgroup for rstat: the pair is not marked */
	LOST_MAX,
};

/* Set by the loader before the program is loaded. */
const volatile enum flush_how flush_mode = FLUSH_RSTAT;
const volatile __u32 nr_cpus = 1;
const volatile __u32 memcg_v1_hierarchy; /* 0 when memory is on cgroup v2 */

struct counters {
	__u64 delay_ns;
	__u64 count;
	__u64 reclaimed;
};

struct pcpu_stat {
	struct counters state; /* written by the collectors on this CPU */
	struct counters prev;  /* what the flush has already taken */
};

struct total {
	struct counters state;   /* every CPU, every descendant */
	struct counters pending; /* from flushed children, not yet folded in */
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

/* Max entries of the per-cgroup maps are set by the loader (--max-cgroups). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct pcpu_stat);
} pcpu_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct total);
} totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} reclaim_start SEC(".maps");

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
 * like the per-cgroup maps. Readers take a lock (flock on the pinned maps
 * directory) around walk and read, since every walk writes from slot 0.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct tree_node);
} tree_nodes SEC(".maps");

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

/* The memory cgroup a task charges to: the first one up with memory enabled. */
static __always_inline struct cgroup *task_memcg(struct task_struct *task)
{
	int id = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);

	return task->cgroups->subsys[id]->cgroup;
}

static __always_inline void add(struct counters *to, const struct counters *d)
{
	to->delay_ns += d->delay_ns;
	to->count += d->count;
	to->reclaimed += d->reclaimed;
}

static __always_inline bool is_zero(const struct counters *c)
{
	return !c->delay_ns && !c->count && !c->reclaimed;
}

static __always_inline struct total *total_of(__u64 cgid, bool create)
{
	struct total zero = {};
	struct total *t = bpf_map_lookup_elem(&totals, &cgid);

	if (t || !create)
		return t;
	bpf_map_update_elem(&totals, &cgid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&totals, &cgid);
}

/*
 * The one flush routine of every mode: fold what (cgid, cpu) gathered since
 * the last flush, plus what flushed children left pending, into the total,
 * and leave it pending at the parent.
 */
static __always_inline void flush_pair(__u64 cgid, __u64 parent_id, __u32 cpu)
{
	struct pcpu_stat *pc = bpf_map_lookup_percpu_elem(&pcpu_stats, &cgid, cpu);
	struct counters now = {}, delta = {};
	struct total *t, *pt;

	if (pc) {
		/* One snapshot: that CPU's collector may add to state meanwhile. */
		now = pc->state;
		delta.delay_ns = now.delay_ns - pc->prev.delay_ns;
		delta.count = now.count - pc->prev.count;
		delta.reclaimed = now.reclaimed - pc->prev.reclaimed;
	}
	t = total_of(cgid, !is_zero(&delta));
	if (!t) {
		/* prev is untouched, so the delta is retried on the next flush. */
		if (!is_zero(&delta))
			count_lost(LOST_FLUSH);
		return;
	}
	if (pc)
		pc->prev = now;
	add(&delta, &t->pending);
	t->pending = (struct counters){};
	add(&t->state, &delta);

	if (!parent_id || is_zero(&delta))
		return;
	pt = total_of(parent_id, true);
	if (!pt) {
		count_lost(LOST_PARENT);
		return;
	}
	add(&pt->pending, &delta);
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(vmscan_start, int order, unsigned int gfp_flags)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 *start;

	start = bpf_task_storage_get(&reclaim_start, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (start)
		*start = bpf_ktime_get_ns();
	return 0;
}

static __always_inline struct pcpu_stat *pcpu_of(__u64 cgid)
{
	struct pcpu_stat zero = {};
	struct pcpu_stat *pc = bpf_map_lookup_elem(&pcpu_stats, &cgid);

	if (pc)
		return pc;
	bpf_map_update_elem(&pcpu_stats, &cgid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&pcpu_stats, &cgid);
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(vmscan_end, unsigned long nr_reclaimed)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct cgroup *memcg;
	struct pcpu_stat *pc;
	__u64 *start, now, cgid;

	start = bpf_task_storage_get(&reclaim_start, task, 0, 0);
	if (!start || !*start)
		return 0;
	now = bpf_ktime_get_ns();
	memcg = task_memcg(task);
	cgid = cgroup_id(memcg);
	pc = pcpu_of(cgid);
	if (!pc) {
		count_lost(LOST_EVENT);
		return 0;
	}

	/* Off for the per-CPU sums too, which another task could interleave. */
	preempt_off();
	pc->state.delay_ns += now - *start;
	pc->state.count += 1;
	pc->state.reclaimed += nr_reclaimed;
	if (flush_mode == FLUSH_RSTAT &&
	    !rstat_mark(task, memcg, cgid, bpf_get_smp_processor_id(), memcg_v1_hierarchy))
		count_lost(LOST_RSTAT);
	preempt_on();
	*start = 0;
	return 0;
}

SEC("fentry/bpf_rstat_flush")
int BPF_PROG(flush_fentry, struct cgroup *cgrp, struct cgroup *parent, int cpu)
{
	flush_pair(cgroup_id(cgrp), parent ? cgroup_id(parent) : 0, cpu);
	return 0;
}

SEC("kprobe/bpf_rstat_flush")
int BPF_KPROBE(flush_kprobe, struct cgroup *cgrp, struct cgroup *parent, int cpu)
{
	flush_pair(BPF_CORE_READ(cgrp, kn, id), parent ? BPF_CORE_READ(parent, kn, id) : 0, cpu);
	return 0;
}

struct walk_ctx {
	__u64 cgid;
	__u64 parent_id;
};

static long flush_cpu(__u64 cpu, void *data)
{
	struct walk_ctx *w = data;

	flush_pair(w->cgid, w->parent_id, cpu);
	return 0;
}

/* Walk mode: what rstat would do for this cgroup, on every CPU. */
static __always_inline void walk_flush(struct cgroup *cgrp, __u64 cgid)
{
	struct cgroup_subsys_state *parent;
	struct walk_ctx w = { .cgid = cgid };

	/* A cgroup that never reclaimed and has nothing pending costs two lookups. */
	if (!bpf_map_lookup_elem(&pcpu_stats, &cgid) && !bpf_map_lookup_elem(&totals, &cgid))
		return;
	parent = cgrp->self.parent;
	if (parent)
		w.parent_id = cgroup_id(parent->cgroup);
	bpf_loop(nr_cpus, flush_cpu, &w, 0);
}

static __always_inline void rstat_flush(struct cgroup *cgrp)
{
	if (bpf_ksym_exists(cgroup_rstat_flush))
		cgroup_rstat_flush(cgrp);
	else if (bpf_ksym_exists(css_rstat_flush))
		css_rstat_flush(&cgrp->self);
}

static __always_inline void print_total(struct seq_file *seq, __u64 cgid)
{
	struct total *t = bpf_map_lookup_elem(&totals, &cgid);
	struct counters c = {};

	if (t)
		c = t->state;
	BPF_SEQ_PRINTF(seq, "cg_id: %llu, total_vmscan_delay: %llu, vmscan_count: %llu, nr_reclaimed: %llu\n",
		       cgid, c.delay_ns, c.count, c.reclaimed);
}

/*
 * Reading a pinned stat file. Each visit flushes; the final call (NULL cgroup)
 * prints the last cgroup visited, which in walk mode's post-order walk is the
 * cgroup the file is pinned for. A second read() gets another final call,
 * which finds its session gone and prints nothing.
 */
SEC("iter.s/cgroup")
int dump(struct bpf_iter__cgroup *ctx)
{
	struct cgroup *cgrp = ctx->cgroup;
	__u64 session = ctx->meta->session_id;
	__u64 cgid, *last;

	if (!cgrp) {
		last = bpf_map_lookup_elem(&sessions, &session);
		if (!last)
			return 0;
		cgid = *last;
		bpf_map_delete_elem(&sessions, &session);
		print_total(ctx->meta->seq, cgid);
		return 0;
	}
	cgid = cgroup_id(cgrp);
	if (flush_mode == FLUSH_WALK)
		walk_flush(cgrp, cgid);
	else
		rstat_flush(cgrp);
	bpf_map_update_elem(&sessions, &session, &cgid, BPF_ANY);
	return 0;
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
	struct cgroup_subsys_state *parent;
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
	parent = cgrp->self.parent;
	node->parent_id = parent ? cgroup_id(parent->cgroup) : 0;
	bpf_probe_read_kernel_str(node->name, sizeof(node->name), cgrp->kn->name);
	return 0;
}
