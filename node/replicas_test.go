package node

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/testutil"
)

// replicaView is what GET /v1/rdds[/{name}] says of an RDD's copies.
type replicaView struct {
	Name     string `json:"name"`
	Node     string `json:"node"`
	Replicas int    `json:"replicas"`
	Copies   []struct {
		Node    string `json:"node"`
		Session int64  `json:"session"`
	} `json:"copies"`
	UnderReplicated bool   `json:"under_replicated"`
	AtRisk          string `json:"at_risk"`
}

func replicasOf(t *testing.T, base, name string) replicaView {
	t.Helper()
	var v replicaView
	if err := json.Unmarshal(do(t, "GET", base+"/v1/rdds/"+name, "", 200), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// listed is GET /v1/rdds by name.
func listed(t *testing.T, base string) map[string]replicaView {
	t.Helper()
	var l struct{ RDDs []replicaView }
	if err := json.Unmarshal(do(t, "GET", base+"/v1/rdds", "", 200), &l); err != nil {
		t.Fatal(err)
	}
	out := map[string]replicaView{}
	for _, r := range l.RDDs {
		out[r.Name] = r
	}
	return out
}

// refusedCreate posts body to base's POST /v1/rdds and checks it answers
// 400 invalid with a message holding each of want.
func refusedCreate(t *testing.T, base, body string, want ...string) {
	t.Helper()
	b := do(t, "POST", base+"/v1/rdds", body, 400)
	if errorCode(t, b) != "invalid" {
		t.Fatalf("%s: %s, want code invalid", body, b)
	}
	for _, w := range want {
		if !strings.Contains(string(b), w) {
			t.Fatalf("%s: %s, want it to say %q", body, b, w)
		}
	}
}

// TestReplicasOnOneNode: on one node every RDD wants one copy, has it,
// and is not at risk (there is no other machine to lose it to); a
// create asking for 2 copies, or with a field the route does not take,
// answers 400 and creates nothing.
func TestReplicasOnOneNode(t *testing.T) {
	_, base := sharedNode(t)
	t.Cleanup(func() {
		rawDo("DELETE", base+"/v1/rdds/rep_one", "")
		rawDo("DELETE", base+"/v1/rdds/rep_one_mem", "")
	})
	do(t, "POST", base+"/v1/rdds", `{"name":"rep_one","session":0}`, 201)
	do(t, "POST", base+"/v1/rdds", `{"name":"rep_one_mem","session":0,"mode":"memory","replicas":1}`, 201)
	for _, name := range []string{"rep_one", "rep_one_mem"} {
		v := replicasOf(t, base, name)
		if v.Replicas != 1 || len(v.Copies) != 1 || v.Copies[0].Node != "n1" || v.Copies[0].Session != 0 || v.UnderReplicated || v.AtRisk != "" {
			t.Fatalf("%s on one node: %+v", name, v)
		}
	}
	refusedCreate(t, base, `{"name":"rep_two","session":0,"replicas":2}`, "replicas must be between 1 and 1 (the cluster's node count)")
	refusedCreate(t, base, `{"name":"rep_two","session":0,"replicas":0}`, "between 1 and 1")
	refusedCreate(t, base, `{"name":"rep_two","session":0,"replica":1}`, `unknown field \"replica\"`)
	do(t, "GET", base+"/v1/rdds/rep_two", "", 404)
	if v, ok := metricValue(string(do(t, "GET", base+"/metrics", "", 200)), "srdd_rdds_at_risk"); !ok || v != 0 {
		t.Fatalf("srdd_rdds_at_risk on one node = %v (exported: %v), want 0", v, ok)
	}
}

// TestReplicasOnThreeNodes: on three nodes with the default checkpoint
// URI (each node's own DATA-DIR/checkpoints), a durable RDD wants 2
// copies by default and gets them, on two nodes (3 when it asks for 3);
// one that asks for 1 is reported at risk, by every node's listing and
// srdd_rdds_at_risk; a memory RDD wants 1 and is not at risk. Asking for
// more copies than nodes answers 400 naming the limit; a body with an
// unknown field changes nothing, not even the default session a create
// would start.
func TestReplicasOnThreeNodes(t *testing.T) {
	ms := startCluster(t)
	base := ms[0].base()
	sessionsBefore := string(do(t, "GET", base+"/sessions", "", 200))
	refusedCreate(t, base, `{"name":"rep_typo","replica":2}`, `unknown field \"replica\"`, "name, session, mode, replicas")
	refusedCreate(t, base, `{"name":"rep_four","replicas":4}`, "replicas must be between 1 and 3 (the cluster's node count)")
	refusedCreate(t, base, `{"name":"rep_none","replicas":-1}`, "between 1 and 3")
	for _, m := range ms {
		do(t, "GET", m.base()+"/v1/rdds/rep_typo", "", 404)
		do(t, "GET", m.base()+"/v1/rdds/rep_four", "", 404)
	}
	if after := string(do(t, "GET", base+"/sessions", "", 200)); after != sessionsBefore {
		t.Fatalf("refused creates changed the sessions:\n%s\n%s", sessionsBefore, after)
	}

	do(t, "POST", base+"/v1/rdds", `{"name":"rep_dur"}`, 201)
	do(t, "POST", base+"/v1/rdds", `{"name":"rep_three","mode":"durable","replicas":3}`, 201)
	do(t, "POST", base+"/v1/rdds", `{"name":"rep_single","replicas":1}`, 201)
	do(t, "POST", base+"/v1/rdds", `{"name":"rep_mem","mode":"memory"}`, 201)
	want := map[string]replicaView{
		"rep_dur":    {Replicas: 2},
		"rep_three":  {Replicas: 3},
		"rep_single": {Replicas: 1, AtRisk: "one copy on node-local storage"},
		"rep_mem":    {Replicas: 1},
	}
	good := func(v replicaView) bool {
		w := want[v.Name]
		nodes := map[string]bool{}
		for _, c := range v.Copies {
			nodes[c.Node] = true
		}
		return v.Replicas == w.Replicas && !v.UnderReplicated && v.AtRisk == w.AtRisk &&
			len(v.Copies) == w.Replicas && len(nodes) == w.Replicas && v.Copies[0].Node == v.Node
	}
	// Copies on other nodes are made after the create answers.
	if err := testutil.WaitFor(time.Minute, func() (bool, error) {
		for _, m := range ms {
			l := listed(t, m.base())
			for name := range want {
				if !good(l[name]) {
					return false, nil
				}
			}
		}
		return true, nil
	}); err != nil {
		for _, m := range ms {
			t.Logf("on %s: %+v", m.id, listed(t, m.base()))
		}
		t.Fatal("the copies never matched what the RDDs want")
	}
	for _, m := range ms {
		metrics := string(do(t, "GET", m.base()+"/metrics", "", 200))
		if v, ok := metricValue(metrics, "srdd_rdds_at_risk"); !ok || v != 1 {
			t.Errorf("srdd_rdds_at_risk on %s = %v (exported: %v), want 1", m.id, v, ok)
		}
	}
	for name := range want {
		if v := replicasOf(t, base, name); !good(v) {
			t.Errorf("GET /v1/rdds/%s: %+v", name, v)
		}
	}
}
