/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types cgrstat reads, declared for CO-RE.
 *
 * Only the fields used are declared. preserve_access_index makes libbpf-style
 * loaders (cilium/ebpf here) relocate every access against the running
 * kernel's BTF, so the layout below need not match any particular kernel.
 */
#ifndef CGRSTAT_KERNEL_H
#define CGRSTAT_KERNEL_H

/* Tells bpf_tracing.h that pt_regs has the kernel's field names (di, not rdi). */
#define __VMLINUX_H__

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct kernfs_node {
	__u64 id;
	const char *name;
};

struct cgroup;

struct cgroup_subsys_state {
	struct cgroup *cgroup;
	struct cgroup_subsys_state *parent;
};

struct cgroup_root {
	int hierarchy_id;
};

/* Stall totals in ns: total[aggregator][state]; only the offset of total is used. */
struct psi_group {
	__u64 total[2][7];
};

struct cgroup {
	/* First member in every kernel: &cgrp->self and cgrp are the same address. */
	struct cgroup_subsys_state self;
	struct kernfs_node *kn;
	struct cgroup_root *root;
	struct cgroup_subsys_state *subsys[16];
	struct psi_group *psi; /* a pointer from 6.1; NULL for the root (psi_system) */
};

struct css_set {
	struct cgroup_subsys_state *subsys[16];
};

typedef struct {
	long counter;
} atomic_long_t;

/* Usage and limits in pages; memory.high and memory.max are high and max. */
struct page_counter {
	atomic_long_t usage;
	unsigned long high;
	unsigned long max;
	unsigned long failcnt; /* v1's memory.failcnt */
};

struct mem_cgroup {
	struct cgroup_subsys_state css;
	struct page_counter memory;
	/* memory.events (hierarchical); v1's memory.oom_control oom_kill too */
	atomic_long_t memory_events[9];
};

struct reclaim_state {
	unsigned long reclaimed;
};

/* mm/vmscan.c's private reclaim parameters; in the kernel BTF from 6.1 to 7.x. */
struct scan_control {
	struct mem_cgroup *target_mem_cgroup;
	unsigned int proactive : 1;
	struct reclaim_state reclaim_state;
};

struct task_struct {
	int pid;
	unsigned int flags; /* PF_* */
	struct css_set *cgroups;
	struct reclaim_state *reclaim_state;
	unsigned int memcg_nr_pages_over_high;
};

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
};

struct bpf_iter__cgroup {
	struct bpf_iter_meta *meta;
	struct cgroup *cgroup;
};

/*
 * The register layout the kprobe flush reads its arguments from, through
 * bpf_tracing.h's PT_REGS_PARM* for the architecture bpf2go compiles for
 * (__TARGET_ARCH_x86 or __TARGET_ARCH_arm64). Only the names matter: CO-RE
 * relocates each field against the running kernel's BTF.
 */
#if defined(__TARGET_ARCH_x86)
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};
#elif defined(__TARGET_ARCH_arm64)
/* arm64's pt_regs starts with user_pt_regs, which bpf_tracing.h casts to. */
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};
struct pt_regs {
	struct user_pt_regs user_regs;
};
#else
#error "cgrstat's kprobe supports x86 and arm64: build with bpf2go -target amd64 or arm64"
#endif

#pragma clang attribute pop

/* The values are relocated against the running kernel (bpf_core_enum_value). */
enum cgroup_subsys_id {
	memory_cgrp_id = 4,
};

enum memcg_memory_event {
	MEMCG_HIGH = 1,
	MEMCG_MAX = 2,
	MEMCG_OOM = 3,
	MEMCG_OOM_KILL = 4,
};

enum psi_states {
	PSI_MEM_SOME = 2,
	PSI_MEM_FULL = 3,
};

#endif
