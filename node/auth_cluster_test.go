package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/testutil"
)

// TestAuthInACluster: calls forwarded to the node that owns a session
// keep their principal (vouched for with the cluster key), a client
// cannot vouch for itself, and a node with a users file joins only with
// the cluster key.
func TestAuthInACluster(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.json")
	tokens := writeUsers(t, users, map[string][]string{"ana": {"code"}, "sam": {"code"}, "root": {"admin"}}, nil)
	a := &member{id: "n1", http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: t.TempDir()}
	b := &member{id: "n2", http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: t.TempDir()}
	noKey := b.cfg(t, []string{a.http})
	withoutPeerTLS(&noKey)
	noKey.AuthFile = users
	if _, err := Start(noKey); err == nil || !strings.Contains(err.Error(), "peer TLS") {
		t.Fatalf("a node with a users file joined without peer TLS or the cluster key: %v", err)
	}
	for _, m := range []*member{a, b} {
		var join []string
		if m == b {
			join = []string{a.http}
		}
		c := m.cfg(t, join)
		c.AuthFile = users // peer TLS (member.cfg) proves the nodes
		n, err := Start(c)
		if err != nil {
			t.Fatalf("start %s: %v", m.id, err)
		}
		m.n = n
		defer n.Close()
	}
	waitMembers(t, []*member{a, b}, 2)

	var sess struct {
		ID   int64  `json:"id"`
		Node string `json:"node"`
	}
	postCreated(t, a.base()+"/sessions", `{"kind":"pyspark"}`, tokens["ana"], &sess)
	// Every call below goes through the node that does not run it.
	other := a
	if sess.Node == a.id {
		other = b
	}
	sp := fmt.Sprintf("%s/sessions/%d", other.base(), sess.ID)
	err := testutil.WaitFor(4*time.Minute, func() (bool, error) {
		_, _, b := authDo("GET", sp+"/state", "", tokens["ana"])
		if strings.Contains(string(b), `"dead"`) || strings.Contains(string(b), `"error"`) {
			return false, fmt.Errorf("session failed: %s", b)
		}
		return strings.Contains(string(b), `"idle"`), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, url, body, cred string, want int) []byte {
		t.Helper()
		st, _, b := authDo(method, url, body, cred)
		if st != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, url, st, want, b)
		}
		return b
	}
	call("POST", sp+"/statements", `{"code":"1+1"}`, tokens["ana"], 201)
	call("POST", sp+"/statements", `{"code":"1+1"}`, tokens["sam"], 403)
	call("GET", sp, "", tokens["sam"], 403)
	call("GET", sp, "", tokens["root"], 200)
	call("GET", sp, "", "", 401)
	// The cluster-wide listing asks the owner with the caller's credentials.
	if b := call("GET", other.base()+"/sessions", "", tokens["sam"], 200); !strings.Contains(string(b), `"owner":"ana"`) {
		t.Fatalf("listing through %s: %s", other.id, b)
	}
	// Listings are open to every user; the logs in them are not (issue
	// 25): sam, who may not view ana's session, sees "log": [], ana sees
	// her interpreter's output (the fake's or PySpark's start-up lines).
	if err := testutil.WaitFor(time.Minute, func() (bool, error) {
		_, _, b := authDo("GET", sp+"/log?size=1000", "", tokens["ana"])
		var l struct {
			Log []string `json:"log"`
		}
		return json.Unmarshal(b, &l) == nil && len(l.Log) > 0, nil
	}); err != nil {
		t.Fatalf("ana's session log stayed empty: %v", err)
	}
	type listed struct {
		Sessions []struct {
			ID  int64    `json:"id"`
			Log []string `json:"log"`
		} `json:"sessions"`
	}
	logOf := func(b []byte) []string {
		var l listed
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		for _, si := range l.Sessions {
			if si.ID == sess.ID {
				return si.Log
			}
		}
		t.Fatalf("session %d not listed: %s", sess.ID, b)
		return nil
	}
	for _, m := range []*member{a, b} {
		if got := logOf(call("GET", m.base()+"/sessions", "", tokens["sam"], 200)); len(got) != 0 {
			t.Fatalf("sam's listing through %s carries ana's log: %q", m.id, got)
		}
	}
	listedLog := logOf(call("GET", other.base()+"/sessions", "", tokens["ana"], 200))
	var full struct {
		Log []string `json:"log"`
	}
	_ = json.Unmarshal(call("GET", sp+"/log?size=1000", "", tokens["ana"], 200), &full)
	if len(listedLog) == 0 {
		t.Fatalf("ana's listing does not show her session's log (%d lines)", len(full.Log))
	}
	for _, l := range listedLog {
		if !slices.Contains(full.Log, l) {
			t.Fatalf("ana's listing shows %q, which her session's log does not have: %q", l, full.Log)
		}
	}

	// A client cannot vouch for a principal; only a node with the key can.
	req, _ := http.NewRequest("GET", sp, nil)
	req.Header.Set("X-Srdd-Principal", "root")
	if st := statusOf(t, req); st != 401 {
		t.Fatalf("a client vouching for root: %d, want 401", st)
	}
	req.Header.Set("X-Srdd-Cluster-Key", "wrong")
	if st := statusOf(t, req); st != 401 {
		t.Fatalf("vouching with a wrong key: %d, want 401", st)
	}
}
