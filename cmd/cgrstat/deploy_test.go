package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// manifestDir holds the Kubernetes manifests (README.md, "Kubernetes").
const manifestDir = "../../deploy/kubernetes"

// decodeStrict decodes one YAML document with the Kubernetes API types of
// its apiVersion and kind, strictly: an unknown or duplicated field, a
// value of the wrong type or an unknown kind is an error, as it is for
// kubectl apply's server-side field validation.
func decodeStrict(doc []byte) (runtime.Object, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	s := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
	obj, _, err := s.Decode(doc, nil, nil)
	return obj, err
}

// manifests decodes every document of every file in manifestDir.
func manifests(t *testing.T) map[string]runtime.Object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", manifestDir, err)
	}
	objs := map[string]runtime.Object{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(b), "\n---\n") {
			obj, err := decodeStrict([]byte(doc))
			if err != nil {
				t.Fatalf("%s, document %d: %v", f, i+1, err)
			}
			kind := obj.GetObjectKind().GroupVersionKind().Kind
			if _, dup := objs[kind]; dup {
				t.Fatalf("%s: a second %s", f, kind)
			}
			objs[kind] = obj
		}
	}
	return objs
}

// daemonSet is the manifests' DaemonSet and its one container.
func daemonSet(t *testing.T) (*appsv1.DaemonSet, corev1.Container) {
	t.Helper()
	ds, ok := manifests(t)["DaemonSet"].(*appsv1.DaemonSet)
	if !ok || len(ds.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("no DaemonSet with one container in " + manifestDir)
	}
	return ds, ds.Spec.Template.Spec.Containers[0]
}

// TestManifests: every manifest decodes strictly, and together they make
// what the README promises: serve with CAP_BPF and CAP_PERFMON only, not
// privileged, with bpffs and the cgroup file system of the
// host, memory bounds from the measurements, a readiness probe, and a
// Service and pod annotations that point at the port serve listens on.
func TestManifests(t *testing.T) {
	objs := manifests(t)
	for _, kind := range []string{"Namespace", "ServiceAccount", "DaemonSet", "Service"} {
		if objs[kind] == nil {
			t.Errorf("no %s in %s", kind, manifestDir)
		}
	}
	ns := objs["Namespace"].(*corev1.Namespace)
	sa := objs["ServiceAccount"].(*corev1.ServiceAccount)
	svc := objs["Service"].(*corev1.Service)
	ds, c := daemonSet(t)
	pod := ds.Spec.Template.Spec
	for _, m := range []string{sa.Namespace, svc.Namespace, ds.Namespace} {
		if m != ns.Name {
			t.Errorf("namespace %q, want %q", m, ns.Name)
		}
	}
	if pod.ServiceAccountName != sa.Name {
		t.Errorf("the pods run as %q, the ServiceAccount is %q", pod.ServiceAccountName, sa.Name)
	}
	labels := ds.Spec.Template.Labels
	for k, v := range ds.Spec.Selector.MatchLabels {
		if labels[k] != v {
			t.Errorf("DaemonSet selector %s=%s does not select its pods (%v)", k, v, labels)
		}
	}
	for k, v := range svc.Spec.Selector {
		if labels[k] != v {
			t.Errorf("Service selector %s=%s does not select the pods (%v)", k, v, labels)
		}
	}

	// The arguments are serve's: the real command parses them.
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("container args %q do not run serve", c.Args)
	}
	serveCmd, _, err := newRootCmd().Find(c.Args)
	if err != nil || serveCmd.Name() != "serve" {
		t.Fatalf("finding serve in %q: %v", c.Args, err)
	}
	if err := serveCmd.ParseFlags(c.Args[1:]); err != nil {
		t.Errorf("serve does not take the DaemonSet's args %q: %v", c.Args, err)
	}
	listen, _ := serveCmd.Flags().GetStringSlice("web.listen-address")
	if len(c.Ports) != 1 || len(listen) != 1 || !strings.HasSuffix(listen[0], ":"+itoa(c.Ports[0].ContainerPort)) {
		t.Errorf("serve listens on %v, the container port is %+v", listen, c.Ports)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.StrVal != c.Ports[0].Name || svc.Spec.Ports[0].Port != c.Ports[0].ContainerPort {
		t.Errorf("Service ports %+v do not reach the container's %+v", svc.Spec.Ports, c.Ports)
	}
	if a := ds.Spec.Template.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != itoa(c.Ports[0].ContainerPort) {
		t.Errorf("pod annotations %v do not point Prometheus at port %d", a, c.Ports[0].ContainerPort)
	}

	// Least privilege.
	sc, psc := c.SecurityContext, pod.SecurityContext
	if sc == nil || psc == nil || sc.Capabilities == nil {
		t.Fatal("no security context")
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"BPF", "PERFMON"}) {
		t.Errorf("capabilities drop %v add %v, want drop [ALL] add [BPF PERFMON]", sc.Capabilities.Drop, sc.Capabilities.Add)
	}
	if sc.Privileged == nil || *sc.Privileged || pod.HostPID || pod.HostNetwork || pod.HostIPC {
		t.Error("the pod is privileged or shares a host namespace")
	}
	// Root, for bpffs's mode 0700, without privilege escalation.
	if psc.RunAsUser == nil || psc.RunAsGroup == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("want a user and group, no privilege escalation and a read-only root file system")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("a service account token is mounted; cgrstat never talks to the API")
	}

	mounts := podMounts(t, ds)
	want := []hostMount{
		{"/sys/fs/bpf", "/sys/fs/bpf", false},
		{"/sys/fs/cgroup", "/host/sys/fs/cgroup", true},
		{"", "/run/cgrstat", false},
	}
	if !slices.Equal(mounts, want) {
		t.Errorf("mounts %+v, want %+v", mounts, want)
	}

	// Memory from the measurements (BENCHMARKS.md): the limit above
	// serve's peak RSS at 10,000 cgroups (68.1 MiB) plus its maps.
	req, lim := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory]
	if req.IsZero() || lim.Cmp(resource.MustParse("80Mi")) < 0 || req.Cmp(lim) > 0 {
		t.Errorf("memory request %s, limit %s", req.String(), lim.String())
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/" || p.HTTPGet.Port.StrVal != c.Ports[0].Name {
		t.Errorf("readiness probe %+v, want GET / on the metrics port (serve's landing page)", p)
	}
}

// TestManifestTypo: a misspelt field, a duplicated one and a wrong type are
// errors, not silently dropped.
func TestManifestTypo(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(manifestDir, "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeStrict(b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ old, new, want string }{
		{"readinessProbe:", "readynessProbe:", `unknown field "spec.template.spec.containers[0].readynessProbe"`},
		{"readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", `unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem"`},
		{"      serviceAccountName: cgrstat\n", "      serviceAccountName: cgrstat\n      serviceAccountName: other\n", `key "serviceAccountName" already set`},
		{"runAsUser: 0", "runAsUser: root", "cannot unmarshal"},
	} {
		typo := strings.Replace(string(b), tc.old, tc.new, 1)
		if typo == string(b) {
			t.Fatalf("daemonset.yaml has no %q", tc.old)
		}
		_, err := decodeStrict([]byte(typo))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q for %q: error %v, want one with %s", tc.new, tc.old, err, tc.want)
		} else {
			t.Logf("%q: %v", strings.TrimSpace(tc.new), err)
		}
	}
}

// hostMount is a volume mount: the host path ("" for an emptyDir), where
// the container sees it, and whether read-only.
type hostMount struct {
	host, path string
	readOnly   bool
}

func podMounts(t *testing.T, ds *appsv1.DaemonSet) []hostMount {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	var ms []hostMount
	for _, m := range ds.Spec.Template.Spec.Containers[0].VolumeMounts {
		v, ok := vols[m.Name]
		switch {
		case !ok:
			t.Fatalf("volume mount %s has no volume", m.Name)
		case v.HostPath != nil:
			ms = append(ms, hostMount{v.HostPath.Path, m.MountPath, m.ReadOnly})
		case v.EmptyDir != nil:
			ms = append(ms, hostMount{"", m.MountPath, m.ReadOnly})
		default:
			t.Fatalf("volume %s: neither hostPath nor emptyDir", m.Name)
		}
	}
	return ms
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
