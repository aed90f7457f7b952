package cluster

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
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
	// applied is the index of the last command whose Apply (or the
	// snapshot a Restore loaded) has finished. raft.AppliedIndex runs ahead
	// of it: raft counts an entry as applied once it is handed to the FSM
	// goroutine, and counts entries that never reach the FSM.
	applied atomic.Uint64
	// watch, if set, hears of every applied change to a shared RDD (see
	// Node.WatchRDDs); it must not block.
	watch atomic.Pointer[func(rdd string, index uint64, write bool)]
	// log hears of every entry refused as invalid; set before raft starts.
	log hclog.Logger
	// halted is set, once, by the first entry this node cannot decode;
	// from then on nothing is applied (see Apply).
	halted atomic.Pointer[Halt]
}

// Halt says where and why this node stopped applying the registry log:
// at an entry its binary cannot decode (docs/ARCHITECTURE.md invariant
// 10, "Upgrades: new entry types").
type Halt struct {
	Index  uint64 `json:"index"`
	Reason string `json:"reason"`
}

// changedRDD is the shared RDD an applied command changed ("" for
// commands on sessions and nodes), and whether it was a logged write.
func changedRDD(cmd Command) (string, bool) {
	spec := commands.lookup(cmd.Type)
	name := ""
	if spec.rdd != nil {
		name = spec.rdd(cmd.Body)
	}
	return name, spec.logsWrite
}

// notify tells the watcher which shared RDD an applied command changed:
// the one its registration names, or "" for commands on sessions and
// nodes, which may change the owner of any RDD.
func (f *fsm) notify(cmd Command, index uint64) {
	w := f.watch.Load()
	if w == nil {
		return
	}
	name, write := changedRDD(cmd)
	(*w)(name, index, write)
}

func newFSM() *fsm { return &fsm{state: NewState(), log: hclog.NewNullLogger()} }

// Apply applies one committed log entry. An entry this node cannot decode
// (unknown version or type, written by a newer binary or forged) halts
// applying at its index: skipping it would let replicas diverge, and a
// panic would crash the node on every restart. The node stays up, not
// ready (ErrHalted); this entry and every later one are left unapplied,
// and Snapshot refuses, so the log keeps them for a binary that knows
// the entry, which applies them after a restart. A decoded entry that
// breaks the rules is refused with an error result (ErrInvalidCommand)
// and a log line, the same on every replica, and changes nothing
// (docs/ARCHITECTURE.md invariant 10).
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if h := f.halted.Load(); h != nil {
		return applyResult{err: h.err()}
	}
	cmd, err := Decode(l.Data)
	if err != nil {
		h := &Halt{Index: l.Index, Reason: err.Error()}
		f.halted.Store(h)
		f.log.Error("registry applying HALTED: this binary cannot decode a committed log entry; the node stays up, not ready, "+
			"and applies nothing more until it runs a binary that knows the entry (docs/ARCHITECTURE.md, \"Upgrades\")",
			"index", l.Index, "error", err)
		return applyResult{err: h.err()}
	}
	defer f.applied.Store(l.Index)
	f.mu.Lock()
	v, err := f.state.apply(cmd, l.Index)
	f.mu.Unlock()
	switch {
	case err == nil:
		f.notify(cmd, l.Index)
	case errors.Is(err, ErrInvalidCommand):
		f.log.Warn("refused an invalid registry entry", "index", l.Index, "command", cmd.Type.String(), "error", err)
	}
	return applyResult{value: v, err: err}
}

// err is the error every apply and fresh read gets while halted.
func (h *Halt) err() error {
	return fmt.Errorf("%w at log index %d: %s", ErrHalted, h.Index, h.Reason)
}

// Snapshot captures a point-in-time copy of the registry. A halted
// registry takes none: the snapshot would claim entries it never
// applied, and Raft would drop them from the log.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if h := f.halted.Load(); h != nil {
		return nil, h.err()
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := f.state.clone()
	st.Index = f.applied.Load()
	return &fsmSnapshot{state: st}, nil
}

// Restore replaces the whole registry with the snapshot's content, never
// merges. A snapshot that does not decode, or whose state breaks the rules
// apply keeps (State.check), is refused whole with an error, which fails
// raft's restore; the current state stays as it was.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	if err := st.check(); err != nil {
		f.log.Error("refused a registry snapshot", "index", st.Index, "error", err)
		return err
	}
	index := st.Index
	st.Index = 0 // kept in f.applied; the live state carries no index
	f.mu.Lock()
	f.state = st
	f.mu.Unlock()
	f.applied.Store(index)
	// A snapshot from a leader that applied past the halt replaces the
	// state the halt was about; the entries after it decode or halt anew.
	if h := f.halted.Load(); h != nil && index >= h.Index {
		f.halted.Store(nil)
		f.log.Info("registry applying resumed from a snapshot past the halted entry", "halted_at", h.Index, "snapshot", index)
	}
	if w := f.watch.Load(); w != nil {
		(*w)("", index, false)
	}
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

// canonical encodes the state with every collection in sorted order, so
// equal states give equal bytes (for StateHash).
func canonical(st *State) ([]byte, error) {
	ids := make([]string, 0, len(st.Nodes))
	for id := range st.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	members := make([]Member, len(ids))
	for i, id := range ids {
		members[i] = *st.Nodes[id]
	}
	sessions := st.sortedSessions()
	conf := make([][]string, len(sessions))
	for i, sess := range sessions {
		for _, k := range slices.Sorted(maps.Keys(sess.Conf)) {
			conf[i] = append(conf[i], k, sess.Conf[k])
		}
		sessions[i].Conf = nil // maps are encoded in random order
	}
	idem := make([]any, 0, 2*len(st.IdemOrder))
	for _, k := range st.IdemOrder {
		idem = append(idem, k, st.Idem[k])
	}
	parts := []any{members, sessions, conf, st.sortedRDDs(), st.NextSessionID, idem}
	if len(st.Batches) > 0 || st.NextBatchID > 0 {
		parts = append(parts, st.sortedBatches(), st.NextBatchID)
	}
	if len(st.Admitted) > 0 {
		parts = append(parts, st.sortedAdmitted())
	}
	return msgpack.Marshal(parts)
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
	if st.Idem == nil {
		st.Idem = map[string]*IdemRecord{}
	}
	return st, nil
}
