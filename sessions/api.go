package sessions

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/srdd/srdd/cluster"
)

// AppInfo is Livy's appInfo object.
type AppInfo struct {
	DriverLogURL *string `json:"driverLogUrl"`
	SparkUIURL   *string `json:"sparkUiUrl"`
}

// Info is a session as Livy's REST API shows it, plus the owning node.
type Info struct {
	ID        int64    `json:"id"`
	Name      *string  `json:"name"`
	AppID     *string  `json:"appId"`
	Owner     *string  `json:"owner"`
	ProxyUser *string  `json:"proxyUser"`
	State     string   `json:"state"`
	Kind      string   `json:"kind"`
	AppInfo   AppInfo  `json:"appInfo"`
	Log       []string `json:"log"`
	Node      string   `json:"node"`
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

const infoLogLines = 10

func (m *Manager) info(s *session) Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.log)
	tail := append([]string{}, s.log[max(0, n-infoLogLines):]...)
	return Info{ID: s.id, Name: strPtr(s.name), AppID: strPtr(s.appID), State: s.state,
		Kind: s.kind, Log: tail, Node: m.reg.ID()}
}

func recordInfo(rec cluster.Session) Info {
	state := StateDead
	log := []string{}
	if rec.Reason != "" {
		log = append(log, rec.Reason)
	}
	if rec.Status == cluster.SessionActive {
		state = "not_started" // active on a node that is not this one
	}
	return Info{ID: rec.ID, Name: strPtr(rec.Name), State: state, Kind: rec.Kind, Log: log, Node: rec.Node}
}

// Get describes one session.
func (m *Manager) Get(id int64) (Info, error) {
	m.mu.Lock()
	s, ok := m.live[id]
	m.mu.Unlock()
	if ok {
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
	} else {
		s.mu.Lock()
		s.deleting, s.state = true, StateShuttingDown
		s.mu.Unlock()
	}
	_, err := m.reg.Apply(cluster.Command{Type: cluster.CmdDeleteSession, Body: &cluster.DeleteSession{ID: id}})
	if err != nil {
		return err
	}
	if ok {
		m.stop(s)
		m.mu.Lock()
		delete(m.live, id)
		m.mu.Unlock()
	}
	return nil
}

func (m *Manager) stop(s *session) {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.deleting, s.state = true, StateShuttingDown
		close(s.queue) // under mu: Submit sends under mu after checking state
		s.mu.Unlock()
		s.it.Stop()
		s.wg.Wait()
		s.failPending("session stopped")
	})
}

// Submit queues a statement; it runs after those before it.
func (m *Manager) Submit(id int64, code string) (Statement, error) {
	s, err := m.lookup(id)
	if err != nil {
		return Statement{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case StateDead, StateError, StateShuttingDown:
		return Statement{}, fmt.Errorf("%w: session %d is %s", ErrDead, id, s.state)
	}
	st := &Statement{ID: len(s.statements), Code: code, State: StmtWaiting}
	select {
	case s.queue <- st:
	default:
		return Statement{}, fmt.Errorf("%w: %d statements waiting in session %d", ErrQueueFull, len(s.queue), id)
	}
	s.statements = append(s.statements, st)
	return *st, nil
}

// Statements lists a session's statements, oldest first.
func (m *Manager) Statements(id int64) ([]Statement, error) {
	s, err := m.lookup(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Statement, len(s.statements))
	for i, st := range s.statements {
		out[i] = *st
	}
	return out, nil
}

// Statement returns one statement.
func (m *Manager) Statement(id int64, sid int) (Statement, error) {
	s, err := m.lookup(id)
	if err != nil {
		return Statement{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sid < 0 || sid >= len(s.statements) {
		return Statement{}, fmt.Errorf("%w: statement %d in session %d", ErrNoStatement, sid, id)
	}
	return *s.statements[sid], nil
}

// Cancel cancels a waiting statement, or interrupts the Spark jobs of a
// running one. A finished statement is left as it is.
func (m *Manager) Cancel(id int64, sid int) (Statement, error) {
	s, err := m.lookup(id)
	if err != nil {
		return Statement{}, err
	}
	s.mu.Lock()
	if sid < 0 || sid >= len(s.statements) {
		s.mu.Unlock()
		return Statement{}, fmt.Errorf("%w: statement %d in session %d", ErrNoStatement, sid, id)
	}
	st := s.statements[sid]
	running := false
	switch st.State {
	case StmtWaiting:
		st.State, st.Completed = StmtCancelled, time.Now().UnixMilli()
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

// Log returns output lines of a session's interpreter from absolute index
// from (Livy's /log), and the index one past the newest line.
func (m *Manager) Log(id int64, from, size int) ([]string, int, int, error) {
	s, err := m.lookup(id)
	if err != nil {
		return nil, 0, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	total := s.logStart + len(s.log)
	if from < s.logStart {
		from = s.logStart
	}
	if from > total {
		from = total
	}
	end := total
	if size >= 0 && from+size < end {
		end = from + size
	}
	return append([]string{}, s.log[from-s.logStart:end-s.logStart]...), from, total, nil
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
	live := make([]*session, 0, len(m.live))
	for _, s := range m.live {
		live = append(live, s)
	}
	m.live = map[int64]*session{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range live {
		wg.Add(1)
		go func() { defer wg.Done(); m.stop(s) }()
	}
	wg.Wait()
}
