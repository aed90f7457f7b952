package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/testutil"
)

// testAdmitted are admitted by every bootstrapping test node (--admit).
var testAdmitted = []string{"n2", "n3", "n4", "n5"}

// member is one node of a test cluster with stable addresses and data dir.
type member struct {
	id, http, raft, dir string
	n                   *Node
	tweak               func(*Config) // applied last by cfg, if set
	// The peer TLS files of the last cfg (peer_helpers_test.go).
	peerCert, peerKey, peerCA string
}

func (m *member) cfg(t testing.TB, join []string) Config {
	c := testConfig(t, m.dir)
	c.NodeID, c.HTTPAddr, c.RaftAddr, c.Join = m.id, m.http, m.raft, join
	c.Bootstrap = len(join) == 0
	if c.Bootstrap {
		c.Admit = testAdmitted // the IDs this package's tests join with
	}
	c.Raft.SnapshotThreshold, c.Raft.SnapshotInterval, c.Raft.TrailingLogs = 8, 200*time.Millisecond, 4
	c.Raft.DownAfter = time.Second
	// Less eager than the single-node tests: a loaded 2-core machine
	// running -race must not see leaders come and go on their own.
	c.Raft.HeartbeatTimeout, c.Raft.ElectionTimeout = 500*time.Millisecond, 500*time.Millisecond
	withPeerTLS(t, &c)
	m.peerCert, m.peerKey, m.peerCA = c.PeerCert, c.PeerKey, c.PeerCA
	if m.tweak != nil {
		m.tweak(&c)
	}
	return c
}

func (m *member) start(t testing.TB, join []string) {
	t.Helper()
	n, err := Start(m.cfg(t, join))
	if err != nil {
		t.Fatalf("start %s: %v", m.id, err)
	}
	m.n = n
}

func (m *member) base() string { return "http://" + m.http }

// ownerAndOther picks, of ms, the member with id node (where a session or
// batch runs) and the first other one.
func ownerAndOther(ms []*member, node string) (owner, other *member) {
	for _, m := range ms {
		if m.id == node {
			owner = m
		} else if other == nil {
			other = m
		}
	}
	return owner, other
}

// startCluster starts three nodes: n1 bootstraps, n2 and n3 join through it.
func startCluster(t testing.TB) []*member { return startClusterWith(t, nil) }

// startClusterWith is startCluster with tweak applied to every config.
func startClusterWith(t testing.TB, tweak func(*Config)) []*member {
	t.Helper()
	ms := make([]*member, 3)
	for i := range ms {
		ms[i] = &member{id: fmt.Sprintf("n%d", i+1), http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: t.TempDir(), tweak: tweak}
	}
	ms[0].start(t, nil)
	ms[1].start(t, []string{ms[0].http})
	ms[2].start(t, []string{ms[0].http})
	t.Cleanup(func() {
		for _, m := range ms {
			if m.n != nil {
				m.n.Close()
			}
		}
	})
	waitMembers(t, ms, 3)
	return ms
}

// waitMembers waits until every running member sees want up voters.
func waitMembers(t testing.TB, ms []*member, want int) {
	t.Helper()
	err := testutil.WaitFor(30*time.Second, func() (bool, error) {
		for _, m := range ms {
			if m.n == nil {
				continue
			}
			up := 0
			for _, s := range m.n.Registry.ClusterStatus().Members {
				if s.Status == cluster.NodeUp && s.Suffrage == "voter" {
					up++
				}
			}
			if up != want {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("members never agreed on %d up voters: %v", want, err)
	}
}

// waitSameState waits until all running members have the same registry.
func waitSameState(t *testing.T, ms []*member) {
	t.Helper()
	err := testutil.WaitFor(30*time.Second, func() (bool, error) {
		var h string
		for _, m := range ms {
			if m.n == nil {
				continue
			}
			if x := m.n.Registry.StateHash(); h == "" {
				h = x
			} else if x != h {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		var views []string
		for _, m := range ms {
			if m.n != nil {
				st := m.n.Registry.Stats()
				views = append(views, fmt.Sprintf("%s applied=%d state=%s term=%s last_log=%s hash=%.8s leader=%v",
					m.id, m.n.Registry.AppliedIndex(), st["state"], st["term"], st["last_log_index"], m.n.Registry.StateHash(), m.n.Registry.IsLeader()))
			}
		}
		t.Fatalf("registries differ: %v\n%s", err, strings.Join(views, "\n"))
	}
}

func leaderOf(ms []*member) *member {
	for _, m := range ms {
		if m.n != nil && m.n.Registry.IsLeader() {
			return m
		}
	}
	return nil
}

// createRecord creates a named session record through m. Like a careful
// client it retries a write whose outcome was lost (a leader change), and
// counts "exists" on a retry as its own earlier attempt having landed.
func createRecord(m *member, name string) (int64, error) {
	for attempt := 0; ; attempt++ {
		v, err := m.n.Registry.Apply(cluster.Command{Type: cluster.CmdCreateSession,
			Body: &cluster.CreateSession{Name: name, Kind: "pyspark", Node: "offline"}})
		switch {
		case err == nil:
			return v.(int64), nil
		case attempt > 0 && errors.Is(err, cluster.ErrSessionExists):
			if rec, ok := m.n.Registry.SessionByName(name); ok {
				return rec.ID, nil
			}
		case attempt < 5 && (errors.Is(err, cluster.ErrOutcomeUnknown) || errors.Is(err, cluster.ErrNoLeader)):
			time.Sleep(200 * time.Millisecond)
			continue
		}
		return 0, err
	}
}

// applyRetrying applies a command that fails anyway (to check its error),
// retrying while the outcome is lost to a leader change.
func applyRetrying(m *member, c cluster.Command) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if _, err = m.n.Registry.Apply(c); !errors.Is(err, cluster.ErrOutcomeUnknown) && !errors.Is(err, cluster.ErrNoLeader) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

func TestThreeNodeRegistry(t *testing.T) {
	ms := startCluster(t)

	// Writes through any node; a follower reads its own write at once.
	for i, m := range ms {
		id, err := createRecord(m, fmt.Sprintf("rec-%d", i))
		if err != nil {
			t.Fatalf("write through %s: %v", m.id, err)
		}
		if _, ok := m.n.Registry.Session(id); !ok {
			t.Fatalf("%s does not see its own write %d", m.id, id)
		}
	}
	// The leader's FSM errors reach a follower as the same sentinel.
	follower := ms[1]
	if follower.n.Registry.IsLeader() {
		follower = ms[2]
	}
	err := applyRetrying(follower, cluster.Command{Type: cluster.CmdCreateRDD, Body: &cluster.CreateRDD{Name: "x", SessionID: 999}})
	if !errors.Is(err, cluster.ErrSessionNotFound) {
		t.Fatalf("FSM error through a follower: %v", err)
	}
	err = applyRetrying(follower, cluster.Command{Type: cluster.CmdCreateSession, Body: &cluster.CreateSession{Name: "rec-0"}})
	if !errors.Is(err, cluster.ErrSessionExists) {
		t.Fatalf("duplicate name through a follower: %v", err)
	}
	waitSameState(t, ms)

	// GET /v1/cluster on any node shows all members, one leader.
	var st cluster.Status
	_ = json.Unmarshal(do(t, "GET", ms[2].base()+"/v1/cluster", "", 200), &st)
	leaders := 0
	for _, m := range st.Members {
		if m.Leader {
			leaders++
		}
	}
	if len(st.Members) != 3 || leaders != 1 || st.Leader == "" {
		t.Fatalf("cluster status = %+v", st)
	}
	_ = json.Unmarshal(do(t, "GET", follower.base()+"/v1/cluster?consistency=strong", "", 200), &st)
	if st.Node != leaderOf(ms).id {
		t.Fatalf("strong cluster read answered by %s, not the leader", st.Node)
	}
	// The strong read left a barrier as the newest entry: a follower asked
	// at once about a session created through the leader must still catch
	// up and find it (it could never "apply" the barrier itself).
	v, err := leaderOf(ms).n.Registry.Apply(cluster.Command{Type: cluster.CmdCreateSession,
		Body: &cluster.CreateSession{Name: "fresh", Kind: "pyspark", Node: follower.id}})
	if err != nil {
		t.Fatal(err)
	}
	id := v.(int64)
	var got struct{ Name string }
	_ = json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/sessions/%d", follower.base(), id), "", 200), &got)
	if got.Name != "fresh" {
		t.Fatalf("follower's view of a new session = %+v", got)
	}

	// Bad input through the HTTP API changes nothing and is 4xx.
	// With peer TLS, joins are not served on the client port at all.
	do(t, "POST", ms[0].base()+"/v1/cluster/join", `{"id":"x"}`, 403)
	do(t, "DELETE", ms[0].base()+"/v1/cluster/nodes/nope", "", 404)

	// Kill the leader: a new one is elected, writes go on, the old leader
	// is marked down, and on restart it catches up.
	old := leaderOf(ms)
	began := time.Now()
	old.n.Close()
	old.n = nil
	var nl *member
	if err := testutil.WaitFor(20*time.Second, func() (bool, error) {
		nl = leaderOf(ms)
		return nl != nil, nil
	}); err != nil {
		t.Fatalf("no new leader after the leader stopped: %v", err)
	}
	t.Logf("new leader %s after %s", nl.id, time.Since(began))
	for _, m := range ms {
		if m.n != nil {
			if _, err := createRecord(m, "after-failover-"+m.id); err != nil {
				t.Fatalf("write through %s after failover: %v", m.id, err)
			}
		}
	}
	if err := testutil.WaitFor(20*time.Second, func() (bool, error) {
		mm, _ := nl.n.Registry.Member(old.id)
		return mm.Status == cluster.NodeDown, nil
	}); err != nil {
		t.Fatalf("old leader %s never marked down", old.id)
	}
	old.start(t, nil)
	waitMembers(t, ms, 3)
	waitSameState(t, ms)
	if _, ok := old.n.Registry.SessionByName("after-failover-" + nl.id); !ok {
		t.Fatal("restarted node did not catch up")
	}

	// A node cut off from the others cannot take registry writes; after
	// healing it catches up.
	cut := ms[0]
	if cut.n.Registry.IsLeader() {
		cut = ms[1]
	}
	cut.n.Registry.Isolate(true)
	// One proposal, not createRecord's retries: each waits out the
	// node's LeaderWait before it reports that no leader is reachable.
	if _, err := cut.n.Registry.Apply(cluster.Command{Type: cluster.CmdCreateSession,
		Body: &cluster.CreateSession{Name: "from-the-island", Kind: "pyspark", Node: "offline"}}); !errors.Is(err, cluster.ErrNoLeader) {
		t.Fatalf("a registry write through an isolated node: %v, want no leader", err)
	}
	for _, m := range ms {
		if m != cut {
			if _, err := createRecord(m, "while-cut-"+m.id); err != nil {
				t.Fatalf("majority write through %s: %v", m.id, err)
			}
		}
	}
	cut.n.Registry.Isolate(false)
	waitSameState(t, ms)
	if _, ok := cut.n.Registry.SessionByName("from-the-island"); ok {
		t.Fatal("a write refused to the isolated node appeared anyway")
	}

	// Remove a node, wipe it, and let it join again: it catches up from a
	// snapshot (only 4 log entries trail each snapshot).
	gone := ms[2]
	if gone.n.Registry.IsLeader() {
		gone = ms[1]
	}
	do(t, "DELETE", ms[0].base()+"/v1/cluster/nodes/"+gone.id, "", 204)
	gone.n.Close()
	gone.n = nil
	// With its old state it may not come back.
	stale := gone.cfg(t, []string{ms[0].http})
	stale.LeaderTimeout = 3 * time.Second
	// It restarts from its old Raft state (which ends with its removal), so
	// it neither joins nor hears from a leader.
	if n, err := Start(stale); err == nil {
		n.Close()
		t.Fatal("a removed node with its old state came back")
	} else if !strings.Contains(err.Error(), "no raft leader") {
		t.Fatalf("removed node with old state: %v", err)
	}
	if err := os.RemoveAll(gone.dir); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ { // enough entries for several snapshots
		if _, err := createRecord(ms[0], fmt.Sprintf("bulk-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// A removed node needs a new admission (one is used once).
	if err := ms[0].n.Registry.Admit(gone.id, true, "test"); err != nil {
		t.Fatal(err)
	}
	gone.start(t, []string{ms[0].http})
	waitMembers(t, ms, 3)
	waitSameState(t, ms)
	if idx := gone.n.Registry.Stats()["last_snapshot_index"]; idx == "0" || idx == "" {
		t.Fatalf("rejoined node did not install a snapshot (last_snapshot_index %q)", idx)
	}
	if _, ok := gone.n.Registry.SessionByName("bulk-19"); !ok {
		t.Fatal("rejoined node lacks recent entries")
	}
}

// Requests through any node give the owner's answers; a dead owner gives a
// clear 503, then its shared RDDs are reported lost.
func TestThreeNodeForwarding(t *testing.T) {
	spark(t)
	ms := startCluster(t)
	// Placement: all nodes are empty, so a follower with the smallest id.
	var s struct {
		ID   int64  `json:"id"`
		Node string `json:"node"`
	}
	leader := leaderOf(ms)
	want := "n1"
	if leader.id == "n1" {
		want = "n2"
	}
	_ = json.Unmarshal(do(t, "POST", ms[2].base()+"/sessions", `{"kind":"pyspark"}`, 201), &s)
	if s.Node != want {
		t.Fatalf("session placed on %s, want the least-loaded follower %s", s.Node, want)
	}
	var owner *member
	for _, m := range ms {
		if m.id == s.Node {
			owner = m
		}
	}
	if err := createSessionWait(ms[1].base(), s.ID); err != nil {
		t.Fatal(err)
	}
	do(t, "POST", ms[2].base()+"/v1/rdds", fmt.Sprintf(`{"name":"states","session":%d,"mode":"memory"}`, s.ID), 201)
	do(t, "PUT", ms[1].base()+"/v1/rdds/states/keys/ak", `"Alaska"`, 204)
	do(t, "POST", ms[2].base()+"/v1/rdds/states/set", `{"items":{"hi":"Hawaii","ca":"California"}}`, 200)
	for _, m := range ms {
		jsonEq(t, do(t, "GET", m.base()+"/v1/rdds/states/keys/ak", "", 200), `{"key":"ak","value":"Alaska"}`)
		b := do(t, "GET", m.base()+"/v1/rdds/states/keys/nope", "", 404)
		if !strings.Contains(string(b), "key_not_found") {
			t.Fatalf("404 through %s is not the owner's: %s", m.id, b)
		}
		var l struct {
			RDDs []struct {
				Name string
				Keys *int64
			}
		}
		_ = json.Unmarshal(do(t, "GET", m.base()+"/v1/rdds", "", 200), &l)
		if len(l.RDDs) != 1 || l.RDDs[0].Keys == nil || *l.RDDs[0].Keys != 3 {
			t.Fatalf("listing through %s = %+v", m.id, l.RDDs)
		}
		var sl struct {
			Sessions []struct{ State string } `json:"sessions"`
		}
		_ = json.Unmarshal(do(t, "GET", m.base()+"/sessions", "", 200), &sl)
		if len(sl.Sessions) != 1 || sl.Sessions[0].State != "idle" {
			t.Fatalf("session list through %s = %+v", m.id, sl.Sessions)
		}
	}
	// Statements through a follower run on the owner.
	if got := textOf(t, run(t, ms[2].base(), s.ID, "states.get('hi')")); got != "'Hawaii'" {
		t.Fatalf("statement through n3 = %s", got)
	}
	// Bad input is rejected wherever placement would send it.
	do(t, "POST", ms[0].base()+"/sessions", `{"kind":"sparkr"}`, 400)

	// Stop the owner: a clear 503 naming the rdd and the node, not a hang.
	owner.n.Close()
	owner.n = nil
	var other *member
	for _, m := range ms {
		if m.n != nil && other == nil {
			other = m
		}
	}
	st, b := rawDo("GET", other.base()+"/v1/rdds/states/keys/ak", "")
	if (st != 503 || !strings.Contains(string(b), `shared rdd \"states\"`) || !strings.Contains(string(b), owner.id)) && st != 410 {
		t.Fatalf("get with the owner gone: %d %s", st, b)
	}
	// Once the leader marks the owner down, the rdd is reported lost.
	if err := testutil.WaitFor(30*time.Second, func() (bool, error) {
		// 503 (owner unreachable) until the leader marks it down.
		var info struct{ State string }
		st, b := rawDo("GET", other.base()+"/v1/rdds/states", "")
		if st != 200 && st != 503 {
			return false, fmt.Errorf("describe: %d %s", st, b)
		}
		_ = json.Unmarshal(b, &info)
		return info.State == "lost", nil
	}); err != nil {
		t.Fatalf("rdd on a down node never reported lost: %v", err)
	}
	do(t, "GET", other.base()+"/v1/rdds/states/keys/ak", "", 410)
}

func createSessionWait(base string, id int64) error {
	return testutil.WaitFor(4*time.Minute, func() (bool, error) {
		_, b := rawDo("GET", fmt.Sprintf("%s/sessions/%d/state", base, id), "")
		if strings.Contains(string(b), `"error"`) || strings.Contains(string(b), `"dead"`) {
			return false, fmt.Errorf("session failed: %s", b)
		}
		return strings.Contains(string(b), `"idle"`), nil
	})
}

// A non-voter leaves the cluster when it stops and wipes its Raft state,
// so it can join again later; voters stay members across restarts.
func TestNonVoterLeavesOnStop(t *testing.T) {
	ms := startCluster(t)
	nv := &member{id: "nv", http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: t.TempDir()}
	c := nv.cfg(t, []string{ms[1].http})
	c.NonVoter = true
	admit := func() {
		t.Helper()
		if err := ms[1].n.Registry.Admit("nv", false, "test"); err != nil {
			t.Fatal(err)
		}
	}
	admit()
	n, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	suffrage := func() string {
		for _, m := range ms[0].n.Registry.ClusterStatus().Members {
			if m.ID == "nv" {
				return m.Suffrage + "/" + m.Status
			}
		}
		return ""
	}
	if err := testutil.WaitFor(10*time.Second, func() (bool, error) { return suffrage() == "nonvoter/up", nil }); err != nil {
		t.Fatalf("non-voter after join: %q", suffrage())
	}
	n.Close()
	if got := suffrage(); got != "/removed" {
		t.Fatalf("non-voter after stop: %q, want removed from the configuration", got)
	}
	if _, err := os.Stat(nv.dir + "/raft"); !os.IsNotExist(err) {
		t.Fatalf("non-voter kept its raft state: %v", err)
	}
	// It joins again from scratch, with a new admission (one is used once).
	admit()
	n, err = Start(c)
	if err != nil {
		t.Fatalf("rejoin after leave: %v", err)
	}
	defer n.Close()
	if err := testutil.WaitFor(10*time.Second, func() (bool, error) { return suffrage() == "nonvoter/up", nil }); err != nil {
		t.Fatalf("non-voter after rejoin: %q", suffrage())
	}
	waitSameState(t, append(ms, &member{id: "nv", n: n}))
}

// An explicit --bootstrap on a node that already belongs to a cluster is
// refused; the same node restarts fine without it.
func TestBootstrapRefusedOnClusteredNode(t *testing.T) {
	ms := startCluster(t)
	m := ms[2]
	m.n.Close()
	m.n = nil
	c := m.cfg(t, nil)
	c.Bootstrap, c.StrictBootstrap = true, true
	if n, err := Start(c); err == nil {
		n.Close()
		t.Fatal("explicit bootstrap on a clustered node was accepted")
	} else if !strings.Contains(err.Error(), "refusing to bootstrap") {
		t.Fatalf("explicit bootstrap: %v", err)
	}
	m.start(t, nil) // default flags: restarts from its Raft state
	waitMembers(t, ms, 3)
	waitSameState(t, ms)
}

// Removing the current leader through a follower: the leader hands over,
// the new leader records the removal, sessions on it become dead.
func TestRemoveLeader(t *testing.T) {
	ms := startCluster(t)
	old := leaderOf(ms)
	id, err := old.n.Registry.Apply(cluster.Command{Type: cluster.CmdCreateSession, Body: &cluster.CreateSession{Kind: "pyspark", Node: old.id}})
	if err != nil {
		t.Fatal(err)
	}
	var via *member
	for _, m := range ms {
		if m != old {
			via = m
			break
		}
	}
	do(t, "DELETE", via.base()+"/v1/cluster/nodes/"+old.id, "", 204)
	if err := testutil.WaitFor(20*time.Second, func() (bool, error) {
		m, _ := via.n.Registry.Member(old.id)
		s, _ := via.n.Registry.Session(id.(int64))
		nl := leaderOf(ms)
		return m.Status == cluster.NodeRemoved && s.Status == cluster.SessionDead && nl != nil && nl != old, nil
	}); err != nil {
		m, _ := via.n.Registry.Member(old.id)
		t.Fatalf("after removing the leader: member %+v: %v", m, err)
	}
}

// With CSRF protection on, the nodes' own calls (join, forwarded writes)
// still work; clients without the header are refused.
func TestCSRFInACluster(t *testing.T) {
	_, _, follower := startPair(t, "CSRF protection", func(c *Config) { c.CSRFProtection = true })
	if _, err := createRecord(follower, "through-follower"); err != nil {
		t.Fatalf("forwarded write with CSRF protection on: %v", err)
	}
	do(t, "POST", follower.base()+"/v1/rdds", `{"name":"x"}`, 400)
}

// startPair starts two nodes, the second joining the first, each with
// tweak applied to its config, and returns them and the follower.
func startPair(t *testing.T, what string, tweak func(*Config)) (a, b, follower *member) {
	t.Helper()
	a = &member{id: "n1", http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: t.TempDir()}
	b = &member{id: "n2", http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: t.TempDir()}
	for _, m := range []*member{a, b} {
		var join []string
		if m == b {
			join = []string{a.http}
		}
		var n *Node
		var err error
		for try := 0; ; try++ {
			c := m.cfg(t, join)
			tweak(&c)
			if n, err = Start(c); err == nil {
				break
			}
			// A free port picked before the node binds it can be taken
			// by another package's test meanwhile: pick again.
			if try == 3 || !strings.Contains(err.Error(), "address already in use") {
				t.Fatalf("start %s with %s: %v", m.id, what, err)
			}
			m.http, m.raft, m.dir = testutil.FreeAddr(t), testutil.FreeAddr(t), t.TempDir()
		}
		m.n = n
		t.Cleanup(n.Close)
	}
	follower = b
	if b.n.Registry.IsLeader() {
		follower = a
	}
	return a, b, follower
}

// With a cluster key, nodes join and forward writes; a client without the
// key cannot feed the registry directly, nor join or remove nodes.
func TestClusterKey(t *testing.T) {
	// Development mode: no peer TLS, the cluster key guards the routes.
	a, b, follower := startPair(t, "a cluster key", func(c *Config) { withoutPeerTLS(c); c.ClusterKey = "s3cret" })
	if _, err := createRecord(follower, "keyed"); err != nil {
		t.Fatalf("forwarded write with a cluster key: %v", err)
	}
	entry, err := cluster.Encode(cluster.Command{Type: cluster.CmdDropRDD, Body: &cluster.DropRDD{Name: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{a, b} {
		do(t, "POST", m.base()+cluster.ApplyPath, string(entry), 403)
		do(t, "GET", m.base()+cluster.IndexPath, "", 403)
		do(t, "POST", m.base()+"/v1/cluster/join", `{"id":"evil","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, 403)
		do(t, "DELETE", m.base()+"/v1/cluster/nodes/n2", "", 403)
		do(t, "GET", m.base()+"/v1/cluster", "", 200) // reading is for clients
	}
	if _, ok := a.n.Registry.Member("evil"); ok {
		t.Fatal("a join without the key was recorded")
	}
	// A joiner with the wrong key is refused.
	c := (&member{id: "n3", http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: t.TempDir()}).cfg(t, []string{a.http})
	withoutPeerTLS(&c)
	c.ClusterKey = "wrong"
	if n, err := Start(c); err == nil {
		n.Close()
		t.Fatal("a node with the wrong key joined")
	} else if !strings.Contains(err.Error(), "403") {
		t.Fatalf("wrong key: %v", err)
	}
}
