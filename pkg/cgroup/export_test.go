package cgroup

// FromTask is fromTask, for the external tests.
func FromTask(h *Hierarchy, id uint64, pid int) (string, bool) { return h.fromTask(id, pid) }
