package sessions

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/livyapp"
)

// Info is a session as Livy's REST API shows it, plus the owning node.
type Info struct {
	ID        int64           `json:"id"`
	Name      *string         `json:"name"`
	AppID     *string         `json:"appId"`
	Principal *string         `json:"owner"` // Livy's name for the principal that created it
	ProxyUser *string         `json:"proxyUser"`
	State     string          `json:"state"`
	Kind      string          `json:"kind"`
	AppInfo   livyapp.AppInfo `json:"appInfo"`
	Log       []string        `json:"log"`
	Node      string          `json:"node"`
}

func (m *Manager) info(s *session) Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Info{ID: s.id, Name: livyapp.OrNil(s.name), AppID: livyapp.OrNil(s.appID), ProxyUser: livyapp.OrNil(s.proxyUser),
		Principal: livyapp.OrNil(s.principal), State: s.state, Kind: s.kind, Log: s.log.Tail(livyapp.ViewLogLines), Node: m.reg.ID()}
}

func recordInfo(rec cluster.Session) Info {
	state := StateDead
	log := []string{}
	if rec.Reason != "" {
		log = append(log, rec.Reason)
	}
	switch rec.Status {
	case cluster.SessionActive:
		state = "not_started" // active on a node that is not this one
	case cluster.SessionKilled:
		state = StateKilled
	}
	return Info{ID: rec.ID, Name: livyapp.OrNil(rec.Name), Principal: livyapp.OrNil(rec.Principal), State: state, Kind: rec.Kind, Log: log, Node: rec.Node}
}

// Get describes one session.
func (m *Manager) Get(id int64) (Info, error) {
	m.mu.Lock()
	s, ok := m.live[id]
	m.mu.Unlock()
	if ok {
		s.contact()
		return m.info(s), nil
	}
	rec, ok := m.reg.Session(id)
	if !ok {
		return Info{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return recordInfo(rec), nil
}

// Resolve turns a session id or name into an id.
func (m *Manager) Resolve(idOrName string) (int64, error) {
	var id int64
	if _, err := fmt.Sscanf(idOrName, "%d", &id); err == nil && fmt.Sprint(id) == idOrName {
		if id < 0 {
			// Ids count up from 0: no session has this one (and the
			// registry refuses it as a command, which would be a 500).
			return 0, fmt.Errorf("%w: %q", ErrNotFound, idOrName)
		}
		return id, nil
	}
	rec, ok := m.reg.SessionByName(idOrName)
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrNotFound, idOrName)
	}
	return rec.ID, nil
}

// List describes every session in the registry, by id.
func (m *Manager) List() []Info {
	recs := m.reg.Sessions()
	out := make([]Info, 0, len(recs))
	for _, rec := range recs {
		m.mu.Lock()
		s, ok := m.live[rec.ID]
		m.mu.Unlock()
		if ok {
			out = append(out, m.info(s))
		} else {
			out = append(out, recordInfo(rec))
		}
	}
	return out
}

// Delete stops a session's interpreter and removes it (and its shared
// RDDs) from the registry. Its id is never reused.
func (m *Manager) Delete(id int64) error {
	m.mu.Lock()
	s, ok := m.live[id]
	m.mu.Unlock()
	if !ok {
		if _, found := m.reg.Session(id); !found {
			return fmt.Errorf("%w: %d", ErrNotFound, id)
		}
	}
	// Registry first: if it fails (no leader), the session stays usable.
	_, err := m.reg.Apply(cluster.Command{Type: cluster.CmdDeleteSession, Body: &cluster.DeleteSession{ID: id}})
	if err != nil {
		return err
	}
	m.removeLocal(id, s, ok)
	return nil
}

// removeLocal stops session id's interpreter if it is live here (s) and removes
// the session from memory and its directory from disk, once the registry
// has deleted it.
func (m *Manager) removeLocal(id int64, s *session, live bool) {
	if live {
		m.stop(s)
		m.mu.Lock()
		delete(m.live, id)
		m.mu.Unlock()
	}
	if m.cfg.DataDir != "" {
		_ = os.RemoveAll(filepath.Dir(historyPath(m.cfg.DataDir, id)))
	}
}

func (m *Manager) stop(s *session) {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.deleting, s.state = true, StateShuttingDown
		close(s.queue) // under mu: Submit sends under mu after checking state
		s.mu.Unlock()
		s.revokeToken() // before the interpreter stops: no call of its is served after
		s.it.Stop()
		s.wg.Wait()
		s.failPending("session stopped")
		s.hist.close()
	})
}

// Submit queues a statement of the given kind ("" means the session's
// default: sql for sql sessions, spark for spark sessions, pyspark
// otherwise); it runs after those before it.
func (m *Manager) Submit(id int64, code, kind string) (Statement, error) {
	s, err := m.lookup(id)
	if err != nil {
		return Statement{}, err
	}
	if kind == "" {
		kind = defaultStatementKind(s.kind)
	}
	k, ok := statementKinds[kind]
	if kind == "sparkr" {
		return Statement{}, fmt.Errorf("%w: statement kind %q is not supported: %s", ErrInvalid, kind, noR)
	}
	if !ok {
		return Statement{}, fmt.Errorf("%w: statement kind %q is not supported; srdd runs pyspark, spark (Scala) and sql", ErrInvalid, kind)
	}
	s.touch()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case StateDead, StateError, StateShuttingDown, StateKilled:
		return Statement{}, fmt.Errorf("%w: session %d is %s", ErrDead, id, s.state)
	}
	if int64(len(code)) > s.histLim.MaxBytes {
		return Statement{}, fmt.Errorf("%w: code of %d bytes is over the statement history's limit --max-statement-bytes %d", ErrTooLarge, len(code), s.histLim.MaxBytes)
	}
	st := &Statement{ID: s.nextID(), Code: code, State: StmtWaiting, kind: k, done: make(chan struct{})}
	select {
	case s.queue <- st:
	default:
		return Statement{}, fmt.Errorf("%w: %d statements waiting in session %d", ErrQueueFull, len(s.queue), id)
	}
	s.add(st)
	return *st, nil
}

// Statements lists a session's statements, oldest first. A session that
// ended still lists the statements it ran (from its history on disk).
func (m *Manager) Statements(id int64) ([]Statement, error) {
	s, err := m.lookup(id)
	if err != nil {
		_, past, err := m.pastStatements(id, err)
		return past, err
	}
	s.touch()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Statement, len(s.statements))
	for i, st := range s.statements {
		out[i] = *st
	}
	return out, nil
}

// pastStatements reads the history of a session that has no interpreter
// here any more; err is why it has none.
func (m *Manager) pastStatements(id int64, err error) (int, []Statement, error) {
	if !errors.Is(err, ErrDead) || m.cfg.DataDir == "" {
		return 0, nil, err
	}
	return loadHistory(m.cfg.DataDir, id, m.cfg.History)
}

// Statement returns one statement. For a running one it asks the
// interpreter for its Spark progress first.
func (m *Manager) Statement(id int64, sid int) (Statement, error) {
	st, s, err := m.statement(id, sid)
	if err != nil || s == nil || st.State != StmtRunning {
		return st, err
	}
	var res struct {
		Progress *float64 `msgpack:"progress"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.it.Call(ctx, "progress", map[string]any{}, &res); err == nil && res.Progress != nil {
		s.mu.Lock()
		if cur, err := s.stmt(sid); err == nil {
			if cur.State == StmtRunning && *res.Progress < 1 {
				cur.Progress = *res.Progress
			}
			st = *cur
		}
		s.mu.Unlock()
	}
	return st, nil
}

// statement returns a copy of one statement and its live session (nil if
// it came from the history of a session that ended).
func (m *Manager) statement(id int64, sid int) (Statement, *session, error) {
	s, err := m.lookup(id)
	if err != nil {
		first, past, perr := m.pastStatements(id, err)
		if perr != nil {
			return Statement{}, nil, perr
		}
		st, err := pick(id, sid, first, len(past), func(i int) *Statement { return &past[i] })
		if err != nil {
			return Statement{}, nil, err
		}
		return *st, nil, nil
	}
	s.contact()
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stmt(sid)
	if err != nil {
		return Statement{}, nil, err
	}
	return *st, s, nil
}

// WaitStatement returns the statement as soon as it is final, or as it is
// when wait passes (long-poll for ?wait=).
func (m *Manager) WaitStatement(ctx context.Context, id int64, sid int, wait time.Duration) (Statement, error) {
	st, s, err := m.statement(id, sid)
	if err != nil || s == nil || isFinal(st.State) {
		return st, err
	}
	if wait <= 0 {
		return m.Statement(id, sid) // with the running statement's progress
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-st.done:
	case <-t.C:
	case <-ctx.Done():
	}
	return m.Statement(id, sid)
}

// Cancel cancels a waiting statement, or interrupts the Spark jobs of a
// running one. A finished statement is left as it is.
func (m *Manager) Cancel(id int64, sid int) (Statement, error) {
	s, err := m.lookup(id)
	if err != nil {
		return Statement{}, err
	}
	s.mu.Lock()
	st, err := s.stmt(sid)
	if err != nil {
		s.mu.Unlock()
		return Statement{}, err
	}
	running := false
	switch st.State {
	case StmtWaiting:
		s.finish(st, StmtCancelled, nil)
	case StmtRunning:
		st.State, running = StmtCancelling, true
	}
	out := *st
	s.mu.Unlock()
	if running {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.it.Call(ctx, "cancel", map[string]any{}, nil); err != nil {
			return out, fmt.Errorf("cannot cancel statement %d: %w", sid, err)
		}
	}
	return out, nil
}

// Complete returns completion candidates for code at cursor, from the
// session's namespace (Livy's /completion). SQL gets none.
func (m *Manager) Complete(ctx context.Context, id int64, code, kind string, cursor int) ([]string, error) {
	s, err := m.lookup(id)
	if err != nil {
		return nil, err
	}
	if kind == "sql" || (kind == "" && s.kind == "sql") {
		return []string{}, nil
	}
	if kind == "" {
		kind = defaultStatementKind(s.kind)
	}
	k, ok := statementKinds[kind]
	if !ok {
		return nil, fmt.Errorf("%w: completion kind %q is not supported", ErrInvalid, kind)
	}
	if cursor < 0 || cursor > len(code) {
		return nil, fmt.Errorf("%w: cursor %d is outside the code (length %d)", ErrInvalid, cursor, len(code))
	}
	it, err := m.Interpreter(ctx, id)
	if err != nil {
		return nil, err
	}
	var res struct {
		Candidates []string `msgpack:"candidates"`
	}
	// The interpreter counts the cursor in characters, the API in bytes.
	runes := len([]rune(code[:cursor]))
	if err := it.Call(ctx, "complete", map[string]any{"code": code, "cursor": runes, "kind": k}, &res); err != nil {
		return nil, err
	}
	if res.Candidates == nil {
		res.Candidates = []string{}
	}
	return res.Candidates, nil
}

// Log returns output lines of a session's interpreter from absolute index
// from (Livy's /log), the index of the first line returned, and the index
// one past the newest line. A negative from means the newest size lines,
// as Livy answers a /log without from.
func (m *Manager) Log(id int64, from, size int) ([]string, int, int, error) {
	s, err := m.lookup(id)
	if errors.Is(err, ErrDead) {
		// The interpreter's output went with it; the reason is kept.
		info, gerr := m.Get(id)
		if gerr != nil {
			return nil, 0, 0, gerr
		}
		return info.Log, 0, len(info.Log), nil
	}
	if err != nil {
		return nil, 0, 0, err
	}
	s.contact()
	s.mu.Lock()
	defer s.mu.Unlock()
	var at *int
	if from >= 0 {
		at = &from
	}
	kept, dropped := s.log.Kept()
	lines, start, total := livyapp.Page(kept, dropped, at, size)
	return lines, start, total, nil
}

// Close stops every interpreter of this node, in parallel. The registry
// keeps the sessions; Reconcile marks them dead at the next start.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	close(m.stopReaper)
	live := slices.Collect(maps.Values(m.live))
	m.live = map[int64]*session{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range live {
		wg.Add(1)
		go func() { defer wg.Done(); m.stop(s) }()
	}
	wg.Wait()
	<-m.reaperDone
}
