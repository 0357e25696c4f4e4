package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The deployment files cannot be run here (no container engine, no
// Kubernetes, no systemd as PID 1), so these tests check what can be:
// each file says what it must, every ORDERSTATE_* variable it sets is one
// serve reads and its value is one serve takes, and the systemd unit
// passes systemd-analyze.

// serveVariables checks a set of ORDERSTATE_* variables the way serve
// reads them: each must be one of its flags' variables, and the values
// given must parse.
func serveVariables(t *testing.T, where string, vars map[string]string) {
	t.Helper()
	var f serveFlags
	fs := newFlagSet("serve", "serve", io.Discard)
	f.register(fs)
	known := map[string]bool{}
	fs.VisitAll(func(fl *flag.Flag) { known[envName(fl.Name)] = true })
	for name := range vars {
		require.True(t, known[name], "%s sets %s, which serve does not read", where, name)
	}
	require.NoError(t, parse(fs, nil, func(k string) string { return vars[k] }), "%s: serve refuses its settings", where)
}

// port is the port of a listening address.
func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err, addr)
	return p
}

func TestDeploy_Dockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	var stages [][]string // each stage's instructions, continuation lines joined
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
		if strings.HasSuffix(line, "\\") {
			continue
		}
		ins := strings.TrimSpace(cur.String())
		cur.Reset()
		if strings.HasPrefix(ins, "FROM ") {
			stages = append(stages, nil)
		}
		require.NotEmpty(t, stages, "an instruction before FROM: %s", ins)
		stages[len(stages)-1] = append(stages[len(stages)-1], ins)
	}
	require.GreaterOrEqual(t, len(stages), 2, "multi-stage: a build stage and a small final one")
	build, final := stages[0], stages[len(stages)-1]
	require.Regexp(t, `^FROM golang:1\.\d+\S* AS build$`, build[0])
	require.NotContains(t, final[0], "golang", "the final image holds the binary, not the toolchain")

	find := func(stage []string, word string) []string {
		var out []string
		for _, ins := range stage {
			if rest, ok := strings.CutPrefix(ins, word+" "); ok {
				out = append(out, rest)
			}
		}
		return out
	}
	runs := strings.Join(find(build, "RUN"), "\n")
	require.Regexp(t, `CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=\$\{VERSION\}" -o /out/orderstate \./cmd/orderstate`, runs,
		"static, stripped, versioned: as binary() in these tests builds it (which leaves -trimpath out, to share the reliability tests' compiled packages)")
	require.Contains(t, find(final, "COPY"), "--from=build /out/orderstate /orderstate")

	users := find(final, "USER")
	require.Len(t, users, 1)
	require.NotContains(t, []string{"root", "0", "0:0", "root:root"}, users[0], "non-root")
	uid, err := strconv.Atoi(strings.Split(users[0], ":")[0])
	require.NoError(t, err, "a numeric user, which Kubernetes' runAsNonRoot can check")
	require.Positive(t, uid)

	env := map[string]string{}
	for _, e := range find(final, "ENV") {
		for _, kv := range strings.Fields(e) {
			k, v, ok := strings.Cut(kv, "=")
			require.True(t, ok, "ENV %s: write it KEY=value", kv)
			env[k] = v
		}
	}
	serveVariables(t, "Dockerfile", env)
	require.Equal(t, []string{port(t, env["ORDERSTATE_ADDR"])}, find(final, "EXPOSE"))
	vol := find(final, "VOLUME")
	require.Len(t, vol, 1)
	require.Contains(t, vol[0], `"`+filepath.Dir(env["ORDERSTATE_DB"])+`"`, "the store on the volume")
	require.True(t, strings.HasPrefix(env["ORDERSTATE_REPORTS_DIR"], filepath.Dir(env["ORDERSTATE_DB"])+"/"), "the reports too")
	require.Contains(t, find(final, "COPY"), "--from=build --chown="+users[0]+" /out/data "+filepath.Dir(env["ORDERSTATE_DB"]),
		"the volume's first contents are the user's, so a new volume is writable by it")

	hc := find(final, "HEALTHCHECK")
	require.Len(t, hc, 1)
	require.Regexp(t, `CMD \["/orderstate", "healthcheck"\]$`, hc[0], "no curl in the image: the binary checks itself")
	require.Equal(t, []string{`["/orderstate"]`}, find(final, "ENTRYPOINT"))
	require.Equal(t, []string{`["serve"]`}, find(final, "CMD"))

	ignore, err := os.ReadFile("../../.dockerignore")
	require.NoError(t, err)
	for _, p := range []string{".git", "*.db", "bin"} {
		require.Contains(t, strings.Fields(string(ignore)), p, ".dockerignore keeps %s out of the build context", p)
	}
}

// k8s is one Kubernetes object, as far as the checks read it.
type k8s struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				TerminationGracePeriodSeconds int         `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container `yaml:"containers"`
				Volumes                       []struct {
					Name string `yaml:"name"`
					PVC  *struct {
						ClaimName string `yaml:"claimName"`
					} `yaml:"persistentVolumeClaim"`
					EmptyDir any `yaml:"emptyDir"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// Service
		ServiceSelector map[string]string `yaml:"-"`
		Ports           []struct {
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
		// PersistentVolumeClaim
		AccessModes []string `yaml:"accessModes"`
	} `yaml:"spec"`
	raw map[string]any
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	ReadinessProbe probe `yaml:"readinessProbe"`
	LivenessProbe  probe `yaml:"livenessProbe"`
	Security       struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

func manifests(t *testing.T, path string) []k8s {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []k8s
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "%s is not YAML", path)
		var o k8s
		require.NoError(t, node.Decode(&o), path)
		require.NoError(t, node.Decode(&o.raw), path)
		if spec, ok := o.raw["spec"].(map[string]any); ok && o.Kind == "Service" {
			if sel, ok := spec["selector"].(map[string]any); ok {
				o.Spec.ServiceSelector = map[string]string{}
				for k, v := range sel {
					o.Spec.ServiceSelector[k] = v.(string)
				}
			}
		}
		require.NotEmpty(t, o.APIVersion, "%s: an object without apiVersion", path)
		require.NotEmpty(t, o.Kind, "%s: an object without kind", path)
		require.NotEmpty(t, o.Metadata.Name, "%s: a %s without a name", path, o.Kind)
		out = append(out, o)
	}
	return out
}

// checkDeployment checks the orderstate sidecar of a Deployment and
// returns its container and its env's literal values.
func checkDeployment(t *testing.T, path string, objs []k8s) (k8s, container, map[string]string) {
	t.Helper()
	var d *k8s
	for i := range objs {
		if objs[i].Kind == "Deployment" {
			require.Nil(t, d, "%s: one Deployment", path)
			d = &objs[i]
		}
	}
	require.NotNil(t, d, "%s: a Deployment", path)
	require.Equal(t, "apps/v1", d.APIVersion)
	require.NotEmpty(t, d.Spec.Selector.MatchLabels)
	for k, v := range d.Spec.Selector.MatchLabels {
		require.Equal(t, v, d.Spec.Template.Metadata.Labels[k], "%s: the selector matches the pods", path)
	}
	pod := d.Spec.Template.Spec
	require.NotNil(t, pod.SecurityContext.RunAsNonRoot)
	require.True(t, *pod.SecurityContext.RunAsNonRoot)
	require.GreaterOrEqual(t, pod.TerminationGracePeriodSeconds, 25, "%s: time for SIGTERM's 20s drain", path)
	var c *container
	for i := range pod.Containers {
		require.NotEmpty(t, pod.Containers[i].Image)
		if pod.Containers[i].Name == "orderstate" {
			c = &pod.Containers[i]
		}
	}
	require.NotNil(t, c, "%s: a container named orderstate", path)
	require.Len(t, pod.Containers, 2, "%s: the sidecar beside the shop", path)
	require.Equal(t, []string{"serve"}, c.Args)
	env := map[string]string{}
	secrets := map[string]bool{}
	for _, e := range c.Env {
		require.True(t, strings.HasPrefix(e.Name, "ORDERSTATE_"), e.Name)
		if e.ValueFrom != nil {
			require.NotNil(t, e.ValueFrom.SecretKeyRef, "%s: %s", path, e.Name)
			require.NotEmpty(t, e.ValueFrom.SecretKeyRef.Name)
			require.NotEmpty(t, e.ValueFrom.SecretKeyRef.Key)
			secrets[e.Name] = true
			continue
		}
		env[e.Name] = e.Value
	}
	for name := range secrets {
		env[name] = "set-from-a-secret"
	}
	serveVariables(t, path, env)
	delete(env, "ORDERSTATE_YOCO_SECRET") // a placeholder is not a whsec_ secret
	for _, s := range []string{"ORDERSTATE_TOKEN", "ORDERSTATE_TAZAPAY_SECRET", "ORDERSTATE_YOCO_SECRET", "ORDERSTATE_TOKENZ_SECRET", "ORDERSTATE_TWEED_SECRET"} {
		require.True(t, secrets[s], "%s: %s comes from a Secret, never a literal", path, s)
	}
	require.Len(t, c.Ports, 1)
	require.Equal(t, strconv.Itoa(c.Ports[0].ContainerPort), port(t, env["ORDERSTATE_ADDR"]), "%s: the port serve listens on", path)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	for _, p := range []probe{c.ReadinessProbe, c.LivenessProbe} {
		require.Equal(t, c.Ports[0].Name, p.HTTPGet.Port)
	}
	for name, v := range map[string]*bool{"runAsNonRoot": c.Security.RunAsNonRoot, "readOnlyRootFilesystem": c.Security.ReadOnlyRootFilesystem} {
		require.NotNil(t, v, "%s: %s", path, name)
		require.True(t, *v, "%s: %s", path, name)
	}
	require.NotNil(t, c.Security.AllowPrivilegeEscalation)
	require.False(t, *c.Security.AllowPrivilegeEscalation)
	// With a read-only root, whatever serve writes must be on a volume.
	mounted := func(p string) string {
		for _, m := range c.VolumeMounts {
			if p == m.MountPath || strings.HasPrefix(p, m.MountPath+"/") {
				return m.Name
			}
		}
		return ""
	}
	require.NotEmpty(t, mounted(env["ORDERSTATE_REPORTS_DIR"]), "%s: the reports directory is on a volume", path)
	for _, o := range objs {
		if o.Kind != "Service" {
			continue
		}
		require.NotEmpty(t, o.Spec.ServiceSelector)
		for k, v := range o.Spec.ServiceSelector {
			require.Equal(t, v, d.Spec.Template.Metadata.Labels[k], "%s: the Service selects the pods", path)
		}
		for _, p := range o.Spec.Ports {
			require.Equal(t, c.Ports[0].Name, p.TargetPort, "%s: the Service reaches orderstate's port", path)
		}
	}
	volumes := map[string]string{}
	for _, v := range pod.Volumes {
		switch {
		case v.PVC != nil:
			volumes[v.Name] = "pvc:" + v.PVC.ClaimName
		case v.EmptyDir != nil:
			volumes[v.Name] = "emptyDir"
		}
	}
	for _, m := range c.VolumeMounts {
		require.NotEmpty(t, volumes[m.Name], "%s: mount %s of a volume the pod has", path, m.Name)
	}
	env["volume of the store"] = volumes[mounted(env["ORDERSTATE_DB"])]
	return *d, *c, env
}

func TestDeploy_KubernetesSidecarOnSQLite(t *testing.T) {
	t.Parallel()
	const path = "../../deploy/kubernetes/sidecar-sqlite.yaml"
	objs := manifests(t, path)
	d, _, env := checkDeployment(t, path, objs)
	require.NotNil(t, d.Spec.Replicas)
	require.Equal(t, 1, *d.Spec.Replicas, "one process writes a SQLite file")
	require.Equal(t, "Recreate", d.Spec.Strategy.Type, "a rolling update would run two pods on the file")
	require.True(t, filepath.IsAbs(env["ORDERSTATE_DB"]), "a file: %s", env["ORDERSTATE_DB"])
	claim, ok := strings.CutPrefix(env["volume of the store"], "pvc:")
	require.True(t, ok, "the store is on a persistent volume, not %q", env["volume of the store"])
	var pvc *k8s
	for i := range objs {
		if objs[i].Kind == "PersistentVolumeClaim" && objs[i].Metadata.Name == claim {
			pvc = &objs[i]
		}
	}
	require.NotNil(t, pvc, "the claim %s is in the file", claim)
	require.Equal(t, []string{"ReadWriteOnce"}, pvc.Spec.AccessModes)
}

func TestDeploy_KubernetesReplicasOnPostgres(t *testing.T) {
	t.Parallel()
	const path = "../../deploy/kubernetes/postgres-replicas.yaml"
	objs := manifests(t, path)
	d, c, env := checkDeployment(t, path, objs)
	require.NotNil(t, d.Spec.Replicas)
	require.GreaterOrEqual(t, *d.Spec.Replicas, 2, "several replicas share the database")
	var fromSecret bool
	for _, e := range c.Env {
		fromSecret = fromSecret || e.Name == "ORDERSTATE_DB" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
	}
	require.True(t, fromSecret, "the postgres:// URL, password and all, comes from a Secret")
	require.Empty(t, env["volume of the store"], "no volume for the store")
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.Kind] = true
	}
	require.True(t, kinds["PodDisruptionBudget"] && kinds["Service"], "%v", kinds)
}

// unitKeys reads a systemd unit's [Service] section; a key set more than
// once keeps every value.
func unitKeys(t *testing.T, b []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, line)
			out[k] = append(out[k], v)
		}
	}
	return out
}

func TestDeploy_SystemdUnit(t *testing.T) {
	t.Parallel()
	const path = "../../deploy/systemd/orderstate.service"
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	keys := unitKeys(t, b)
	for k, want := range map[string]string{"DynamicUser": "yes", "ProtectSystem": "strict", "StateDirectory": "orderstate",
		"NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectHome": "yes", "CapabilityBoundingSet": "", "Type": "exec",
		"ExecStart": "/usr/local/bin/orderstate serve", "MemoryDenyWriteExecute": "yes", "RestrictSUIDSGID": "yes"} {
		require.Equal(t, []string{want}, keys[k], "%s=", k)
	}
	env := map[string]string{}
	for _, e := range keys["Environment"] {
		k, v, ok := strings.Cut(e, "=")
		require.True(t, ok, e)
		env[k] = v
	}
	serveVariables(t, path, env)
	state := "/var/lib/" + keys["StateDirectory"][0] + "/"
	require.True(t, strings.HasPrefix(env["ORDERSTATE_DB"], state), "the store in the state directory, the one place the unit may write")
	require.True(t, strings.HasPrefix(env["ORDERSTATE_REPORTS_DIR"], state))
	stop, err := time.ParseDuration(keys["TimeoutStopSec"][0])
	require.NoError(t, err)
	require.Greater(t, stop, 20*time.Second, "longer than --shutdown-timeout's drain")

	envFile, err := os.ReadFile("../../deploy/systemd/orderstate.env")
	require.NoError(t, err)
	vars := map[string]string{}
	for _, line := range strings.Split(string(envFile), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "# "))
		if k, v, ok := strings.Cut(line, "="); ok && regexp.MustCompile(`^ORDERSTATE_[A-Z_]+$`).MatchString(k) {
			if !strings.Contains(v, "...") {
				vars[k] = v
			}
		}
	}
	require.Contains(t, vars, "ORDERSTATE_TOKEN")
	serveVariables(t, "orderstate.env", vars)

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil && os.Getenv("CI") == "" {
		t.Skip("systemd-analyze is not installed (apt-get install systemd; .ci/run does): the unit was not verified")
	}
	require.NoError(t, err, "CI verifies the unit: .ci/run installs systemd")
	// verify checks that ExecStart's binary exists: point it at the one
	// the tests built.
	dir := t.TempDir()
	unit := filepath.Join(dir, "orderstate.service")
	require.NoError(t, os.WriteFile(unit, bytes.ReplaceAll(b, []byte("/usr/local/bin/orderstate"), []byte(binary(t))), 0o644))
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify: %s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify warns: an unknown key or a value it ignores")

	out, err = exec.Command(analyze, "security", "--offline=true", unit).CombinedOutput()
	require.NoError(t, err, "systemd-analyze security: %s", out)
	m := regexp.MustCompile(`Overall exposure level for orderstate\.service: (\d+\.\d+)`).FindSubmatch(out)
	require.NotNil(t, m, "%s", out)
	exposure, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	require.LessOrEqual(t, exposure, 2.0, "systemd-analyze security rates the unit's exposure %.1f (0 is the least, 10 the most)", exposure)
	t.Logf("systemd-analyze verify: clean; security exposure %.1f", exposure)
}
