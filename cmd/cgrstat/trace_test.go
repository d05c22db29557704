package main

import "testing"

// TestBelowTracepoint: trace's stacks start where the kernel reclaims,
// whichever of the tracepoint's frames the kernel shows.
func TestBelowTracepoint(t *testing.T) {
	for _, frames := range [][]string{
		{"bpf_prog_1_trace_one+0x2ba [bpf]", "bpf_prog_2_vmscan_end+0x65a [bpf]", "bpf_trace_run1+0xfe", "try_to_free_mem_cgroup_pages+0x21d", "x+0x1"},
		{"bpf_prog_1_trace_one+0x2ba [bpf]", "bpf_trace_run1+0xfe", "__bpf_trace_mm_vmscan_memcg_reclaim_end+0x1", "__traceiter_mm_vmscan_memcg_reclaim_end+0x29", "try_to_free_mem_cgroup_pages+0x21d", "x+0x1"},
		{"try_to_free_mem_cgroup_pages+0x21d", "x+0x1"},
	} {
		if got := belowTracepoint(frames); len(got) != 2 || got[0] != "try_to_free_mem_cgroup_pages+0x21d" {
			t.Errorf("belowTracepoint(%q) = %q", frames, got)
		}
	}
}

// TestTraceUsage: bad flags and too many cgroups are usage errors (exit 2),
// before anything is loaded.
func TestTraceUsage(t *testing.T) {
	for _, c := range []struct {
		want string
		args []string
	}{
		{"--min -1s", []string{"trace", "--min", "-1s"}},
		{"--count -1", []string{"trace", "--count", "-1"}},
		{"--duration -1s", []string{"trace", "--duration", "-1s"}},
		{"--rate -1", []string{"trace", "--rate", "-1"}},
		{"at most 4 cgroups", []string{"trace", "/", "/", "/", "/", "/"}},
	} {
		wantUsage(t, c.want, c.args...)
	}
}
