//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * Reference collectors that cgrstat's are measured against, attached to the
 * same two tracepoints at the same time, so all three sets see each event:
 *
 *  - base_*: the seed's scheme (selftest cgroup_hierarchical_stats), written
 *    afresh: the start time in task storage, the elapsed time added to a
 *    per-CPU hash keyed by cgroup id (created on first use), and the
 *    (cgroup, CPU) pair marked updated in rstat. It records the total delay
 *    only, no event count and no pages.
 *  - floor_*: empty programs, the cost of the tracepoint mechanism itself.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "rstat.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the bench before loading: 0 on cgroup v2. */
const volatile __u32 memcg_v1_hierarchy;

struct elapsed {
	__u64 state;
	__u64 prev; /* unused here, kept so the value has the seed's size */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} base_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct elapsed);
} base_elapsed SEC(".maps");

SEC("tp_btf/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(base_begin, int order, unsigned int gfp_flags)
{
	__u64 *start = bpf_task_storage_get(&base_start, bpf_get_current_task_btf(), 0,
					    BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (start)
		*start = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(base_end, unsigned long nr_reclaimed)
{
	struct task_struct *task = bpf_get_current_task_btf();
	int memory = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	struct elapsed *e, fresh = {};
	struct cgroup *cgrp;
	__u64 *start, now = bpf_ktime_get_ns(), cgid;

	start = bpf_task_storage_get(&base_start, task, 0, 0);
	if (!start)
		return 0;
	cgrp = task->cgroups->subsys[memory]->cgroup;
	cgid = cgrp->kn->id;
	e = bpf_map_lookup_elem(&base_elapsed, &cgid);
	if (e) {
		e->state += now - *start;
	} else {
		fresh.state = now - *start;
		bpf_map_update_elem(&base_elapsed, &cgid, &fresh, BPF_NOEXIST);
	}
	/*
	 * The seed passed the cgroup walked from the task to
	 * cgroup_rstat_updated; since 6.16 the mark needs a trusted reference
	 * and preemption off, which cost what they cost cgrstat: like for like.
	 */
	preempt_off();
	rstat_mark(task, cgrp, cgid, bpf_get_smp_processor_id(), memcg_v1_hierarchy);
	preempt_on();
	return 0;
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(floor_begin)
{
	return 0;
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(floor_end)
{
	return 0;
}

/* The floor of any walk of a cgroup tree: an iterator program that does nothing. */
SEC("iter/cgroup")
int empty_walk(struct bpf_iter__cgroup *ctx)
{
	return 0;
}
