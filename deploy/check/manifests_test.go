package check

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/srdd/srdd/internal/testutil"
)

// serverFlags builds the binary and returns the flags `srdd server` has,
// so every recipe is checked against the real command line.
func serverFlags(t *testing.T) map[string]bool {
	t.Helper()
	flagsOnce.Do(func() { cachedFlags = readServerFlags(t) })
	if cachedFlags == nil {
		t.Fatal("cannot read srdd server's flags (see the first failure)")
	}
	return cachedFlags
}

var (
	flagsOnce   sync.Once
	cachedFlags map[string]bool
)

func readServerFlags(t *testing.T) map[string]bool {
	t.Helper()
	bin := srddBinary(t)
	out, err := exec.Command(bin, "server", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("srdd server --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["http-addr"] || !flags["advertise-raft"] || !flags["metrics-max-rdds"] {
		t.Fatalf("cannot read the flags from srdd server --help:\n%s", out)
	}
	return flags
}

var flagRe = regexp.MustCompile(`(?:^|[\s"'\[,=])--([a-z][a-z0-9-]*)`)

// checkFlags fails for every --flag in args that srdd server does not have.
func checkFlags(t *testing.T, where string, flags map[string]bool, args ...string) {
	t.Helper()
	for _, a := range args {
		for _, m := range flagRe.FindAllStringSubmatch(a, -1) {
			if !flags[m[1]] {
				t.Errorf("%s uses --%s, which srdd server does not have", where, m[1])
			}
		}
	}
}

func readFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{testutil.RepoRoot(t)}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs decodes every document of a YAML stream into generic maps.
func yamlDocs(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []map[string]any
	for {
		var doc map[any]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("yaml: %v", err)
		}
		out = append(out, normalize(doc).(map[string]any))
	}
}

func normalize(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := map[string]any{}
		for k, val := range x {
			m[k.(string)] = normalize(val)
		}
		return m
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	}
	return v
}

// get walks a path of map keys and list indexes ("spec.ports.0.name").
func get(v any, path string) any {
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i := 0
			for _, c := range p {
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, str(x))
	}
	return out
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels any) bool {
	s, _ := sel.(map[string]any)
	l, _ := labels.(map[string]any)
	if len(s) == 0 {
		return false
	}
	for k, v := range s {
		if l[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetesManifests(t *testing.T) {
	flags := serverFlags(t)
	docs := yamlDocs(t, readFile(t, "deploy", "kubernetes", "srdd.yaml"))
	byKind := map[string][]map[string]any{}
	for _, d := range docs {
		if str(d["apiVersion"]) == "" || str(get(d, "metadata.name")) == "" {
			t.Fatalf("document without apiVersion or name: %v", d)
		}
		byKind[str(d["kind"])] = append(byKind[str(d["kind"])], d)
	}
	// No Secret ships: the peer certificates' Secret is made by whoever
	// deploys (TestKubernetesPeerTLS).
	for kind, n := range map[string]int{"Service": 2, "StatefulSet": 1, "PodDisruptionBudget": 1, "ServiceMonitor": 1, "Secret": 0} {
		if len(byKind[kind]) != n {
			t.Fatalf("%d %s, want %d", len(byKind[kind]), kind, n)
		}
	}
	sts := byKind["StatefulSet"][0]
	podLabels := get(sts, "spec.template.metadata.labels")
	if !subset(get(sts, "spec.selector.matchLabels"), podLabels) {
		t.Error("StatefulSet selector does not match its pod labels")
	}
	if get(sts, "spec.replicas") != 3 || str(get(sts, "spec.podManagementPolicy")) != "Parallel" {
		t.Error("want 3 replicas started in parallel (srdd-0 bootstraps, the others join)")
	}
	var headless map[string]any
	for _, s := range byKind["Service"] {
		if !subset(get(s, "spec.selector"), podLabels) {
			t.Errorf("Service %s selects no srdd pod", get(s, "metadata.name"))
		}
		if str(get(s, "spec.clusterIP")) == "None" {
			headless = s
		}
	}
	if headless == nil || str(get(headless, "metadata.name")) != str(get(sts, "spec.serviceName")) {
		t.Fatal("the StatefulSet's serviceName must be a headless Service (stable DNS names for Raft)")
	}
	if get(headless, "spec.publishNotReadyAddresses") != true {
		t.Error("the headless Service must publish not-ready pods: peers resolve each other before a leader exists")
	}
	c := get(sts, "spec.template.spec.containers.0")
	ports := map[string]int{}
	for _, p := range get(c, "ports").([]any) {
		ports[str(get(p, "name"))] = get(p, "containerPort").(int)
	}
	if ports["http"] != 8998 || ports["raft"] != 8999 {
		t.Errorf("container ports %v", ports)
	}
	args := strs(get(c, "args"))
	all := strings.Join(append(strs(get(c, "command")), args...), "\n")
	checkFlags(t, "the StatefulSet", flags, append(strs(get(c, "command")), args...)...)
	svc := str(get(sts, "spec.serviceName"))
	// Pod 0 admits the other pods of the StatefulSet (a node joins only
	// once admitted; docs/ARCHITECTURE.md, "Peer trust").
	var others []string
	for i := 1; i < get(sts, "spec.replicas").(int); i++ {
		others = append(others, fmt.Sprintf("%s-%d", str(get(sts, "metadata.name")), i))
	}
	for _, want := range []string{"--advertise-raft=$(POD_NAME)." + svc + ".", "--advertise-http=$(POD_NAME)." + svc + ".",
		"--node-id=$(POD_NAME)", "--bootstrap --admit " + strings.Join(others, ","), "--join \"srdd-0." + svc + "."} {
		if !strings.Contains(all, want) {
			t.Errorf("the StatefulSet's command line lacks %q", want)
		}
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if str(get(c, probe+".httpGet.path")) != path || str(get(c, probe+".httpGet.port")) != "http" {
			t.Errorf("%s must GET %s on the http port", probe, path)
		}
	}
	if str(get(sts, "spec.volumeClaimTemplates.0.metadata.name")) != str(get(c, "volumeMounts.0.name")) ||
		str(get(c, "volumeMounts.0.mountPath")) != "/var/lib/srdd" {
		t.Error("the data volume claim must be mounted at /var/lib/srdd (the image's --data-dir)")
	}
	pdb := byKind["PodDisruptionBudget"][0]
	if !subset(get(pdb, "spec.selector.matchLabels"), podLabels) || get(pdb, "spec.maxUnavailable") != 1 {
		t.Error("the PodDisruptionBudget must select the pods and allow one disruption (keeps a quorum of 3)")
	}
	sm := byKind["ServiceMonitor"][0]
	matched := 0
	for _, s := range byKind["Service"] {
		if subset(get(sm, "spec.selector.matchLabels"), get(s, "metadata.labels")) {
			matched++
			if s["metadata"] == nil || str(get(s, "spec.clusterIP")) != "None" {
				t.Error("the ServiceMonitor must select the headless Service only")
			}
		}
	}
	if matched != 1 || str(get(sm, "spec.endpoints.0.port")) != "http" || str(get(sm, "spec.endpoints.0.path")) != "/metrics" {
		t.Errorf("the ServiceMonitor must scrape /metrics on port http of one Service (matched %d)", matched)
	}
}

func TestComposeFile(t *testing.T) {
	flags := serverFlags(t)
	docs := yamlDocs(t, readFile(t, "deploy", "docker-compose.yml"))
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	services, _ := docs[0]["services"].(map[string]any)
	for _, want := range []string{"srdd-1", "srdd-2", "srdd-3", "spark-master", "spark-worker", "prometheus", "grafana"} {
		if services[want] == nil {
			t.Fatalf("no service %s", want)
		}
	}
	// The three nodes: one bootstraps and admits the others, which join
	// it; each advertises its own hostname.
	bootstraps := 0
	ids := map[string]bool{}
	admitted := ""
	for _, name := range []string{"srdd-1", "srdd-2", "srdd-3"} {
		s := services[name]
		cmd := strs(get(s, "command"))
		checkFlags(t, "compose "+name, flags, cmd...)
		line := strings.Join(cmd, " ")
		if strings.Contains(line, "--bootstrap") {
			bootstraps++
			admitted = flagValue(cmd, "--admit")
		} else if !strings.Contains(line, "--join srdd-1:8998") {
			t.Errorf("%s neither bootstraps nor joins srdd-1", name)
		}
		for _, want := range []string{"--advertise-http " + name + ":8998", "--advertise-raft " + name + ":8999",
			"--spark-master spark://spark-master:7077", "spark.driver.host=" + name} {
			if !strings.Contains(line, want) {
				t.Errorf("%s: command lacks %q", name, want)
			}
		}
		if str(get(s, "hostname")) != name {
			t.Errorf("%s: hostname %v", name, get(s, "hostname"))
		}
		m := regexp.MustCompile(`--node-id (\S+)`).FindStringSubmatch(line)
		if m == nil || ids[m[1]] {
			t.Errorf("%s: missing or duplicate --node-id", name)
		} else {
			ids[m[1]] = true
		}
		if get(s, "build.dockerfile") != "Dockerfile" || get(s, "build.context") != ".." {
			t.Errorf("%s must build the repository's Dockerfile", name)
		}
		// Healthy means ready to take a write: `srdd ready` asks /readyz.
		if hc := strings.Join(strs(get(s, "healthcheck.test")), " "); hc != "CMD /usr/local/bin/srdd ready --addr 127.0.0.1:8998" {
			t.Errorf("%s: healthcheck %q must run `srdd ready` against the node", name, hc)
		}
		if name != "srdd-1" && str(get(s, "depends_on.srdd-1.condition")) != "service_healthy" {
			t.Errorf("%s must wait for srdd-1 to be ready (depends_on condition service_healthy)", name)
		}
	}
	if bootstraps != 1 {
		t.Errorf("%d nodes bootstrap, want exactly 1", bootstraps)
	}
	if admitted != "srdd-2,srdd-3" {
		t.Errorf("the bootstrapping node admits %q, want the joiners' node IDs srdd-2,srdd-3 (--admit)", admitted)
	}
	// Every file mounted from the repository exists.
	for name, s := range services {
		for _, v := range strs(get(s, "volumes")) {
			src := strings.Split(v, ":")[0]
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join(testutil.RepoRoot(t), "deploy", src)); err != nil {
					t.Errorf("%s mounts %s, which does not exist", name, src)
				}
			}
		}
	}
	// Prometheus scrapes exactly the three nodes.
	prom := yamlDocs(t, readFile(t, "deploy", "prometheus", "prometheus.yml"))[0]
	var targets []string
	for _, sc := range get(prom, "scrape_configs").([]any) {
		if str(get(sc, "job_name")) == "srdd" {
			targets = strs(get(sc, "static_configs.0.targets"))
		}
	}
	if strings.Join(targets, ",") != "srdd-1:8998,srdd-2:8998,srdd-3:8998" {
		t.Errorf("prometheus.yml targets %v", targets)
	}
}

var pinRe = regexp.MustCompile(`(?m)^(pyspark|msgpack)==(\S+)$`)

// TestDockerfileMatchesSetup checks that the image is set up as README
// and `make venv` set up a machine: the same Go, Java 17, and the pinned
// pyspark and msgpack taken from requirements.txt.
func TestDockerfileMatchesSetup(t *testing.T) {
	flags := serverFlags(t)
	df := string(readFile(t, "Dockerfile"))
	gomod := string(readFile(t, "go.mod"))
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if m == nil || !strings.Contains(df, "FROM golang:"+m[1]+"-") {
		t.Errorf("the build stage must use Go %v (go.mod)", m)
	}
	readme := string(readFile(t, "README.md"))
	for _, pkg := range []string{"openjdk-17-jre-headless", "python3-venv"} {
		if !strings.Contains(df, pkg) {
			t.Errorf("the Dockerfile does not install %s", pkg)
		}
	}
	if !strings.Contains(readme, "openjdk-17-jre-headless") || !strings.Contains(string(readFile(t, ".ci", "run")), "openjdk-17-jre-headless") {
		t.Error("README and .ci/run name a different Java package than the Dockerfile")
	}
	reqs := string(readFile(t, "sparkbridge", "python", "requirements.txt"))
	pins := pinRe.FindAllStringSubmatch(reqs, -1)
	if len(pins) != 2 {
		t.Fatalf("requirements.txt pins %v, want pyspark and msgpack", pins)
	}
	if !strings.Contains(df, "COPY sparkbridge/python/requirements.txt") || !strings.Contains(df, `grep -E '^(pyspark|msgpack)=='`) ||
		!strings.Contains(df, "pip install --no-cache-dir -r /opt/srdd/runtime.txt") {
		t.Error("the Dockerfile must install the runtime pins from requirements.txt")
	}
	for _, stamp := range []string{"-X main.version=", "-X github.com/srdd/srdd/metrics.revision="} {
		if !strings.Contains(df, stamp) || !strings.Contains(string(readFile(t, "Makefile")), stamp) {
			t.Errorf("the Dockerfile and the Makefile must both stamp %s", stamp)
		}
	}
	entry := regexp.MustCompile(`(?m)^(ENTRYPOINT|CMD) (.*)$`).FindAllStringSubmatch(df, -1)
	var line string
	for _, e := range entry {
		line += e[2] + " "
	}
	checkFlags(t, "the Dockerfile", flags, line)
	if !strings.Contains(line, `"--python", "/opt/srdd/venv/bin/python"`) || !strings.Contains(df, "python3 -m venv /opt/srdd/venv") {
		t.Error("the entrypoint must run the interpreters with the venv's python")
	}
	// The deploy README shows how to build it.
	if !strings.Contains(string(readFile(t, "deploy", "README.md")), "docker build -t srdd:dev") {
		t.Error("deploy/README.md does not show the docker build line")
	}
}

func TestSystemdUnit(t *testing.T) {
	flags := serverFlags(t)
	unit := string(readFile(t, "deploy", "systemd", "srdd.service"))
	env := string(readFile(t, "deploy", "systemd", "srdd.env"))
	start := regexp.MustCompile(`(?s)ExecStart=(.*?[^\\])\n`).FindStringSubmatch(unit)
	if start == nil {
		t.Fatal("no ExecStart")
	}
	checkFlags(t, "srdd.service", flags, start[1])
	checkFlags(t, "srdd.env", flags, env)
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+)=`).FindAllStringSubmatch(env, -1) {
		defined[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\$\{?([A-Z_]+)\}?`).FindAllStringSubmatch(start[1], -1) {
		if !defined[m[1]] {
			t.Errorf("ExecStart uses $%s, which srdd.env does not set", m[1])
		}
	}
	for _, want := range []string{"EnvironmentFile=/etc/srdd/srdd.env", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"StateDirectory=srdd", "PrivateTmp=yes", "SystemCallFilter=@system-service"} {
		if !strings.Contains(unit, want+"\n") {
			t.Errorf("srdd.service lacks %s", want)
		}
	}
	for _, want := range []string{"Type=notify", "NotifyAccess=main"} {
		if !strings.Contains(unit, want+"\n") {
			t.Errorf("srdd.service lacks %s (srdd sends READY=1 when it can take a write)", want)
		}
	}
	if strings.Contains(unit, "MemoryDenyWriteExecute=yes") {
		t.Error("MemoryDenyWriteExecute breaks the JVM's JIT")
	}
	// The example node forms the cluster and admits the other two; with
	// peer TLS and without --insecure (no plaintext cluster).
	extra := regexp.MustCompile(`(?m)^SRDD_EXTRA_ARGS=(.*)$`).FindStringSubmatch(env)
	if extra == nil || !strings.Contains(extra[1], "--bootstrap --admit srdd-2,srdd-3") || strings.Contains(extra[1], "--insecure") {
		t.Errorf("srdd.env's SRDD_EXTRA_ARGS must bootstrap and admit srdd-2,srdd-3, without --insecure: %v", extra)
	}
}
