package identity

import (
	"slices"
	"strings"
	"testing"
)

// IDs of the examples: a pod UID as the API server makes them, a
// 64-digit container ID as containerd, CRI-O, Docker and Podman make them.
const (
	uid  = "0b3c9a5e-8f2d-4c1e-9a7b-2d4e6f8a1c3b"
	uidS = "0b3c9a5e_8f2d_4c1e_9a7b_2d4e6f8a1c3b" // as the kubelet's systemd driver writes it
	cid  = "3f9c2a1b6d8e4f70a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"
)

// The paths and where each layout comes from (sources read in
// December 2026):
//
//   - kubelet, pkg/kubelet/cm: a pod's cgroup name is "pod"+UID
//     (pod_container_manager_linux.go, podCgroupNamePrefix) below
//     kubepods/<qos> (burstable, besteffort; guaranteed pods directly
//     below kubepods: qos_container_manager_linux.go). With the systemd
//     driver, ConvertCgroupNameToSystemd (cgroup_manager_linux.go) turns
//     "-" into "_" in each part and joins the parts with "-" into
//     kubepods-burstable-pod<uid_>.slice, expanded by runc's ExpandSlice
//     into kubepods.slice/kubepods-burstable.slice/...; a --cgroup-root
//     kubelet.slice (kind's nodes) prefixes every slice with "kubelet-".
//   - containerd's CRI, internal/cri/server/helpers_linux.go
//     getCgroupsPath: "<parent slice>:cri-containerd:<id>" when the parent
//     is a slice, else <parent>/<id>. runc's and crun's systemd driver make
//     "<slice>:<prefix>:<name>" the scope "<prefix>-<name>.scope".
//   - containerd without Kubernetes, oci/spec.go populateDefaultUnixSpec:
//     CgroupsPath filepath.Join("/", namespace, id).
//   - CRI-O, internal/config/cgmgr: systemd_linux.go ContainerCgroupPath
//     "<parent>:crio:<id>" (scope crio-<id>.scope); cgroupfs_linux.go
//     <parent>/crio-<id>, conmon in <parent>/crio-conmon-<id> (and
//     crio-conmon-<id>.scope with systemd).
//   - Docker: cgroup parent /docker with cgroupfs (/docker/<id>), and
//     system.slice:docker:<id> with systemd (docker-<id>.scope); the same
//     docker-<id>.scope with cri-dockerd below a pod's slice.
//   - Podman, libpod: CgroupfsDefaultCgroupParent "/libpod_parent" with
//     containers at libpod_parent/libpod-<id>, SystemdDefaultCgroupParent
//     "machine.slice" with libpod-<id>.scope, conmon in
//     libpod-conmon-<id>.scope (conmonScopeUnit); rootless below the
//     user's manager, user@<uid>.service/user.slice.
//   - systemd: user-<uid>.slice below user.slice, session-<n>.scope for
//     logins, user@<uid>.service for the user's manager (pam_systemd,
//     logind), services in system.slice.
//   - The literal "<slice>:cri-containerd:<id>" directory: containerd with
//     SystemdCgroup = false below a kubelet with the systemd driver, listed
//     as a layout seen in the wild in falco's libsinsp (cri.cpp,
//     CRI_CGROUP_LAYOUT).
//   - A static pod (UID the kubelet's 32-digit hash) with the cgroupfs
//     driver: a Cloud Shell mountinfo line quoted in public code,
//     /kubepods/besteffort/pod3d6beaa3004913efb68ce073d73494b0/<id>.
var cases = []struct {
	path string
	want Identity
	ok   bool
}{
	// Kubernetes, systemd driver.
	{"/kubepods.slice", Identity{Kind: Kubepods, Unit: "kubepods.slice"}, true},
	{"/kubepods.slice/kubepods-burstable.slice", Identity{Kind: QoSClass, QoS: Burstable, Unit: "kubepods-burstable.slice"}, true},
	{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidS + ".slice",
		Identity{Kind: Pod, PodUID: uid, QoS: Burstable, Unit: "kubepods-burstable-pod" + uidS + ".slice"}, true},
	{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidS + ".slice/cri-containerd-" + cid + ".scope",
		Identity{Kind: Container, PodUID: uid, QoS: Burstable, ContainerID: cid, Runtime: Containerd, Unit: "cri-containerd-" + cid + ".scope"}, true},
	{"/kubepods.slice/kubepods-pod" + uidS + ".slice", Identity{Kind: Pod, PodUID: uid, QoS: Guaranteed, Unit: "kubepods-pod" + uidS + ".slice"}, true},
	{"/kubepods.slice/kubepods-pod" + uidS + ".slice/crio-" + cid + ".scope",
		Identity{Kind: Container, PodUID: uid, QoS: Guaranteed, ContainerID: cid, Runtime: CRIO, Unit: "crio-" + cid + ".scope"}, true},
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidS + ".slice/crio-conmon-" + cid + ".scope",
		Identity{Kind: Conmon, PodUID: uid, QoS: BestEffort, ContainerID: cid, Runtime: CRIO, Unit: "crio-conmon-" + cid + ".scope"}, true},
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidS + ".slice/docker-" + cid + ".scope",
		Identity{Kind: Container, PodUID: uid, QoS: BestEffort, ContainerID: cid, Runtime: Docker, Unit: "docker-" + cid + ".scope"}, true},
	// CRI-O with crun puts the workload one level below the scope: not the
	// container's own cgroup.
	{"/kubepods.slice/kubepods-pod" + uidS + ".slice/crio-" + cid + ".scope/container", Identity{}, false},
	// containerd with SystemdCgroup = false below a systemd kubelet.
	{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidS + ".slice:cri-containerd:" + cid,
		Identity{Kind: Container, PodUID: uid, QoS: Burstable, ContainerID: cid, Runtime: Containerd}, true},

	// Kubernetes, cgroupfs driver.
	{"/kubepods", Identity{Kind: Kubepods}, true},
	{"/kubepods/besteffort", Identity{Kind: QoSClass, QoS: BestEffort}, true},
	{"/kubepods/burstable/pod" + uid, Identity{Kind: Pod, PodUID: uid, QoS: Burstable}, true},
	{"/kubepods/burstable/pod" + uid + "/" + cid, Identity{Kind: Container, PodUID: uid, QoS: Burstable, ContainerID: cid}, true},
	{"/kubepods/pod" + uid + "/" + cid, Identity{Kind: Container, PodUID: uid, QoS: Guaranteed, ContainerID: cid}, true},
	{"/kubepods/besteffort/pod" + uid + "/crio-" + cid, Identity{Kind: Container, PodUID: uid, QoS: BestEffort, ContainerID: cid, Runtime: CRIO}, true},
	{"/kubepods/besteffort/pod" + uid + "/crio-conmon-" + cid, Identity{Kind: Conmon, PodUID: uid, QoS: BestEffort, ContainerID: cid, Runtime: CRIO}, true},
	{"/kubepods/besteffort/pod3d6beaa3004913efb68ce073d73494b0/accdf94879f0a494f317e9a0517f23cdd18b35ff9439efd0175f17bbc56877c4",
		Identity{Kind: Container, PodUID: "3d6beaa3004913efb68ce073d73494b0", QoS: BestEffort, ContainerID: "accdf94879f0a494f317e9a0517f23cdd18b35ff9439efd0175f17bbc56877c4"}, true},
	{"/kubepods/burstable/notapod", Identity{}, false},
	{"/kubepods/guaranteed", Identity{}, false}, // guaranteed pods have no QoS cgroup

	// Nested: a kind node is a Docker container whose kubelet has
	// --cgroup-root kubelet.slice (systemd) or /kubelet (cgroupfs).
	{"/system.slice/docker-" + cid + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod" + uidS + ".slice/cri-containerd-" + strings.Repeat("ab", 32) + ".scope",
		Identity{Kind: Container, PodUID: uid, QoS: Burstable, ContainerID: strings.Repeat("ab", 32), Runtime: Containerd, Unit: "cri-containerd-" + strings.Repeat("ab", 32) + ".scope"}, true},
	{"/docker/" + cid + "/kubelet/kubepods/pod" + uid, Identity{Kind: Pod, PodUID: uid, QoS: Guaranteed}, true},
	// cgrstat's tests: below their own cgroup.
	{"/process_api/a00678ac7046eb186058aa1dc191f5df/cgrstat-1-x/kubepods/burstable/pod" + uid, Identity{Kind: Pod, PodUID: uid, QoS: Burstable}, true},

	// Docker, Podman, containerd on their own.
	{"/docker/" + cid, Identity{Kind: Container, ContainerID: cid, Runtime: Docker}, true},
	{"/system.slice/docker-" + cid + ".scope", Identity{Kind: Container, ContainerID: cid, Runtime: Docker, Unit: "docker-" + cid + ".scope"}, true},
	{"/machine.slice/libpod-" + cid + ".scope", Identity{Kind: Container, ContainerID: cid, Runtime: Podman, Unit: "libpod-" + cid + ".scope"}, true},
	{"/machine.slice/libpod-conmon-" + cid + ".scope", Identity{Kind: Conmon, ContainerID: cid, Runtime: Podman, Unit: "libpod-conmon-" + cid + ".scope"}, true},
	{"/libpod_parent/libpod-" + cid, Identity{Kind: Container, ContainerID: cid, Runtime: Podman}, true},
	{"/libpod_parent/libpod-" + cid + "/ctr", Identity{}, false},
	{"/libpod_parent/conmon", Identity{}, false},
	{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cid + ".scope",
		Identity{Kind: Container, ContainerID: cid, Runtime: Podman, Unit: "libpod-" + cid + ".scope", User: "1000"}, true},
	{"/default/" + cid, Identity{Kind: Container, ContainerID: cid, Runtime: Containerd}, true},    // nerdctl
	{"/default/redis", Identity{Kind: Container, ContainerID: "redis", Runtime: Containerd}, true}, // ctr run ... redis
	{"/default/-x", Identity{}, false},
	{"/buildkit/" + cid, Identity{Kind: Container, ContainerID: cid}, true}, // another namespace, or another runtime
	{"/crio/crio-" + cid, Identity{Kind: Container, ContainerID: cid, Runtime: CRIO}, true},
	{"/process_api/x/ctr/libpod-" + cid, Identity{Kind: Container, ContainerID: cid, Runtime: Podman}, true}, // podman --cgroup-parent
	{"/docker", Identity{}, false},

	// systemd units and user sessions.
	{"/system.slice", Identity{Kind: Slice, Unit: "system.slice"}, true},
	{"/system.slice/nginx.service", Identity{Kind: Unit, Unit: "nginx.service"}, true},
	{"/init.scope", Identity{Kind: Unit, Unit: "init.scope"}, true},
	{"/system.slice/system-getty.slice/getty@tty1.service", Identity{Kind: Unit, Unit: "getty@tty1.service"}, true},
	{"/user.slice/user-1000.slice", Identity{Kind: User, Unit: "user-1000.slice", User: "1000"}, true},
	{"/user.slice/user-1000.slice/session-2.scope", Identity{Kind: Session, Unit: "session-2.scope", User: "1000"}, true},
	{"/user.slice/user-1000.slice/user@1000.service", Identity{Kind: Unit, Unit: "user@1000.service", User: "1000"}, true},
	{"/user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox.scope", Identity{Kind: Unit, Unit: "app-firefox.scope", User: "1000"}, true},
	{"/system.slice/session-2.scope", Identity{Kind: Unit, Unit: "session-2.scope"}, true}, // not below a user

	// Nothing.
	{"/", Identity{}, false},
	{"", Identity{}, false},
	{"/test/child1", Identity{}, false},
	{"/system.slice/docker-abc.scope", Identity{Kind: Unit, Unit: "docker-abc.scope"}, true}, // no container ID
	{"/.scope", Identity{}, false},
}

func TestParse(t *testing.T) {
	for _, c := range cases {
		got, ok := Parse(c.path)
		if got != c.want || ok != c.ok {
			t.Errorf("Parse(%q)\n = %+v, %v\nwant %+v, %v", c.path, got, ok, c.want, c.ok)
		}
		checkInvariants(t, c.path, got, ok)
	}
}

// TestParser wants Parse's answer for every case and every ancestor of
// one, in the order a tree walk lists them (parents first), in the cases'
// order, and backwards.
func TestParser(t *testing.T) {
	seen := map[string]bool{}
	var walk []string
	for _, c := range cases {
		for i := 1; i <= len(c.path); i++ {
			if p := c.path[:i]; (i == len(c.path) || c.path[i] == '/') && !seen[p] {
				seen[p] = true
				walk = append(walk, p)
			}
		}
	}
	slices.Sort(walk)
	walk = append(walk, "/", "/kubepods.slice", "//kubepods.slice//kubepods-burstable.slice/")
	var listed []string
	for _, c := range cases {
		listed = append(listed, c.path)
	}
	backwards := slices.Clone(walk)
	slices.Reverse(backwards)
	for _, order := range [][]string{walk, listed, backwards} {
		var p Parser
		for _, path := range order {
			wantID, wantOK := Parse(path)
			if id, ok := p.Parse(path); id != wantID || ok != wantOK {
				t.Errorf("Parser.Parse(%q)\n = %+v, %v\nwant %+v, %v", path, id, ok, wantID, wantOK)
			}
		}
	}
}

func TestShortAndRef(t *testing.T) {
	for _, c := range []struct {
		path, short, ref string
	}{
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidS + ".slice/cri-containerd-" + cid + ".scope",
			"pod 0b3c9a5e · containerd 3f9c2a1b", "containerd://" + cid},
		{"/kubepods/besteffort/pod" + uid + "/crio-conmon-" + cid, "pod 0b3c9a5e · cri-o conmon 3f9c2a1b", "cri-o://" + cid},
		{"/kubepods/burstable/pod" + uid, "pod 0b3c9a5e", ""},
		{"/kubepods/burstable/pod" + uid + "/" + cid, "pod 0b3c9a5e · container 3f9c2a1b", cid},
		{"/system.slice/docker-" + cid + ".scope", "docker 3f9c2a1b", "docker://" + cid},
		{"/system.slice/nginx.service", "", ""},
		{"/kubepods/burstable", "", ""},
	} {
		id, _ := Parse(c.path)
		if s := id.Short(); s != c.short {
			t.Errorf("Short(%s) = %q, want %q", c.path, s, c.short)
		}
		if r := id.ContainerRef(); r != c.ref {
			t.Errorf("ContainerRef(%s) = %q, want %q", c.path, r, c.ref)
		}
	}
}

func TestSelector(t *testing.T) {
	pod := "/kubepods/burstable/pod" + uid
	ctr := pod + "/crio-" + cid
	svc := "/system.slice/nginx.service"
	for _, c := range []struct {
		sel  string
		want []bool // pod, ctr, svc, none
	}{
		{"pod=" + uid, []bool{true, true, false, false}},
		{"pod=0b3c9a5e", []bool{true, true, false, false}},
		{"pod=" + uidS, []bool{true, true, false, false}},
		{"qos=Burstable", []bool{true, true, false, false}},
		{"kind=container,runtime=cri-o", []bool{false, true, false, false}},
		{"container=cri-o://" + cid, []bool{false, true, false, false}},
		{"container=3f9c", []bool{false, true, false, false}},
		{"unit=nginx.service", []bool{false, false, true, false}},
		{"kind=pod,qos=besteffort", []bool{false, false, false, false}},
	} {
		if !IsSelector(c.sel) {
			t.Errorf("IsSelector(%q) = false", c.sel)
		}
		sel, err := ParseSelector(c.sel)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range []string{pod, ctr, svc, "/test"} {
			id, ok := Parse(p)
			if got := sel.Match(id, ok); got != c.want[i] {
				t.Errorf("%q matches %s: %v, want %v", c.sel, p, got, c.want[i])
			}
		}
	}
	for _, bad := range []string{"pod=", "pod=x,", "name=x", "kind"} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("ParseSelector(%q) accepted", bad)
		}
	}
	for _, re := range []string{"^/kubepods", "pod[0-9a-f]", "a=b", ""} {
		if IsSelector(re) {
			t.Errorf("IsSelector(%q) = true: a regular expression", re)
		}
	}
}

// checkInvariants holds for every path: values come from the path or the
// fixed vocabularies, a container has a 64-digit ID, anything with a pod
// has a QoS class, and a neutral prefix changes nothing.
func checkInvariants(t *testing.T, path string, id Identity, ok bool) {
	t.Helper()
	if !ok {
		if id != (Identity{}) {
			t.Errorf("Parse(%q): not ok but %+v", path, id)
		}
		return
	}
	switch id.Kind {
	case Kubepods, QoSClass, Pod, Container, Conmon, Slice, User, Session, Unit:
	default:
		t.Errorf("Parse(%q): kind %q", path, id.Kind)
	}
	switch id.QoS {
	case "", Guaranteed, Burstable, BestEffort:
	default:
		t.Errorf("Parse(%q): QoS %q", path, id.QoS)
	}
	switch id.Runtime {
	case "", Containerd, CRIO, Docker, Podman:
	default:
		t.Errorf("Parse(%q): runtime %q", path, id.Runtime)
	}
	if (id.Kind == Container || id.Kind == Conmon) != (id.ContainerID != "") {
		t.Errorf("Parse(%q): kind %s with container ID %q", path, id.Kind, id.ContainerID)
	}
	if id.ContainerID != "" && (!isContainerID(id.ContainerID) && (id.Runtime != Containerd || !isContainerdName(id.ContainerID)) ||
		!strings.Contains(path, id.ContainerID)) {
		t.Errorf("Parse(%q): container ID %q", path, id.ContainerID)
	}
	if id.Kind == Pod && id.PodUID == "" {
		t.Errorf("Parse(%q): a pod without UID", path)
	}
	if id.PodUID != "" {
		if id.QoS == "" {
			t.Errorf("Parse(%q): pod %s without QoS class", path, id.PodUID)
		}
		if _, ok := podUID("pod"+id.PodUID, false); !ok {
			t.Errorf("Parse(%q): pod UID %q", path, id.PodUID)
		}
		if !strings.Contains(path, id.PodUID) && !strings.Contains(path, strings.ReplaceAll(id.PodUID, "-", "_")) {
			t.Errorf("Parse(%q): pod UID %q not in the path", path, id.PodUID)
		}
	}
	if id.Unit != "" && (strings.Contains(id.Unit, "/") || !strings.Contains(path, id.Unit)) {
		t.Errorf("Parse(%q): unit %q", path, id.Unit)
	}
	if id.User != "" && !isDecimal(id.User) {
		t.Errorf("Parse(%q): user %q", path, id.User)
	}
	if s := id.Short(); (s != "") != (id.ContainerID != "" || id.Kind == Pod) {
		t.Errorf("Parse(%q): short name %q for %+v", path, s, id)
	}
	// Anywhere in a path: below a neutral prefix, the same identity.
	if again, ok2 := Parse("/cgrstat-test/x" + "/" + strings.TrimPrefix(path, "/")); again != id || ok2 != ok {
		t.Errorf("Parse(%q) below a prefix = %+v, %v; alone %+v, %v", path, again, ok2, id, ok)
	}
}

// FuzzParse: no path makes Parse panic or break the invariants.
func FuzzParse(f *testing.F) {
	for _, c := range cases {
		f.Add(c.path)
	}
	f.Add("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidS + ".slice:crio:" + cid)
	f.Add("/a::b/c:d:e/" + cid + ":x")
	f.Add("kubepods-kubepods-pod-.slice")
	f.Fuzz(func(t *testing.T, path string) {
		id, ok := Parse(path)
		checkInvariants(t, path, id, ok)
		sel, err := ParseSelector("pod=" + id.PodUID + ",kind=" + string(id.Kind))
		if ok && id.PodUID != "" && (err != nil || !sel.Match(id, ok)) {
			t.Errorf("Parse(%q) = %+v: its own selector does not match (%v)", path, id, err)
		}
	})
}

// BenchmarkParse: every scrape and read parses every cgroup's path.
func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		for _, c := range cases {
			Parse(c.path)
		}
	}
}
