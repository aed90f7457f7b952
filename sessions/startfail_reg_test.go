package sessions

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/sparkbridge"
)

// memRegistry is a registry in memory: sessions and RDDs, with ids from
// a counter that never goes back (as cluster.State.NextSessionID).
type memRegistry struct {
	mu       sync.Mutex
	sessions map[int64]cluster.Session
	rdds     []cluster.RDD
	next     int64
}

func newMemRegistry() *memRegistry { return &memRegistry{sessions: map[int64]cluster.Session{}} }

func (r *memRegistry) ID() string { return "n1" }

func (r *memRegistry) Apply(c cluster.Command) (any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch b := c.Body.(type) {
	case *cluster.CreateSession:
		id := r.next
		r.next++
		r.sessions[id] = cluster.Session{ID: id, Name: b.Name, Kind: b.Kind, Node: b.Node, Status: cluster.SessionActive, CreatedAt: b.CreatedAt}
		return id, nil
	case *cluster.SetSessionStatus:
		s, ok := r.sessions[b.ID]
		if !ok {
			return nil, cluster.ErrSessionNotFound
		}
		s.Status, s.Reason = b.Status, b.Reason
		r.sessions[b.ID] = s
		return nil, nil
	case *cluster.DeleteSession:
		if _, ok := r.sessions[b.ID]; !ok {
			return nil, cluster.ErrSessionNotFound
		}
		delete(r.sessions, b.ID)
		return nil, nil
	}
	return nil, errors.New("unexpected command")
}

func (r *memRegistry) Session(id int64) (cluster.Session, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sessions[id]
	return s, ok
}

func (r *memRegistry) SessionByName(name string) (cluster.Session, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sessions {
		if s.Name == name {
			return s, true
		}
	}
	return cluster.Session{}, false
}

func (r *memRegistry) Sessions() []cluster.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]cluster.Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		out = append(out, s)
	}
	return out
}

func (r *memRegistry) RDDs() []cluster.RDD {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cluster.RDD(nil), r.rdds...)
}

// A default session that cannot start is not retried until its back-off
// passes: DefaultSession answers ErrStartBackoff with the cause, and
// DefaultStartFailure says when the next try is due.
func TestDefaultSessionBacksOff(t *testing.T) {
	reg := newMemRegistry()
	m := NewManager(Config{Bridge: sparkbridge.Config{Python: filepath.Join(t.TempDir(), "no-python")}, DataDir: t.TempDir()}, reg)
	defer m.Close()
	id, err := m.DefaultSession()
	if err != nil {
		t.Fatal(err)
	}
	// The start fails at once (no such Python); until then the same
	// starting session is the default one.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, failing := m.DefaultStartFailure(); failing {
			break
		}
		if again, err := m.DefaultSession(); err == nil && again != id {
			t.Fatalf("a second default session %d while %d starts", again, id)
		}
		if time.Now().After(deadline) {
			t.Fatal("the start did not fail")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f, _ := m.DefaultStartFailure()
	if f.Failures != 1 || f.LastError == "" || f.NextAttempt.IsZero() {
		t.Fatalf("after one failure: %+v", f)
	}
	if d := time.Until(f.NextAttempt); d > 1200*time.Millisecond {
		t.Fatalf("first back-off %s, want about 1 s", d)
	}
	if _, err := m.DefaultSession(); !errors.Is(err, ErrStartBackoff) || !errors.Is(err, ErrNotReady) {
		t.Fatalf("during the back-off: %v, want ErrStartBackoff", err)
	}
	if n := len(reg.Sessions()); n != 1 {
		t.Fatalf("%d session records during the back-off", n)
	}
	time.Sleep(time.Until(f.NextAttempt) + 10*time.Millisecond)
	id2, err := m.DefaultSession()
	if err != nil || id2 == id {
		t.Fatalf("after the back-off: %d, %v", id2, err)
	}
	if m.StartFailures() < 1 {
		t.Fatal("no failed start counted")
	}
}

// Ended sessions past MaxDeadSessions go, oldest first, with their
// directories; one holding an RDD stays. (That ids are not reused is the
// registry's NextSessionID; TestFaultDeadSessionsBounded checks it on a
// real node.)
func TestEndedSessionsArePruned(t *testing.T) {
	reg := newMemRegistry()
	dir := t.TempDir()
	m := NewManager(Config{MaxDeadSessions: 2, DataDir: dir, ReapInterval: time.Hour}, reg)
	defer m.Close()
	for i := range 6 {
		v, _ := reg.Apply(cluster.Command{Type: cluster.CmdCreateSession, Body: &cluster.CreateSession{Name: "s", Node: "n1"}})
		id := v.(int64)
		if err := os.MkdirAll(filepath.Dir(historyPath(dir, id)), 0o700); err != nil {
			t.Fatal(err)
		}
		if i < 5 {
			_, _ = reg.Apply(cluster.Command{Type: cluster.CmdSetSessionStatus, Body: &cluster.SetSessionStatus{ID: id, Status: cluster.SessionDead, Reason: "test"}})
		}
	}
	reg.rdds = []cluster.RDD{{Name: "kept", SessionID: 0, Mode: cluster.ModeDurable}}
	m.pruneEnded()
	var ids []int64
	for _, s := range reg.Sessions() {
		ids = append(ids, s.ID)
	}
	want := map[int64]bool{0: true, 3: true, 4: true, 5: true} // 0 holds an RDD, 3 and 4 are the newest ended, 5 is active
	if len(ids) != len(want) {
		t.Fatalf("kept %v, want 0, 3, 4, 5", ids)
	}
	for _, id := range ids {
		if !want[id] {
			t.Fatalf("kept %v, want 0, 3, 4, 5", ids)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "sessions"))
	if len(ents) != 4 {
		t.Fatalf("%d session dirs kept, want 4", len(ents))
	}
}
