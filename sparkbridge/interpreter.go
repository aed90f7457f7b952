package sparkbridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/vmihailenco/msgpack/v5"
)

// ErrStartFailed means the interpreter could not bring Spark up.
var ErrStartFailed = errors.New("interpreter failed to start spark")

// Config says how to start one interpreter.
type Config struct {
	Python     string            // python executable with pyspark installed
	PythonPath string            // directory holding srdd_interpreter (ExtractPython)
	Master     string            // Spark master, e.g. local[*]
	SparkConf  map[string]string // extra --conf entries
	SessionID  int64
	// StartTimeout bounds the wait for the handshake line (not for Spark).
	StartTimeout time.Duration
	// StopTimeout is the grace period after a shutdown request.
	StopTimeout time.Duration
	Logger      hclog.Logger
	Metrics     *Metrics
	// OnOutput receives every output line of the process (see ProcessConfig).
	OnOutput func(line string)
	// NodeURL is this node's HTTP base URL: user code in the session
	// writes to durable RDDs through it, so those writes are logged too.
	NodeURL string
	// DataRules is the data specification (JSON of kvstore.Limits.Rules)
	// the interpreter applies to what the node cannot check: writes by
	// session code, rows of a load. It is handed over in DataRulesEnv;
	// empty leaves the interpreter's fallback (for tests only).
	DataRules string
	// SessionToken, if set, is the session's capability: the bearer token
	// the interpreter sends on those calls. It is handed over on a pipe
	// (fd 3, --token-fd), never in the environment or argv, and is good
	// only for this session's own RDDs on this node while the session
	// lives (docs/ARCHITECTURE.md, "Sessions hold no secret").
	SessionToken string
	// NodeCA, if set, is the CA file the interpreter checks the node's
	// https certificate against (SRDD_NODE_CA).
	NodeCA string
	// Env holds extra environment entries for the child. The node's own
	// environment passes only through an allowlist (env.go).
	Env []string
	// RunAs, if set, runs the interpreter as that unprivileged user, in a
	// work dir of its own under WorkRoot (which must then be set): one
	// account for all (--interpreter-user) or the session's own uid
	// (--interpreter-uids, UIDPool).
	RunAs *User
	// WorkRoot, if set, holds one work dir per session (the interpreter's
	// working directory and HOME: spark-warehouse, metastore_db, ivy
	// caches go there); it is removed when the interpreter exits.
	WorkRoot string
}

// DataRulesEnv is the environment variable that carries Config.DataRules.
const DataRulesEnv = "SRDD_DATA_RULES"

// FakeInterpreterEnv, set to "1" in a child's environment, makes a binary
// that calls bridgetest.MaybeRun (test binaries, bin/srdd) serve as the
// fast test tier's fake interpreter instead of doing its own work. Tests
// only (docs/ARCHITECTURE.md invariant 8).
const FakeInterpreterEnv = "SRDD_FAKE_INTERPRETER"

// ReadyInfo is what the interpreter reports once Spark is up.
type ReadyInfo struct {
	SparkVersion string `msgpack:"spark_version"`
	AppID        string `msgpack:"app_id"`
	Master       string `msgpack:"master"`
}

// Interpreter is one running PySpark driver process and its connection.
//
// proc, conn and sockDir are set once by spawn, before started is closed;
// every method that needs them waits for started first, so an interpreter
// from Launch can be used (and stopped) while its process is starting.
type Interpreter struct {
	cfg      Config
	proc     *Process
	conn     *Conn
	sockDir  string
	started  chan struct{} // closed when spawn has finished, either way
	spawnErr error         // why spawn failed; read after started
	done     chan struct{} // closed when the process has exited, or never ran

	readyOnce sync.Once
	ready     chan struct{} // closed when Spark is up or failed to start
	readyInfo ReadyInfo
	startErr  error

	stopOnce sync.Once
	stopping atomic.Bool   // Stop was called: an exit is not a crash
	abort    chan struct{} // closed by Stop: a start under way is cut short
}

// Start launches the interpreter, waits for its handshake and connects.
// Spark comes up in the background: use WaitReady before Spark work.
func Start(cfg Config) (*Interpreter, error) {
	it := newInterpreter(cfg)
	if err := it.spawn(); err != nil {
		return nil, err
	}
	return it, nil
}

// Launch is Start without the wait: it returns at once, and the process
// starts in the background (a Python interpreter takes a few hundred
// milliseconds to print its handshake). A failure to start shows as
// WaitReady's error and a closed Done, as a crash does; calls made
// meanwhile wait for the process (bounded by their context).
func Launch(cfg Config) *Interpreter {
	it := newInterpreter(cfg)
	go func() { _ = it.spawn() }()
	return it
}

func newInterpreter(cfg Config) *Interpreter {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.Master == "" {
		cfg.Master = "local[*]"
	}
	return &Interpreter{cfg: cfg, ready: make(chan struct{}), started: make(chan struct{}), done: make(chan struct{}),
		abort: make(chan struct{})}
}

// spawn starts the process, waits for its handshake and connects; it runs
// once per interpreter. On failure readiness fails and done is closed.
func (it *Interpreter) spawn() (err error) {
	cfg := it.cfg
	defer func() {
		if err != nil {
			it.spawnErr = err
			it.markReady(ReadyInfo{}, fmt.Errorf("%w: %v", ErrExited, err))
			close(it.done)
		}
		close(it.started)
	}()
	// Unix socket paths are limited to ~108 bytes: keep them in a short temp dir.
	sockDir, err := os.MkdirTemp("", "srdd-")
	if err != nil {
		return fmt.Errorf("cannot create socket dir: %w", err)
	}
	// The interpreter creates its socket there: with RunAs it must own
	// the dir (still 0700, so no other user reaches the socket).
	if err := cfg.RunAs.Own(sockDir); err != nil {
		os.RemoveAll(sockDir)
		return err
	}
	workDir, err := it.makeWorkDir()
	if err != nil {
		os.RemoveAll(sockDir)
		return err
	}
	sock := filepath.Join(sockDir, "i.sock")
	args := []string{"-m", "srdd_interpreter", "--socket", sock,
		"--session-id", strconv.FormatInt(cfg.SessionID, 10), "--master", cfg.Master,
		"--app-name", fmt.Sprintf("srdd-session-%d", cfg.SessionID)}
	if cfg.RunAs != nil && cfg.RunAs.pooled && strings.HasPrefix(cfg.Master, "local") {
		if _, set := cfg.SparkConf["spark.authenticate"]; !set {
			cfg.SparkConf = withConf(cfg.SparkConf, "spark.authenticate", "true")
		}
	}
	keys := make([]string, 0, len(cfg.SparkConf))
	for k := range cfg.SparkConf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--conf", k+"="+cfg.SparkConf[k])
	}
	// PYTHONHASHSEED=0: the driver must hash keys as the executors do
	// (the interpreter would otherwise re-exec itself to set it).
	env := childEnv(workDir, "PYTHONPATH="+joinPythonPath(cfg.PythonPath), "PYTHONUNBUFFERED=1", "PYTHONHASHSEED=0")
	if cfg.NodeURL != "" {
		env = append(env, "SRDD_NODE_URL="+cfg.NodeURL)
	}
	if cfg.DataRules != "" {
		env = append(env, DataRulesEnv+"="+cfg.DataRules)
	}
	if cfg.NodeCA != "" {
		env = append(env, "SRDD_NODE_CA="+cfg.NodeCA)
	}
	env = append(env, cfg.RunAs.Env(workDir)...)
	env = append(env, cfg.Env...)
	var secret []byte
	if cfg.SessionToken != "" {
		secret = []byte(cfg.SessionToken)
		args = append(args, "--token-fd", "3")
	}

	cfg.Metrics.incStarts()
	began := time.Now()
	proc, hs, err := StartProcess(ProcessConfig{
		Path: cfg.Python, Args: args, Env: env, Dir: workDir, Secret: secret,
		Credential: cfg.RunAs.credential(), StartTimeout: cfg.StartTimeout,
		Logger: cfg.Logger, OnOutput: cfg.OnOutput, Abort: it.abort,
	})
	if err != nil {
		os.RemoveAll(sockDir)
		removeWorkDir(workDir)
		return err
	}
	nc, err := net.Dial(hs.Network, hs.Address)
	if err != nil {
		proc.Kill()
		os.RemoveAll(sockDir)
		removeWorkDir(workDir)
		return fmt.Errorf("cannot connect to interpreter at %s: %w", hs.Address, err)
	}
	it.proc, it.sockDir = proc, sockDir
	it.conn = NewConn(nc, func(ev Event) { it.onEvent(ev, began) })
	go func() {
		// If the process dies before Spark is up, readiness fails.
		select {
		case <-proc.Done():
			it.markReady(ReadyInfo{}, fmt.Errorf("%w: %v", ErrExited, proc.waitErr))
		case <-it.ready:
		}
		<-proc.Done()
		removeWorkDir(workDir)
		close(it.done)
		cfg.Metrics.exited(it.stopping.Load())
	}()
	return nil
}

// withConf returns a copy of conf with k set to v. With a uid per session
// (pooled), a local driver's RPC port (block manager: cached partitions)
// asks for the secret Spark generates for a local master, so another
// session on the host cannot fetch this one's data over 127.0.0.1.
func withConf(conf map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(conf)+1)
	for ck, cv := range conf {
		out[ck] = cv
	}
	out[k] = v
	return out
}

// makeWorkDir creates this session's work dir under WorkRoot (owned by
// RunAs), or returns "" to keep the node's working directory.
func (it *Interpreter) makeWorkDir() (string, error) {
	cfg := it.cfg
	if cfg.WorkRoot == "" {
		if cfg.RunAs != nil {
			return "", fmt.Errorf("interpreter user %s needs a work root", cfg.RunAs.Name)
		}
		return "", nil
	}
	dir := filepath.Join(cfg.WorkRoot, fmt.Sprintf("session-%d", cfg.SessionID))
	_ = os.RemoveAll(dir) // a previous run's leftovers
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("cannot create session work dir: %w", err)
	}
	if err := cfg.RunAs.Own(dir); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

func removeWorkDir(dir string) {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

func joinPythonPath(dir string) string {
	if old := os.Getenv("PYTHONPATH"); old != "" {
		return dir + string(os.PathListSeparator) + old
	}
	return dir
}

func (it *Interpreter) onEvent(ev Event, began time.Time) {
	switch ev.Name {
	case "ready":
		var info ReadyInfo
		if err := msgpack.Unmarshal(ev.Data, &info); err != nil {
			it.markReady(info, fmt.Errorf("%w: bad ready event: %v", ErrStartFailed, err))
			return
		}
		it.cfg.Metrics.observeReady(time.Since(began))
		it.markReady(info, nil)
	case "failed":
		var d struct {
			Message string `msgpack:"message"`
		}
		_ = msgpack.Unmarshal(ev.Data, &d)
		it.markReady(ReadyInfo{}, fmt.Errorf("%w: %s", ErrStartFailed, d.Message))
	default:
		it.cfg.Logger.Warn("unknown interpreter event", "event", ev.Name)
	}
}

func (it *Interpreter) markReady(info ReadyInfo, err error) {
	it.readyOnce.Do(func() {
		it.readyInfo, it.startErr = info, err
		if err != nil {
			it.cfg.Metrics.incStartFailures()
			it.cfg.Logger.Error("interpreter not ready", "error", err)
		} else {
			it.cfg.Logger.Info("spark ready", "version", info.SparkVersion, "app_id", info.AppID)
		}
		close(it.ready)
	})
}

// User is the account the interpreter runs as (nil: the node's).
func (it *Interpreter) User() *User { return it.cfg.RunAs }

// Ready is closed once Spark is up or has failed to start.
func (it *Interpreter) Ready() <-chan struct{} { return it.ready }

// WaitReady waits until Spark is up. It returns the start error if Spark
// failed, or ctx's error if ctx ends first.
func (it *Interpreter) WaitReady(ctx context.Context) (ReadyInfo, error) {
	select {
	case <-it.ready:
		return it.readyInfo, it.startErr
	case <-ctx.Done():
		return ReadyInfo{}, ctx.Err()
	}
}

// Call performs one op and records its latency.
func (it *Interpreter) Call(ctx context.Context, op string, args any, out any) error {
	select {
	case <-it.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	if it.spawnErr != nil {
		return fmt.Errorf("%w: %v", ErrExited, it.spawnErr)
	}
	began := time.Now()
	it.cfg.Metrics.addInFlight(1)
	err := it.conn.Call(ctx, op, args, out)
	it.cfg.Metrics.addInFlight(-1)
	it.cfg.Metrics.observe(op, time.Since(began).Seconds(), err)
	if errors.Is(err, ErrConnClosed) {
		select {
		case <-it.proc.Done():
			return fmt.Errorf("%w: %w", ErrExited, err)
		default:
		}
	}
	return err
}

// Done is closed when the interpreter process has exited.
func (it *Interpreter) Done() <-chan struct{} { return it.done }

// ExitErr waits for the process to exit and returns its exit error.
func (it *Interpreter) ExitErr() error {
	<-it.started
	if it.spawnErr != nil {
		return it.spawnErr
	}
	return it.proc.ExitErr()
}

// Pid returns the process id of the Python driver, once it has started;
// 0 if it never did.
func (it *Interpreter) Pid() int {
	<-it.started
	if it.proc == nil {
		return 0
	}
	return it.proc.Pid()
}

// Stop asks the interpreter to shut down, waits up to StopTimeout, then
// kills its process group. It is idempotent and safe after a crash.
func (it *Interpreter) Stop() {
	it.stopOnce.Do(func() {
		it.stopping.Store(true)
		close(it.abort) // a launch waiting for its handshake gives up now
		<-it.started
		if it.spawnErr != nil {
			return
		}
		select {
		case <-it.proc.Done():
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = it.conn.Call(ctx, "shutdown", map[string]any{}, nil)
			cancel()
		}
		it.proc.StopWithin(it.cfg.StopTimeout)
		_ = it.conn.Close()
		os.RemoveAll(it.sockDir)
	})
}
