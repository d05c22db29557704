package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cgrstat/cgrstat/pkg/identity"
)

// Pods and containers of the identity tests: UIDs and IDs in the forms
// the API server and the runtimes make them.
const (
	podA = "0b3c9a5e-8f2d-4c1e-9a7b-2d4e6f8a1c3b" // burstable, systemd driver, containerd
	podB = "5d1e7c2a-3b4f-4d6e-8a9b-0c1d2e3f4a5b" // guaranteed, systemd driver, CRI-O
	podC = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b" // besteffort, cgroupfs driver
	podD = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d" // guaranteed, cgroupfs driver, CRI-O
)

// cid is a container ID of 64 hex digits, different for each n.
func cid(n int) string { return strings.Repeat(fmt.Sprintf("%x", 0xa0+n), 32) }

func underscored(uid string) string { return strings.ReplaceAll(uid, "-", "_") }

// identityLeaves are the leaves of the identity tree: a cgroup of each
// kind, as the kubelet (both drivers), the runtimes and systemd lay them
// out (pkg/identity's tests cite where each layout comes from), with what
// their paths tell.
func identityLeaves() map[string]identity.Identity {
	podAS := "kubepods-burstable-pod" + underscored(podA) + ".slice"
	podBS := "kubepods-pod" + underscored(podB) + ".slice"
	return map[string]identity.Identity{
		"kubepods.slice/kubepods-burstable.slice/" + podAS + "/cri-containerd-" + cid(1) + ".scope": {Kind: identity.Container,
			PodUID: podA, QoS: identity.Burstable, ContainerID: cid(1), Runtime: identity.Containerd, Unit: "cri-containerd-" + cid(1) + ".scope"},
		"kubepods.slice/" + podBS + "/crio-" + cid(2) + ".scope": {Kind: identity.Container,
			PodUID: podB, QoS: identity.Guaranteed, ContainerID: cid(2), Runtime: identity.CRIO, Unit: "crio-" + cid(2) + ".scope"},
		"kubepods/besteffort/pod" + podC + "/" + cid(3): {Kind: identity.Container,
			PodUID: podC, QoS: identity.BestEffort, ContainerID: cid(3)},
		"kubepods/pod" + podD + "/crio-" + cid(4): {Kind: identity.Container,
			PodUID: podD, QoS: identity.Guaranteed, ContainerID: cid(4), Runtime: identity.CRIO},
		"docker/" + cid(5): {Kind: identity.Container, ContainerID: cid(5), Runtime: identity.Docker},
		"system.slice/docker-" + cid(6) + ".scope": {Kind: identity.Container, ContainerID: cid(6), Runtime: identity.Docker,
			Unit: "docker-" + cid(6) + ".scope"},
		"machine.slice/libpod-" + cid(7) + ".scope": {Kind: identity.Container, ContainerID: cid(7), Runtime: identity.Podman,
			Unit: "libpod-" + cid(7) + ".scope"},
		"libpod_parent/libpod-" + cid(8):             {Kind: identity.Container, ContainerID: cid(8), Runtime: identity.Podman},
		"default/cgrstat-ctr":                        {Kind: identity.Container, ContainerID: "cgrstat-ctr", Runtime: identity.Containerd},
		"system.slice/cgrstat-test.service":          {Kind: identity.Unit, Unit: "cgrstat-test.service"},
		"user.slice/user-1000.slice/session-2.scope": {Kind: identity.Session, Unit: "session-2.scope", User: "1000"},
	}
}

// identitySpec is the tree of identityLeaves, below the test's top.
func identitySpec() string {
	type node struct {
		kids  map[string]*node
		order []string
	}
	root := &node{kids: map[string]*node{}}
	leaves := make([]string, 0, 11)
	for rel := range identityLeaves() {
		leaves = append(leaves, rel)
	}
	sort.Strings(leaves)
	for _, rel := range leaves {
		n := root
		for _, name := range strings.Split(rel, "/") {
			if n.kids[name] == nil {
				n.kids[name] = &node{kids: map[string]*node{}}
				n.order = append(n.order, name)
			}
			n = n.kids[name]
		}
	}
	var b strings.Builder
	b.WriteString("stress: {size: 4MiB}\nchildren:\n")
	var write func(n *node, indent string)
	write = func(n *node, indent string) {
		for _, name := range n.order {
			fmt.Fprintf(&b, "%s- name: %q\n", indent, name)
			if kid := n.kids[name]; len(kid.order) > 0 {
				fmt.Fprintf(&b, "%s  children:\n", indent)
				write(kid, indent+"    ")
			}
		}
	}
	write(root, "  ")
	return b.String()
}

// identityTree builds the tree below the test's own cgroup and returns
// the top's path relative to the cgroup root, and the arguments that make
// stress reclaim in every leaf.
func identityTree(t *testing.T, l *lab) (topRel string, stress []string) {
	path, top := l.writeSpec(identitySpec())
	parent := "--parent=" + l.parent().Rel
	l.run("hierarchy", "create", "-f", path, parent)
	t.Cleanup(func() { cli(t, "hierarchy", "destroy", "-f", path, parent, "--kill", "--pin-path", l.pinPath) })
	return l.parent().Child(top).Rel, []string{"stress", "-f", path, parent}
}

// readIdentities is read --all --json's cgroups: path, reclaims, identity.
type readCgroup struct {
	Path     string
	Count    uint64             `json:"vmscan_count"`
	Identity *identity.Identity `json:"identity"`
}

func readIdentities(t *testing.T, l *lab, args ...string) map[string]readCgroup {
	t.Helper()
	var read struct{ Cgroups []readCgroup }
	if err := json.Unmarshal([]byte(l.run(append([]string{"read", "--all", "--json"}, args...)...)), &read); err != nil {
		t.Fatal(err)
	}
	out := map[string]readCgroup{}
	for _, c := range read.Cgroups {
		out[c.Path] = c
	}
	return out
}

// TestKernelIdentity builds, below the test's own cgroup, a tree of each
// layout (Kubernetes with the systemd and the cgroupfs driver, Docker,
// Podman, containerd, a systemd unit, a login session), makes every leaf
// reclaim, and finds each leaf
// with its reclaim and its identity in serve's /metrics
// (cgrstat_cgroup_info, in kube-state-metrics' formats) and in read
// --json; read --match selects by identity.
func TestKernelIdentity(t *testing.T) {
	l := newLab(t)
	topRel, stress := identityTree(t, l)
	l.run("load")
	defer l.run("unload")
	l.run(stress...)
	stats := readIdentities(t, l, topRel)
	// Now and then a leaf's one round finds nothing to reclaim (one leaf of
	// eleven on sid 7.2, 2026-12-03): stress such leaves again, at most
	// twice, saying so. Every leaf must still reclaim in the end.
	for try := 0; try < 2; try++ {
		var idle []string
		for rel := range identityLeaves() {
			if stats[topRel+"/"+rel].Count == 0 {
				idle = append(idle, topRel+"/"+rel)
			}
		}
		if len(idle) == 0 {
			break
		}
		t.Logf("no reclaim yet in %d leaves: stress again %v", len(idle), idle)
		l.run(append([]string{"stress"}, idle...)...)
		stats = readIdentities(t, l, topRel)
	}
	// serve exports by depth from the root, and the tree is below the
	// test's own cgroup: every depth, and only the tree.
	srv := startCLI(t, "serve", topRel, "--depth=-1", "--pin-path", l.pinPath, "--web.listen-address", "127.0.0.1:0")
	body := scrape(t, srv.serveAddr(t))
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited %d:\n%s", code, srv.stderr)
	}
	for rel, want := range identityLeaves() {
		path := topRel + "/" + rel
		s, ok := stats[path]
		switch {
		case !ok:
			t.Errorf("read --json lacks %s", path)
			continue
		case s.Count == 0:
			t.Errorf("%s: no reclaim", rel)
		case s.Identity == nil || *s.Identity != want:
			t.Errorf("%s: read --json identity %+v, want %+v", rel, s.Identity, want)
		}
		info := fmt.Sprintf(`cgrstat_cgroup_info{cgroup=%q,container_id=%q,kind=%q,pod_uid=%q,qos=%q,runtime=%q,unit=%q,user=%q} 1`,
			path, want.ContainerRef(), want.Kind, want.PodUID, want.QoS, want.Runtime, want.Unit, want.User)
		if !strings.Contains(body, info+"\n") {
			t.Errorf("/metrics lacks %s", info)
		}
		if !regexp.MustCompile(`(?m)^cgrstat_memcg_reclaims_total\{cgroup="` + regexp.QuoteMeta(path) + `"\} [1-9]`).MatchString(body) {
			t.Errorf("/metrics has no reclaim for %s", path)
		}
	}
	if !strings.Contains(body, `container_id="containerd://`+cid(1)+`",kind="container",pod_uid="`+podA+`",qos="burstable"`) {
		t.Errorf("/metrics lacks pod %s's containerd container in kube-state-metrics' form", podA)
	}
	// The leaves; kubepods (2), QoS classes (2), pods (4), slices (3) and
	// a user's slice; not the top, docker/, libpod_parent/ nor default/.
	if n := strings.Count(body, "\ncgrstat_cgroup_info{"); n != 11+12 {
		t.Errorf("%d info series, want 23:\n%s", n, regexp.MustCompile(`(?m)^cgrstat_cgroup_info.*$`).FindAllString(body, -1))
	}

	// --match by identity: pod A's slice and container; every container.
	for sel, want := range map[string]int{"pod=" + podA[:8]: 2, "kind=container": 9, "qos=guaranteed": 4, "runtime=cri-o,kind=container": 2} {
		if got := readIdentities(t, l, topRel, "--match", sel); len(got) != want {
			t.Errorf("read --match %s: %d cgroups, want %d", sel, len(got), want)
		}
	}
	table := l.run("read", "--all", topRel, "--match", "pod="+podA)
	if !strings.Contains(table, "pod 0b3c9a5e\n") && !strings.Contains(table, "pod 0b3c9a5e ") ||
		!strings.Contains(table, "containerd "+cid(1)[:8]) {
		t.Errorf("read --match pod=%s does not name the pod and its container:\n%s", podA, table)
	}
	frame := l.run("watch", topRel, "--depth=-1", "--count=1", "--interval=200ms", "--match", "pod="+podA)
	if !regexp.MustCompile(`(?m)  pod 0b3c9a5e$`).MatchString(frame) || !regexp.MustCompile(`(?m)    containerd `+cid(1)[:8]+`$`).MatchString(frame) {
		t.Errorf("watch --match pod=%s does not show the pod and, below it, its container:\n%s", podA, frame)
	}
}

// The documented join queries (README "Kubernetes"): a test keeps the
// README's text equal to these.
const (
	joinContainerQuery = `sum by (pod_uid, container_id) (
  rate(cgrstat_reclaim_seconds_total[5m])
  * on(instance, cgroup) group_left(pod_uid, container_id) cgrstat_cgroup_info{kind="container"}
)`
	joinPodQuery = `sum by (namespace, pod) (
  label_replace(
    rate(cgrstat_reclaim_seconds_total[5m])
    * on(instance, cgroup) group_left(pod_uid) cgrstat_cgroup_info{kind="pod"},
    "uid", "$1", "pod_uid", "(.+)")
  * on(uid) group_left(namespace, pod) kube_pod_info
)`
	joinKSMContainerQuery = `sum by (namespace, pod, container) (
  rate(cgrstat_reclaim_seconds_total[5m])
  * on(instance, cgroup) group_left(container_id) cgrstat_cgroup_info{kind="container"}
  * on(container_id) group_left(namespace, pod, container) kube_pod_container_info
)`
)

// TestKernelIdentityJoins: a real Prometheus scrapes serve and a static
// kube-state-metrics exposition (kube_pod_info and kube_pod_container_info
// for pod A) while the identity tree reclaims; the README's join queries
// then find pod A's stall by pod UID and container ID, and by namespace,
// pod and container name.
func TestKernelIdentityJoins(t *testing.T) {
	promBin := needTool(t, "prometheus")
	l := newLab(t)
	topRel, stress := identityTree(t, l)
	// serve exports a cause's series from its first reclaim on, and
	// rate() needs two values: reclaim once before the first scrape and
	// once after.
	l.run("load")
	defer l.run("unload")
	l.run(stress...)
	srv := startCLI(t, "serve", topRel, "--depth=-1", "--pin-path", l.pinPath, "--web.listen-address", "127.0.0.1:0")
	defer func() {
		if code := srv.stop(t); code != 0 {
			t.Errorf("serve exited %d:\n%s", code, srv.stderr)
		}
	}()
	ksm := serveText(t, fmt.Sprintf(`# HELP kube_pod_info Information about pod.
# TYPE kube_pod_info gauge
kube_pod_info{namespace="shop",pod="cart-0",uid=%q,host_ip="10.0.0.1",pod_ip="10.1.0.7",node="node-1",created_by_kind="StatefulSet",created_by_name="cart",priority_class="",host_network="false"} 1
kube_pod_info{namespace="shop",pod="web-1",uid="00000000-0000-4000-8000-000000000000",host_ip="10.0.0.1",pod_ip="10.1.0.8",node="node-1",created_by_kind="ReplicaSet",created_by_name="web",priority_class="",host_network="false"} 1
# HELP kube_pod_container_info Information about a container in a pod.
# TYPE kube_pod_container_info gauge
kube_pod_container_info{namespace="shop",pod="cart-0",uid=%q,container="cart",image_spec="registry.example/cart:1",image="registry.example/cart:1",image_id="registry.example/cart@sha256:%s",container_id="containerd://%s"} 1
`, podA, podA, cid(9), cid(1)))
	prom := startPrometheus(t, promBin, srv.serveAddr(t), "kube-state-metrics="+ksm)
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(prom.get(t, "/api/v1/targets"), `"health":"up"`) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not scrape both targets within 30s: %s", prom.get(t, "/api/v1/targets"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	l.run(stress...)
	for _, q := range []struct {
		name, query string
		want        map[string]string
	}{
		{"by pod UID and container ID", joinContainerQuery, map[string]string{"pod_uid": podA, "container_id": "containerd://" + cid(1)}},
		{"with kube_pod_info", joinPodQuery, map[string]string{"namespace": "shop", "pod": "cart-0"}},
		{"with kube_pod_container_info", joinKSMContainerQuery, map[string]string{"namespace": "shop", "pod": "cart-0", "container": "cart"}},
	} {
		var got []promSample
		deadline := time.Now().Add(20 * time.Second)
		for {
			got = prom.samples(t, q.query)
			if hasSample(got, q.want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if !hasSample(got, q.want) {
			t.Errorf("join %s: no series %v above 0; got %+v", q.name, q.want, got)
		} else {
			t.Logf("join %s: %+v", q.name, got)
		}
	}
}

// hasSample says one sample has exactly the labels want, and a value
// above 0.
func hasSample(got []promSample, want map[string]string) bool {
	for _, s := range got {
		if s.Value <= 0 || len(s.Metric) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			match = match && s.Metric[k] == v
		}
		if match {
			return true
		}
	}
	return false
}

// serveText serves body at /metrics on loopback until the test ends, and
// returns its address.
func serveText(t *testing.T, body string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(body))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// TestReadmeJoinQueries keeps the README's join queries those the kernel
// test runs.
func TestReadmeJoinQueries(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{joinContainerQuery, joinPodQuery, joinKSMContainerQuery} {
		if !strings.Contains(string(b), q) {
			t.Errorf("README lacks the join query\n%s", q)
		}
	}
}
