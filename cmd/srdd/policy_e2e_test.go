package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/testutil"
)

// The policy holes of issue 25, on a real bin/srdd with a users file: a
// users file others may read is refused at start; Spark settings whose
// keys are not canonical, or that the caps or the file roots forbid, are
// refused for sessions and batches before anything starts.
func TestPolicyHolesOnTheBinary(t *testing.T) {
	onFake(t) // every request here is refused before a session starts
	bin := buildSrdd(t)
	dir := t.TempDir()
	users := filepath.Join(dir, "users.json")
	out, err := exec.Command(bin, "auth", "add", "--file", users, "--name", "ana", "--role", "admin").Output()
	if err != nil {
		t.Fatal(err)
	}
	token := "Bearer " + strings.TrimSpace(string(out))
	args := []string{"--http-addr", testutil.FreeAddr(t), "--raft-addr", testutil.FreeAddr(t),
		"--data-dir", filepath.Join(dir, "data"), "--auth-file", users}

	// A users file its group or others may read: refused, naming the fix.
	if err := os.Chmod(users, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"server"}, args...)...)
	done := make(chan []byte, 1)
	go func() { b, _ := cmd.CombinedOutput(); done <- b }()
	select {
	case b := <-done:
		if !strings.Contains(string(b), "chmod 600") || cmd.ProcessState.Success() {
			t.Fatalf("a 0644 users file: %s", b)
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the node started with a 0644 users file")
	}
	if err := os.Chmod(users, 0o600); err != nil {
		t.Fatal(err)
	}
	_, addr := startSrdd(t, bin, args...)
	f := func(path, body string, want int, code string) {
		t.Helper()
		st, b, err := callHeaders("POST", "http://"+addr+path, body, map[string]string{"Authorization": token})
		if err != nil || st != want || !strings.Contains(string(b), `"`+code+`"`) {
			t.Errorf("POST %s %s: %d %s %v, want %d %s", path, body, st, b, err, want, code)
		}
	}
	for _, k := range []string{"spark.driver.memory ", "spark.master ", "spark.driver.extraJavaOptions ",
		"spark.jars ", "spark.driver.extraClassPath=/outside/x"} {
		f("/sessions", `{"kind":"pyspark","conf":{"`+k+`":"64g"}}`, 400, "conf_not_allowed")
		f("/batches", `{"file":"x.py","conf":{"`+k+`":"-Dx=1"}}`, 400, "conf_not_allowed")
	}
	f("/batches", `{"file":"x.py","conf":{"spark.driver.extraJavaOptions=-Dx":"1"}}`, 400, "conf_not_allowed")
	f("/sessions", `{"kind":"pyspark","conf":{"spark.driver.memoryOverhead":"64g"}}`, 400, "conf_too_large")
	f("/sessions", `{"kind":"pyspark","conf":{"spark.memory.offHeap.size":"64g"}}`, 400, "conf_too_large")
	f("/sessions", `{"kind":"pyspark","conf":{"spark.task.cpus":"64"}}`, 400, "conf_too_large")
	for _, k := range []string{"spark.driver.log.localDir", "spark.checkpoint.dir", "spark.sql.streaming.checkpointLocation",
		"spark.kerberos.keytab", "spark.ssl.keyStore"} {
		f("/sessions", `{"kind":"pyspark","conf":{"`+k+`":"/etc"}}`, 403, "forbidden_path")
	}
	// Nothing was recorded.
	if st, b, _ := callHeaders("GET", "http://"+addr+"/sessions", "", map[string]string{"Authorization": token}); st != 200 || !strings.Contains(string(b), `"total":0`) {
		t.Errorf("sessions after the refusals: %d %s", st, b)
	}
}
