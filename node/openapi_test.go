package node

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestOpenAPIMatchesTheRouter walks a real node's router from its own
// GET /openapi.json: every documented operation must reach the route of
// that name (counted under its route label in /metrics), and every
// method the document leaves out of a documented path must not (405 or
// 404). Together with httpapi's TestOpenAPICoversEveryRoute (the route
// table, httpapi/routes.go, against the document), a route cannot
// be added to one without the other (docs/ARCHITECTURE.md, "The API
// contract"). No session is started: bodies are refused before any
// side effect, and names and ids name nothing.
func TestOpenAPIMatchesTheRouter(t *testing.T) {
	dir := t.TempDir()
	n, err := Start(testConfig(t, filepath.Join(dir, "data")))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	base := "http://" + n.HTTPAddr()

	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(do(t, "GET", base+"/openapi.json", "", http.StatusOK), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Paths) < 25 {
		t.Fatalf("the document has %d paths", len(doc.Paths))
	}
	fill := strings.NewReplacer("{name}", "walk-rdd", "{key}", "k%2F1", "{sid}", "0", "{file}", "console.js")
	urlOf := func(path string) string {
		if strings.HasPrefix(path, "/sessions/{id}") || strings.HasPrefix(path, "/batches/{id}") {
			path = strings.Replace(path, "{id}", "999", 1)
		}
		return base + strings.Replace(fill.Replace(path), "{id}", "no-such-node", 1)
	}
	var routes []string
	for path, item := range doc.Paths {
		for method := range item {
			m := strings.ToUpper(method)
			routes = append(routes, m+" "+path)
			body := ""
			if m == "POST" || m == "PUT" {
				body = "[]" // not the object any handler wants: 400 before any effect
			}
			if st, b := rawDo(m, urlOf(path), body); st >= 500 {
				t.Errorf("%s %s: %d %s", m, path, st, b)
			}
		}
		for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
			if _, ok := item[strings.ToLower(m)]; ok {
				continue
			}
			if m == "GET" {
				if _, ok := item["head"]; ok {
					continue
				}
			}
			st, b := rawDo(m, urlOf(path), "")
			if st != http.StatusMethodNotAllowed && st != http.StatusNotFound {
				t.Errorf("%s %s is not in the document, yet the router answered %d %s", m, path, st, b)
			}
		}
	}
	sort.Strings(routes)
	metrics := string(do(t, "GET", base+"/metrics", "", http.StatusOK))
	for _, r := range routes {
		re := regexp.MustCompile(`(?m)^srdd_http_request_duration_seconds_count\{route="` + regexp.QuoteMeta(r) + `",status="[0-9]xx"\} ([0-9]+)$`)
		total := 0
		for _, m := range re.FindAllStringSubmatch(metrics, -1) {
			v, _ := strconv.Atoi(m[1])
			total += v
		}
		if total == 0 {
			t.Errorf("the document lists %s, but a request for it reached no route of that name", r)
		}
	}
	if len(routes) < 35 {
		t.Fatalf("walked only %d operations", len(routes))
	}
	t.Logf("walked %d operations on %d paths", len(routes), len(doc.Paths))
}

// TestNegativeSessionIDIsNotFound: schemathesis found a negative session
// id in an RDD create answered 500 (the registry refused the command).
func TestNegativeSessionIDIsNotFound(t *testing.T) {
	n, err := Start(testConfig(t, filepath.Join(t.TempDir(), "data")))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	base := "http://" + n.HTTPAddr()
	for _, body := range []string{`{"name":"neg","session":-886}`, `{"name":"neg","session":"-1"}`} {
		b := do(t, "POST", base+"/v1/rdds", body, http.StatusNotFound)
		if errorCode(t, b) != "session_not_found" {
			t.Fatalf("%s: %s", body, b)
		}
	}
	do(t, "GET", base+"/sessions/-3", "", http.StatusNotFound)
}
