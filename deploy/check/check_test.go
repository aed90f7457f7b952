package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/srdd/srdd/internal/testutil"
)

// TestPrometheusEvaluatesDashboardAndAlerts is the check against metric
// name drift: a real Prometheus scrapes a real node under load, every
// dashboard expression must return data, and every alert rule must be
// valid and evaluate without error.
func TestPrometheusEvaluatesDashboardAndAlerts(t *testing.T) {
	if os.Getenv(testutil.TierEnv) == "fast" {
		t.Skip("Spark tier (the dashboard's engine metrics need PySpark): skipped by make test-fast")
	}
	root := testutil.RepoRoot(t)
	py, err := FindPython(root)
	if err != nil {
		t.Fatal(err)
	}
	dash, err := LoadDashboard(filepath.Join(root, "deploy", "grafana", "srdd-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := AlertExprs(filepath.Join(root, "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := Start(Options{DeployDir: filepath.Join(root, "deploy"),
		Python: py, Logger: hclog.New(&hclog.LoggerOptions{Name: "check", Level: hclog.Warn, Output: os.Stderr})})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()

	// Load long enough for several scrapes inside the rate window.
	if err := env.Load(context.Background(), 16*time.Second, 4); err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := env.WaitScrapes(8, time.Minute); err != nil {
		t.Fatal(err)
	}

	exprs := dash.Exprs()
	if len(exprs) < 20 {
		t.Fatalf("the dashboard has only %d expressions", len(exprs))
	}
	for _, x := range exprs {
		got, err := env.Query(Resolve(x.Expr))
		if err != nil {
			t.Errorf("%s: %v\n  %s", x.Where, err, x.Expr)
			continue
		}
		if len(got) == 0 {
			t.Errorf("%s returned no data (metric name drift?)\n  %s\n  names: %v", x.Where, x.Expr, MetricNames(x.Expr))
		}
	}
	// Every metric an alert reads must exist too (an alert over a name
	// that no longer exists would never fire).
	for _, a := range alerts {
		if _, err := env.Query(a.Expr); err != nil {
			t.Errorf("%s: %v", a.Where, err)
		}
		for _, name := range MetricNames(a.Expr) {
			if got, err := env.Query("count(" + name + ")"); err != nil || len(got) == 0 {
				t.Errorf("%s reads %s, which the node does not export (%v)", a.Where, name, err)
			}
		}
	}
	// Prometheus itself loaded and evaluated every rule.
	deadline := time.Now().Add(30 * time.Second)
	for {
		rules, err := env.Rules()
		if err != nil {
			t.Fatal(err)
		}
		pending := 0
		for _, r := range rules {
			if r.Health == "err" {
				t.Fatalf("rule %s failed to evaluate: %s", r.Name, r.LastError)
			}
			if r.Health != "ok" {
				pending++
			}
		}
		if len(rules) != len(alerts) {
			t.Fatalf("prometheus loaded %d rules, alerts.yml has %d", len(rules), len(alerts))
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rules not evaluated yet", pending)
		}
		time.Sleep(ScrapeInterval)
	}
	// The load really went through: a sanity check that the panels show it.
	got, err := env.Query(`sum(srdd_rdd_keys{rdd="` + LoadRDD + `"})`)
	if err != nil || len(got) != 1 || got[0].Values[0] < 100 {
		t.Fatalf("srdd_rdd_keys after the load = %+v, %v", got, err)
	}
	got, err = env.Query(`sum(srdd_engine_lookup_job_duration_seconds_count)`)
	if err != nil || len(got) != 1 || got[0].Values[0] == 0 {
		t.Fatalf("no Spark lookup job ran during the load (%+v, %v): the job latency panel would be empty", got, err)
	}
}

func TestResolveAndNames(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := Resolve(in); got != want {
			t.Fatalf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}
	f(`rate(x{instance=~"$instance"}[$__rate_interval])`, `rate(x{instance=~".*"}[`+RateWindow+`])`)
	names := MetricNames(`sum(rate(srdd_a_total[5m])) / on() up{job="srdd"} + srdd_b`)
	if strings.Join(names, ",") != "srdd_a_total,up,srdd_b" {
		t.Fatalf("names %v", names)
	}
}
