// Package identity tells what a cgroup is from its path alone: a
// Kubernetes pod or one of its containers, a container of Docker, Podman or
// containerd, a systemd unit, a user's slice or session. The layouts are
// the ones the kubelet, the container runtimes and systemd write (the
// tests cite where each comes from). Nothing is asked of a runtime: serve
// and read see every cgroup of the host, and a path is all they have.
//
// Layouts are recognised anywhere in a path, below any prefix: a kind or
// nested node puts /kubelet.slice/kubelet-kubepods.slice below a
// container of its host, and cgrstat's own tests build them below their
// own cgroup.
package identity

import (
	"strings"
)

// Kind is what a cgroup is.
type Kind string

const (
	// Kubepods is the kubelet's cgroup of every pod (kubepods,
	// kubepods.slice).
	Kubepods Kind = "kubepods"
	// QoSClass is the kubelet's cgroup of a QoS class's pods (burstable,
	// besteffort; guaranteed pods sit in kubepods itself).
	QoSClass Kind = "qos"
	// Pod is a Kubernetes pod.
	Pod Kind = "pod"
	// Container is a container: of a pod, or of Docker, Podman or
	// containerd on their own. A pod's sandbox (pause) container is one
	// too: its path does not tell it apart.
	Container Kind = "container"
	// Conmon is the cgroup of the container monitor that CRI-O and Podman
	// start beside a container (crio-conmon-<id>, libpod-conmon-<id>).
	Conmon Kind = "conmon"
	// Slice is any other systemd slice (system.slice, machine.slice, ...).
	Slice Kind = "slice"
	// User is a login user's slice (user-<uid>.slice).
	User Kind = "user"
	// Session is a login session's scope (session-<n>.scope below a user's
	// slice).
	Session Kind = "session"
	// Unit is any other systemd unit with a cgroup: a service, scope,
	// socket, mount or swap.
	Unit Kind = "unit"
)

// Runtime is the container runtime, written as the scheme of the
// container IDs the kubelet reports (kube-state-metrics'
// kube_pod_container_info container_id label: "containerd://<id>").
type Runtime string

const (
	Containerd Runtime = "containerd"
	CRIO       Runtime = "cri-o"
	Docker     Runtime = "docker"
	Podman     Runtime = "podman"
)

// QoS classes as the kubelet names them in paths and kube-state-metrics
// in kube_pod_status_qos_class (there capitalised: Guaranteed).
const (
	Guaranteed = "guaranteed"
	Burstable  = "burstable"
	BestEffort = "besteffort"
)

// Identity is what a cgroup's path says it is. Every field but Kind may be
// empty; each is a part of the path, or derived from one.
type Identity struct {
	Kind Kind `json:"kind"`
	// PodUID is the pod's UID as Kubernetes writes it (with dashes, as in
	// kube_pod_info's uid label), for a pod and what is below it. A static
	// pod's UID is the kubelet's hash of its manifest (32 hex digits), not
	// the UID of its mirror pod in the API.
	PodUID string `json:"pod_uid,omitempty"`
	// QoS is the pod's QoS class: guaranteed, burstable or besteffort.
	QoS string `json:"qos,omitempty"`
	// ContainerID is the runtime's ID of the container (64 hex digits; in
	// containerd's default namespace, the name it was given), for a
	// container and its conmon.
	ContainerID string `json:"container_id,omitempty"`
	// Runtime is empty where the path does not say: the kubelet's cgroupfs
	// driver names a containerd or Docker container by its ID alone.
	Runtime Runtime `json:"runtime,omitempty"`
	// Unit is the systemd unit the cgroup is (its name), for slices, units,
	// sessions and the scopes of containers.
	Unit string `json:"unit,omitempty"`
	// User is the login UID of the user slice the cgroup is in.
	User string `json:"user,omitempty"`
}

// ContainerRef is the container as kube-state-metrics names it in
// kube_pod_container_info's container_id: "containerd://<id>". Without a
// runtime it is the bare ID; without a container, empty.
func (id Identity) ContainerRef() string {
	if id.ContainerID == "" || id.Runtime == "" {
		return id.ContainerID
	}
	return string(id.Runtime) + "://" + id.ContainerID
}

// shortID is how many hex digits a short name shows, as `docker ps`
// shows 12 and kubectl none: 8 tell apart the pods and containers of a
// node.
const shortID = 8

// Short is a readable name for people, "pod 0b3c9a5e · containerd
// 3f9c2a1b", for pods, containers and conmons; empty for other kinds,
// whose path's last component already is their name.
func (id Identity) Short() string {
	var pod, ctr string
	if id.PodUID != "" {
		pod = "pod " + id.PodUID[:min(shortID, len(id.PodUID))]
	}
	if id.ContainerID != "" {
		rt := string(id.Runtime)
		if rt == "" {
			rt = "container"
		}
		short := id.ContainerID[:min(shortID, len(id.ContainerID))]
		ctr = rt + " " + short
		if id.Kind == Conmon {
			ctr = rt + " conmon " + short
		}
	}
	switch {
	case pod != "" && ctr != "":
		return pod + " · " + ctr
	case id.Kind == Pod:
		return pod
	}
	return ctr
}

// Name is the short name of the cgroup at path for a view that shows it
// below the row of parent ("" for none): a container below its pod's row
// goes without the pod ("containerd 3f9c2a1b"). Empty where the cgroup
// has no short name.
func Name(path, parent string) string {
	id, ok := Parse(path)
	if !ok {
		return ""
	}
	short := id.Short()
	if parent != "" {
		if p, ok := Parse(parent); ok && p.Kind == Pod {
			short = strings.TrimPrefix(short, p.Short()+" · ")
		}
	}
	return short
}

// context is what the components above tell about the next one.
type context struct {
	id Identity
	ok bool
	// dir is a cgroupfs parent that names what is below it.
	dir string
}

// Directories below which a runtime with the cgroupfs driver puts its
// containers: Docker's /docker/<id>, containerd's /<namespace>/<id> in
// its default namespace.
const (
	dockerDir         = "docker"
	containerdDefault = "default"
)

// Parse tells what the cgroup at path (relative to the cgroup root, "/"
// separated) is. ok is false where nothing is recognised: the identity
// is that of the last component, read in the context of those above it.
// A cgroup below a container (crio-<id>.scope/container, Podman's
// libpod-<id>/ctr) has none unless it is recognised on its own, as a
// nested node's pods are.
func Parse(path string) (id Identity, ok bool) {
	ctx := components(context{}, path)
	return ctx.id, ctx.ok
}

// components is the context after path's components, below ctx.
func components(ctx context, path string) context {
	for path != "" {
		var name string
		if i := strings.IndexByte(path, '/'); i >= 0 {
			name, path = path[:i], path[i+1:]
		} else {
			name, path = path, ""
		}
		if name == "" {
			continue
		}
		ctx = component(ctx, name)
	}
	return ctx
}

// Parser is Parse for the paths of a tree read parents first, as read
// --all and a scrape list them: it keeps the context of the last path's
// ancestors and parses only the components below the closest one, so a
// path costs its last component rather than its depth (at 10,000 cgroups
// Parse from the top was a tenth of a scrape). The zero Parser is ready;
// any order of paths gives Parse's answers, only slower.
type Parser struct {
	stack []parsed // the last path and its ancestors parsed, top first
}

type parsed struct {
	path string
	ctx  context
}

// Parse is Parse(path).
func (p *Parser) Parse(path string) (id Identity, ok bool) {
	var ctx context
	rest := path
	for n := len(p.stack); n > 0; n-- {
		if r, below := under(path, p.stack[n-1].path); below {
			ctx, rest = p.stack[n-1].ctx, r
			p.stack = p.stack[:n]
			break
		}
		p.stack = p.stack[:n-1]
	}
	ctx = components(ctx, rest)
	p.stack = append(p.stack, parsed{path, ctx})
	return ctx.id, ctx.ok
}

// under is path's part below dir, if path is strictly below it.
func under(path, dir string) (rest string, ok bool) {
	if len(path) <= len(dir) || !strings.HasPrefix(path, dir) {
		return "", false
	}
	if strings.HasSuffix(dir, "/") {
		return path[len(dir):], true
	}
	if path[len(dir)] != '/' {
		return "", false
	}
	return path[len(dir)+1:], true
}

// component is the context after the component name, below ctx.
func component(ctx context, name string) context {
	if ctx.ok && (ctx.id.Kind == Container || ctx.id.Kind == Conmon) {
		// Below a container, its own tree starts afresh: a kind node's
		// kubelet below the node's docker-<id>.scope, or nothing.
		ctx = context{}
	}
	// What a unit below a user's slice or manager inherits.
	user := ""
	if ctx.ok {
		user = ctx.id.User
	}
	switch {
	case strings.HasSuffix(name, ".slice"):
		return slice(name, user)
	case strings.Contains(name, ":"):
		// runc's systemd cgroup path "<slice>:<prefix>:<id>", taken
		// literally as a directory name by runc's cgroupfs driver: what
		// containerd's CRI writes for a kubelet with the systemd driver
		// when containerd itself has SystemdCgroup = false.
		return colonTriple(name)
	case isUnit(name):
		return unit(ctx, name, user)
	}
	return cgroupfs(ctx, name)
}

// slice reads a systemd slice. Its name spells its ancestry ("-" steps
// down), so a Kubernetes slice is recognised by its name alone:
// kubepods-burstable-pod<uid>.slice, and with a kubelet --cgroup-root
// kubelet.slice (kind's nodes) kubelet-kubepods-burstable-pod<uid>.slice.
func slice(name, user string) context {
	stem := strings.TrimSuffix(name, ".slice")
	// The parts after "kubepods", without allocating: a scrape parses
	// every cgroup's path.
	for s := stem; ; {
		part, after, more := strings.Cut(s, "-")
		if part == "kubepods" {
			var buf [2]string
			rest := buf[:0]
			for more && len(rest) < len(buf) {
				part, after, more = strings.Cut(after, "-")
				rest = append(rest, part)
			}
			if id, ok := kube(rest, true); ok && !more {
				id.Unit = name
				return context{id: id, ok: true}
			}
			break
		}
		if !more {
			break
		}
		s = after
	}
	if uid, ok := strings.CutPrefix(stem, "user-"); ok && isDecimal(uid) {
		return context{id: Identity{Kind: User, Unit: name, User: uid}, ok: true}
	}
	return context{id: Identity{Kind: Slice, Unit: name, User: user}, ok: true}
}

// kube reads what follows "kubepods": nothing (the kubelet's own cgroup),
// a QoS class, a pod (in a QoS class, or guaranteed), as slice name parts
// (underscores for the UID's dashes) or cgroupfs components.
func kube(rest []string, systemd bool) (Identity, bool) {
	switch len(rest) {
	case 0:
		return Identity{Kind: Kubepods}, true
	case 1:
		if isQoS(rest[0]) {
			return Identity{Kind: QoSClass, QoS: rest[0]}, true
		}
		if uid, ok := podUID(rest[0], systemd); ok {
			return Identity{Kind: Pod, PodUID: uid, QoS: Guaranteed}, true
		}
	case 2:
		if uid, ok := podUID(rest[1], systemd); ok && isQoS(rest[0]) {
			return Identity{Kind: Pod, PodUID: uid, QoS: rest[0]}, true
		}
	}
	return Identity{}, false
}

func isQoS(s string) bool { return s == Burstable || s == BestEffort }

// podUID reads "pod<uid>": the kubelet's cgroup name for a pod. Its
// systemd driver writes the UID's dashes as underscores ("-" would step
// down a level); its cgroupfs driver writes the UID as is. A UID is a
// UUID (8-4-4-4-12 hex digits), or for static pods a 32-digit hash.
func podUID(s string, systemd bool) (string, bool) {
	uid, ok := strings.CutPrefix(s, "pod")
	if !ok {
		return "", false
	}
	if systemd {
		uid = strings.ReplaceAll(uid, "_", "-")
	}
	switch {
	case len(uid) == 32 && isHex(uid):
		return uid, true
	case len(uid) == 36 && uid[8] == '-' && uid[13] == '-' && uid[18] == '-' && uid[23] == '-' &&
		isHex(uid[:8]+uid[9:13]+uid[14:18]+uid[19:23]+uid[24:]):
		return uid, true
	}
	return "", false
}

// scopes are the prefixes of container scopes, in the order they are
// tried (crio-conmon- before crio-): runc and crun name a systemd scope
// "<prefix>-<id>.scope" from the cgroup path "<slice>:<prefix>:<id>"
// that containerd's CRI ("cri-containerd"), CRI-O ("crio"), dockerd
// ("docker") and Podman ("libpod") give them.
var scopes = []struct {
	prefix  string
	runtime Runtime
	kind    Kind
}{
	{"cri-containerd", Containerd, Container},
	{"crio-conmon", CRIO, Conmon},
	{"crio", CRIO, Container},
	{"docker", Docker, Container},
	{"libpod-conmon", Podman, Conmon},
	{"libpod", Podman, Container},
}

// unitSuffixes are the systemd unit types that have cgroups.
var unitSuffixes = []string{".service", ".scope", ".socket", ".mount", ".swap"}

func isUnit(name string) bool {
	for _, s := range unitSuffixes {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			return true
		}
	}
	return false
}

// unit reads a systemd unit below ctx: a container's scope, a login
// session, a user's manager, or any other unit.
func unit(ctx context, name, user string) context {
	if stem, ok := strings.CutSuffix(name, ".scope"); ok {
		for _, s := range scopes {
			if id, ok := strings.CutPrefix(stem, s.prefix+"-"); ok && isContainerID(id) {
				return container(ctx, s.kind, s.runtime, id, name)
			}
		}
		if n, ok := strings.CutPrefix(stem, "session-"); ok && user != "" && n != "" {
			return context{id: Identity{Kind: Session, Unit: name, User: user}, ok: true}
		}
	}
	if uid, ok := strings.CutSuffix(name, ".service"); ok {
		if uid, ok = strings.CutPrefix(uid, "user@"); ok && isDecimal(uid) {
			return context{id: Identity{Kind: Unit, Unit: name, User: uid}, ok: true}
		}
	}
	return context{id: Identity{Kind: Unit, Unit: name, User: user}, ok: true}
}

// container is a container (or conmon) with ID id below ctx: it belongs to
// the pod ctx is, if any.
func container(ctx context, kind Kind, rt Runtime, cid, unit string) context {
	id := Identity{Kind: kind, ContainerID: cid, Runtime: rt, Unit: unit}
	if ctx.ok && ctx.id.Kind == Pod {
		id.PodUID, id.QoS = ctx.id.PodUID, ctx.id.QoS
	} else if ctx.ok {
		id.User = ctx.id.User
	}
	return context{id: id, ok: true}
}

// colonTriple reads "<slice>:<prefix>:<id>" as one directory name.
func colonTriple(name string) context {
	parts := strings.Split(name, ":")
	if len(parts) != 3 || !isContainerID(parts[2]) {
		return context{}
	}
	var ctx context
	if strings.HasSuffix(parts[0], ".slice") {
		ctx = slice(parts[0], "")
	}
	for _, s := range scopes {
		if parts[1] == s.prefix {
			return container(ctx, s.kind, s.runtime, parts[2], "")
		}
	}
	return context{}
}

// cgroupfs reads a component that is not a systemd unit: the kubelet's
// and the runtimes' cgroupfs layouts.
//
//   - kubelet: kubepods/{burstable,besteffort}/pod<uid>/<id>, and
//     kubepods/pod<uid>/<id> for guaranteed pods. containerd and Docker
//     name a container by its ID alone, so its runtime is unknown; CRI-O
//     names it crio-<id> (and its conmon crio-conmon-<id>).
//   - Podman names a container libpod-<id> below any cgroup parent
//     (libpod_parent by default, --cgroup-parent); CRI-O crio-<id> (below
//     /crio by default).
//   - Docker: docker/<id>.
//   - containerd without Kubernetes: <namespace>/<id>. In its default
//     namespace, "default" (ctr's and nerdctl's), any container name ctr
//     accepts is told; in another, a name of 64 hex digits is a container
//     whose runtime is unknown: Docker with a --cgroup-parent, or another
//     runtime, lays its containers out the same way.
func cgroupfs(ctx context, name string) context {
	parent := ctx.id.Kind
	if !ctx.ok {
		parent = ""
	}
	inPod := parent == Pod && ctx.id.Unit == ""
	dir := ctx.dir
	switch {
	case name == "kubepods":
		return context{id: Identity{Kind: Kubepods}, ok: true}
	case (parent == Kubepods || parent == QoSClass) && ctx.id.Unit == "":
		rest := []string{name}
		if parent == QoSClass {
			rest = []string{ctx.id.QoS, name}
		}
		if id, ok := kube(rest, false); ok {
			return context{id: id, ok: true}
		}
	}
	if !inPod {
		ctx = context{id: Identity{User: ctx.id.User}, ok: ctx.ok && ctx.id.User != ""}
	}
	for _, p := range named {
		if id, ok := strings.CutPrefix(name, p.prefix); ok && isContainerID(id) {
			return container(ctx, p.kind, p.runtime, id, "")
		}
	}
	switch {
	case isContainerID(name) && inPod:
		return container(ctx, Container, "", name, "")
	case dir == dockerDir && isContainerID(name):
		return container(ctx, Container, Docker, name, "")
	case dir == containerdDefault && isContainerdName(name):
		return container(ctx, Container, Containerd, name, "")
	case isContainerID(name):
		return container(ctx, Container, "", name, "")
	case name == dockerDir || name == containerdDefault:
		return context{dir: name}
	}
	return context{}
}

// named are the prefixes of container cgroups that runtimes name after
// the container in cgroupfs layouts.
var named = []struct {
	prefix  string
	runtime Runtime
	kind    Kind
}{{"crio-conmon-", CRIO, Conmon}, {"crio-", CRIO, Container}, {"libpod-", Podman, Container}}

// isContainerdName says s is a container name containerd accepts
// (identifiers.Validate: alphanumerics joined by single ".", "_" or "-",
// at most 76 characters).
func isContainerdName(s string) bool {
	if s == "" || len(s) > 76 {
		return false
	}
	sep := true // no separator first, none twice, none last
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			sep = false
		case c == '.' || c == '_' || c == '-':
			if sep {
				return false
			}
			sep = true
		default:
			return false
		}
	}
	return !sep
}

// isContainerID says s is a container ID as containerd, CRI-O, Docker and
// Podman make them: 64 lowercase hex digits.
func isContainerID(s string) bool { return len(s) == 64 && isHex(s) }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
