package cluster

import (
	"sync"
)

// Local is the registry's state machine without Raft, for tests of the
// packages above cluster (kvstore): the real State and its apply rules
// (validation, writes with idempotency keys, checkpoints that trim the
// tail, moves), each command applied at the next log index as Raft's
// apply would, and the same watch notifications. It has one member, this
// node, always up; CatchUp and ReadBarrier return at once. Tests must not
// re-implement apply (docs/ARCHITECTURE.md invariant 8).
type Local struct {
	mu    sync.Mutex
	id    string
	index uint64
	s     *State
	watch func(rdd string, index uint64, write bool)
}

// NewLocal returns an empty registry whose one member, id, is up.
func NewLocal(id string) *Local {
	s := NewState()
	s.Nodes[id] = &Member{ID: id, Status: NodeUp}
	return &Local{id: id, s: s}
}

// Update runs fn on the state and the last applied index under the
// registry's lock, for a test's set-up (records as they would be after
// some history). It bypasses apply: nothing is validated or notified.
func (l *Local) Update(fn func(s *State, index *uint64)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(l.s, &l.index)
}

// Notify tells the watcher of a change made by Update, as the FSM does.
func (l *Local) Notify(rdd string, index uint64, write bool) {
	l.mu.Lock()
	w := l.watch
	l.mu.Unlock()
	if w != nil {
		w(rdd, index, write)
	}
}

// ID returns this node's id.
func (l *Local) ID() string { return l.id }

// Apply applies c at the next index, as a committed Raft entry would be.
func (l *Local) Apply(c Command) (any, error) {
	l.mu.Lock()
	l.index++
	index := l.index
	v, err := l.s.apply(c, index)
	w := l.watch
	l.mu.Unlock()
	if err == nil && w != nil {
		name, write := changedRDD(c)
		w(name, index, write)
	}
	return v, err
}

// copied is a copy of m[k]'s record, if there is one.
func copied[K comparable, V any](m map[K]*V, k K) (V, bool) {
	if p, ok := m[k]; ok {
		return *p, true
	}
	var zero V
	return zero, false
}

// RDD returns a copy of a shared RDD's record.
func (l *Local) RDD(name string) (RDD, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return copied(l.s.RDDs, name)
}

// RDDs lists every shared RDD record, by name.
func (l *Local) RDDs() []RDD {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.sortedRDDs()
}

// Session returns a session record.
func (l *Local) Session(id int64) (Session, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return copied(l.s.Sessions, id)
}

// Member returns a node's record.
func (l *Local) Member(id string) (Member, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return copied(l.s.Nodes, id)
}

// NodeCount is Node.NodeCount: this node, and any a test's Update added.
func (l *Local) NodeCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.nodeCount()
}

// LeastLoaded is this node.
func (l *Local) LeastLoaded() (string, bool) { return l.id, true }

// Placement is this node.
func (l *Local) Placement() []string { return []string{l.id} }

// TailAfter is Node.TailAfter.
func (l *Local) TailAfter(name string, after uint64, maxKeys int, maxBytes int64) ([]*TailEntry, uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.tailAfter(name, after, maxKeys, maxBytes)
}

// WatchRDDs is Node.WatchRDDs.
func (l *Local) WatchRDDs(fn func(rdd string, index uint64, write bool)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watch = fn
}

// CatchUp returns nil: the local state is always current.
func (l *Local) CatchUp() error { return nil }

// ReadBarrier returns nil: there is no other replica.
func (l *Local) ReadBarrier() error { return nil }
