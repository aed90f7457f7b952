package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/srdd/srdd/auth"
	srddclient "github.com/srdd/srdd/client/go"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/testutil"
	"github.com/srdd/srdd/sparkbridge/bridgetest"
)

// testConfig is one bootstrapped node on 127.0.0.1:0. Its sessions run on
// the fake interpreter (sparkbridge/bridgetest) unless the test is of the
// Spark tier (it called spark(t) first): then on real PySpark.
func testConfig(t testing.TB, dir string) Config {
	fake := !isSparkTest(t)
	python := "python3"
	if !fake {
		python = testutil.Python(t)
	}
	return Config{
		NodeID: "n1", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: dir,
		Bootstrap: true, Python: python, FakeInterpreter: fake, SparkMaster: "local[2]",
		SparkConf:    map[string]string{"spark.driver.memory": "512m"},
		ReadyTimeout: 3 * time.Minute,
		Raft: cluster.Config{HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
			ApplyTimeout: 10 * time.Second},
		Logger: hclog.New(&hclog.LoggerOptions{Name: "srdd", Level: hclog.Warn, Output: os.Stderr}),
	}
}

// sharedState is one node with one ready session (id 0), used by most
// tests so the package starts as few nodes and JVMs as it can: one on the
// fake interpreter for the fast tier, one on PySpark for the Spark tier.
type sharedState struct {
	once sync.Once
	n    *Node
	base string
	dir  string
	err  error
}

var sharedFake, sharedSpark sharedState

// sharedFor is the shared node of t's tier.
func sharedFor(t testing.TB) *sharedState {
	if isSparkTest(t) {
		return &sharedSpark
	}
	return &sharedFake
}

func sharedNode(t *testing.T) (*Node, string) {
	t.Helper()
	shared := sharedFor(t)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "srdd-node-test-")
		if err != nil {
			shared.err = err
			return
		}
		shared.dir = dir
		shared.n, shared.err = Start(testConfig(t, dir))
		if shared.err != nil {
			return
		}
		shared.base = "http://" + shared.n.HTTPAddr()
		shared.err = createSessionAndWait(shared.base, `{"kind":"pyspark"}`)
	})
	if shared.err != nil {
		t.Fatalf("shared node: %v", shared.err)
	}
	return shared.n, shared.base
}

// sharedRDD starts a Spark-tier test of one shared RDD: it marks t as of
// the Spark tier (spark), creates the RDD name in session 0 of the shared
// node, and returns the node's base URL and a Go client of it.
func sharedRDD(t *testing.T, name string) (string, *srddclient.Client, context.Context) {
	t.Helper()
	spark(t)
	_, base := sharedNode(t)
	c := srddclient.New(base)
	ctx := context.Background()
	if _, err := c.CreateRDD(ctx, name, "0"); err != nil {
		t.Fatal(err)
	}
	return base, c, ctx
}

// sharedDir is the data dir of t's shared node.
func sharedDir(t testing.TB) string { return sharedFor(t).dir }

// filesDir returns a fresh directory inside the shared node's default
// file root (DATA-DIR/files), where loads and saves may go.
func filesDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(filepath.Join(sharedDir(t), "files"), "t")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

func TestMain(m *testing.M) {
	bridgetest.MaybeRun() // this binary is also the fast tier's interpreter
	code := m.Run()
	for _, shared := range []*sharedState{&sharedFake, &sharedSpark} {
		if shared.n != nil {
			shared.n.Close()
		}
	}
	for _, d := range peerTestCA.dirs {
		_ = os.RemoveAll(d)
	}
	os.Exit(code)
}

// startNode starts a node of its own for t (closed when t ends) and
// returns it with its API's base URL.
func startNode(t testing.TB, cfg Config) (*Node, string) {
	t.Helper()
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n, "http://" + n.HTTPAddr()
}

func createSessionAndWait(base, body string) error {
	st, b := rawDo("POST", base+"/sessions", body)
	if st != http.StatusCreated {
		return fmt.Errorf("POST /sessions = %d %s", st, b)
	}
	var s struct {
		ID int64 `json:"id"`
	}
	_ = json.Unmarshal(b, &s)
	return testutil.WaitFor(4*time.Minute, func() (bool, error) {
		_, b := rawDo("GET", fmt.Sprintf("%s/sessions/%d/state", base, s.ID), "")
		switch {
		case strings.Contains(string(b), `"idle"`):
			return true, nil
		case strings.Contains(string(b), `"error"`), strings.Contains(string(b), `"dead"`):
			return false, fmt.Errorf("session failed: %s", b)
		}
		return false, nil
	})
}

func rawDo(method, url, body string) (int, []byte) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, []byte(err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// do sends a request and fails the test unless the status is want.
func do(t *testing.T, method, url, body string, want int) []byte {
	t.Helper()
	st, b := rawDo(method, url, body)
	if st != want {
		t.Fatalf("%s %s %s: status %d, want %d; body %s", method, url, body, st, want, b)
	}
	return b
}

type statement struct {
	ID     int             `json:"id"`
	State  string          `json:"state"`
	Output json.RawMessage `json:"output"`
}

// statusOf sends req with the default client and returns the answer's
// status; the body is discarded.
func statusOf(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// run submits code to a session and waits for the statement to finish.
func run(t *testing.T, base string, session int64, code string) statement {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"code": code})
	var st statement
	if err := json.Unmarshal(do(t, "POST", fmt.Sprintf("%s/sessions/%d/statements", base, session), string(body), 201), &st); err != nil {
		t.Fatal(err)
	}
	err := testutil.WaitFor(2*time.Minute, func() (bool, error) {
		b := do(t, "GET", fmt.Sprintf("%s/sessions/%d/statements/%d", base, session, st.ID), "", 200)
		if err := json.Unmarshal(b, &st); err != nil {
			return false, err
		}
		return st.State == "available" || st.State == "error", nil
	})
	if err != nil {
		t.Fatalf("statement %q: %v (last %+v)", code, err, st)
	}
	return st
}

// textOf returns text/plain of a successful statement.
func textOf(t *testing.T, st statement) string {
	t.Helper()
	return outputText(t, st.Output, fmt.Sprintf("statement %d", st.ID))
}

// outputText returns text/plain of a statement's output (Livy's shape),
// failing the test unless its status is ok; what names the statement.
func outputText(t *testing.T, output []byte, what string) string {
	t.Helper()
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Text string `json:"text/plain"`
		} `json:"data"`
	}
	if err := json.Unmarshal(output, &out); err != nil || out.Status != "ok" {
		t.Fatalf("%s output %s is not ok (%v)", what, output, err)
	}
	return out.Data.Text
}

func jsonEq(t *testing.T, got []byte, want string) {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("not JSON: %s", got)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatal(err)
	}
	ga, _ := json.Marshal(a)
	gb, _ := json.Marshal(b)
	if !bytes.Equal(ga, gb) {
		t.Fatalf("got %s, want %s", ga, gb)
	}
}

// postCreated POSTs body to url as cred (authDo), fails the test unless
// the answer is 201 and decodes it into v.
func postCreated(t *testing.T, url, body, cred string, v any) {
	t.Helper()
	st, _, b := authDo("POST", url, body, cred)
	if st != http.StatusCreated {
		t.Fatalf("POST %s %s: %d %s", url, body, st, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// runBatchAs submits a batch of file as cred and waits, up to 5 minutes,
// until it ends: its final state and its log (1000 lines at most).
func runBatchAs(t *testing.T, base, file, cred string) (state string, log []byte) {
	t.Helper()
	var batch struct {
		ID    int64  `json:"id"`
		State string `json:"state"`
	}
	postCreated(t, base+"/batches", fmt.Sprintf(`{"file":%q}`, file), cred, &batch)
	err := testutil.Poll(5*time.Minute, 500*time.Millisecond, func() (bool, error) {
		st, _, b := authDo("GET", fmt.Sprintf("%s/batches/%d/state", base, batch.ID), "", cred)
		if st != http.StatusOK {
			return false, fmt.Errorf("batch state: %d %s", st, b)
		}
		if err := json.Unmarshal(b, &batch); err != nil {
			return false, err
		}
		return batch.State == "success" || batch.State == "dead" || batch.State == "killed", nil
	})
	if err != nil {
		t.Fatalf("batch %d (%s): %v", batch.ID, batch.State, err)
	}
	_, _, log = authDo("GET", fmt.Sprintf("%s/batches/%d/log?size=1000", base, batch.ID), "", cred)
	return batch.State, log
}

// writeUsers is testutil.WriteUsers returning each user's
// "Bearer <token>" credential.
func writeUsers(t testing.TB, path string, roles map[string][]string, extra func(*auth.File)) map[string]string {
	t.Helper()
	creds := testutil.WriteUsers(t, path, roles, extra)
	for name, tok := range creds {
		creds[name] = "Bearer " + tok
	}
	return creds
}
