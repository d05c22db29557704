/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rstat across kernels: the kfuncs, and how to mark a (cgroup, CPU) pair
 * updated with the pointer each kernel wants. Shared with the benchmark's
 * seed-style baseline (bench/baseline.c) so that both pay the same for it.
 */
#ifndef CGRSTAT_RSTAT_H
#define CGRSTAT_RSTAT_H

/* libbpf-dev 1.1 predates this macro. */
#ifndef bpf_ksym_exists
#define bpf_ksym_exists(sym) (!!(sym))
#endif

/* Before 6.16 rstat works on cgroups, since then on css; one of each pair exists. */
extern void cgroup_rstat_updated(struct cgroup *cgrp, int cpu) __ksym __weak;
extern void cgroup_rstat_flush(struct cgroup *cgrp) __ksym __weak;
extern void css_rstat_updated(struct cgroup_subsys_state *css, int cpu) __ksym __weak;
extern void css_rstat_flush(struct cgroup_subsys_state *css) __ksym __weak;

extern struct cgroup *bpf_cgroup_from_id(__u64 cgid) __ksym __weak;
extern struct cgroup *bpf_task_get_cgroup1(struct task_struct *task, int hierarchy_id) __ksym __weak;
extern void bpf_cgroup_release(struct cgroup *cgrp) __ksym __weak;
extern void bpf_preempt_disable(void) __ksym __weak;
extern void bpf_preempt_enable(void) __ksym __weak;
/* From 6.2: a pointer the verifier reads as the given BTF type. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/*
 * Tells rstat that (memcg, cpu) has news. Returns false when the kernel
 * wants a trusted cgroup and none could be had. v1_hierarchy is the memory
 * controller's cgroup v1 hierarchy id, 0 on cgroup v2.
 */
static __always_inline bool rstat_mark(struct task_struct *task, struct cgroup *memcg,
				       __u64 cgid, int cpu, __u32 v1_hierarchy)
{
	struct cgroup *trusted = NULL;

	if (bpf_ksym_exists(cgroup_rstat_updated)) {
		/* Before 6.16 a pointer walked from the task is accepted. */
		cgroup_rstat_updated(memcg, cpu);
		return true;
	}
	if (!bpf_ksym_exists(css_rstat_updated))
		return true;
	/* Since then the verifier wants a trusted, referenced cgroup. */
	if (v1_hierarchy && bpf_ksym_exists(bpf_task_get_cgroup1))
		trusted = bpf_task_get_cgroup1(task, v1_hierarchy);
	else if (!v1_hierarchy && bpf_ksym_exists(bpf_cgroup_from_id))
		trusted = bpf_cgroup_from_id(cgid);
	if (!trusted)
		return false;
	css_rstat_updated(&trusted->self, cpu);
	bpf_cgroup_release(trusted);
	return true;
}

/* Since 6.17 css_rstat_updated wants preemption off where the kernel can. */
static __always_inline void preempt_off(void)
{
	if (bpf_ksym_exists(bpf_preempt_disable))
		bpf_preempt_disable();
}

static __always_inline void preempt_on(void)
{
	if (bpf_ksym_exists(bpf_preempt_enable))
		bpf_preempt_enable();
}

#endif
