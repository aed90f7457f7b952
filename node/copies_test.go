package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/testutil"
)

// copiesView is GET /v1/rdds/{name} with its copies' roles.
type copiesView struct {
	Node   string `json:"node"`
	State  string `json:"state"`
	Copies []struct {
		Node            string `json:"node"`
		Role            string `json:"role"`
		AppliedIndex    uint64 `json:"applied_index"`
		CheckpointIndex uint64 `json:"checkpoint_index"`
	} `json:"copies"`
	UnderReplicated bool `json:"under_replicated"`
}

func copiesOf(base, name string) (copiesView, bool) {
	var v copiesView
	st, b := rawDo("GET", base+"/v1/rdds/"+name, "")
	return v, st == 200 && json.Unmarshal(b, &v) == nil
}

// waitCopies waits until name has want copies on distinct nodes, each
// checkpointed (a non-zero checkpoint index) when checkpointed is set,
// as seen through base.
func waitCopies(t *testing.T, base, name string, want int, checkpointed bool) copiesView {
	t.Helper()
	var v copiesView
	if err := testutil.WaitFor(2*time.Minute, func() (bool, error) {
		var ok bool
		if v, ok = copiesOf(base, name); !ok || len(v.Copies) != want || v.UnderReplicated || v.State != "ready" {
			return false, nil
		}
		nodes := map[string]bool{}
		for _, c := range v.Copies {
			nodes[c.Node] = true
			if checkpointed && c.CheckpointIndex == 0 {
				return false, nil
			}
		}
		return len(nodes) == want, nil
	}); err != nil {
		t.Fatalf("%s never had %d copies (checkpointed: %v): %+v", name, want, checkpointed, v)
	}
	return v
}

// ownerAndCopy are the members of ms that hold v's owner and its one
// copy.
func ownerAndCopy(t *testing.T, ms []*member, v copiesView) (owner, cp *member) {
	t.Helper()
	owner, _ = ownerAndOther(ms, v.Node)
	for _, c := range v.Copies {
		if c.Role == "copy" {
			cp, _ = ownerAndOther(ms, c.Node)
		}
	}
	if owner == nil || cp == nil || owner == cp {
		t.Fatalf("owner %v, copy %v: %+v", owner, cp, v)
	}
	return owner, cp
}

// getServed reads a key through base at a consistency level; it answers
// the status, the value and the node whose copy served it.
func getServed(base, name, key, consistency string) (int, string, string) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/v1/rdds/" + name + "/keys/" + key + "?consistency=" + consistency)
	if err != nil {
		return 0, "", ""
	}
	defer resp.Body.Close()
	var v struct {
		Value json.RawMessage `json:"value"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, string(v.Value), resp.Header.Get("X-Srdd-Served-By")
}

// TestCopyServesReadsAndTakesOver: a durable RDD on three nodes gets a
// copy on a second node, which checkpoints to its own disk; reads of any
// level through the copy's node are served by the copy. The owner's node
// is then stopped and its data directory deleted: the copy is promoted,
// every acknowledged write is read back through it, writes go on, and a
// new copy is made on the third node from a checkpoint streamed over the
// peer channel (the log before it is trimmed, and no node reads
// another's files).
func TestCopyServesReadsAndTakesOver(t *testing.T) {
	ms := startClusterWith(t, func(c *Config) {
		c.Durable.CheckpointEvery = 20
		c.Durable.Tick = 100 * time.Millisecond
	})
	base := ms[0].base()
	do(t, "POST", base+"/v1/rdds", `{"name":"fo","replicas":2}`, 201)
	owner, copyNode := ownerAndCopy(t, ms, waitCopies(t, base, "fo", 2, false))
	put := func(m *member, k int) error {
		st, b := rawDo("PUT", m.base()+"/v1/rdds/fo/keys/"+fmt.Sprint("k", k), fmt.Sprintf(`{"v":%d}`, k))
		if st != 204 {
			return fmt.Errorf("put k%d through %s: %d %s", k, m.id, st, b)
		}
		return nil
	}
	for k := 0; k < 60; k++ {
		if err := put(ms[k%3], k); err != nil {
			t.Fatal(err)
		}
	}
	// Both copies checkpoint (every 20 keys), so the log is trimmed.
	waitCopies(t, base, "fo", 2, true)
	// The listing through the owner has the copy's applied index, which
	// only the copy's node knows.
	if err := testutil.WaitFor(30*time.Second, func() (bool, error) {
		var l struct {
			RDDs []copiesView `json:"rdds"`
		}
		_ = json.Unmarshal(do(t, "GET", owner.base()+"/v1/rdds", "", 200), &l)
		for _, r := range l.RDDs {
			for _, c := range r.Copies {
				if c.Role == "copy" && c.Node == copyNode.id && c.AppliedIndex > 0 {
					return true, nil
				}
			}
		}
		return false, nil
	}); err != nil {
		t.Fatal("the listing through the owner never showed the copy's applied index")
	}

	// Stale and linearizable reads through the copy's node are served by
	// the copy; default ones by the owner (they show what it acknowledged).
	for level, want := range map[string]string{"stale": copyNode.id, "linearizable": copyNode.id, "default": owner.id} {
		st, val, by := getServed(copyNode.base(), "fo", "k59", level)
		if level != "stale" && (st != 200 || val != `{"v":59}`) {
			t.Fatalf("%s read of k59 through the copy's node: %d %s", level, st, val)
		}
		if st == 200 && by != want {
			t.Fatalf("%s read through %s was served by %q, want %s", level, copyNode.id, by, want)
		}
	}

	t.Logf("stopping %s (the owner) and deleting its data directory", owner.id)
	stopped := time.Now()
	owner.n.Close()
	owner.n = nil
	if err := os.RemoveAll(owner.dir); err != nil {
		t.Fatal(err)
	}
	var first time.Duration
	if err := testutil.WaitFor(time.Minute, func() (bool, error) {
		st, val, _ := getServed(copyNode.base(), "fo", "k59", "default")
		if st == 200 && val == `{"v":59}` {
			first = time.Since(stopped)
			return true, nil
		}
		return false, nil
	}); err != nil {
		t.Fatal("no read succeeded after the owner was lost")
	}
	t.Logf("first read %s after the owner stopped", first)
	for k := 0; k < 60; k++ {
		if st, val, _ := getServed(copyNode.base(), "fo", fmt.Sprint("k", k), "default"); st != 200 || val != fmt.Sprintf(`{"v":%d}`, k) {
			t.Fatalf("acknowledged write k%d after failover: %d %s", k, st, val)
		}
	}
	survivors := []*member{}
	for _, m := range ms {
		if m != owner {
			survivors = append(survivors, m)
		}
	}
	if err := testutil.WaitFor(time.Minute, func() (bool, error) { return put(survivors[1], 60) == nil, nil }); err != nil {
		t.Fatal("no write succeeded after the owner was lost")
	}
	v := waitCopies(t, copyNode.base(), "fo", 2, true)
	if v.Node != copyNode.id {
		t.Fatalf("owner after failover: %s, want the promoted copy on %s", v.Node, copyNode.id)
	}
	third := survivors[0]
	if third == copyNode {
		third = survivors[1]
	}
	for _, level := range []string{"linearizable", "stale"} {
		if err := testutil.WaitFor(30*time.Second, func() (bool, error) {
			st, val, by := getServed(third.base(), "fo", "k60", level)
			return st == 200 && val == `{"v":60}` && by == third.id, nil
		}); err != nil {
			t.Fatalf("the new copy on %s never served a %s read of k60", third.id, level)
		}
	}
	for _, m := range survivors {
		ents, _ := os.ReadDir(m.dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Logf("%s data dir: %s", m.id, strings.Join(names, " "))
	}
}

// TestCopyTakesABulkLoad: rows of a bulk load are in no log entry; the
// copy rebuilds from the owner's checkpoint that holds them (streamed
// over the peer channel) and then serves them.
func TestCopyTakesABulkLoad(t *testing.T) {
	spark(t) // bulk loads need Spark
	ms := startCluster(t)
	base := ms[0].base()
	do(t, "POST", base+"/v1/rdds", `{"name":"bl","replicas":2}`, 201)
	owner, copyNode := ownerAndCopy(t, ms, waitCopies(t, base, "bl", 2, false))
	files := owner.dir + "/files"
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	var lines strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&lines, "{\"key\":\"row%d\",\"value\":%d}\n", i, i)
	}
	if err := os.WriteFile(files+"/rows.jsonl", []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	do(t, "POST", owner.base()+"/v1/rdds/bl/load", `{"path":"`+files+`/rows.jsonl"}`, 202)
	if err := testutil.WaitFor(time.Minute, func() (bool, error) {
		st, val, by := getServed(copyNode.base(), "bl", "row49", "linearizable")
		return st == 200 && val == "49" && by == copyNode.id, nil
	}); err != nil {
		st, val, by := getServed(copyNode.base(), "bl", "row49", "linearizable")
		t.Fatalf("the copy on %s never served a loaded row: %d %s by %q", copyNode.id, st, val, by)
	}
}
