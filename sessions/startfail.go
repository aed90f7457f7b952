package sessions

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/srdd/srdd/cluster"
)

// Failing starts back off (docs/ARCHITECTURE.md, "Failing starts back
// off"). The node's default session is started by the node itself, to
// adopt durable RDDs whose session died: if its interpreter cannot start
// (no pyspark, no Java, a bad Spark setting), each new try would be one
// more session record in the registry and one more directory on disk. So
// a default session that failed to start is retried only after a delay
// that doubles from startRetryBase up to startRetryMax, with jitter, and
// there is at most one default session starting at a time.
const (
	startRetryBase = time.Second
	startRetryMax  = 5 * time.Minute
	// startStable is how long a default session must have served before
	// the count of failed starts in a row begins again.
	startStable = time.Minute
	// pruneEvery is how often ended sessions beyond MaxDeadSessions are
	// removed, besides at start-up.
	pruneEvery = 10 * time.Second
	// DefaultMaxDeadSessions is how many ended sessions of this node the
	// registry and the data dir keep by default.
	DefaultMaxDeadSessions = 100
)

// ErrStartBackoff: the node's default session failed to start and the
// next try is not due yet (503 starting, Retry-After).
var ErrStartBackoff = fmt.Errorf("%w: the node's default session failed to start", ErrNotReady)

// StartFailure describes the default session's failed starts.
type StartFailure struct {
	// Failures counts the failed starts in a row.
	Failures int
	// LastError is the last failure's cause, one line.
	LastError string
	// NextAttempt is when the next start may begin (zero: now).
	NextAttempt time.Time
}

// startState is the default session's start history (Manager.starts).
type startState struct {
	mu       sync.Mutex
	failures int
	lastErr  string
	next     time.Time
	failAt   time.Time // last failure
	okAt     time.Time // last successful bring-up
}

// startDelay is the wait after the n'th failed start in a row: 1 s
// doubling, capped at 5 min, then ±20% jitter so nodes that failed
// together do not retry together.
func startDelay(n int) time.Duration {
	d := startRetryBase << min(max(n-1, 0), 20)
	d = min(d, startRetryMax)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// startFailed records a failed start of session s. Every session's
// failure is counted (srdd_session_start_failures_total); the default
// session's also sets the back-off.
func (m *Manager) startFailed(s *session, err error) {
	m.startFailures.Add(1)
	if !s.internal {
		return
	}
	cause := oneLine(err.Error())
	if last := s.lastErrorLine(); last != "" && !strings.Contains(cause, last) {
		cause += ": " + last
	}
	st := &m.starts
	st.mu.Lock()
	if !st.okAt.IsZero() && st.okAt.After(st.failAt) && time.Since(st.okAt) > startStable {
		st.failures = 0 // it served a while: a new series of failures
	}
	st.failures++
	st.lastErr, st.failAt = cause, time.Now()
	st.next = st.failAt.Add(startDelay(st.failures))
	n, next := st.failures, st.next
	st.mu.Unlock()
	m.cfg.Logger.Error("the default session failed to start; backing off", "session", s.id, "failures", n,
		"next_attempt", next.Format(time.RFC3339), "error", cause)
}

// startSucceeded records a default session's successful bring-up.
func (m *Manager) startSucceeded() {
	st := &m.starts
	st.mu.Lock()
	st.okAt = time.Now()
	st.mu.Unlock()
}

// DefaultStartFailure reports the default session's failed starts, if
// its last start failed (ok false: it has not failed since it last came
// up).
func (m *Manager) DefaultStartFailure() (StartFailure, bool) {
	st := &m.starts
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.failures == 0 || st.okAt.After(st.failAt) {
		return StartFailure{}, false
	}
	f := StartFailure{Failures: st.failures, LastError: st.lastErr}
	if time.Now().Before(st.next) {
		f.NextAttempt = st.next
	}
	return f, true
}

// StartFailures counts the sessions of this node that failed to start.
func (m *Manager) StartFailures() int64 { return m.startFailures.Load() }

// lastErrorLine is the last line of the session's output that reads as
// an error (the cause of a failed start, e.g. a ModuleNotFoundError), or
// the last line.
func (s *session) lastErrorLine() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := ""
	lines := s.log.Tail(50)
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "srdd: ") {
			continue
		}
		if last == "" {
			last = l
		}
		if strings.Contains(l, "Error") || strings.Contains(l, "Exception") {
			return oneLine(l)
		}
	}
	return oneLine(last)
}

// oneLine folds s into one line of at most 300 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:297] + "..."
	}
	return s
}

// defaultName reports whether name is one of this node's default
// session names (srdd-default-NODE or srdd-default-NODE-K).
func defaultName(prefix, name string) (k int, ok bool) {
	if name == prefix {
		return 0, true
	}
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return 0, false
	}
	k, err := strconv.Atoi(rest)
	return k, err == nil && k > 0
}

// pruneEnded removes the oldest ended (dead or killed) sessions of this
// node beyond MaxDeadSessions, from the registry (CmdDeleteSession) and
// from the data dir. A session that still holds a shared RDD is kept (a
// durable RDD is adopted from it; a lost memory RDD stays listed). Ids
// come from the registry's counter, so a pruned id is never reused.
func (m *Manager) pruneEnded() {
	keep := m.cfg.MaxDeadSessions
	if keep < 0 {
		keep = 0
	}
	rr, ok := m.reg.(interface{ RDDs() []cluster.RDD })
	if !ok {
		return
	}
	holds := map[int64]bool{}
	for _, r := range rr.RDDs() {
		holds[r.SessionID] = true
	}
	me := m.reg.ID()
	var ended []int64
	for _, s := range m.reg.Sessions() {
		if s.Node == me && s.Status != cluster.SessionActive && !holds[s.ID] {
			ended = append(ended, s.ID)
		}
	}
	if len(ended) > keep {
		sort.Slice(ended, func(i, j int) bool { return ended[i] < ended[j] })
		for _, id := range ended[:len(ended)-keep] {
			if err := m.forget(id); err != nil {
				m.cfg.Logger.Warn("cannot prune an ended session", "session", id, "error", err)
				return
			}
		}
		m.cfg.Logger.Info("pruned ended sessions", "removed", len(ended)-keep, "kept", keep)
	}
	m.pruneDirs()
}

// forget deletes an ended session's record and its files.
func (m *Manager) forget(id int64) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	s, live := m.live[id]
	m.mu.Unlock()
	if live {
		s.mu.Lock()
		running := s.state != StateDead && s.state != StateError && s.state != StateKilled
		s.mu.Unlock()
		if running {
			return nil // still shutting down; next round
		}
	}
	_, err := m.reg.Apply(cluster.Command{Type: cluster.CmdDeleteSession, Body: &cluster.DeleteSession{ID: id}})
	if err != nil && !errors.Is(err, cluster.ErrSessionNotFound) {
		return err
	}
	m.removeLocal(id, s, live)
	return nil
}

// pruneDirs removes session directories whose session the registry no
// longer has (a record is written before its directory, so such a
// directory belongs to no session).
func (m *Manager) pruneDirs() {
	if m.cfg.DataDir == "" {
		return
	}
	root := filepath.Join(m.cfg.DataDir, "sessions")
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range ents {
		id, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || !e.IsDir() {
			continue
		}
		if _, ok := m.reg.Session(id); !ok {
			_ = os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}
