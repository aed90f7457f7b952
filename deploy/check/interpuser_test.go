package check

// Session code runs as an unprivileged account in every deploy file
// (deploy/README.md, "Who runs as whom"; docs/ARCHITECTURE.md, "Sessions
// hold no secret"): each node runs as root with --interpreter-user, holds
// only the capabilities that needs, and its peer key is not readable by
// the interpreter user.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The image's interpreter account (Dockerfile: groupadd/useradd).
const (
	imageInterpUser = "srdd"
	imageInterpUID  = 10001
	imageInterpGID  = 10001
)

// nodeCaps is every capability a node keeps, each needed (deploy/README.md,
// "Who runs as whom"): CHOWN (give the interpreter user its dirs; the node
// does not start without it), SETUID/SETGID (start session code as it),
// KILL (stop it: without it a session's delete waits for its interpreter
// to exit on its own), DAC_OVERRIDE (remove what it left in its session
// dir: without it the dir stays). FOWNER is not needed.
var nodeCaps = []string{"CHOWN", "DAC_OVERRIDE", "KILL", "SETGID", "SETUID"}

// The image's interpreter uids (Dockerfile: one account per uid, group
// srdd-uids with gid FIRST), --interpreter-uids.
const imageInterpUIDs = "100000-100063"

// argValue returns the value of --name ("--name X" or "--name=X") in args.
func argValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// interpUser returns the value of --interpreter-user in args.
func interpUser(args []string) string { return argValue(args, "--interpreter-user") }

// checkInterpUIDs: session code runs as a uid of its own per session
// (--interpreter-uids, a range without root), never as one account shared
// by every session (--interpreter-user), which isolates the node but not
// users from each other.
func checkInterpUIDs(t *testing.T, where string, args []string) {
	t.Helper()
	if u := interpUser(args); u != "" {
		t.Errorf("%s runs every session as one account (--interpreter-user %s): sessions of different users could reach each other; use --interpreter-uids", where, u)
	}
	r := argValue(args, "--interpreter-uids")
	checkUIDRange(t, where, r)
}

func checkUIDRange(t *testing.T, where, r string) {
	t.Helper()
	first, last, ok := strings.Cut(r, "-")
	f, err1 := strconv.Atoi(first)
	l, err2 := strconv.Atoi(last)
	switch {
	case r == "":
		t.Errorf("%s starts the node without --interpreter-uids: session code would run as the node, or share one uid", where)
	case !ok || err1 != nil || err2 != nil || f <= 0 || l < f:
		t.Errorf("%s: --interpreter-uids %q is not FIRST-LAST with 0 < FIRST <= LAST", where, r)
	case f <= imageInterpUID && imageInterpUID <= l:
		t.Errorf("%s: --interpreter-uids %s holds the srdd account (%d), which runs Spark's own processes", where, r, imageInterpUID)
	}
}

// dockerEntrypoint is the image's ENTRYPOINT as a list.
func dockerEntrypoint(t *testing.T) []string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^ENTRYPOINT \[(.*)\]$`).FindStringSubmatch(string(readFile(t, "Dockerfile")))
	if m == nil {
		t.Fatal("the Dockerfile has no ENTRYPOINT [...]")
	}
	var out []string
	for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
		out = append(out, q[1])
	}
	return out
}

func TestDockerfileInterpreterUser(t *testing.T) {
	df := string(readFile(t, "Dockerfile"))
	checkInterpUIDs(t, "the image's ENTRYPOINT", dockerEntrypoint(t))
	if r := argValue(dockerEntrypoint(t), "--interpreter-uids"); r != imageInterpUIDs {
		t.Errorf("the ENTRYPOINT's --interpreter-uids is %q, want the image's accounts %s", r, imageInterpUIDs)
	}
	first, last, _ := strings.Cut(imageInterpUIDs, "-")
	for _, want := range []string{
		fmt.Sprintf("groupadd --system --gid %d %s", imageInterpGID, imageInterpUser),
		fmt.Sprintf("useradd --system --uid %d --gid %d", imageInterpUID, imageInterpGID),
		// Spark's JVM cannot log in as a uid without an account.
		fmt.Sprintf("groupadd --system --gid %s srdd-uids", first),
		fmt.Sprintf("for i in $(seq %s %s); do useradd --system --no-log-init --uid $i --gid %s", first, last, first),
	} {
		if !strings.Contains(df, want) {
			t.Errorf("the Dockerfile must create the interpreter accounts: %q", want)
		}
	}
	// The node runs as root (the last USER, if any, is root).
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if n := len(users); n > 0 && users[n-1][1] != "root" && users[n-1][1] != "0" {
		t.Errorf("the image runs as USER %s: --interpreter-user needs the node to run as root", users[n-1][1])
	}
	// The data dir is root's and closed: the node opens it to the
	// interpreter user's group for traversal only.
	if !strings.Contains(df, "install -d -m 0700 -o root -g root /var/lib/srdd") {
		t.Error("the image's /var/lib/srdd must be root's, 0700")
	}
}

func TestKubernetesInterpreterUser(t *testing.T) {
	var sts map[string]any
	for _, d := range yamlDocs(t, readFile(t, "deploy", "kubernetes", "srdd.yaml")) {
		if str(d["kind"]) == "StatefulSet" {
			sts = d
		}
	}
	spec := get(sts, "spec.template.spec")
	c := get(spec, "containers.0")
	if get(spec, "containers.1") != nil || get(spec, "initContainers") != nil {
		t.Fatal("one container expected: check every container's user")
	}
	checkInterpUIDs(t, "the StatefulSet", append(strs(get(c, "command")), strs(get(c, "args"))...))
	uid, ok := get(c, "securityContext.runAsUser").(int)
	if !ok {
		uid, ok = get(spec, "securityContext.runAsUser").(int)
	}
	if !ok || uid != 0 {
		t.Errorf("the node must run as root (runAsUser 0) to start session code as another user; runAsUser %v", get(spec, "securityContext.runAsUser"))
	}
	if get(spec, "securityContext.runAsNonRoot") == true || get(c, "securityContext.runAsNonRoot") == true {
		t.Error("runAsNonRoot contradicts --interpreter-user")
	}
	// fsGroup would hand the data volume and the Secret to a group the
	// interpreter user may share.
	if g := get(spec, "securityContext.fsGroup"); g != nil {
		t.Errorf("fsGroup %v makes the data volume and the peer keys group-owned", g)
	}
	if get(c, "securityContext.allowPrivilegeEscalation") != false {
		t.Error("allowPrivilegeEscalation must be false")
	}
	if drop := strs(get(c, "securityContext.capabilities.drop")); !slices.Equal(drop, []string{"ALL"}) {
		t.Errorf("capabilities.drop %v, want [ALL]", drop)
	}
	add := strs(get(c, "securityContext.capabilities.add"))
	for _, cp := range add {
		if !slices.Contains(nodeCaps, strings.TrimPrefix(cp, "CAP_")) {
			t.Errorf("capability %s is more than the node needs (%v)", cp, nodeCaps)
		}
	}
	for _, need := range nodeCaps {
		if !slices.Contains(add, need) {
			t.Errorf("capabilities.add lacks %s: the node could not start or stop session code as --interpreter-user", need)
		}
	}
	// The peer keys: owned by root (no fsGroup), so the mode alone decides
	// whether the interpreter user reads them.
	for _, v := range get(spec, "volumes").([]any) {
		if get(v, "secret") == nil {
			continue
		}
		m, ok := get(v, "secret.defaultMode").(int)
		if !ok || m&0o044 != 0 {
			t.Errorf("Secret volume %s: defaultMode %v lets session code (not root) read the keys", get(v, "name"), get(v, "secret.defaultMode"))
		}
	}
}

func TestComposeInterpreterUser(t *testing.T) {
	services, _ := yamlDocs(t, readFile(t, "deploy", "docker-compose.yml"))[0]["services"].(map[string]any)
	for _, name := range []string{"srdd-1", "srdd-2", "srdd-3"} {
		s := services[name]
		entry := dockerEntrypoint(t)
		if e := get(s, "entrypoint"); e != nil {
			entry = strs(e)
		}
		checkInterpUIDs(t, "compose "+name, append(entry, strs(get(s, "command"))...))
		if u := str(get(s, "user")); u != "root" && u != "0" {
			t.Errorf("compose %s runs as user %q: --interpreter-user needs root", name, u)
		}
	}
	// Spark's own processes need no root: they run as the interpreter user.
	for _, name := range []string{"spark-master", "spark-worker"} {
		if u := str(get(services[name], "user")); u != imageInterpUser {
			t.Errorf("compose %s runs as %q, want %s (the image's default is root now)", name, u, imageInterpUser)
		}
	}
}

func TestSystemdInterpreterUser(t *testing.T) {
	unit := string(readFile(t, "deploy", "systemd", "srdd.service"))
	env := string(readFile(t, "deploy", "systemd", "srdd.env"))
	if m := regexp.MustCompile(`(?m)^User=(\S*)`).FindStringSubmatch(unit); m != nil && m[1] != "root" {
		t.Errorf("srdd.service runs as User=%s: --interpreter-user needs root", m[1])
	}
	if !strings.Contains(unit, "--interpreter-uids ${SRDD_INTERPRETER_UIDS}") || strings.Contains(unit, "--interpreter-user") {
		t.Error("srdd.service's ExecStart must pass --interpreter-uids ${SRDD_INTERPRETER_UIDS}, and not --interpreter-user")
	}
	m := regexp.MustCompile(`(?m)^SRDD_INTERPRETER_UIDS=(\S*)$`).FindStringSubmatch(env)
	if m == nil {
		t.Fatal("srdd.env does not set SRDD_INTERPRETER_UIDS")
	}
	checkUIDRange(t, "srdd.env", m[1])
	cb := regexp.MustCompile(`(?m)^CapabilityBoundingSet=(.*)$`).FindStringSubmatch(unit)
	if cb == nil {
		t.Fatal("srdd.service has no CapabilityBoundingSet: root would keep every capability")
	}
	caps := strings.Fields(cb[1])
	for _, cp := range caps {
		if !slices.Contains(nodeCaps, strings.TrimPrefix(cp, "CAP_")) {
			t.Errorf("CapabilityBoundingSet keeps %s, more than the node needs (%v)", cp, nodeCaps)
		}
	}
	for _, need := range nodeCaps {
		if need = "CAP_" + need; !slices.Contains(caps, need) {
			t.Errorf("CapabilityBoundingSet lacks %s", need)
		}
	}
	for _, want := range []string{"NoNewPrivileges=yes", "AmbientCapabilities=", "StateDirectoryMode=0700"} {
		if !strings.Contains(unit, want+"\n") {
			t.Errorf("srdd.service lacks %s", want)
		}
	}
	// The install lines put the key, the env file and the peer dir in
	// root-only modes (no group the interpreter user could be in).
	readme := string(readFile(t, "deploy", "README.md"))
	for _, l := range strings.Split(readme, "\n") {
		if strings.HasPrefix(l, "sudo install") && (strings.Contains(l, "-key.pem") || strings.Contains(l, "/etc/srdd")) {
			if strings.Contains(l, " -g ") || !regexp.MustCompile(`-m 0[67]00 `).MatchString(l) {
				t.Errorf("deploy/README.md: %q must install root-only (0600/0700, no -g)", l)
			}
		}
	}
}

// readableBy reports whether a process with uid and gid, no supplementary
// groups and no capabilities (how the node starts session code) can read
// path, searching every directory from top (the mount point) down.
func readableBy(uid, gid uint32, top, path string) (bool, error) {
	rel, err := filepath.Rel(top, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return false, fmt.Errorf("%s is not under %s", path, top)
	}
	allowed := func(p string, bit uint32) (bool, error) {
		fi, err := os.Stat(p)
		if err != nil {
			return false, err
		}
		st := fi.Sys().(*syscall.Stat_t)
		mode := uint32(fi.Mode().Perm())
		switch {
		case st.Uid == uid:
			return mode&(bit<<6) != 0, nil
		case st.Gid == gid:
			return mode&(bit<<3) != 0, nil
		default:
			return mode&bit != 0, nil
		}
	}
	dir := top
	for _, part := range append([]string{""}, strings.Split(filepath.Dir(rel), string(filepath.Separator))...) {
		if part != "" && part != "." {
			dir = filepath.Join(dir, part)
		}
		if ok, err := allowed(dir, 1); err != nil || !ok {
			return false, err
		}
	}
	return allowed(path, 4)
}

func TestReadableBy(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "k")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	other := uint32(os.Getuid() + 12345)
	if ok, err := readableBy(other, other, dir, f); err != nil || !ok {
		t.Fatalf("0644 in a 0755 dir: readable %v, %v", ok, err)
	}
	if err := os.Chmod(f, 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, _ := readableBy(other, other, dir, f); ok {
		t.Error("0600 of another user: readable")
	}
	if ok, _ := readableBy(uint32(os.Getuid()), other, dir, f); !ok {
		t.Error("0600 of the owner: not readable")
	}
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if ok, _ := readableBy(other, other, dir, f); ok {
		t.Error("0644 in a 0700 dir of another user: readable")
	}
}
