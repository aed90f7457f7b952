package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/testutil"
)

// TestRDDCreateReplicasFlag: `srdd rdd create --replicas N` sends N; on
// one node 2 is refused naming the limit, 1 is recorded and shown by
// `srdd rdd ls` as 1/1 copies; a count below 1 is refused before any call.
func TestRDDCreateReplicasFlag(t *testing.T) {
	onFake(t)
	bin := buildSrdd(t)
	_, addr := startSrdd(t, bin, "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(t.TempDir(), "data"))
	cli := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"--addr", addr}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if err := testutil.Poll(time.Minute, 100*time.Millisecond, func() (bool, error) {
		_, err := cli("ready")
		return err == nil, nil
	}); err != nil {
		t.Fatalf("node never ready: %v", err)
	}
	if out, err := cli("rdd", "create", "rep", "--replicas", "2"); err == nil || !strings.Contains(out, "between 1 and 1 (the cluster's node count)") {
		t.Fatalf("--replicas 2 on one node: %v %s", err, out)
	}
	if out, err := cli("rdd", "create", "rep", "--replicas", "0"); err == nil || !strings.Contains(out, "--replicas must be 1 or more") {
		t.Fatalf("--replicas 0: %v %s", err, out)
	}
	if out, err := cli("rdd", "create", "rep", "--mode", "memory", "--replicas", "1"); err != nil || !strings.Contains(out, `"replicas": 1`) {
		t.Fatalf("--replicas 1: %v %s", err, out)
	}
	if out, err := cli("rdd", "ls"); err != nil || !strings.Contains(out, "COPIES") || !strings.Contains(out, "1/1") {
		t.Fatalf("srdd rdd ls: %v\n%s", err, out)
	}
}
