package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/testutil"
)

func TestDefaultSessionStartupAndRestart(t *testing.T) {
	spark(t)
	dir := t.TempDir()
	n, err := Start(testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	base := "http://" + n.HTTPAddr()

	// No session named: the node's default session is created; the call
	// returns while Spark is still starting instead of timing out.
	var r struct {
		Session int64  `json:"session"`
		State   string `json:"state"`
	}
	_ = json.Unmarshal(do(t, "POST", base+"/v1/rdds", `{"name":"early","mode":"memory"}`, 201), &r)
	if r.State != "starting" {
		t.Fatalf("new rdd in a fresh session: state %q, want starting", r.State)
	}
	var sess struct {
		Name  string `json:"name"`
		State string `json:"state"`
	}
	_ = json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/sessions/%d", base, r.Session), "", 200), &sess)
	if sess.Name != "srdd-default-n1" || sess.State != "starting" {
		t.Fatalf("default session = %+v", sess)
	}
	// A KV call waits (bounded) for the session instead of failing.
	do(t, "PUT", base+"/v1/rdds/early/keys/k", `"v"`, 204)
	jsonEq(t, do(t, "GET", base+"/v1/rdds/early/keys/k", "", 200), `{"key":"k","value":"v"}`)
	// A second rdd without a session reuses the default session.
	var r2 struct {
		Session int64 `json:"session"`
	}
	_ = json.Unmarshal(do(t, "POST", base+"/v1/rdds", `{"name":"second","mode":"memory"}`, 201), &r2)
	if r2.Session != r.Session {
		t.Fatalf("second rdd went to session %d, want the default %d", r2.Session, r.Session)
	}

	// A statement before the restart; its result must outlive the node.
	if got := textOf(t, run(t, base, r.Session, "40 + 2")); got != "42" {
		t.Fatalf("statement = %q", got)
	}

	// Restart on the same data dir: the registry remembers the session and
	// its rdds, reports them dead/lost, and never reuses the id.
	n.Close()
	n2, err := Start(testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	base = "http://" + n2.HTTPAddr()
	_ = json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/sessions/%d", base, r.Session), "", 200), &sess)
	if sess.State != "dead" {
		t.Fatalf("session after restart = %+v, want dead", sess)
	}
	var info struct {
		State   string `json:"state"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(do(t, "GET", base+"/v1/rdds/early", "", 200), &info)
	if info.State != "lost" || !strings.Contains(info.Message, "restarted") {
		t.Fatalf("rdd after restart = %+v, want lost with a reason", info)
	}
	b := do(t, "GET", base+"/v1/rdds/early/keys/k", "", 410)
	if !strings.Contains(string(b), `"code":"lost"`) {
		t.Fatalf("get on lost rdd: %s", b)
	}
	var hist struct {
		Statements []statement `json:"statements"`
	}
	_ = json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/sessions/%d/statements", base, r.Session), "", 200), &hist)
	if len(hist.Statements) != 1 || textOf(t, hist.Statements[0]) != "42" {
		t.Fatalf("statements after restart = %+v", hist.Statements)
	}
	var one statement
	_ = json.Unmarshal(do(t, "GET", fmt.Sprintf("%s/sessions/%d/statements/0", base, r.Session), "", 200), &one)
	if one.State != "available" || textOf(t, one) != "42" {
		t.Fatalf("statement 0 after restart = %+v", one)
	}
	id, err := n2.Registry.Apply(cluster.Command{Type: cluster.CmdCreateSession, Body: &cluster.CreateSession{Kind: "pyspark", Node: "elsewhere"}})
	if err != nil || id.(int64) != r.Session+1 {
		t.Fatalf("next session id = %v (%v), want %d", id, err, r.Session+1)
	}
	do(t, "DELETE", base+"/v1/rdds/early", "", 204)
	do(t, "GET", base+"/v1/rdds/early", "", 404)
}

// A session that is not up within --ready-timeout gives a clear 503 with
// Retry-After, not a hang.
func TestStartingSessionTimesOutWith503(t *testing.T) {
	spark(t)
	cfg := testConfig(t, t.TempDir())
	cfg.ReadyTimeout = 100 * time.Millisecond
	_, base := startNode(t, cfg)
	do(t, "POST", base+"/v1/rdds", `{"name":"slow"}`, 201)
	req, _ := http.NewRequest("PUT", base+"/v1/rdds/slow/keys/k", strings.NewReader(`1`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != 503 || e.Error.Code != "starting" || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(e.Error.Message, "still starting") {
		t.Fatalf("KV call on a starting session: %d %+v Retry-After=%q", resp.StatusCode, e, resp.Header.Get("Retry-After"))
	}
}

// ttl (Livy's inactivity timeout) and heartbeatTimeoutInSecond reap
// sessions: killed, with the reason in the log. The test watches them only
// through the session list, which is not a heartbeat.
func TestInactiveSessionsAreReaped(t *testing.T) {
	_, base := sharedNode(t)
	ids := map[string]int64{}
	for why, body := range map[string]string{
		"ttl":                      `{"kind":"pyspark","ttl":"3s"}`,
		"heartbeatTimeoutInSecond": `{"kind":"pyspark","heartbeatTimeoutInSecond":3}`,
	} {
		var s struct{ ID int64 }
		_ = json.Unmarshal(do(t, "POST", base+"/sessions", body, 201), &s)
		ids[why] = s.ID
	}
	var list struct {
		Sessions []struct {
			ID    int64    `json:"id"`
			State string   `json:"state"`
			Log   []string `json:"log"`
		} `json:"sessions"`
	}
	killed := func() map[int64][]string {
		out := map[int64][]string{}
		_ = json.Unmarshal(do(t, "GET", base+"/sessions?size=1000", "", 200), &list)
		for _, s := range list.Sessions {
			if s.State == "killed" {
				out[s.ID] = s.Log
			}
		}
		return out
	}
	if err := testutil.WaitFor(3*time.Minute, func() (bool, error) {
		k := killed()
		_, a := k[ids["ttl"]]
		_, b := k[ids["heartbeatTimeoutInSecond"]]
		return a && b, nil
	}); err != nil {
		t.Fatalf("sessions not reaped: %v (%+v)", err, list.Sessions)
	}
	k := killed()
	for why, id := range ids {
		logs := strings.Join(k[id], "\n")
		if !strings.Contains(logs, "reaped after 3s") || !strings.Contains(logs, why) {
			t.Fatalf("session %d (%s) log = %q", id, why, logs)
		}
		do(t, "POST", fmt.Sprintf("%s/sessions/%d/statements", base, id), `{"code":"1"}`, 409)
	}
}

func TestCSRFProtection(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.CSRFProtection = true
	_, base := startNode(t, cfg)
	b := do(t, "POST", base+"/sessions", `{"kind":"sparkr"}`, 400)
	if !strings.Contains(string(b), "CSRF") {
		t.Fatalf("mutating call without X-Requested-By: %s", b)
	}
	do(t, "GET", base+"/sessions", "", 200)
	req, _ := http.NewRequest("POST", base+"/sessions", strings.NewReader(`{"kind":"sparkr"}`))
	req.Header.Set("X-Requested-By", "test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// With the header the request gets past CSRF (and fails on its kind).
	if resp.StatusCode != 400 || strings.Contains(string(body), "CSRF") || !strings.Contains(string(body), "sparkr") {
		t.Fatalf("with X-Requested-By: %d %s", resp.StatusCode, body)
	}
}
