//go:build faults

// Fault test of issue 22 part 6 (`make test-faults`): a statement that
// loads far more than spark.driver.memory into the driver JVM.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestFaultDriverOutOfMemory: a session with driverMemory 512m collects
// ~10 GB of rows. Its JVM ends (-XX:+ExitOnOutOfMemoryError), so the
// session ends as dead with the JVM's own reason instead of living on
// with a broken JVM; the durable RDD it held rebuilds in a new session
// with every acknowledged write, and the node stays ready throughout.
func TestFaultDriverOutOfMemory(t *testing.T) {
	bin := buildSrdd(t)
	n := diskFaultNode(t, bin, t.TempDir(), "--data-dir", "data")
	if st, b := n.call("POST", "/sessions", `{"kind":"pyspark","driverMemory":"512m"}`); st != http.StatusCreated {
		t.Fatalf("POST /sessions: %d %s", st, b)
	}
	state := func() string {
		_, b := n.call("GET", "/sessions/0/state", "")
		var s struct {
			State string `json:"state"`
		}
		_ = json.Unmarshal(b, &s)
		return s.State
	}
	waitFor(t, 3*time.Minute, "session 0 idle", func() bool { return state() == "idle" })
	if st, b := n.call("POST", "/v1/rdds", `{"name":"kv","session":0}`); st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, b)
	}
	for i := 0; i < 20; i++ {
		if st, b := n.call("PUT", fmt.Sprintf("/v1/rdds/kv/keys/k%d", i), fmt.Sprintf(`"v%d"`, i)); st/100 != 2 {
			t.Fatalf("set: %d %s", st, b)
		}
	}
	code := `rows = spark.range(0, 100000000).selectExpr("id", "repeat('x', 100) as s").collect()`
	body, _ := json.Marshal(map[string]string{"code": code})
	if st, b := n.call("POST", "/sessions/0/statements", string(body)); st != http.StatusCreated {
		t.Fatalf("POST statement: %d %s", st, b)
	}
	began := time.Now()
	readyz := map[int]int{}
	waitFor(t, 5*time.Minute, "session 0 dead", func() bool {
		st, _ := n.call("GET", "/readyz", "")
		readyz[st]++
		return state() == "dead"
	})
	died := time.Since(began)
	_, b := n.call("GET", "/sessions/0", "")
	var s struct {
		Log []string `json:"log"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	last := ""
	if len(s.Log) > 0 {
		last = s.Log[len(s.Log)-1]
	}
	if !strings.Contains(last, "java.lang.OutOfMemoryError") || !strings.Contains(last, "JVM") {
		t.Fatalf("the dead session's last log line does not give the JVM's reason: %q", last)
	}
	st, sb := n.call("GET", "/sessions/0/statements/0", "")
	t.Logf("session dead %s after the statement; its reason: %q; the statement: %d %.200s", died.Round(time.Millisecond), last, st, sb)

	// The durable RDD rebuilds with every write, in a new session.
	reads := map[int]int{}
	for i := 0; i < 20; i++ {
		key := fmt.Sprintf("k%d", i)
		deadline := time.Now().Add(3 * time.Minute)
		for {
			st, b := n.call("GET", "/v1/rdds/kv/keys/"+key, "")
			reads[st]++
			if st == http.StatusOK {
				if !strings.Contains(string(b), fmt.Sprintf(`"v%d"`, i)) {
					t.Fatalf("%s after the rebuild: %s", key, b)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not back within 3 minutes: %d %s", key, st, b)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	if r := n.rdd("kv"); r.Session == 0 || r.State != "ready" {
		t.Fatalf("kv after the rebuild: %+v", r)
	}
	t.Logf("kv served again %s after the statement; reads meanwhile (status: count): %v; /readyz while it ran: %v",
		time.Since(began).Round(time.Millisecond), reads, readyz)
	if st, b := n.call("GET", "/readyz", ""); st != http.StatusOK {
		t.Fatalf("/readyz after the rebuild: %d %s", st, b)
	}
	if readyz[http.StatusOK] == 0 || len(readyz) > 1 {
		t.Errorf("/readyz while the session ran out of memory: %v; want only 200", readyz)
	}
	n.stop()
}
