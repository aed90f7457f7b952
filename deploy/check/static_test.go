package check

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/srdd/srdd/internal/testutil"
)

func promtool(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool missing (apt-get install prometheus; `make test` installs it): %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Join(testutil.RepoRoot(t), "deploy", "prometheus")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPromtoolCheckConfig(t *testing.T) { promtool(t, "check", "config", "prometheus.yml") }
func TestPromtoolCheckRules(t *testing.T)  { promtool(t, "check", "rules", "alerts.yml") }
func TestPromtoolTestRules(t *testing.T)   { promtool(t, "test", "rules", "alerts_test.yml") }

// TestDashboardShape checks what Grafana needs to import the dashboard
// and what makes it portable: a datasource variable used by every panel
// and target, unique panel ids, panels inside the 24-column grid.
func TestDashboardShape(t *testing.T) {
	d, err := LoadDashboard(filepath.Join(testutil.RepoRoot(t), "deploy", "grafana", "srdd-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Fatalf("uid %q title %q schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	var hasDS bool
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			hasDS = true
		}
	}
	if !hasDS {
		t.Fatal("no datasource variable of type prometheus")
	}
	wantDS := func(where string, raw json.RawMessage) {
		var ds struct{ Type, UID string }
		if err := json.Unmarshal(raw, &ds); err != nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
			t.Errorf("%s: datasource %s, want the ${datasource} variable", where, raw)
		}
	}
	ids := map[int]bool{}
	titles := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		titles[p.Title] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q is outside the grid: %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		wantDS("panel "+p.Title, p.Datasource)
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			wantDS("panel "+p.Title+" target "+tg.RefID, tg.Datasource)
			if !strings.Contains(tg.Expr, "srdd_") {
				t.Errorf("panel %q target %s reads no srdd metric: %s", p.Title, tg.RefID, tg.Expr)
			}
		}
	}
	// The overview the issue asks for.
	for _, want := range []string{"Throughput by route", "Key latency p50 / p99 by op", "Errors by route and status",
		"Sessions by state", "Keys per RDD", "Hot-key cache hit ratio", "Leader", "Raft commit and apply time (avg)"} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}
}
