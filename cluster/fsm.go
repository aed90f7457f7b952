package cluster

import (
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"
)

// snapshotVersion prefixes every snapshot this code writes.
const snapshotVersion byte = 1

// applyResult is what FSM.Apply hands back through raft's ApplyFuture.
type applyResult struct {
	value any
	err   error
}

// fsm adapts State to raft.FSM. It only decodes, locks and delegates: the
// rules live in State.apply, which is tested on its own.
//
// Concurrency: raft calls Apply, Snapshot and Restore from one goroutine;
// the snapshot's Persist runs concurrently with later Applies, so Snapshot
// hands over a deep copy. Readers (the HTTP layer) take the read lock.
type fsm struct {
	mu    sync.RWMutex
	state *State
}

func newFSM() *fsm { return &fsm{state: NewState()} }

// Apply applies one committed log entry. An entry this node cannot decode
// stops the node loudly: continuing would let replicas diverge.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("cluster: refusing log entry %d: %v", l.Index, err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, err := f.state.apply(cmd)
	return applyResult{value: v, err: err}
}

// Snapshot captures a point-in-time copy of the registry.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &fsmSnapshot{state: f.state.clone()}, nil
}

// Restore replaces the whole registry with the snapshot's content.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.state = st
	f.mu.Unlock()
	return nil
}

// read runs fn with the current state under the read lock. fn must not
// keep references to the state after it returns.
func (f *fsm) read(fn func(*State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

type fsmSnapshot struct{ state *State }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.state); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

func writeSnapshot(w io.Writer, st *State) error {
	body, err := msgpack.Marshal(st)
	if err != nil {
		return fmt.Errorf("cannot encode snapshot: %w", err)
	}
	if _, err := w.Write(append([]byte{snapshotVersion}, body...)); err != nil {
		return fmt.Errorf("cannot write snapshot: %w", err)
	}
	return nil
}

func readSnapshot(r io.Reader) (*State, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("cannot read snapshot: %w", err)
	}
	if len(b) == 0 || b[0] != snapshotVersion {
		return nil, fmt.Errorf("%w: snapshot version unknown", ErrUndecodable)
	}
	st := NewState()
	if err := msgpack.Unmarshal(b[1:], st); err != nil {
		return nil, fmt.Errorf("%w: snapshot body: %v", ErrUndecodable, err)
	}
	// msgpack leaves maps nil when they were empty; keep them usable.
	if st.Nodes == nil {
		st.Nodes = map[string]*Member{}
	}
	if st.Sessions == nil {
		st.Sessions = map[int64]*Session{}
	}
	if st.RDDs == nil {
		st.RDDs = map[string]*RDD{}
	}
	return st, nil
}
