package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/srdd/srdd/internal/testutil"
)

// chromium finds Debian's chromium (make check-chromium installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("SRDD_TEST_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium: `make check-chromium` installs Debian's (apt-get install chromium), or set SRDD_TEST_CHROMIUM")
	return ""
}

// TestConsoleInABrowser drives the web console (/ui) in a real headless
// chromium against a real node with auth on and a real PySpark session:
// it logs in with a token, and checks each page shows what the API
// holds: the listed RDD, a looked-up value, a prefix scan's pages, a
// statement's output, the batches page (which copes with a node that has
// no /batches), and the cluster's members. With SRDD_UI_SCREENSHOTS=DIR
// it also runs statements of each output kind and writes a PNG of each
// page to DIR (make screenshots: docs/ui-*.png).
func TestConsoleInABrowser(t *testing.T) {
	spark(t)
	browser := chromium(t)
	shots := os.Getenv("SRDD_UI_SCREENSHOTS")
	dir := t.TempDir()
	users := filepath.Join(dir, "users.json")
	tok := testutil.WriteUsers(t, users, map[string][]string{"ana": {"code", "create:*", "read:*", "write:*"}}, nil)["ana"]
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.AuthFile, cfg.ConnectAddr = users, "127.0.0.1:0"
	_, base := startNode(t, cfg)
	bearer := "Bearer " + tok
	call := func(method, path, body string, want int) []byte {
		t.Helper()
		st, _, b := authDo(method, base+path, body, bearer)
		if st != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, st, want, b)
		}
		return b
	}

	// One session of ana's (one JVM), holding the RDD.
	var sess struct {
		ID int64 `json:"id"`
	}
	_ = json.Unmarshal(call("POST", "/sessions", `{"kind":"pyspark","name":"console"}`, http.StatusCreated), &sess)
	if err := testutil.WaitFor(4*time.Minute, func() (bool, error) {
		b := call("GET", fmt.Sprintf("/sessions/%d/state", sess.ID), "", http.StatusOK)
		if strings.Contains(string(b), `"dead"`) || strings.Contains(string(b), `"error"`) {
			return false, fmt.Errorf("session failed: %s", b)
		}
		return strings.Contains(string(b), `"idle"`), nil
	}); err != nil {
		t.Fatal(err)
	}
	call("POST", "/v1/rdds", fmt.Sprintf(`{"name":"states","mode":"memory","session":%d}`, sess.ID), http.StatusCreated)
	items := map[string]any{"ak": "Alaska", "hi": map[string]any{"name": "Hawaii", "capital": "Honolulu"}}
	for i := 0; i < 25; i++ {
		items[fmt.Sprintf("city-%02d", i)] = i
	}
	body, _ := json.Marshal(map[string]any{"items": items})
	call("POST", "/v1/rdds/states/set", string(body), http.StatusOK)

	// A durable RDD with a bulk load running while the browser logs in
	// (the RDDs page shows its progress, then the load's end) and a
	// checkpoint (its age).
	call("POST", "/v1/rdds", fmt.Sprintf(`{"name":"cities","mode":"durable","session":%d}`, sess.ID), http.StatusCreated)
	var rows strings.Builder
	const loadRows = 20000
	for i := 0; i < loadRows; i++ {
		fmt.Fprintf(&rows, "{\"key\":\"c%06d\",\"value\":%d}\n", i, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "files", "cities.jsonl"), []byte(rows.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	call("POST", "/v1/rdds/cities/load", `{"path":"cities.jsonl"}`, http.StatusAccepted)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1280, 860), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	ctx, cancel := context.WithTimeout(bctx, 10*time.Minute)
	defer cancel()

	// until waits for a JavaScript condition on the page.
	// Generous: the machine may be busy (no timing assertions here).
	until := func(what, cond string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(c context.Context, tg *chromedp.Target) error {
			if _, err := chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(3*time.Minute))(c, tg); err != nil {
				page, _ := chromedp.Evaluate[string](`document.body.innerText`)(c, tg)
				return fmt.Errorf("waiting for %s: %w; page: %.600s", what, err, page)
			}
			return nil
		})
	}
	text := func(sel string) string {
		return fmt.Sprintf(`((document.querySelector(%q) || {}).textContent || "")`, sel)
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(c context.Context, tg *chromedp.Target) error {
			if shots == "" {
				return nil
			}
			png, err := chromedp.FullScreenshot(100)(c, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, "ui-"+name+".png"), png, 0o644)
		})
	}
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}

	run("login page", chromedp.Navigate(base+"/ui"),
		until("the login form", `!document.getElementById("login").hidden`), shot("login"))
	// The page is one document from here on (pages are #fragments):
	// record any request the CSP refuses.
	run("CSP listener", chromedp.Func(func(c context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`window.cspViolations = []; document.addEventListener("securitypolicyviolation", e => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI)); true`)(c, tg)
		return err
	}))
	run("a wrong token is refused",
		chromedp.SendKeys(chromedp.CSS("#token"), "not-a-token"), chromedp.Click(chromedp.CSS("#login-button")),
		until("the refusal", text("#login-error")+`.includes("did not accept")`))
	run("log in", chromedp.SetValue(chromedp.CSS("#token"), tok), chromedp.Click(chromedp.CSS("#login-button")),
		until("the RDD list", text(`#rdds-table tr[data-rdd="states"]`)+`.includes("memory")`))
	row, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#rdds-table tr[data-rdd="states"]`)))
	if err != nil {
		t.Fatal(err)
	}
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(row, "states") || !strings.Contains(row, "27") || !strings.Contains(row, "ana") || !strings.Contains(row, "1/1") {
		t.Fatalf("RDD row %q lacks name, key count, owner or copies (1/1)", row)
	}
	if strings.Contains(href, tok) {
		t.Fatal("the token is in the URL")
	}
	sawBar, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector('#rdds-table tr[data-rdd="cities"] progress')`))
	if err != nil {
		t.Fatal(err)
	}
	run("RDDs page: the load ends",
		until("the load's end", text(`#rdds-table tr[data-rdd="cities"]`)+`.includes("last load: done") && `+text(`#rdds-table tr[data-rdd="cities"]`)+`.includes("20000")`))
	t.Logf("progress bar seen while loading: %v (the load may end before a refresh)", sawBar)
	call("POST", "/v1/rdds/cities/checkpoint", "", http.StatusOK)
	run("RDDs page: checkpoint age",
		until("the checkpoint's age", text(`#rdds-table tr[data-rdd="cities"]`)+`.includes(" s ago")`), shot("rdds"))

	run("RDD page: lookup", chromedp.Navigate(base+"/ui#/rdd/states"),
		until("the RDD's card", text("#rdd-info")+`.includes("memory")`),
		chromedp.SetValue(chromedp.CSS("#lookup-key"), "hi"), chromedp.Click(chromedp.CSS("#lookup-button")),
		until("the looked-up value", text("#lookup-value")+`.includes("Honolulu")`))
	run("RDD page: a missing key",
		chromedp.SetValue(chromedp.CSS("#lookup-key"), "zz"), chromedp.Click(chromedp.CSS("#lookup-button")),
		until("key_not_found", text("#lookup-result")+`.includes("key_not_found")`),
		chromedp.SetValue(chromedp.CSS("#lookup-key"), "ak"), chromedp.Click(chromedp.CSS("#lookup-button")),
		until("Alaska", text("#lookup-value")+`.includes("Alaska")`))
	run("RDD page: scan with paging",
		chromedp.SetValue(chromedp.CSS("#scan-prefix"), "city-"), chromedp.SetValue(chromedp.CSS("#scan-limit"), "10"),
		chromedp.Click(chromedp.CSS("#scan-button")),
		until("page 1", `document.querySelectorAll("#scan-table tbody tr").length === 10 && `+text("#scan-table")+`.includes("city-09") && !!document.getElementById("scan-next")`),
		chromedp.Click(chromedp.CSS("#scan-next")),
		until("page 2", text("#scan-table")+`.includes("city-10") && !`+text("#scan-table")+`.includes("city-09")`),
		chromedp.Click(chromedp.CSS("#scan-next")),
		until("the last page", `document.querySelectorAll("#scan-table tbody tr").length === 5 && !document.getElementById("scan-next")`),
		chromedp.Click(chromedp.CSS("#scan-prev")),
		until("back to page 2", text("#scan-table")+`.includes("city-10")`), shot("rdd"))

	run("sessions page", chromedp.Navigate(base+"/ui#/sessions"),
		until("ana's session", text("#sessions-table")+`.includes("console") && `+text("#sessions-table")+`.includes("ana")`), shot("sessions"))

	sessURL := fmt.Sprintf("%s/ui#/session/%d", base, sess.ID)
	if shots != "" {
		// Every output kind, for the screenshot (the browser renders them).
		for _, code := range []string{
			`import matplotlib\nmatplotlib.use(\"Agg\")\nimport matplotlib.pyplot as plt\nplt.figure(figsize=(4, 2.5))\nplt.bar([\"ak\", \"hi\", \"ca\"], [3, 5, 2])\n%matplot plt`,
			`%table [{\"code\": \"ak\", \"name\": \"Alaska\"}, {\"code\": \"hi\", \"name\": \"Hawaii\"}]`,
			`%json {\"ak\": \"Alaska\", \"hi\": \"Hawaii\"}`,
		} {
			var st statement
			_ = json.Unmarshal(call("POST", fmt.Sprintf("/sessions/%d/statements", sess.ID), `{"code":"`+code+`"}`, http.StatusCreated), &st)
			call("GET", fmt.Sprintf("/sessions/%d/statements/%d?wait=60", sess.ID, st.ID), "", http.StatusOK)
		}
	}
	run("session page: run code", chromedp.Navigate(sessURL),
		until("the session's state", text("#session-info")+`.includes("idle")`),
		until("its Spark Connect streams", text("#connect-streams")+`.includes("No Spark Connect stream open")`),
		chromedp.SetValue(chromedp.CSS("#code"), "sum(range(10)) * 7"), chromedp.Click(chromedp.CSS("#run")),
		until("the statement's output", `[...document.querySelectorAll("#statements .statement")].some(s => s.textContent.includes("sum(range(10)) * 7") && s.textContent.includes("315"))`))
	if shots != "" {
		run("session page: every output kind",
			until("image, table and JSON", `!!document.querySelector("#statements img.output") && !!document.querySelector("#statements table") && !!document.querySelector("#statements pre.json")`),
			shot("session"))
	}

	run("batches page", chromedp.Navigate(base+"/ui#/batches"),
		until("the batches page", `!!document.querySelector("#batches-missing, #batches-table, #batches-empty")`), shot("batches"))

	run("cluster page", chromedp.Navigate(base+"/ui#/cluster"),
		until("the members", text("#members-table")+`.includes("n1") && `+text("#members-table")+`.includes("leader")`),
		until("the Raft indexes", text("#cluster-info")+`.includes("commit index") && `+text("#cluster-info")+`.includes("ready")`), shot("cluster"))

	violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.cspViolations || ["the page was reloaded"]`))
	if err != nil || len(violations) > 0 {
		t.Fatalf("CSP violations: %v %v", violations, err)
	}
	run("log out", chromedp.Click(chromedp.CSS("#logout")),
		until("the login form", `!document.getElementById("login").hidden && sessionStorage.getItem("srdd.token") === null`))
}
