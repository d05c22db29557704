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

char LICENSE[] SEC("license") = "GPL";

#ifndef bpf_ksym_exists
#define bpf_ksym_exists(sym) (!!(sym))
#endif

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

extern void cgroup_rstat_updated(struct cgroup *cgrp, int cpu) __ksym __weak;
extern void css_rstat_updated(struct cgroup_subsys_state *css, int cpu) __ksym __weak;
extern struct cgroup *bpf_cgroup_from_id(__u64 cgid) __ksym __weak;
extern struct cgroup *bpf_task_get_cgroup1(struct task_struct *task, int hierarchy_id) __ksym __weak;
extern void bpf_cgroup_release(struct cgroup *cgrp) __ksym __weak;
extern void bpf_preempt_disable(void) __ksym __weak;
extern void bpf_preempt_enable(void) __ksym __weak;

SEC("tp_btf/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(base_begin, int order, unsigned int gfp_flags)
{
	__u64 *start = bpf_task_storage_get(&base_start, bpf_get_current_task_btf(), 0,
					    BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (start)
		*start = bpf_ktime_get_ns();
	return 0;
}

/*
 * The seed passed the cgroup walked from the task to cgroup_rstat_updated;
 * since 6.16 css_rstat_updated wants a trusted reference, which costs the
 * same lookup cgrstat pays, so the comparison stays like for like.
 */
static __always_inline void base_mark(struct task_struct *task, struct cgroup *cgrp, __u64 cgid)
{
	struct cgroup *trusted = NULL;
	int cpu = bpf_get_smp_processor_id();

	if (bpf_ksym_exists(cgroup_rstat_updated)) {
		cgroup_rstat_updated(cgrp, cpu);
		return;
	}
	if (!bpf_ksym_exists(css_rstat_updated))
		return;
	if (memcg_v1_hierarchy && bpf_ksym_exists(bpf_task_get_cgroup1))
		trusted = bpf_task_get_cgroup1(task, memcg_v1_hierarchy);
	else if (!memcg_v1_hierarchy && bpf_ksym_exists(bpf_cgroup_from_id))
		trusted = bpf_cgroup_from_id(cgid);
	if (!trusted)
		return;
	/* Since 6.17 css_rstat_updated asserts that preemption is off. */
	if (bpf_ksym_exists(bpf_preempt_disable))
		bpf_preempt_disable();
	css_rstat_updated(&trusted->self, cpu);
	if (bpf_ksym_exists(bpf_preempt_enable))
		bpf_preempt_enable();
	bpf_cgroup_release(trusted);
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
	base_mark(task, cgrp, cgid);
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
