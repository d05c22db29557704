package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/cgrstat/cgrstat/internal/ociimage"
	"github.com/cgrstat/cgrstat/internal/testenv"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
)

// TestKernelContainer: a real container runtime (Podman) runs cgrstat's
// image with exactly the DaemonSet's user, capabilities, security settings,
// mounts, memory limit and serve arguments (deploy/kubernetes), but host
// networking on loopback instead of a pod network, the test's own pin path
// and listen address, and the test's subtree as CGROUP. A real Prometheus
// scrapes it. A second container, started by the same runtime with a memory
// limit, writes and reads back page cache; its cgroup, named by its
// container ID, shows up in Prometheus with max reclaim (its memory limit). Then the image
// runs as nobody (see nonRoot). Every container cgroup lies below the
// test's own memory cgroup.
//
// It needs podman (and crun or runc), which the kernel lab's guests do not
// have: there it skips.
func TestKernelContainer(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil && testenv.Required() {
		t.Skip("the kernel lab's guests have no container runtime: this test runs on the host (make hosttest)")
	}
	l := newLab(t)
	podmanBin := needTool(t, "podman")
	promBin := needTool(t, "prometheus")
	busybox := needTool(t, "busybox")
	ds, c := daemonSet(t)
	// Cleanups run last first: the cgroups go after the containers.
	parent := l.parent().Child(fmt.Sprintf("cgrstat-%d-container", os.Getpid()))
	cleanupCgroupParent(t, parent.Rel)
	pm := newPodman(t, podmanBin, l.h)
	pm.cgroupParent = parent.Rel
	image := pm.loadImage(t)

	// cgrstat, as the DaemonSet runs it.
	addr := freeAddr(t)
	args := slices.Clone(c.Args)
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--pin-path="):
			args[i] = "--pin-path=" + l.pinPath
		case strings.HasPrefix(a, "--web.listen-address="):
			args[i] = "--web.listen-address=" + addr
		}
	}
	args = append(args, parent.Rel)
	flags := append(podFlags(t, ds, c), "--name", "cgrstat-"+strconv.Itoa(os.Getpid()), "--network=host")
	cgrstatID := pm.run(t, append(append(flags, image), args...)...)
	t.Logf("cgrstat container %.12s: podman run %s %s %s", cgrstatID, strings.Join(flags, " "), image, strings.Join(args, " "))
	waitReady(t, pm, cgrstatID, "http://"+addr+c.ReadinessProbe.HTTPGet.Path)
	prom := startPrometheus(t, promBin, addr)
	prom.waitUp(t)

	// The second container: 32 MiB of memory, 96 MiB of page cache written
	// to a disk file and read back. It stays up afterwards: the runtime
	// removes a container's cgroup when it exits, and its series with it.
	data := t.TempDir()
	workloadID := pm.run(t, "--memory=32m", "--memory-swap=32m", "-v", busybox+":/busybox:ro", "-v", data+":/data",
		"--entrypoint=/busybox", image,
		"sh", "-c", "/busybox dd if=/dev/zero of=/data/f bs=1M count=96 2>/dev/null && /busybox cat /data/f > /dev/null && "+
			"/busybox sync && /busybox touch /data/done && exec /busybox sleep 600")
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(data, "done")); err == nil {
			break
		}
		if !pm.running(t, workloadID) || time.Since(start) > 60*time.Second {
			t.Fatalf("the page-cache writer did not finish within 60s:\n%s", pm.logs(t, workloadID))
		}
	}
	defer pm.out(t, "rm", "--force", "--time=0", workloadID)
	cg := parent.Rel + "/libpod-" + workloadID
	t.Logf("workload container %s, cgroup %s", workloadID, cg)

	// The workload's cgroup, named by its container ID, with max reclaim (its memory limit).
	q := fmt.Sprintf(`cgrstat_reclaims_total{cause="max", cgroup=%q}`, cg)
	deadline := time.Now().Add(20 * time.Second)
	var got map[string]float64
	for {
		got = prom.query(t, q)
		if got[series("cgrstat_reclaims_total", cg, "cause", "max")] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Logf("Prometheus: %v", prom.query(t, `{__name__=~"cgrstat_memcg_reclaims_total"}`))
			t.Fatalf("Prometheus has no max reclaim for container %s (%s) within 20s", workloadID, q)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("Prometheus: %v", got)
	// Its exemplars, named though serve sees neither the host's pids nor
	// has CAP_DAC_READ_SEARCH (from the cgroups of its last scrape): the
	// busybox applets that stalled.
	ex := fmt.Sprintf(`cgrstat_reclaim_duration_seconds_bucket{cause="limit", cgroup=%q}`, cg)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		got := prom.exemplars(t, ex, time.Now().Add(-5*time.Minute))
		if len(got) > 0 && got[0].Exemplars[0].Labels["comm"] == "busybox" {
			t.Logf("exemplars of %d buckets, e.g. %+v", len(got), got[0].Exemplars[0])
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("Prometheus has no exemplar of container %s naming busybox (%s): %+v", workloadID, ex, got)
			break
		}
	}
	// Its identity: the runtime and the container ID, read from the path.
	info := fmt.Sprintf(`cgrstat_cgroup_info{cgroup=%q, kind="container", runtime="podman", container_id="podman://%s"}`, cg, workloadID)
	if got := prom.query(t, info); len(got) != 1 {
		t.Errorf("no cgrstat_cgroup_info for container %s (%s): %v", workloadID, info, got)
	}

	// What the DaemonSet's memory limit has to hold: the container's
	// cgroup counts serve's memory and the BPF maps it loaded.
	if l.h.Version == 1 {
		mem := pm.memoryCgroup(t, cgrstatID)
		now, err1 := mem.Read("memory.usage_in_bytes")
		most, err2 := mem.Read("memory.max_usage_in_bytes")
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		t.Logf("cgrstat container's memory cgroup: %s now, %s at most (limit %s)", bytesMiB(now), bytesMiB(most), c.Resources.Limits.Memory())
	}

	if code := pm.stop(t, cgrstatID); code != 0 {
		t.Errorf("cgrstat exited %d on SIGTERM:\n%s", code, pm.logs(t, cgrstatID))
	}
	if _, err := os.Stat(l.pinPath); err == nil {
		t.Errorf("cgrstat's container left %s behind", l.pinPath)
	}

	nonRoot(t, pm, image, flags, args, parent)
}

// nonRoot runs the same container as nobody, with privilege escalation
// allowed so that the kernel honours /cgrstat's file capabilities: with
// the host's bpffs (mode 0700) mounted, serve cannot reach its pin path;
// with a bpffs directory of nobody's own mounted instead (what an
// administrator would make on each node), it serves.
func nonRoot(t *testing.T, pm *podman, image string, rootFlags, rootArgs []string, parent cgroup.Cgroup) {
	var flags []string
	for i := 0; i < len(rootFlags); i++ {
		switch f := rootFlags[i]; {
		case f == "--user":
			flags = append(flags, f, "65534:65534")
			i++
		case f == "--security-opt=no-new-privileges":
		case f == "--name":
			i++
		default:
			flags = append(flags, f)
		}
	}
	addr := freeAddr(t)
	args := slices.Clone(rootArgs)
	for i, a := range args {
		if strings.HasPrefix(a, "--web.listen-address=") {
			args[i] = "--web.listen-address=" + addr
		}
	}

	// The host's bpffs, as the DaemonSet mounts it.
	id := pm.run(t, append(append(slices.Clone(flags), image), args...)...)
	code := pm.wait(t, id)
	logs := pm.logs(t, id)
	if code == 0 || !strings.Contains(logs, "permission denied") {
		t.Errorf("as nobody with the host's bpffs (mode 0700): exit %d, want a refusal:\n%s", code, logs)
	}
	t.Logf("as nobody with the host's bpffs: exit %d: %s", code, strings.TrimSpace(logs))

	// A bpffs directory of nobody's own, mounted where the pin path lies.
	own := fmt.Sprintf("/sys/fs/bpf/cgrstat-%d-nobody", os.Getpid())
	if err := os.Mkdir(own, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(own); err != nil {
			t.Errorf("removing %s: %v", own, err)
		}
	})
	if err := os.Chown(own, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	// Not below /sys, where the runtime cannot make a mount point.
	for i, f := range flags {
		if f == "/sys/fs/bpf:/sys/fs/bpf" {
			flags[i] = own + ":/bpf"
		}
	}
	for i, a := range args {
		if strings.HasPrefix(a, "--pin-path=") {
			args[i] = "--pin-path=/bpf/cgrstat"
		}
	}
	id = pm.run(t, append(append(flags, image), args...)...)
	t.Logf("as nobody: podman run %s %s %s", strings.Join(flags, " "), image, strings.Join(args, " "))
	waitReady(t, pm, id, "http://"+addr+"/")
	pid := pm.out(t, "inspect", "--format", "{{.State.Pid}}", id)
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var uid, capEff string
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			uid = strings.Fields(v)[1]
		}
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			capEff = strings.TrimSpace(v)
		}
	}
	// CAP_PERFMON (38) and CAP_BPF (39), nothing else.
	if uid != "65534" || capEff != "000000c000000000" {
		t.Errorf("serve runs with effective uid %s, capabilities %s; want 65534, 000000c000000000", uid, capEff)
	}
	body := scrape(t, addr)
	if want := fmt.Sprintf("cgrstat_memcg_reclaims_total{cgroup=%q}", parent.Rel); !strings.Contains(body, want) {
		t.Errorf("as nobody, /metrics has no %s:\n%.2000s", want, body)
	}
	t.Logf("as nobody (uid %s, CapEff %s) with its own bpffs directory: ready, /metrics holds %s", uid, capEff, parent.Rel)
	if code := pm.stop(t, id); code != 0 {
		t.Errorf("cgrstat as nobody exited %d on SIGTERM:\n%s", code, pm.logs(t, id))
	}
	if entries, _ := os.ReadDir(own); len(entries) != 0 {
		t.Errorf("cgrstat as nobody left %v in %s", entries, own)
	}
}

// podFlags are the Podman flags for the DaemonSet's pod: its user,
// capabilities, privilege escalation, root file system, mounts and memory
// limit, and its seccomp profile (Podman's default stands for
// RuntimeDefault).
func podFlags(t *testing.T, ds *appsv1.DaemonSet, c corev1.Container) []string {
	t.Helper()
	psc, sc := ds.Spec.Template.Spec.SecurityContext, c.SecurityContext
	f := []string{"--user", fmt.Sprintf("%d:%d", *psc.RunAsUser, *psc.RunAsGroup)}
	for _, d := range sc.Capabilities.Drop {
		f = append(f, "--cap-drop="+strings.ToLower(string(d)))
	}
	for _, a := range sc.Capabilities.Add {
		f = append(f, "--cap-add=CAP_"+string(a))
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		f = append(f, "--security-opt=no-new-privileges")
	}
	if sp := psc.SeccompProfile; sp != nil && sp.Type == corev1.SeccompProfileTypeUnconfined {
		f = append(f, "--security-opt=seccomp=unconfined")
	} else if sp == nil || sp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Fatalf("seccomp profile %+v: the test knows Unconfined and RuntimeDefault (Podman's default)", sp)
	}
	if *sc.ReadOnlyRootFilesystem {
		// Only the root file system: no tmpfs on /run, /tmp, /var/tmp, which
		// a pod does not get either.
		f = append(f, "--read-only", "--read-only-tmpfs=false")
	}
	for _, m := range podMounts(t, ds) {
		if m.host == "" {
			f = append(f, "--tmpfs", m.path) // the emptyDir, medium Memory
			continue
		}
		v := m.host + ":" + m.path
		if m.readOnly {
			v += ":ro"
		}
		f = append(f, "-v", v)
	}
	if lim := c.Resources.Limits.Memory(); !lim.IsZero() {
		f = append(f, fmt.Sprintf("--memory=%db", lim.Value()), fmt.Sprintf("--memory-swap=%db", lim.Value()))
	}
	return f
}

// podman runs Podman with a storage and state of the test's own, removed at
// cleanup with every container and image in it.
type podman struct {
	bin, runtime, dir, cgroupParent string
	h                               *cgroup.Hierarchy
}

func newPodman(t *testing.T, bin string, h *cgroup.Hierarchy) *podman {
	t.Helper()
	dir, err := os.MkdirTemp("", "cgrstat-podman-")
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{bin: bin, dir: dir, h: h, runtime: ociRuntime(t, h)}
	t.Cleanup(func() {
		p.cmd("rm", "--force", "--all", "--time=5").Run()
		p.cmd("rmi", "--force", "--all").Run()
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing podman's storage: %v", err)
		}
	})
	return p
}

// ociRuntime is crun, unless this host has the memory controller on cgroup
// v1 and a cgroup2 hierarchy with any controller (hybrid mode): crun (1.8
// in Debian 12) refuses to create a container there ("cgroups in hybrid
// mode not supported, drop all controllers from cgroupv2"; this host's
// cgroup2 has hugetlb), and runc, which sets up only the v1 hierarchies,
// runs it.
func ociRuntime(t *testing.T, h *cgroup.Hierarchy) string {
	t.Helper()
	if h.Version == 1 {
		for _, m := range cgroupMounts(t) {
			b, err := os.ReadFile(filepath.Join(m, "cgroup.controllers"))
			if err == nil && strings.TrimSpace(string(b)) != "" {
				t.Logf("runc, not crun: cgroup v1 with controllers on the cgroup2 hierarchy %s (%s), which crun refuses", m, strings.TrimSpace(string(b)))
				needTool(t, "runc")
				return "runc"
			}
		}
	}
	needTool(t, "crun")
	return "crun"
}

func (p *podman) cmd(args ...string) *exec.Cmd {
	global := []string{"--root", p.dir + "/root", "--runroot", p.dir + "/run", "--tmpdir", p.dir + "/tmp",
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--runtime", p.runtime}
	cmd := exec.Command(p.bin, append(global, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+p.dir)
	return cmd
}

func (p *podman) out(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.cmd(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// loadImage builds cgrstat's image for this machine's architecture, as make
// image does, and loads its OCI archive.
func (p *podman) loadImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "cgrstat-linux-"+runtime.GOARCH)
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building a static cgrstat: %v\n%s", err, out)
	}
	o := ociimage.Options{Binaries: map[string]string{runtime.GOARCH: bin}, Version: "test", Created: time.Unix(0, 0)}
	if _, err := ociimage.Build(o, filepath.Join(dir, "oci"), filepath.Join(dir, "oci.tar")); err != nil {
		t.Fatal(err)
	}
	out := p.out(t, "load", "--quiet", "--input", filepath.Join(dir, "oci.tar"))
	image, ok := strings.CutPrefix(out, "Loaded image: ")
	if !ok {
		t.Fatalf("podman load: %s", out)
	}
	return image
}

// run starts a detached container below the test's cgroup and returns its
// ID.
func (p *podman) run(t *testing.T, args ...string) string {
	t.Helper()
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	// The runtime sets the container's limits. Podman's defaults
	// (RLIMIT_NOFILE 1048576, RLIMIT_NPROC its own) may lie above this
	// process's hard limits, and raising them needs CAP_SYS_RESOURCE, which
	// this host does not give: "setrlimit `RLIMIT_NOFILE`: Operation not
	// permitted". So the container gets limits this process has.
	flags := []string{"run", "--detach", "--cgroups=no-conmon", "--cgroup-parent=" + p.cgroupParent,
		fmt.Sprintf("--ulimit=nofile=%d:%d", rl.Cur, rl.Max), "--ulimit=nproc=4096:4096"}
	return p.out(t, append(flags, args...)...)
}

func (p *podman) wait(t *testing.T, id string) int {
	t.Helper()
	code, err := strconv.Atoi(p.out(t, "wait", id))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func (p *podman) stop(t *testing.T, id string) int {
	t.Helper()
	p.out(t, "stop", "--time=10", id)
	return p.wait(t, id)
}

func (p *podman) logs(t *testing.T, id string) string {
	out, _ := p.cmd("logs", id).CombinedOutput()
	return string(out)
}

func (p *podman) running(t *testing.T, id string) bool {
	out, err := p.cmd("inspect", "--format", "{{.State.Running}}", id).Output()
	return err == nil && strings.TrimSpace(string(out)) == "true"
}

// memoryCgroup is the container's memory cgroup.
func (p *podman) memoryCgroup(t *testing.T, id string) cgroup.Cgroup {
	t.Helper()
	return p.h.Cgroup(p.cgroupParent + "/libpod-" + id)
}

// waitReady waits until the readiness probe's URL answers 200, as the
// kubelet would before the pod gets traffic.
func waitReady(t *testing.T, p *podman, id, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if !p.running(t, id) {
			t.Fatalf("cgrstat's container exited:\n%s", p.logs(t, id))
		}
		if time.Now().After(deadline) {
			t.Fatalf("cgrstat's container not ready within 60s (%v):\n%s", err, p.logs(t, id))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cgroupMounts are the mount points of every cgroup hierarchy.
func cgroupMounts(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if fs := strings.Fields(pre); ok && len(fs) > 4 && strings.HasPrefix(post, "cgroup") {
			points = append(points, fs[4])
		}
	}
	return points
}

// cleanupCgroupParent removes at cleanup, deepest first, the directories
// of rel that do not exist now in any cgroup hierarchy: the runtime makes
// the container's --cgroup-parent in every hierarchy (on v1 each
// controller's, and the cgroup2 one), and removes only the containers'
// own cgroups. In the memory hierarchy rel is below the test's own cgroup;
// in the others, where this process is in the root cgroup, below that.
func cleanupCgroupParent(t *testing.T, rel string) {
	t.Helper()
	var made []string
	for _, m := range cgroupMounts(t) {
		dir := m
		for _, part := range strings.Split(strings.Trim(rel, "/"), "/") {
			dir = filepath.Join(dir, part)
			if _, err := os.Stat(dir); err != nil {
				made = append(made, dir)
			}
		}
	}
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			if err := unix.Rmdir(made[i]); err != nil && !os.IsNotExist(err) {
				t.Errorf("removing cgroup %s: %v", made[i], err)
			}
		}
	})
}

func bytesMiB(s string) string {
	n, _ := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return fmt.Sprintf("%.1f MiB", n/(1<<20))
}
