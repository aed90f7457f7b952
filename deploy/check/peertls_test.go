package check

// Peer TLS in the deploy files (issue 14): every node gets its own
// certificate through --peer-cert/--peer-key/--peer-ca, the certificates
// come from `srdd cert` run as the files say (the compose init service's
// script and the Kubernetes recipe run here with the real binary), no node
// can read the CA key, and no shared default secret ships anywhere.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/srdd/srdd/internal/pki"
	"github.com/srdd/srdd/internal/testutil"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// srddBinary builds ./cmd/srdd once per test run.
func srddBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "srdd-deploy-check-"); binErr != nil {
			return
		}
		build := exec.Command("go", "build", "-o", filepath.Join(binDir, "srdd"), "./cmd/srdd")
		build.Dir = testutil.RepoRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "srdd")
}

// sharedSecrets finds what must never ship in a deploy file: a default
// key everybody has, the cluster key (peer mTLS replaced it), or a key
// in the file itself.
var sharedSecrets = regexp.MustCompile(`(?i)change[-_ ]?me|cluster[-_]key|secretKeyRef|stringData|-----BEGIN [A-Z ]*PRIVATE KEY-----`)

func TestSharedSecretPattern(t *testing.T) {
	f := func(in string, want bool) {
		t.Helper()
		if got := sharedSecrets.MatchString(in); got != want {
			t.Errorf("sharedSecrets.MatchString(%q) = %v, want %v", in, got, want)
		}
	}
	f("    SRDD_CLUSTER_KEY: change-me", true)
	f("stringData:\n  key: hunter2", true)
	f(`"--cluster-key-file", "/run/key"`, true)
	f("valueFrom: {secretKeyRef: {name: k, key: key}}", true)
	f("-----BEGIN EC PRIVATE KEY-----", true)
	f("SRDD_PEER_KEY=/etc/srdd/peer/srdd-1-key.pem", false)
	f(`"--peer-ca", "/etc/srdd/peer/ca.pem"`, false)
}

// TestNoSharedDefaultSecret reads every deploy file (and the Dockerfile,
// and the shell recipes of deploy/README.md).
func TestNoSharedDefaultSecret(t *testing.T) {
	root := testutil.RepoRoot(t)
	files := []string{filepath.Join(root, "Dockerfile")}
	err := filepath.WalkDir(filepath.Join(root, "deploy"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && d.Name() == "check":
			return filepath.SkipDir // this code names the patterns
		case d.IsDir(), strings.HasSuffix(p, ".png"):
		default:
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("found only %d deploy files: %v", len(files), files)
	}
	fence := regexp.MustCompile("(?s)```sh\n(.*?)```")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if strings.HasSuffix(p, ".md") {
			// Prose may say what is gone; the recipes may not use it.
			var code []string
			for _, m := range fence.FindAllStringSubmatch(text, -1) {
				code = append(code, m[1])
			}
			text = strings.Join(code, "\n")
		}
		for _, m := range sharedSecrets.FindAllString(text, -1) {
			t.Errorf("%s ships %q: no shared default secret may ship (peer mTLS with per-node certificates instead)", p, m)
		}
	}
}

// flagValue is the value after flag in a compose command list.
func flagValue(cmd []string, flag string) string {
	if i := slices.Index(cmd, flag); i >= 0 && i+1 < len(cmd) {
		return cmd[i+1]
	}
	return ""
}

// checkNodeCert checks what a node loads: the pair matches, the
// certificate names node id (CN and URI SAN), serves and dials, names
// host, and verifies against the CA file the node is given.
func checkNodeCert(t *testing.T, where, id, host, certFile, keyFile, caFile string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return nil
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != id || len(c.URIs) != 1 || c.URIs[0].String() != pki.NodeURIPrefix+id {
		t.Errorf("%s: CN %q, URIs %v; want the node ID %s in both", where, c.Subject.CommonName, c.URIs, id)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return c
	}
	if ca, err := pki.ParseCert(caPEM); err != nil || !ca.IsCA {
		t.Errorf("%s: %s holds no CA certificate (%v)", where, caFile, err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("%s: as %v for %s: %v", where, u, host, err)
		}
	}
	// Owner only: the node runs as root, session code as another user
	// (deploy/README.md, "Who runs as whom").
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("%s: key file %v, %v: readable by others than its owner", where, st, err)
	}
	return c
}

// composeVolume splits "name:/path[:ro]".
func composeVolume(v string) (name, path string, ro bool) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 {
		return v, "", false
	}
	return parts[0], parts[1], len(parts) > 2 && strings.Contains(parts[2], "ro")
}

// TestComposePeerTLS runs the compose file's srdd-certs script with the
// real binary, in a directory standing for its volumes, twice (a restarted
// stack), and checks that every node's --peer-* paths, through its own
// volumes, name its own certificate.
func TestComposePeerTLS(t *testing.T) {
	bin := srddBinary(t)
	docs := yamlDocs(t, readFile(t, "deploy", "docker-compose.yml"))
	services, _ := docs[0]["services"].(map[string]any)
	init := services["srdd-certs"]
	if init == nil {
		t.Fatal("no srdd-certs service (the one-shot that makes the certificates)")
	}
	if str(get(init, "restart")) != "no" {
		t.Error("srdd-certs must run once (restart: \"no\")")
	}
	entry, command := strs(get(init, "entrypoint")), strs(get(init, "command"))
	if len(entry) == 0 || len(command) != 1 {
		t.Fatalf("srdd-certs: entrypoint %v command %v; want a shell and one script", entry, command)
	}
	script := command[0]
	if rest := strings.ReplaceAll(script, "$$", ""); strings.Contains(rest, "$") {
		t.Fatalf("srdd-certs' script has a lone $, which compose would interpolate: %q", script)
	}
	script = strings.ReplaceAll(script, "$$", "$")
	work := str(get(init, "working_dir"))
	if work == "" || strings.Contains(script, work) || strings.Contains(script, " /") {
		t.Fatalf("srdd-certs' script must use paths relative to its working_dir (%q), so it runs here too", work)
	}

	// The volumes as directories; the init service's mounts say where.
	tmp := t.TempDir()
	volDir := map[string]string{}
	for _, v := range strs(get(init, "volumes")) {
		name, path, _ := composeVolume(v)
		volDir[name] = filepath.Join(tmp, path)
		if err := os.MkdirAll(volDir[name], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runInit := func(what string) {
		t.Helper()
		cmd := exec.Command(entry[0], append(entry[1:], script)...)
		cmd.Dir = filepath.Join(tmp, work)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("srdd-certs' script, %s: %v\n%s", what, err, out)
		}
	}
	runInit("first run")
	// A restart keeps what is there (a node's certificate does not change
	// under it); a node whose files are incomplete gets new ones.
	nodeCert := func(vol, name string) string {
		b, _ := os.ReadFile(filepath.Join(volDir[vol], name+".pem"))
		return string(b)
	}
	first1, first2 := nodeCert("peer-srdd-1", "srdd-1"), nodeCert("peer-srdd-2", "srdd-2")
	if first1 == "" || first2 == "" {
		t.Fatalf("srdd-certs wrote no certificate into the volumes peer-srdd-1 and peer-srdd-2: %v", volDir)
	}
	if err := os.Remove(filepath.Join(volDir["peer-srdd-2"], "srdd-2-key.pem")); err != nil {
		t.Fatal(err)
	}
	runInit("a restart after srdd-2's key was lost")
	if nodeCert("peer-srdd-1", "srdd-1") != first1 {
		t.Error("a restart of srdd-certs replaced srdd-1's certificate")
	}
	if nodeCert("peer-srdd-2", "srdd-2") == first2 {
		t.Error("srdd-certs kept srdd-2's certificate without its key")
	}

	var caFiles []string
	for _, name := range []string{"srdd-1", "srdd-2", "srdd-3"} {
		s := services[name]
		if c := str(get(s, "depends_on.srdd-certs.condition")); c != "service_completed_successfully" {
			t.Errorf("%s must start after srdd-certs completed (depends_on condition %q)", name, c)
		}
		cmd := strs(get(s, "command"))
		id := flagValue(cmd, "--node-id")
		host, _, _ := strings.Cut(flagValue(cmd, "--advertise-raft"), ":")
		// Map a path in the node's container to the volume directory here.
		local := func(flag string) string {
			p := flagValue(cmd, flag)
			if p == "" {
				t.Errorf("%s has no %s", name, flag)
				return ""
			}
			for _, v := range strs(get(s, "volumes")) {
				vol, mnt, ro := composeVolume(v)
				if rel, err := filepath.Rel(mnt, p); err == nil && !strings.HasPrefix(rel, "..") {
					if volDir[vol] == "" {
						t.Errorf("%s: %s %s is in volume %s, which srdd-certs does not write", name, flag, p, vol)
						return ""
					}
					if !ro {
						t.Errorf("%s mounts %s read-write; the certificates are read-only to a node", name, vol)
					}
					return filepath.Join(volDir[vol], rel)
				}
			}
			t.Errorf("%s: %s %s is in none of its volumes", name, flag, p)
			return ""
		}
		certFile, keyFile, caFile := local("--peer-cert"), local("--peer-key"), local("--peer-ca")
		if certFile == "" || keyFile == "" || caFile == "" {
			continue
		}
		checkNodeCert(t, "compose "+name, id, host, certFile, keyFile, caFile)
		caFiles = append(caFiles, caFile)
		// Session code (a uid of --interpreter-uids, with the uids' group)
		// and Spark's processes (the image's srdd) cannot read the key,
		// through the volume's directory down.
		for _, d := range volDir {
			if rel, err := filepath.Rel(d, keyFile); err == nil && !strings.HasPrefix(rel, "..") {
				for _, id := range [][2]uint32{{imageInterpUID, imageInterpGID}, {100000, 100000}} {
					if ok, err := readableBy(id[0], id[1], d, keyFile); err != nil || ok {
						t.Errorf("%s: uid %d can read %s (%v)", name, id[0], keyFile, err)
					}
				}
			}
		}
		// No node can read the CA key.
		for _, v := range strs(get(s, "volumes")) {
			vol, _, _ := composeVolume(v)
			if d := volDir[vol]; d != "" {
				_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
					if err == nil && e.Name() == pki.CAKeyFile {
						t.Errorf("%s mounts volume %s, which holds the CA key", name, vol)
					}
					return nil
				})
			}
		}
	}
	// One CA for all: every node trusts the same CA certificate, and the
	// CA key exists only in srdd-certs' own volume.
	for _, f := range caFiles[1:] {
		a, _ := os.ReadFile(caFiles[0])
		b, _ := os.ReadFile(f)
		if string(a) != string(b) {
			t.Errorf("%s and %s differ: the nodes would not trust each other", caFiles[0], f)
		}
	}
}

// TestKubernetesPeerTLS runs the recipe in srdd.yaml's header (srdd cert
// for the three pods) with the real binary, then checks that every pod's
// --peer-* paths in the mounted Secret name files the recipe made, with
// the pod's own certificate, and that the Secret would not hold the CA key.
func TestKubernetesPeerTLS(t *testing.T) {
	bin := srddBinary(t)
	raw := string(readFile(t, "deploy", "kubernetes", "srdd.yaml"))
	docs := yamlDocs(t, []byte(raw))
	var sts map[string]any
	for _, d := range docs {
		if str(d["kind"]) == "StatefulSet" {
			sts = d
		}
	}
	spec := get(sts, "spec.template.spec")
	c := get(spec, "containers.0")
	// The Secret volume and where it is mounted.
	var secretName, volName string
	for _, v := range get(spec, "volumes").([]any) {
		if n := str(get(v, "secret.secretName")); n != "" {
			secretName, volName = n, str(get(v, "name"))
			if m, ok := get(v, "secret.defaultMode").(int); !ok || m&0o007 != 0 {
				t.Errorf("the Secret volume's defaultMode %v lets any user read the keys", get(v, "secret.defaultMode"))
			}
			if get(v, "secret.optional") == true {
				t.Error("the peer certificates' Secret must not be optional")
			}
		}
	}
	var mount string
	for _, m := range get(c, "volumeMounts").([]any) {
		if str(get(m, "name")) == volName {
			mount = str(get(m, "mountPath"))
			if get(m, "readOnly") != true {
				t.Error("the peer certificates must be mounted read-only")
			}
		}
	}
	if secretName == "" || mount == "" {
		t.Fatalf("the StatefulSet mounts no Secret with the peer certificates (secret %q at %q)", secretName, mount)
	}
	args := map[string]string{}
	for _, a := range strs(get(c, "args")) {
		if k, v, ok := strings.Cut(a, "="); ok {
			args[k] = v
		}
	}
	for _, e := range get(c, "env").([]any) {
		if get(e, "valueFrom.secretKeyRef") != nil {
			t.Errorf("env %s comes from a Secret: no secret is passed in the environment", get(e, "name"))
		}
	}

	// The recipe in the header comment: from `srdd cert ca` to the kubectl lines.
	var recipe []string
	in := false
	for _, line := range strings.Split(raw, "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		body := strings.TrimSpace(strings.TrimPrefix(line, "#"))
		if strings.HasPrefix(body, "srdd cert ca") {
			in = true
		}
		if strings.HasPrefix(body, "kubectl") {
			if in && strings.Contains(body, "create secret") &&
				!strings.Contains(body, "create secret generic "+secretName+" --from-file=peer/") {
				t.Errorf("the recipe's %q does not make the Secret %s from peer/", body, secretName)
			}
			in = false
		}
		if in {
			recipe = append(recipe, body)
		}
	}
	if len(recipe) < 2 {
		t.Fatalf("no srdd cert recipe in srdd.yaml's header: %q", recipe)
	}
	tmp := t.TempDir()
	sh := exec.Command("/bin/sh", "-ec", strings.Join(recipe, "\n"))
	sh.Dir = tmp
	const ns = "check-ns"
	sh.Env = append(os.Environ(), "NS="+ns, "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("the recipe failed: %v\n%s\n%s", err, strings.Join(recipe, "\n"), out)
	}
	secretDir := filepath.Join(tmp, "peer")
	used := map[string]bool{}
	for i := 0; i < get(sts, "spec.replicas").(int); i++ {
		pod := fmt.Sprintf("%s-%d", get(sts, "metadata.name"), i)
		expand := func(s string) string {
			return strings.NewReplacer("$(POD_NAME)", pod, "$(POD_NAMESPACE)", ns).Replace(s)
		}
		local := func(flag string) string {
			p := expand(args[flag])
			rel, err := filepath.Rel(mount, p)
			if p == "" || err != nil || strings.Contains(rel, "/") || strings.HasPrefix(rel, "..") {
				t.Fatalf("%s %q is not a file of the Secret mounted at %s", flag, args[flag], mount)
			}
			used[rel] = true
			return filepath.Join(secretDir, rel)
		}
		host, _, _ := strings.Cut(expand(args["--advertise-raft"]), ":")
		checkNodeCert(t, "pod "+pod, pod, host, local("--peer-cert"), local("--peer-key"), local("--peer-ca"))
	}
	// What kubectl --from-file=peer/ would put in the Secret: exactly the
	// files the pods read; the CA key is not among them.
	entries, err := os.ReadDir(secretDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !used[e.Name()] {
			t.Errorf("the Secret would hold %s, which no pod reads", e.Name())
		}
	}
}

// TestSystemdPeerTLS: the unit passes the certificate paths from
// srdd.env, which names them as `srdd cert node --name SRDD_NODE_ID`
// writes them and holds no secret itself.
func TestSystemdPeerTLS(t *testing.T) {
	unit := string(readFile(t, "deploy", "systemd", "srdd.service"))
	env := string(readFile(t, "deploy", "systemd", "srdd.env"))
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+)=(.*)$`).FindAllStringSubmatch(env, -1) {
		vars[m[1]] = m[2]
	}
	for flag, v := range map[string]string{"--peer-cert": "SRDD_PEER_CERT", "--peer-key": "SRDD_PEER_KEY", "--peer-ca": "SRDD_PEER_CA"} {
		if !strings.Contains(unit, flag+" ${"+v+"}") {
			t.Errorf("srdd.service's ExecStart lacks %s ${%s}", flag, v)
		}
	}
	if !strings.Contains(unit, "ExecReload=/bin/kill -HUP $MAINPID\n") {
		t.Error("srdd.service must reload with SIGHUP (certificates rotate without a restart)")
	}
	id := vars["SRDD_NODE_ID"]
	if filepath.Base(vars["SRDD_PEER_CERT"]) != id+".pem" || filepath.Base(vars["SRDD_PEER_KEY"]) != id+"-key.pem" ||
		filepath.Base(vars["SRDD_PEER_CA"]) != pki.CACertFile || filepath.Dir(vars["SRDD_PEER_CERT"]) != filepath.Dir(vars["SRDD_PEER_CA"]) {
		t.Errorf("srdd.env's peer files %q %q %q are not what `srdd cert node --name %s --out DIR` writes",
			vars["SRDD_PEER_CERT"], vars["SRDD_PEER_KEY"], vars["SRDD_PEER_CA"], id)
	}
	for k := range vars {
		if strings.Contains(k, "KEY") && k != "SRDD_PEER_KEY" || strings.Contains(k, "SECRET") || strings.Contains(k, "TOKEN") {
			t.Errorf("srdd.env sets %s: the env file holds no secret", k)
		}
	}
}
