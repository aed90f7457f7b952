// Package batches runs Livy batches: a client's application file run by
// the spark-submit bundled with pyspark, against the node's Spark master.
// The record of each batch (state, app id, principal) lives in the Raft
// registry (cluster/batches.go); the driver process and its log live on
// the node the batch was placed on (docs/ARCHITECTURE.md, "Batches").
package batches

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/defaults"
	"github.com/srdd/srdd/internal/livyapp"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge"
)

// Sentinel errors, mapped to HTTP status codes by httpapi.
var (
	ErrNotFound = errors.New("batch not found")
	ErrInvalid  = errors.New("invalid batch request")
	ErrLimit    = errors.New("limit reached")
	ErrClosed   = errors.New("batch manager closed")
	ErrNotLocal = errors.New("batch runs on another node")
)

// Registry is what the manager needs from the Raft registry.
type Registry interface {
	ID() string
	Apply(cluster.Command) (any, error)
	Batch(id int64) (cluster.Batch, bool)
	Batches() []cluster.Batch
	Member(id string) (cluster.Member, bool)
}

// Policy checks what a client asks for by the node's session rules
// (sessions.Manager: file roots, Spark conf caps and denials).
type Policy interface {
	SubmitSettings(req sessions.CreateRequest) (map[string]string, error)
	CheckFile(field, uri string) (string, error)
}

// Config configures the manager. Zero values mean "default".
type Config struct {
	// Python runs the drivers of Python batches (PYSPARK_PYTHON); its
	// pyspark package holds the spark-submit that runs every batch.
	Python string
	// SparkSubmit overrides where spark-submit is (tests); default: found
	// from Python's pyspark.
	SparkSubmit string
	Master      string            // the node's --spark-master
	SparkConf   map[string]string // the node's --spark-conf, under the client's
	DataDir     string            // logs go to DataDir/batches
	LogLines    int               // driver log lines kept per batch; default 1000
	LogBytes    int               // and their bytes; default 1 MiB
	MaxBatches  int               // live batches on this node; default 16
	// KillGrace is how long a killed driver has between SIGTERM and
	// SIGKILL; default 5s.
	KillGrace time.Duration
	// Scheme is how other nodes and clients reach this one ("http" or
	// "https"), for appInfo.driverLogUrl.
	Scheme string
	// RunAs, if set (--interpreter-user), is the unprivileged account the
	// drivers run as, as interpreters do: user code then cannot read the
	// Raft dir, the users file, keys or certificates.
	RunAs *sparkbridge.User
	// UIDs, if set (--interpreter-uids), gives each driver a uid of its
	// own instead (RunAs then only names the group that traverses the
	// log dir); it goes back once the driver's processes are gone. No
	// free uid is a limit (ErrLimit).
	UIDs *sparkbridge.UIDPool
	// Env is what the operator passes to user code on purpose
	// (--interpreter-env), as NAME=value.
	Env    []string
	Logger hclog.Logger
}

// Manager runs the batches placed on this node and answers for any.
type Manager struct {
	cfg    Config
	reg    Registry
	policy Policy
	dir    string
	// startedAt (unix ms): batches this run creates are recorded at or
	// after it; only older ones can be leftovers of a previous run.
	startedAt int64

	submitOnce sync.Once
	submit     string
	submitErr  error

	mu       sync.Mutex
	live     map[int64]*run
	creating int
	closed   bool
	wg       sync.WaitGroup
	stop     chan struct{}
}

// DefaultConfig is the one place the batch manager's defaults live:
// zero fields of a Config take them, and srdd server's flags start from
// them.
func DefaultConfig() Config {
	return Config{LogLines: 1000, LogBytes: 1 << 20, MaxBatches: 16, KillGrace: 5 * time.Second, Scheme: "http"}
}

// New returns a manager; call Reconcile once the registry has a leader.
func New(cfg Config, reg Registry, policy Policy) (*Manager, error) {
	defaults.Fields(&cfg, DefaultConfig())
	if cfg.Python == "" {
		cfg.Python = "python3"
	}
	if cfg.Master == "" {
		cfg.Master = "local[*]"
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	dir := filepath.Join(cfg.DataDir, "batches")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create batch log dir: %w", err)
	}
	// The driver's user traverses the log dir to reach its own dir in it,
	// and reads none of the logs (they stay the node's, 0600).
	if err := cfg.RunAs.ShareGroup(dir, 0o710); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, reg: reg, policy: policy, dir: dir, startedAt: time.Now().UnixMilli(),
		live: map[int64]*run{}, stop: make(chan struct{})}
	m.wg.Add(1)
	go m.watchRegistry()
	return m, nil
}

// Request is Livy's POST /batches body.
type Request struct {
	File           string            `json:"file"`
	ProxyUser      string            `json:"proxyUser"`
	ClassName      string            `json:"className"`
	Args           []string          `json:"args"`
	Jars           []string          `json:"jars"`
	PyFiles        []string          `json:"pyFiles"`
	Files          []string          `json:"files"`
	DriverMemory   string            `json:"driverMemory"`
	DriverCores    int               `json:"driverCores"`
	ExecutorMemory string            `json:"executorMemory"`
	ExecutorCores  int               `json:"executorCores"`
	NumExecutors   int               `json:"numExecutors"`
	Archives       []string          `json:"archives"`
	Queue          string            `json:"queue"`
	Name           string            `json:"name"`
	Conf           map[string]string `json:"conf"`
	// Livy's ACLs, as for sessions (srdd's extension of the body).
	ViewUsers   []string `json:"viewUsers"`
	ModifyUsers []string `json:"modifyUsers"`
	// Principal is the authenticated principal (set by the HTTP layer).
	Principal string `json:"-"`
}

// Bounds of a request, beyond the body size limit of the HTTP layer.
const (
	maxArgs    = 1024
	maxArgLen  = 64 << 10
	maxFileLen = 4096
)

var classNameRE = regexp.MustCompile(`^[\p{L}_$][\p{L}\p{N}_$]*(\.[\p{L}_$][\p{L}\p{N}_$]*)*$`)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// spec is a checked request: what spark-submit gets.
type spec struct {
	file, className, name string
	args                  []string
	conf                  map[string]string
}

func (m *Manager) check(req *Request) (spec, error) {
	var s spec
	switch {
	case req.File == "":
		return s, invalid(`a batch needs "file", the application to run`)
	case len(req.File) > maxFileLen:
		return s, invalid("file is longer than %d bytes", maxFileLen)
	case req.ClassName != "" && (len(req.ClassName) > 1024 || !classNameRE.MatchString(req.ClassName)):
		return s, invalid("className %q is not a Java class name", req.ClassName)
	case len(req.Args) > maxArgs:
		return s, invalid("at most %d args", maxArgs)
	case len(req.ProxyUser) > 128:
		return s, invalid("proxyUser is longer than 128 characters")
	}
	for _, a := range req.Args {
		if len(a) > maxArgLen || strings.IndexByte(a, 0) >= 0 {
			return s, invalid("an arg is longer than %d bytes or holds a NUL", maxArgLen)
		}
	}
	file, err := m.policy.CheckFile("file", req.File)
	if err != nil {
		return s, err
	}
	conf, err := m.policy.SubmitSettings(sessions.CreateRequest{
		Name: req.Name, Conf: req.Conf, ProxyUser: req.ProxyUser,
		DriverMemory: req.DriverMemory, DriverCores: req.DriverCores,
		ExecutorMemory: req.ExecutorMemory, ExecutorCores: req.ExecutorCores, NumExecutors: req.NumExecutors,
		Jars: req.Jars, PyFiles: req.PyFiles, Files: req.Files, Archives: req.Archives, Queue: req.Queue,
		ViewUsers: req.ViewUsers, ModifyUsers: req.ModifyUsers,
	})
	if err != nil {
		return s, err
	}
	return spec{file: file, className: req.ClassName, name: req.Name, args: req.Args, conf: conf}, nil
}

// reserve takes a slot under MaxBatches for a create.
func (m *Manager) reserve() (func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if len(m.live)+m.creating >= m.cfg.MaxBatches {
		return nil, fmt.Errorf("%w: this node runs its maximum of %d batches (--max-batches)", ErrLimit, m.cfg.MaxBatches)
	}
	m.creating++
	return func() {
		m.mu.Lock()
		m.creating--
		m.mu.Unlock()
	}, nil
}

// Create checks a request, records the batch in the registry on this
// node and starts spark-submit. It returns while the batch is starting.
func (m *Manager) Create(req Request) (View, error) {
	s, err := m.check(&req)
	if err != nil {
		return View{}, err
	}
	submit, err := m.sparkSubmit()
	if err != nil {
		return View{}, err
	}
	release, err := m.reserve()
	if err != nil {
		return View{}, err
	}
	defer release()
	user := m.cfg.RunAs
	var running *run // set once spark-submit runs
	if m.cfg.UIDs != nil {
		if user, err = m.cfg.UIDs.Acquire(); err != nil {
			return View{}, fmt.Errorf("%w: %v", ErrLimit, err)
		}
		// Until the driver runs, a failure gives the uid back here; then
		// it goes back once the driver is gone.
		pooled := user
		defer func() { m.cfg.UIDs.Release(pooled) }()
		defer func() {
			if r := running; r != nil {
				pooled = nil
				go func() { <-r.done; m.cfg.UIDs.Release(user) }()
			}
		}()
	}
	v, err := m.reg.Apply(cluster.Command{Type: cluster.CmdCreateBatch, Body: &cluster.CreateBatch{
		Name: req.Name, Node: m.reg.ID(), CreatedAt: time.Now().UnixMilli(), ProxyUser: req.ProxyUser,
		Principal: req.Principal, ViewUsers: req.ViewUsers, ModifyUsers: req.ModifyUsers,
	}})
	if err != nil {
		return View{}, err
	}
	id := v.(int64)
	r := m.newRun(id)
	r.user = user
	if err := os.MkdirAll(m.eventDir(id), 0o700); err != nil {
		m.setState(id, cluster.BatchDead, "cannot create the event log directory", "", "")
		return View{}, fmt.Errorf("cannot create batch %d event dir: %w", id, err)
	}
	if err := user.Own(m.eventDir(id)); err != nil {
		m.setState(id, cluster.BatchDead, "cannot give the event log directory to the interpreter user", "", "")
		return View{}, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.setState(id, cluster.BatchDead, "the node stopped while the batch was starting", "", "")
		return View{}, ErrClosed
	}
	m.live[id] = r
	m.mu.Unlock()
	if err := r.start(submit, m.command(id, s), m.env(id, user)); err != nil {
		m.forget(r)
		m.setState(id, cluster.BatchDead, err.Error(), "", "")
		return View{}, fmt.Errorf("%w: cannot start spark-submit: %v", ErrInvalid, err)
	}
	running = r
	m.wg.Add(1)
	go m.supervise(r)
	return m.Get(id)
}

// command is spark-submit's argument list for a batch. Defaults first,
// then the node's --spark-conf, then the client's settings (checked).
func (m *Manager) command(id int64, s spec) []string {
	name := s.name
	if name == "" {
		name = fmt.Sprintf("srdd-batch-%d", id)
	}
	conf := map[string]string{
		"spark.ui.enabled":                    "false",
		"spark.ui.showConsoleProgress":        "false",
		"spark.driver.host":                   "127.0.0.1",
		"spark.driver.bindAddress":            "127.0.0.1",
		"spark.app.name":                      name,
		"spark.yarn.submit.waitAppCompletion": "true",
	}
	if strings.HasPrefix(m.cfg.Master, "local") {
		// A local master prints the application id nowhere; Spark names
		// the event log after it (eventAppID). Rolled at 10m, with the
		// older files pruned while it runs (pruneEvents), so a long batch
		// keeps at most ~20m here.
		conf["spark.eventLog.enabled"] = "true"
		conf["spark.eventLog.dir"] = "file://" + m.eventDir(id)
		conf["spark.eventLog.rolling.enabled"] = "true"
		conf["spark.eventLog.rolling.maxFileSize"] = "10m"
		if m.cfg.UIDs != nil {
			// Each driver has a uid of its own: its RPC port (block
			// manager) asks for the secret Spark generates for a local
			// master, so no other session or batch fetches its data.
			conf["spark.authenticate"] = "true"
		}
	}
	for k, v := range m.cfg.SparkConf {
		conf[k] = v
	}
	for k, v := range s.conf {
		conf[k] = v
	}
	args := []string{"--master", m.cfg.Master}
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		args = append(args, "--conf", k+"="+conf[k])
	}
	if s.className != "" {
		args = append(args, "--class", s.className)
	}
	args = append(args, s.file)
	return append(args, s.args...)
}

// env is the driver's environment: the allowlisted part of the node's,
// as an interpreter gets (docs/ARCHITECTURE.md invariant 9, "Sessions
// hold no secret"), the variables the operator passes on purpose
// (--interpreter-env), and the node's Python for PySpark.
func (m *Manager) env(id int64, user *sparkbridge.User) []string {
	env := append([]string(nil), m.cfg.Env...)
	if user != nil {
		env = append(env, "HOME="+m.eventDir(id)) // the node's HOME is not the driver's
		env = append(env, user.Env(m.eventDir(id))...)
	}
	env = append(env, "PYSPARK_PYTHON="+m.cfg.Python, "PYSPARK_DRIVER_PYTHON="+m.cfg.Python,
		"SPARK_HOME="+filepath.Dir(filepath.Dir(m.submit)), "SPARK_LOCAL_IP=127.0.0.1", "PYTHONUNBUFFERED=1")
	return sparkbridge.ChildEnv(env...)
}

func (m *Manager) eventDir(id int64) string {
	return filepath.Join(m.dir, fmt.Sprintf("%d.events", id))
}
func (m *Manager) logPath(id int64) string {
	return filepath.Join(m.dir, fmt.Sprintf("%d.log.json", id))
}

// setState records a state change, retrying through an election; it
// gives up when the batch has finished (someone else ended it) or is
// gone, or the manager closes.
func (m *Manager) setState(id int64, state, reason, appID, ui string) {
	cmd := cluster.Command{Type: cluster.CmdSetBatchState, Body: &cluster.SetBatchState{
		ID: id, State: state, Reason: truncate(reason, 4000), AppID: appID, SparkUIURL: ui, At: time.Now().UnixMilli()}}
	for attempt := 0; ; attempt++ {
		_, err := m.reg.Apply(cmd)
		if err == nil || errors.Is(err, cluster.ErrBatchFinished) || errors.Is(err, cluster.ErrBatchNotFound) ||
			errors.Is(err, cluster.ErrInvalidCommand) {
			return
		}
		if attempt%20 == 0 {
			m.cfg.Logger.Warn("cannot record a batch state yet; retrying", "batch", id, "state", state, "error", err)
		}
		select {
		case <-m.stop:
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// forget drops a run from the live set.
func (m *Manager) forget(r *run) {
	m.mu.Lock()
	delete(m.live, r.id)
	m.mu.Unlock()
}

// Reconcile marks dead every batch the registry says runs here that this
// process does not run: the node restarted and its drivers went with it.
func (m *Manager) Reconcile() error {
	return livyapp.Reconcile(m.reg.Batches(),
		func(b cluster.Batch) bool { return b.Node == m.reg.ID() && !b.Final() && b.CreatedAt < m.startedAt },
		func(b cluster.Batch) bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			_, ok := m.live[b.ID]
			return ok
		},
		func(b cluster.Batch) error {
			_, err := m.reg.Apply(cluster.Command{Type: cluster.CmdSetBatchState, Body: &cluster.SetBatchState{
				ID: b.ID, State: cluster.BatchDead, Reason: "node " + b.Node + " restarted; the driver went with it", At: time.Now().UnixMilli()}})
			if err != nil && !errors.Is(err, cluster.ErrBatchFinished) && !errors.Is(err, cluster.ErrBatchNotFound) {
				return fmt.Errorf("cannot mark batch %d dead: %w", b.ID, err)
			}
			return nil
		})
}

// watchRegistry stops a driver whose batch the registry has ended
// without this node (the leader marked the node down while it was cut
// off): the record says dead, so nothing may keep running.
func (m *Manager) watchRegistry() {
	defer m.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for tick := 0; ; tick++ {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		if tick%30 == 0 {
			m.removeForgotten()
		}
		m.mu.Lock()
		runs := slices.Collect(maps.Values(m.live))
		m.mu.Unlock()
		for _, r := range runs {
			if rec, ok := m.reg.Batch(r.id); ok && rec.Final() && !r.exited() {
				r.appendLog("srdd: the registry ended this batch (" + rec.State + ": " + rec.Reason + "); stopping the driver")
				r.kill(m.cfg.KillGrace)
			}
		}
	}
}

// removeForgotten deletes the logs and event directories of batches the
// registry no longer holds (it keeps cluster.MaxBatchRecords), so the
// disk holds at most that many logs of --max-log-bytes each.
func (m *Manager) removeForgotten() {
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		idText, _, _ := strings.Cut(e.Name(), ".")
		id, err := strconv.ParseInt(idText, 10, 64)
		if err != nil {
			continue
		}
		m.mu.Lock()
		_, live := m.live[id]
		m.mu.Unlock()
		if _, kept := m.reg.Batch(id); kept || live {
			continue
		}
		_ = os.RemoveAll(filepath.Join(m.dir, e.Name()))
	}
}

// Close kills every driver this node runs and waits for them. Their
// records stay as they are; the next start marks them dead (Reconcile).
// Idempotent.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	runs := slices.Collect(maps.Values(m.live))
	m.mu.Unlock()
	close(m.stop)
	for _, r := range runs {
		r.appendLog("srdd: the node is stopping; killing the driver")
		r.kill(m.cfg.KillGrace)
	}
	m.wg.Wait()
}
