package batches

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/livyapp"
	"github.com/srdd/srdd/sparkbridge"
)

// run is one spark-submit process of a batch on this node: its own
// process group (spark-submit execs the JVM, which starts the Python
// driver), and the driver's output, bounded as a session's log is.
type run struct {
	id      int64
	m       *Manager
	user    *sparkbridge.User // the driver's account (nil: the node's)
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	pipes   sync.WaitGroup

	mu     sync.Mutex
	log    livyapp.Log
	dirty  bool
	appID  string
	ui     string
	killed bool
}

func (m *Manager) newRun(id int64) *run {
	return &run{id: id, m: m, done: make(chan struct{})}
}

// start launches spark-submit with stdout and stderr into the log.
func (r *run) start(path string, args, env []string) error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = env
	// The driver works in its own dir (its event log goes there too),
	// as the interpreter user when there is one.
	cmd.Dir = r.m.eventDir(r.id)
	cmd.Stdout, cmd.Stderr = outW, outW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: r.user.Credential()}
	if err := cmd.Start(); err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	outW.Close()
	r.cmd = cmd
	r.pipes.Add(1)
	go func() {
		defer r.pipes.Done()
		sparkbridge.ReadLines(outR, r.appendLog, nil)
	}()
	go func() {
		err := cmd.Wait()
		r.pipes.Wait()
		r.mu.Lock()
		r.waitErr = err
		r.mu.Unlock()
		close(r.done)
	}()
	return nil
}

func (r *run) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Application ids as cluster managers print them, and the UI's address.
var (
	appIDRE = regexp.MustCompile(`\b(app-\d{14}-\d{4,}|application_\d+_\d+|local-\d{10,}|spark-application-\d+)\b`)
	uiRE    = regexp.MustCompile(`Bound SparkUI to \S+, and started at (https?://\S+)`)
)

// appendLog keeps the last LogLines lines and LogBytes bytes, and picks
// the application id and UI address out of the driver's output.
func (r *run) appendLog(line string) {
	maxLines, maxBytes := r.m.cfg.LogLines, r.m.cfg.LogBytes
	if len(line) > maxBytes {
		line = line[:maxBytes]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.appID == "" {
		if m := appIDRE.FindString(line); m != "" {
			r.appID = m
		}
	}
	if r.ui == "" {
		if m := uiRE.FindStringSubmatch(line); m != nil {
			r.ui = m[1]
		}
	}
	r.log.Append(line, maxLines, maxBytes)
	r.dirty = true
}

// logFile is a batch's log on disk: the kept lines and how many came
// before them.
type logFile struct {
	Start int      `json:"start"`
	Lines []string `json:"lines"`
}

// flush writes the log to disk if it changed (write, then rename: a
// reader never sees half a file).
func (r *run) flush() error {
	r.mu.Lock()
	if !r.dirty {
		r.mu.Unlock()
		return nil
	}
	kept, start := r.log.Kept()
	b, err := json.Marshal(logFile{Start: start, Lines: kept})
	r.dirty = false
	r.mu.Unlock()
	if err != nil {
		return err
	}
	path := r.m.logPath(r.id)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lines returns the kept log and the number of lines before it.
func (r *run) lines() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.Kept()
}

// kill ends the whole process group: SIGTERM, then SIGKILL after grace.
func (r *run) kill(grace time.Duration) {
	r.mu.Lock()
	r.killed = true
	r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	pgid := r.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(grace):
	}
	// The JVM may have left children (the Python driver, its workers)
	// in the group: take them all.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// eventAppID finds the application id from the event log Spark writes
// under the batch's event directory (named after the application), for
// master local[*], which prints the id nowhere.
func (m *Manager) eventAppID(id int64) string {
	entries, err := os.ReadDir(m.eventDir(id))
	if err != nil {
		return ""
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".inprogress")
		if appIDRE.MatchString(name) {
			return appIDRE.FindString(name)
		}
		if strings.HasPrefix(name, "eventlog_v2_") { // rolling event logs: a directory
			return strings.TrimPrefix(name, "eventlog_v2_")
		}
	}
	return ""
}

// pruneEvents removes rolled event log files but the newest of each
// application: srdd reads only the application id from them.
func (m *Manager) pruneEvents(id int64) {
	apps, _ := filepath.Glob(filepath.Join(m.eventDir(id), "eventlog_v2_*"))
	for _, app := range apps {
		files, _ := filepath.Glob(filepath.Join(app, "events_*"))
		seq := func(p string) int {
			n, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(filepath.Base(p), "events_"), "_", 2)[0])
			return n
		}
		sort.Slice(files, func(i, j int) bool { return seq(files[i]) < seq(files[j]) })
		for _, f := range files[:max(0, len(files)-1)] {
			_ = os.Remove(f)
		}
	}
}

// supervise follows a run: running once its application has an id,
// then success, dead or killed by its exit.
func (m *Manager) supervise(r *run) {
	defer m.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	running := false
	for loop := true; loop; {
		select {
		case <-r.done:
			loop = false
		case <-t.C:
		}
		if err := r.flush(); err != nil {
			m.cfg.Logger.Warn("cannot write batch log", "batch", r.id, "error", err)
		}
		m.pruneEvents(r.id)
		r.mu.Lock()
		appID, ui := r.appID, r.ui
		r.mu.Unlock()
		if appID == "" {
			if appID = m.eventAppID(r.id); appID != "" {
				r.mu.Lock()
				r.appID = appID
				r.mu.Unlock()
			}
		}
		if !running && appID != "" && loop {
			running = true
			m.setState(r.id, cluster.BatchRunning, "", appID, ui)
		}
	}
	r.mu.Lock()
	killed, waitErr, appID, ui := r.killed, r.waitErr, r.appID, r.ui
	r.mu.Unlock()
	state, reason := cluster.BatchSuccess, ""
	switch {
	case killed:
		state, reason = cluster.BatchKilled, "killed"
	case waitErr != nil:
		state, reason = cluster.BatchDead, fmt.Sprintf("spark-submit ended: %v", waitErr)
	}
	if reason != "" {
		r.appendLog("srdd: batch " + state + ": " + reason)
	}
	if err := r.flush(); err != nil {
		m.cfg.Logger.Warn("cannot write batch log", "batch", r.id, "error", err)
	}
	_ = os.RemoveAll(m.eventDir(r.id))
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if !closed {
		m.setState(r.id, state, reason, appID, ui)
	}
	m.forget(r)
	m.cfg.Logger.Info("batch ended", "batch", r.id, "state", state, "reason", reason)
}

// readLogFile reads a finished batch's log from disk.
func (m *Manager) readLogFile(id int64) ([]string, int, error) {
	b, err := os.ReadFile(m.logPath(id))
	if os.IsNotExist(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var f logFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, 0, fmt.Errorf("batch %d log %s: %w", id, filepath.Base(m.logPath(id)), err)
	}
	return f.Lines, f.Start, nil
}
