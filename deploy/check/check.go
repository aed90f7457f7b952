// Package check verifies the deploy recipes against real parts: it starts
// an srdd node (real Raft, a real PySpark interpreter) on 127.0.0.1, runs
// a small bounded load against it, starts Debian's Prometheus on loopback
// to scrape it with deploy/prometheus/alerts.yml loaded, and evaluates
// every PromQL expression of the Grafana dashboard and the alert rules
// through Prometheus's HTTP API. Its test runs in `make test`; `make
// check-deploy` also renders key panels to PNG (cmd/render-panels).
package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/netutil"
	"github.com/srdd/srdd/node"
	"go.yaml.in/yaml/v2"
)

// ScrapeInterval is how often the test Prometheus scrapes the node and
// evaluates the rules; RateWindow replaces Grafana's $__rate_interval.
const (
	ScrapeInterval = 2 * time.Second
	RateWindow     = "20s"
)

// LoadRDD is the shared RDD the load writes and reads: memory-mode, so
// its writes are fast enough for compactions and Spark lookup jobs to run
// within the short load on a busy machine.
const LoadRDD = "checkload"

// DurableRDD is a durable RDD the load also writes, and which is
// checkpointed, so the durability panels and alerts have series.
const DurableRDD = "checkdurable"

// Options configure an Env.
type Options struct {
	DeployDir string // the repository's deploy/ directory
	Python    string // Python with pyspark
	Logger    hclog.Logger
}

// Env is a running node and a Prometheus scraping it.
type Env struct {
	Node    *node.Node
	NodeURL string
	PromURL string

	dir  string
	prom *exec.Cmd
	done chan struct{}
	hc   *http.Client
}

// FindPython returns $SRDD_TEST_PYTHON, or the repository's .venv python.
func FindPython(repo string) (string, error) {
	if p := os.Getenv("SRDD_TEST_PYTHON"); p != "" {
		return p, nil
	}
	p := filepath.Join(repo, ".venv", "bin", "python")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no Python with pyspark at %s (run `make venv`, or set SRDD_TEST_PYTHON): %w", p, err)
	}
	return p, nil
}

// Start starts the node, creates LoadRDD and starts Prometheus.
func Start(opts Options) (*Env, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "check", Level: hclog.Warn, Output: os.Stderr})
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		return nil, fmt.Errorf("cannot find prometheus (apt-get install prometheus; `make test` installs it): %w", err)
	}
	dir, err := os.MkdirTemp("", "srdd-check-")
	if err != nil {
		return nil, err
	}
	e := &Env{dir: dir, done: make(chan struct{}), hc: &http.Client{Timeout: 3 * time.Minute}}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	e.Node, err = node.Start(node.Config{
		NodeID: "check1", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "node"),
		RedisAddr:   "127.0.0.1:0", // the Redis port's series (the dashboard's "Redis port" row)
		ConnectAddr: "127.0.0.1:0", // the Spark Connect port's series (its row)
		Bootstrap:   true, Python: opts.Python, SparkMaster: "local[2]",
		SparkConf: map[string]string{
			"spark.driver.memory": "512m",
			// Small enough that the load compacts, and that reads miss the
			// hot-key cache, so Spark lookup jobs run too.
			"spark.srdd.kv.compactMinEntries": "300",
			"spark.srdd.kv.cacheMiB":          "1",
			// Lookups through Spark jobs, not the driver's resident
			// partition indexes, so the lookup-job panels have series.
			"spark.srdd.kv.residentIndex": "false",
		},
		ReadyTimeout: 3 * time.Minute,
		Raft: cluster.Config{HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
			ApplyTimeout: 10 * time.Second},
		Version: "check",
		Logger:  opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot start the node: %w", err)
	}
	e.NodeURL = "http://" + e.Node.HTTPAddr()
	if err := e.do("POST", "/v1/rdds", `{"name":"`+LoadRDD+`","mode":"memory"}`, http.StatusCreated); err != nil {
		return nil, err
	}
	if err := e.do("POST", "/v1/rdds", `{"name":"`+DurableRDD+`","mode":"durable"}`, http.StatusCreated); err != nil {
		return nil, err
	}
	// The first call waits for Spark to come up (sessions start in the
	// background; on a busy machine that takes over 30 s, hence the
	// client's generous timeout). A start that failed is retried by the
	// node with back-off, and the call answers 503 meanwhile: ask again
	// until the node's ready timeout.
	if err := e.doUntilReady("PUT", "/v1/rdds/"+LoadRDD+"/keys/warmup", `1`, http.StatusNoContent, 3*time.Minute); err != nil {
		return nil, err
	}
	// A bulk load puts the load's keys in Spark partitions (and not in the
	// hot-key cache): the load's reads then run Spark lookup jobs however
	// few writes a busy machine lets through.
	// The preload file lies in the node's default file root.
	if err := e.preload(filepath.Join(dir, "node", "files", "preload.jsonl"), 3000); err != nil {
		return nil, err
	}
	// One registry snapshot, so Raft's fsm_snapshot series exists.
	if err := e.Node.Registry.Snapshot(); err != nil {
		return nil, err
	}
	// A real checkpoint of the durable RDD, so the checkpoint
	// panels and alerts have series; the load adds a log tail after it.
	if err := e.do("PUT", "/v1/rdds/"+DurableRDD+"/keys/warmup", `1`, http.StatusNoContent); err != nil {
		return nil, err
	}
	if err := e.do("POST", "/v1/rdds/"+DurableRDD+"/checkpoint", "", http.StatusOK); err != nil {
		return nil, err
	}

	port, err := netutil.FreePort()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
rule_files: [%[2]q]
scrape_configs:
  - job_name: srdd
    scrape_timeout: %[1]s
    static_configs:
      - targets: [%[3]q]
`, ScrapeInterval, filepath.Join(opts.DeployDir, "prometheus", "alerts.yml"), e.Node.HTTPAddr())
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	e.prom = exec.Command(promBin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--storage.tsdb.retention.time=1h")
	e.prom.Stdout, e.prom.Stderr = logf, logf
	e.prom.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the check
	if err := e.prom.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("cannot start prometheus: %w", err)
	}
	go func() {
		_ = e.prom.Wait()
		logf.Close()
		close(e.done)
	}()
	e.PromURL = "http://" + addr
	if err := e.waitReady(30 * time.Second); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

func (e *Env) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-e.done:
			return fmt.Errorf("prometheus exited: %s", e.PromLog())
		default:
		}
		if resp, err := e.hc.Get(e.PromURL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prometheus not ready after %s: %s", timeout, e.PromLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PromLog returns the end of Prometheus's log.
func (e *Env) PromLog() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "prometheus.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Close stops Prometheus and the node and removes the temporary files.
func (e *Env) Close() {
	if e.prom != nil && e.prom.Process != nil {
		_ = e.prom.Process.Kill()
		<-e.done
	}
	if e.Node != nil {
		e.Node.Close()
	}
	os.RemoveAll(e.dir)
}

func (e *Env) do(method, path, body string, want int) error {
	req, err := http.NewRequest(method, e.NodeURL+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.hc.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s = %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	return nil
}

// doUntilReady is do, asked again while the node answers 503 (a session
// still starting), until wait has passed.
func (e *Env) doUntilReady(method, path, body string, want int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := e.do(method, path, body, want)
		if err == nil || !strings.Contains(err.Error(), " = 503 ") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
}

// preload bulk-loads keys k0..k(n-1) into LoadRDD and waits for the load.
func (e *Env) preload(path string, n int) error {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, `{"key":"k%d","value":{"n":%d,"pad":"%s"}}`+"\n", i, i, strings.Repeat("x", 64))
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"path": path})
	if err := e.do("POST", "/v1/rdds/"+LoadRDD+"/load", string(body), http.StatusAccepted); err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		resp, err := e.hc.Get(e.NodeURL + "/v1/rdds/" + LoadRDD)
		if err != nil {
			return err
		}
		var info struct {
			Load *struct {
				State string `json:"state"`
				Error string `json:"error"`
			} `json:"load"`
		}
		err = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		if err != nil {
			return err
		}
		switch {
		case info.Load != nil && info.Load.State == "done":
			return nil
		case info.Load != nil && info.Load.State == "failed":
			return fmt.Errorf("preload failed: %s", info.Load.Error)
		case time.Now().After(deadline):
			return fmt.Errorf("preload not done within 3 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Load sends a bounded mix of requests (single and batch gets and sets,
// deletes, scans, counts, misses) from a few clients until d passes or ctx
// ends. It returns the first unexpected answer.
func (e *Env) Load(ctx context.Context, d time.Duration, clients int) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			base := "/v1/rdds/" + LoadRDD
			for i := 0; ctx.Err() == nil; i++ {
				k := r.Intn(5000)
				var err error
				switch op := r.Intn(100); {
				case op < 45:
					err = e.do("PUT", fmt.Sprintf("%s/keys/k%d", base, k), fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 64)), http.StatusNoContent)
				case op < 80:
					st := http.StatusOK
					if err = e.do("GET", fmt.Sprintf("%s/keys/k%d", base, k), "", st); err != nil && strings.Contains(err.Error(), "= 404") {
						err = nil // not written yet
					}
				case op < 88:
					err = e.do("POST", base+"/get", fmt.Sprintf(`{"keys":["k%d","k%d","k%d"]}`, k, k+1, k+2), http.StatusOK)
				case op < 93:
					err = e.do("POST", base+"/set", fmt.Sprintf(`{"items":{"b%d":1,"b%d":2}}`, k, k+1), http.StatusOK)
				case op < 95:
					err = e.do("DELETE", fmt.Sprintf("%s/keys/k%d", base, k), "", http.StatusNoContent)
					if err != nil && strings.Contains(err.Error(), "= 404") {
						err = nil
					}
				case op < 96:
					err = e.do("PUT", fmt.Sprintf("/v1/rdds/%s/keys/d%d", DurableRDD, k%100), fmt.Sprintf(`{"n":%d}`, i), http.StatusNoContent)
				case op < 97:
					err = e.do("GET", base+"/count", "", http.StatusOK)
				case op < 98:
					err = e.do("GET", base+"/scan?prefix=k1&limit=10", "", http.StatusOK)
				default:
					err = e.do("GET", "/v1/rdds/no_such_rdd/keys/x", "", http.StatusNotFound)
				}
				if err != nil && ctx.Err() == nil {
					errs <- err
					return
				}
			}
		}(int64(c + 1))
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Sample is one series of a query result: its labels and its values
// (one for an instant query, many for a range query).
type Sample struct {
	Metric map[string]string
	Times  []float64
	Values []float64
}

// ErrPromQL is a query Prometheus refused (a syntax or type error).
var ErrPromQL = errors.New("prometheus refused the query")

func (e *Env) api(path string, q url.Values, out any) error {
	resp, err := e.hc.Get(e.PromURL + path + "?" + q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("cannot decode %s answer: %w", path, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("%w: %s", ErrPromQL, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// Query evaluates expr now.
func (e *Env) Query(expr string) ([]Sample, error) {
	return e.query("/api/v1/query", url.Values{"query": {expr}})
}

// QueryRange evaluates expr over [start, end] every step.
func (e *Env) QueryRange(expr string, start, end time.Time, step time.Duration) ([]Sample, error) {
	return e.query("/api/v1/query_range", url.Values{"query": {expr},
		"start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}})
}

func (e *Env) query(path string, q url.Values) ([]Sample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
			Values [][]any           `json:"values"`
		} `json:"result"`
	}
	if err := e.api(path, q, &data); err != nil {
		return nil, err
	}
	var out []Sample
	for _, r := range data.Result {
		s := Sample{Metric: r.Metric}
		points := r.Values
		if r.Value != nil {
			points = [][]any{r.Value}
		}
		for _, p := range points {
			if len(p) != 2 {
				continue
			}
			t, _ := p[0].(float64)
			str, _ := p[1].(string)
			v, _ := strconv.ParseFloat(str, 64)
			s.Times = append(s.Times, t)
			s.Values = append(s.Values, v)
		}
		out = append(out, s)
	}
	return out, nil
}

// Rule is one rule as Prometheus's /api/v1/rules reports it.
type Rule struct {
	Name           string  `json:"name"`
	Query          string  `json:"query"`
	Health         string  `json:"health"`
	LastError      string  `json:"lastError"`
	LastEvaluation string  `json:"lastEvaluation"`
	EvaluationTime float64 `json:"evaluationTime"`
}

// Rules returns every loaded rule.
func (e *Env) Rules() ([]Rule, error) {
	var data struct {
		Groups []struct {
			Rules []Rule `json:"rules"`
		} `json:"groups"`
	}
	if err := e.api("/api/v1/rules", url.Values{}, &data); err != nil {
		return nil, err
	}
	var out []Rule
	for _, g := range data.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

// WaitScrapes waits until Prometheus holds at least n samples of up for
// the node, so rate() windows have data.
func (e *Env) WaitScrapes(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	expr := fmt.Sprintf(`count_over_time(up{job="srdd"}[%s]) >= %d`, time.Duration(n+2)*ScrapeInterval, n)
	for {
		s, err := e.Query(expr)
		if err != nil {
			return err
		}
		if len(s) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fewer than %d scrapes after %s: %s", n, timeout, e.PromLog())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Expr is one PromQL expression of the dashboard or the alert rules.
type Expr struct {
	Where string // panel title and refId, or alert name
	Expr  string // as written
}

// Grafana's variables as the check resolves them.
var grafanaVars = strings.NewReplacer("$__rate_interval", RateWindow, "${__rate_interval}", RateWindow,
	"$__interval", RateWindow, "$instance", ".*", "${instance}", ".*")

// Resolve replaces the dashboard's variables with values for the check.
func Resolve(expr string) string { return grafanaVars.Replace(expr) }

// Dashboard is the part of a Grafana dashboard JSON the checks read.
type Dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []Panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource json.RawMessage `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

// Panel is one dashboard panel.
type Panel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Datasource  json.RawMessage          `json:"datasource"`
	GridPos     struct{ H, W, X, Y int } `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID        string          `json:"refId"`
		Expr         string          `json:"expr"`
		LegendFormat string          `json:"legendFormat"`
		Datasource   json.RawMessage `json:"datasource"`
	} `json:"targets"`
}

// LoadDashboard reads a dashboard JSON file.
func LoadDashboard(path string) (*Dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("cannot parse %s: %w", path, err)
	}
	return &d, nil
}

// Exprs lists every target expression of the dashboard's panels.
func (d *Dashboard) Exprs() []Expr {
	var out []Expr
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			out = append(out, Expr{Where: fmt.Sprintf("panel %q target %s", p.Title, t.RefID), Expr: t.Expr})
		}
	}
	return out
}

// AlertExprs lists every rule expression of a Prometheus rules file.
func AlertExprs(path string) ([]Expr, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil { // promtool checks the rest
		return nil, fmt.Errorf("cannot parse %s: %w", path, err)
	}
	var out []Expr
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, Expr{Where: "rule " + r.Alert + r.Record, Expr: r.Expr})
		}
	}
	return out, nil
}

var metricName = regexp.MustCompile(`\b(srdd_[a-zA-Z0-9_]+|up)\b`)

// MetricNames returns the metric names an expression mentions.
func MetricNames(expr string) []string {
	return metricName.FindAllString(expr, -1)
}
