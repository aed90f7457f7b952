package node

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/srdd/srdd/cluster"
)

// TestForwardingHeadersAreInternal (docs/ARCHITECTURE.md, "Sessions hold
// no secret"): X-Srdd-Hops and X-Srdd-Placed are the nodes' own. From a
// client they have no effect: a hop count cannot make a node refuse to
// forward, and "placed" cannot skip placement. From a peer, a hop count
// that is not a whole number >= 0 is a 400.
func TestForwardingHeadersAreInternal(t *testing.T) {
	const key = "headers-cluster-key"
	// Development mode: the cluster key is what makes a caller a peer
	// (with peer TLS only the peer channel is, and the client port
	// refuses node-to-node calls: TestPeerTLSClusterRefusesIntruders).
	a, b, follower := startPair(t, "a cluster key", func(c *Config) { withoutPeerTLS(c); c.ClusterKey = key })
	waitMembers(t, []*member{a, b}, 2)
	leader := a
	if follower == a {
		leader = b
	}
	strong := follower.base() + "/v1/cluster?consistency=strong"
	for _, hops := range []string{"2", "99", "-1000", "junk"} {
		if st, _, body := authDo2Headers("GET", strong, "", map[string]string{"X-Srdd-Hops": hops}); st != 200 {
			t.Errorf("a client's X-Srdd-Hops: %s made the follower's strong read %d: %s", hops, st, body)
		}
	}
	for hops, want := range map[string]int{"-1": 400, "junk": 400, "1": 200} {
		if st, _, body := authDo2Headers("GET", strong, "", map[string]string{"X-Srdd-Hops": hops, cluster.KeyHeader: key}); st != want {
			t.Errorf("a peer's X-Srdd-Hops: %s: %d, want %d: %s", hops, st, want, body)
		}
	}

	// Placement puts a new session on the follower (equal load, the
	// leader last); a client's X-Srdd-Placed must not keep it on the
	// leader.
	if p := leader.n.Registry.Placement(); len(p) == 0 || p[0] != follower.id {
		t.Fatalf("placement %v, want %s first", p, follower.id)
	}
	// Nor may ?scope=local, which asks for this node's view of a read.
	for _, c := range []struct {
		what, path string
		headers    map[string]string
	}{
		{"X-Srdd-Placed", "/sessions", map[string]string{"X-Srdd-Placed": "1"}},
		{"?scope=local", "/sessions?scope=local", nil},
	} {
		if p := leader.n.Registry.Placement(); len(p) == 0 || p[0] != follower.id {
			t.Fatalf("placement %v, want %s first", p, follower.id)
		}
		st, _, body := authDo2Headers("POST", leader.base()+c.path, `{"kind":"pyspark"}`, c.headers)
		if st != 201 {
			t.Fatalf("create session: %d %s", st, body)
		}
		var s struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(body, &s); err != nil {
			t.Fatal(err)
		}
		rec, ok := leader.n.Registry.Session(s.ID)
		if !ok {
			t.Fatalf("session %d not in the registry", s.ID)
		}
		if st, _, b := authDo2Headers("DELETE", fmt.Sprintf("%s/sessions/%d", leader.base(), s.ID), "", nil); st != 200 {
			t.Errorf("delete session: %d %s", st, b)
		}
		if rec.Node != follower.id {
			t.Fatalf("a client's %s kept the session on %s, placement chose %s", c.what, rec.Node, follower.id)
		}
	}
}
