package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Tests of kubernetes/: every manifest decoded strictly into its Kubernetes API type.

// manifests are the decoded objects of deploy/kubernetes.
type manifests struct {
	deployments []appsv1.Deployment
	configMaps  map[string]corev1.ConfigMap
	secrets     map[string]corev1.Secret
	services    []corev1.Service
	jobs        []batchv1.Job
	pdbs        []policyv1.PodDisruptionBudget
	files       []string
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeManifest decodes one YAML document into the API type of its kind, refusing
// unknown and duplicate fields.
func decodeManifest(doc []byte, m *manifests) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	want := map[string]string{
		"Deployment": "apps/v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
		"Job": "batch/v1", "PodDisruptionBudget": "policy/v1",
	}[tm.Kind]
	if want == "" {
		return fmt.Errorf("kind %q is not one the test knows", tm.Kind)
	}
	if tm.APIVersion != want {
		return fmt.Errorf("%s has apiVersion %q, want %q", tm.Kind, tm.APIVersion, want)
	}
	var name string
	var err error
	switch tm.Kind {
	case "Deployment":
		var o appsv1.Deployment
		err, name = yaml.UnmarshalStrict(doc, &o), o.Name
		m.deployments = append(m.deployments, o)
	case "ConfigMap":
		var o corev1.ConfigMap
		err, name = yaml.UnmarshalStrict(doc, &o), o.Name
		m.configMaps[o.Name] = o
	case "Secret":
		var o corev1.Secret
		err, name = yaml.UnmarshalStrict(doc, &o), o.Name
		m.secrets[o.Name] = o
	case "Service":
		var o corev1.Service
		err, name = yaml.UnmarshalStrict(doc, &o), o.Name
		m.services = append(m.services, o)
	case "Job":
		var o batchv1.Job
		err, name = yaml.UnmarshalStrict(doc, &o), o.Name
		m.jobs = append(m.jobs, o)
	case "PodDisruptionBudget":
		var o policyv1.PodDisruptionBudget
		err, name = yaml.UnmarshalStrict(doc, &o), o.Name
		m.pdbs = append(m.pdbs, o)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if name == "" {
		return fmt.Errorf("%s without metadata.name", tm.Kind)
	}
	return nil
}

func TestDecodeManifestIsStrict(t *testing.T) {
	m := &manifests{configMaps: map[string]corev1.ConfigMap{}, secrets: map[string]corev1.Secret{}}
	for doc, why := range map[string]string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n":        "unknown field",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {A: b}\ndata: {C: d}\n":      "duplicate field",
		"apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: x}\n":                       "old apiVersion",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n":                                        "unexpected kind",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: \"http\"}]}\n": "wrong type",
	} {
		if err := decodeManifest([]byte(doc), m); err == nil {
			t.Errorf("%s: decoded without error:\n%s", why, doc)
		}
	}
}

func loadManifests(t testing.TB) *manifests {
	t.Helper()
	m := &manifests{configMaps: map[string]corev1.ConfigMap{}, secrets: map[string]corev1.Secret{}}
	files, err := filepath.Glob(filepath.Join(kubernetesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		m.files = append(m.files, filepath.Base(f))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range docSeparator.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			if err := decodeManifest([]byte(doc), m); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// relayDeployment returns the one Deployment and its relay container.
func relayDeployment(t testing.TB, m *manifests) (appsv1.Deployment, corev1.Container) {
	t.Helper()
	if len(m.deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(m.deployments))
	}
	d := m.deployments[0]
	for _, c := range d.Spec.Template.Spec.Containers {
		if slices.Equal(c.Args, []string{"run"}) {
			return d, c
		}
	}
	t.Fatalf("Deployment %s has no container with args [run]", d.Name)
	return d, corev1.Container{}
}

// containerEnv resolves the environment of container c as the kubelet would: envFrom
// ConfigMaps and Secrets, then env (literal values, secretKeyRef, configMapKeyRef;
// resourceFieldRef as a placeholder number). It fails on a reference to a missing
// object or key.
func containerEnv(t testing.TB, m *manifests, c corev1.Container) map[string]string {
	t.Helper()
	e := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := m.configMaps[from.ConfigMapRef.Name]
			if !ok {
				t.Fatalf("container %s: envFrom ConfigMap %q is not in the manifests", c.Name, from.ConfigMapRef.Name)
			}
			for k, v := range cm.Data {
				e[from.Prefix+k] = v
			}
		case from.SecretRef != nil:
			s, ok := m.secrets[from.SecretRef.Name]
			if !ok {
				t.Fatalf("container %s: envFrom Secret %q is not in the manifests", c.Name, from.SecretRef.Name)
			}
			for k, v := range secretData(s) {
				e[from.Prefix+k] = v
			}
		}
	}
	for _, v := range c.Env {
		switch {
		case v.ValueFrom == nil:
			e[v.Name] = v.Value
		case v.ValueFrom.SecretKeyRef != nil:
			ref := v.ValueFrom.SecretKeyRef
			val, ok := secretData(m.secrets[ref.Name])[ref.Key]
			if !ok {
				t.Fatalf("container %s: %s refers to Secret %s key %s, which does not exist", c.Name, v.Name, ref.Name, ref.Key)
			}
			e[v.Name] = val
		case v.ValueFrom.ConfigMapKeyRef != nil:
			ref := v.ValueFrom.ConfigMapKeyRef
			val, ok := m.configMaps[ref.Name].Data[ref.Key]
			if !ok {
				t.Fatalf("container %s: %s refers to ConfigMap %s key %s, which does not exist", c.Name, v.Name, ref.Name, ref.Key)
			}
			e[v.Name] = val
		case v.ValueFrom.ResourceFieldRef != nil:
			e[v.Name] = "536870912"
		default:
			e[v.Name] = "x"
		}
	}
	return e
}

func secretData(s corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

// portNumber resolves a probe's or Service's port (a number or a container port's
// name) against c.
func portNumber(t testing.TB, c corev1.Container, p intstr.IntOrString) int {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	t.Fatalf("port %q is no port of container %s", p.StrVal, c.Name)
	return 0
}

func TestKubernetesKustomization(t *testing.T) {
	m := loadManifests(t)
	var k kustomization
	readStrict(t, filepath.Join(kubernetesDir, "kustomization.yaml"), &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s", k.APIVersion, k.Kind)
	}
	res := slices.Clone(k.Resources)
	sort.Strings(res)
	if !slices.Equal(res, m.files) {
		t.Errorf("kustomization resources %v, want every manifest of the directory %v", res, m.files)
	}
	d, _ := relayDeployment(t, m)
	podSpec := d.Spec.Template.Spec
	for _, c := range append(slices.Clone(podSpec.InitContainers), podSpec.Containers...) {
		name, tag, _ := strings.Cut(c.Image, ":")
		if tag == "" || tag == "latest" {
			t.Errorf("container %s: image %q, pin a tag", c.Name, c.Image)
		}
		found := false
		for _, img := range k.Images {
			if img.Name == name {
				found = true
				if img.NewTag == "" || img.NewTag == "latest" {
					t.Errorf("kustomization image %s: newTag %q, pin a tag", img.Name, img.NewTag)
				}
			}
		}
		if !found {
			t.Errorf("container %s: image %s has no entry under the kustomization's images (to set registry and tag)", c.Name, name)
		}
	}
}

func TestKubernetesRelay(t *testing.T) {
	m := loadManifests(t)
	vars := relayVars(t)
	d, c := relayDeployment(t, m)
	spec := d.Spec.Template.Spec

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2 (one forwards, one stands by)", d.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("selector %v: %v", d.Spec.Selector, err)
	}

	// Settings and credentials: every name is a variable of the relay.
	for name, cm := range m.configMaps {
		for k := range cm.Data {
			if _, ok := vars[k]; !ok {
				t.Errorf("ConfigMap %s sets %s, which the relay does not read (relay help env)", name, k)
			}
		}
	}
	for name, s := range m.secrets {
		for k := range secretData(s) {
			if _, ok := vars[k]; !ok {
				t.Errorf("Secret %s holds %s, which the relay does not read", name, k)
			}
		}
	}
	e := containerEnv(t, m, c)
	for k := range e {
		if _, ok := vars[k]; !ok && !goRuntimeVars[k] {
			t.Errorf("container %s sets %s, which the relay does not read", c.Name, k)
		}
	}
	for _, must := range []string{"RELAY_DATABASE_URL", "RELAY_KAFKA_BROKERS", "RELAY_HTTP_ADDR"} {
		if e[must] == "" {
			t.Errorf("container %s: %s is not set", c.Name, must)
		}
	}
	for _, secret := range []string{"RELAY_DATABASE_URL", "RELAY_KAFKA_SASL_PASSWORD"} {
		fromSecret := false
		for _, v := range c.Env {
			fromSecret = fromSecret || (v.Name == secret && v.ValueFrom != nil && v.ValueFrom.SecretKeyRef != nil)
		}
		for _, cm := range m.configMaps {
			if _, ok := cm.Data[secret]; ok {
				t.Errorf("%s is in a ConfigMap: credentials belong in the Secret", secret)
			}
		}
		if !fromSecret {
			t.Errorf("container %s does not take %s from the Secret", c.Name, secret)
		}
	}

	// Probes and the Service point at the port RELAY_HTTP_ADDR listens on.
	port := addrPort(t, "RELAY_HTTP_ADDR (ConfigMap)", e["RELAY_HTTP_ADDR"])
	for what, pr := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{
		"livenessProbe":  {c.LivenessProbe, "/healthz"},
		"readinessProbe": {c.ReadinessProbe, "/readyz"},
		"startupProbe":   {c.StartupProbe, "/healthz"},
	} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe of %s", what, pr.path)
			continue
		}
		if pr.probe.HTTPGet.Path != pr.path {
			t.Errorf("%s probes %s, want %s", what, pr.probe.HTTPGet.Path, pr.path)
		}
		if got := portNumber(t, c, pr.probe.HTTPGet.Port); got != port {
			t.Errorf("%s probes port %d, but RELAY_HTTP_ADDR listens on %d", what, got, port)
		}
		if pr.probe.HTTPGet.Port.Type != intstr.String || pr.probe.HTTPGet.Port.StrVal != "http" {
			t.Errorf("%s: probe the named port http, not %s", what, pr.probe.HTTPGet.Port.String())
		}
	}
	if c.StartupProbe != nil {
		budget := time.Duration(c.StartupProbe.PeriodSeconds*c.StartupProbe.FailureThreshold) * time.Second
		if connect := durationVar(t, e, vars, "RELAY_CONNECT_TIMEOUT"); budget <= connect {
			t.Errorf("startupProbe allows %v, not more than RELAY_CONNECT_TIMEOUT %v: the kubelet would kill a relay still connecting", budget, connect)
		}
	}
	if len(m.services) != 1 {
		t.Fatalf("%d Services, want 1", len(m.services))
	}
	svc := m.services[0]
	if !labelsMatch(svc.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("Service %s selects %v, not the relay pods %v", svc.Name, svc.Spec.Selector, d.Spec.Template.Labels)
	}
	if len(svc.Spec.Ports) != 1 || portNumber(t, c, svc.Spec.Ports[0].TargetPort) != port {
		t.Errorf("Service %s ports %+v: want one targeting %d", svc.Name, svc.Spec.Ports, port)
	}
	a := svc.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" || a["prometheus.io/port"] != strconv.Itoa(port) {
		t.Errorf("Service %s annotations %v: want prometheus.io scrape true, path /metrics, port %d", svc.Name, a, port)
	}

	// Shutdown, security, resources.
	shutdown := durationVar(t, e, vars, "RELAY_SHUTDOWN_TIMEOUT")
	if g := spec.TerminationGracePeriodSeconds; g == nil {
		t.Errorf("terminationGracePeriodSeconds is not set; the default 30s must be above RELAY_SHUTDOWN_TIMEOUT %v explicitly", shutdown)
	} else if time.Duration(*g)*time.Second <= shutdown {
		t.Errorf("terminationGracePeriodSeconds %d is not above RELAY_SHUTDOWN_TIMEOUT %v", *g, shutdown)
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("the pod does not set runAsNonRoot: true")
	}
	for _, ct := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := ct.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("container %s has no securityContext", ct.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("container %s: readOnlyRootFilesystem is not true", ct.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("container %s: allowPrivilegeEscalation is not false", ct.Name)
		case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
			t.Errorf("container %s does not drop ALL capabilities", ct.Name)
		}
		if ct.Resources.Requests.Memory().IsZero() || ct.Resources.Limits.Memory().IsZero() || ct.Resources.Requests.Cpu().IsZero() {
			t.Errorf("container %s: resources %+v, want cpu and memory requests and a memory limit", ct.Name, ct.Resources)
		}
	}

	// Migration: an init container (or a Job) runs relay migrate with the database.
	var migrate []corev1.Container
	for _, ct := range spec.InitContainers {
		if slices.Equal(ct.Args, []string{"migrate"}) {
			migrate = append(migrate, ct)
		}
	}
	for _, j := range m.jobs {
		for _, ct := range j.Spec.Template.Spec.Containers {
			if slices.Equal(ct.Args, []string{"migrate"}) {
				migrate = append(migrate, ct)
			}
		}
	}
	if len(migrate) != 1 {
		t.Fatalf("%d containers run relay migrate, want 1", len(migrate))
	}
	if migrate[0].Image != c.Image {
		t.Errorf("migrate runs %s, the relay %s: the schema must come from the same version", migrate[0].Image, c.Image)
	}
	me := containerEnv(t, m, migrate[0])
	if me["RELAY_DATABASE_URL"] == "" {
		t.Error("migrate has no RELAY_DATABASE_URL")
	}
	for k := range me {
		if _, ok := vars[k]; !ok && !goRuntimeVars[k] {
			t.Errorf("migrate sets %s, which the relay does not read", k)
		}
	}

	for _, pdb := range m.pdbs {
		s, err := metav1.LabelSelectorAsMap(pdb.Spec.Selector)
		if err != nil || !labelsMatch(s, d.Spec.Template.Labels) {
			t.Errorf("PodDisruptionBudget %s selects %v, not the relay pods", pdb.Name, pdb.Spec.Selector)
		}
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() >= int(*d.Spec.Replicas) {
			t.Errorf("PodDisruptionBudget %s: minAvailable %v would block every drain with %d replicas", pdb.Name, pdb.Spec.MinAvailable, *d.Spec.Replicas)
		}
	}
}

// The relay accepts the settings of both containers of the Deployment (ConfigMap,
// Secret and env together), as in TestComposeRelaySettingsAreValid.
func TestKubernetesRelaySettingsAreValid(t *testing.T) {
	m := loadManifests(t)
	d, _ := relayDeployment(t, m)
	spec := d.Spec.Template.Spec
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			requireValidSettings(t, containerEnv(t, m, c), append(slices.Clone(c.Command), c.Args...))
		})
	}
}

func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
