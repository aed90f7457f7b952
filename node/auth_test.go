package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/internal/testutil"
)

// authDo sends a request with an Authorization header (none if cred is "").
func authDo(method, url, body, cred string) (int, http.Header, []byte) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestAuth runs one node with a users file: who may call what (issue 13).
func TestAuth(t *testing.T) {
	spark(t)
	dir := t.TempDir()
	_, base, tokens := authNode(t, dir, map[string][]string{
		"root":   {"admin"},
		"ana":    {"code", "create:*", "write:*", "read:*"},
		"vic":    {"code"},
		"sam":    {"code"},
		"reader": {"read:cit*"},
		"maker":  {"create:*"},
	}, func(f *auth.File) {
		if err := f.AddUser("ana", nil, "", "ana-pw"); err != nil {
			t.Fatal(err)
		}
	})
	call := caller(t, base, tokens)

	// Public routes need no credentials; everything else does.
	call("GET", "/healthz", "", "", 200)
	call("GET", "/version", "", "", 200)
	st, h, b := authDo("POST", base+"/sessions/0/statements", `{"code":"1+1"}`, "")
	if st != 401 || h.Get("WWW-Authenticate") != `Basic realm="srdd"` {
		t.Fatalf("unauthenticated statement: %d %q %s", st, h.Get("WWW-Authenticate"), b)
	}
	if st, _, _ := authDo("GET", base+"/v1/rdds", "", "Bearer not-a-token"); st != 401 {
		t.Fatalf("unknown token: %d", st)
	}
	if st, _, _ := authDo("GET", base+"/v1/rdds", "", "Basic "+basic("ana", "wrong")); st != 401 {
		t.Fatalf("wrong password: %d", st)
	}
	call("GET", "/metrics", "", "ana", 403)
	call("GET", "/metrics", "", "root", 200)

	// ana owns a session; vic may view it, nobody else is named.
	call("POST", "/sessions", `{"kind":"pyspark","proxyUser":"bob"}`, "ana", 403) // impersonation: admins only
	call("POST", "/sessions", `{"kind":"pyspark"}`, "reader", 403)
	var sess struct {
		ID    int64   `json:"id"`
		Owner *string `json:"owner"`
	}
	if err := json.Unmarshal(call("POST", "/sessions", `{"kind":"pyspark","viewUsers":["vic"]}`, "ana", 201), &sess); err != nil {
		t.Fatal(err)
	}
	if sess.Owner == nil || *sess.Owner != "ana" {
		t.Fatalf("owner = %v, want ana", sess.Owner)
	}
	sp := fmt.Sprintf("/sessions/%d", sess.ID)
	err := testutil.WaitFor(4*time.Minute, func() (bool, error) {
		b := call("GET", sp+"/state", "", "ana", 200)
		if strings.Contains(string(b), `"dead"`) || strings.Contains(string(b), `"error"`) {
			return false, fmt.Errorf("session failed: %s", b)
		}
		return strings.Contains(string(b), `"idle"`), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Basic auth works for the same principal (pylivy, sparkmagic).
	if st, _, b := authDo("GET", base+sp, "", "Basic "+basic("ana", "ana-pw")); st != 200 {
		t.Fatalf("basic auth: %d %s", st, b)
	}
	call("POST", sp+"/statements", `{"code":"1+1"}`, "ana", 201)
	for _, p := range []string{sp, sp + "/state", sp + "/statements", sp + "/statements/0", sp + "/log"} {
		call("GET", p, "", "vic", 200)
		call("GET", p, "", "sam", 403)
		call("GET", p, "", "root", 200)
	}
	call("POST", sp+"/statements", `{"code":"1+1"}`, "vic", 403) // a view user cannot run code
	call("POST", sp+"/statements", `{"code":"1+1"}`, "sam", 403)
	call("POST", sp+"/completion", `{"code":"pri"}`, "sam", 403)
	call("POST", sp+"/statements/0/cancel", `{}`, "vic", 403)
	call("DELETE", sp, "", "sam", 403)
	call("DELETE", sp, "", "vic", 403)

	// RDDs: create:, read: and write: globs.
	call("POST", "/v1/rdds", fmt.Sprintf(`{"name":"cities","session":%d,"mode":"durable"}`, sess.ID), "reader", 403)
	call("POST", "/v1/rdds", fmt.Sprintf(`{"name":"cities","session":%d,"mode":"durable"}`, sess.ID), "ana", 201)
	call("PUT", "/v1/rdds/cities/keys/par", `"Paris"`, "ana", 204)
	call("GET", "/v1/rdds/cities/keys/par", "", "reader", 200)
	call("POST", "/v1/rdds/cities/get", `{"keys":["par"]}`, "reader", 200)
	call("PUT", "/v1/rdds/cities/keys/par", `"Pantin"`, "reader", 403)
	call("POST", "/v1/rdds/cities/set", `{"items":{"a":1}}`, "reader", 403)
	call("DELETE", "/v1/rdds/cities", "", "reader", 403)
	call("POST", sp+"/statements", `{"code":"1+1"}`, "reader", 403)
	call("GET", "/v1/rdds/cities/keys/par", "", "vic", 403) // no read role at all
	// Session code's writes to a durable RDD reach the node with the
	// session's own capability, not a user's token.
	st2 := run2(t, base, tokens["ana"], sess.ID, "cities.set('lon', 'London'); cities.get('lon')")
	if !strings.Contains(st2, "London") {
		t.Fatalf("durable write from session code: %s", st2)
	}
	call("GET", "/v1/rdds/cities/keys/lon", "", "reader", 200)
	// Binding an RDD into a session is writing into its namespace: create:
	// alone may not (issue 25), and no RDD replaces session code's names.
	call("POST", "/v1/rdds", fmt.Sprintf(`{"name":"json","session":%d,"mode":"memory"}`, sess.ID), "maker", 403)
	call("POST", "/v1/rdds", fmt.Sprintf(`{"name":"json","session":%d,"mode":"memory"}`, sess.ID), "vic", 403)
	run2(t, base, tokens["ana"], sess.ID, "import json")
	call("POST", "/v1/rdds", fmt.Sprintf(`{"name":"json","session":%d,"mode":"memory"}`, sess.ID), "ana", 409)
	if got := run2(t, base, tokens["ana"], sess.ID, "json.dumps([1])"); !strings.Contains(got, "[1]") {
		t.Fatalf("session code's json after the refused binding: %s", got)
	}

	// Cluster membership is for admins; without a cluster key, so are the
	// routes that feed the registry directly.
	call("DELETE", "/v1/cluster/nodes/nope", "", "ana", 403)
	call("POST", "/internal/v1/apply", "", "", 401)
	call("POST", "/internal/v1/apply", "", "ana", 403)
	call("GET", "/internal/v1/index", "", "ana", 403)
	call("DELETE", sp, "", "ana", 200)
}

func basic(user, pw string) string {
	req, _ := http.NewRequest("GET", "http://x/", nil)
	req.SetBasicAuth(user, pw)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// run2 runs code as cred and returns the statement's output (JSON).
func run2(t *testing.T, base, cred string, session int64, code string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"code": code})
	st, _, b := authDo("POST", fmt.Sprintf("%s/sessions/%d/statements", base, session), string(body), cred)
	if st != 201 {
		t.Fatalf("statement: %d %s", st, b)
	}
	var s statement
	_ = json.Unmarshal(b, &s)
	err := testutil.WaitFor(2*time.Minute, func() (bool, error) {
		_, _, b := authDo("GET", fmt.Sprintf("%s/sessions/%d/statements/%d", base, session, s.ID), "", cred)
		if err := json.Unmarshal(b, &s); err != nil {
			return false, err
		}
		return s.State == "available" || s.State == "error", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(s.Output)
}

// TestSafeDefaults: without a users file, a loopback node still refuses
// cross-site requests (415), rebound names (403) and answers oversized
// headers with a bare 431.
func TestSafeDefaults(t *testing.T) {
	_, base := sharedNode(t)
	post := func(ct, xrb string) int {
		req, _ := http.NewRequest("POST", base+"/sessions/0/statements", strings.NewReader(`{"code":"1+1"}`))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if xrb != "" {
			req.Header.Set("X-Requested-By", xrb)
		}
		return statusOf(t, req)
	}
	if st := post("text/plain", ""); st != 415 {
		t.Fatalf("text/plain statement: %d, want 415", st)
	}
	if st := post("application/x-www-form-urlencoded", ""); st != 415 {
		t.Fatalf("form statement: %d, want 415", st)
	}
	if st := post("text/plain", "sparkmagic"); st != 201 {
		t.Fatalf("statement with X-Requested-By: %d, want 201", st)
	}
	if st := post("application/json", ""); st != 201 {
		t.Fatalf("JSON statement: %d, want 201", st)
	}
	req, _ := http.NewRequest("GET", base+"/v1/rdds", nil)
	req.Host = "rebind.attacker.example:8998"
	if st := statusOf(t, req); st != 403 {
		t.Fatalf("foreign Host on a loopback node: %d, want 403", st)
	}
	req.Host = "localhost"
	if st := statusOf(t, req); st != 200 {
		t.Fatalf("Host localhost: %d, want 200", st)
	}

	secret := "Cookie-" + strings.Repeat("x", 8<<10)
	req, _ = http.NewRequest("GET", base+"/healthz", nil)
	req.Header.Set("X-Big", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 431 || strings.Contains(string(b), "Cookie-") || !strings.Contains(string(b), `"code"`) {
		t.Fatalf("oversized headers: %d %.300s", resp.StatusCode, b)
	}
}

// authNode starts a node in dir with a users file: one token user per
// entry of roles (tokens[name] is its Authorization header), then what
// extra adds to the file. The node closes when the test ends.
func authNode(t *testing.T, dir string, roles map[string][]string, extra func(*auth.File)) (n *Node, base string, tokens map[string]string) {
	t.Helper()
	users := filepath.Join(dir, "users.json")
	tokens = writeUsers(t, users, roles, extra)
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.AuthFile = users
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n, "http://" + n.HTTPAddr(), tokens
}

// caller calls base's routes as a named user of tokens and fails the test
// on any other status than want; it returns the body.
func caller(t *testing.T, base string, tokens map[string]string) func(method, path, body, who string, want int) []byte {
	return func(method, path, body, who string, want int) []byte {
		t.Helper()
		st, _, b := authDo(method, base+path, body, tokens[who])
		if st != want {
			t.Fatalf("%s %s as %q: %d, want %d: %s", method, path, who, st, want, b)
		}
		return b
	}
}
