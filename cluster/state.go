package cluster

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Session lifecycle statuses kept in the registry. The fine-grained Livy
// state (starting, idle, busy) lives with the owning node, not in Raft.
const (
	SessionActive = "active" // an interpreter is (or should be) running on Node
	SessionDead   = "dead"   // its interpreter is gone; Reason says why
	SessionKilled = "killed" // stopped on purpose (reaped); Reason says why
)

// Node health statuses, set by the leader's failure detector.
const (
	NodeUp      = "up"
	NodeDown    = "down"
	NodeRemoved = "removed"
)

// Member is a node of the cluster as recorded in the registry.
type Member struct {
	ID       string `msgpack:"id" json:"id"`
	RaftAddr string `msgpack:"raft_addr" json:"raft_addr"`
	HTTPAddr string `msgpack:"http_addr" json:"http_addr"`
	Status   string `msgpack:"status" json:"status"`
	Since    int64  `msgpack:"since" json:"since"` // unix ms of the last status change
}

// Session is a registry record of one interpreter session.
type Session struct {
	ID        int64             `msgpack:"id" json:"id"`
	Name      string            `msgpack:"name" json:"name"`
	Kind      string            `msgpack:"kind" json:"kind"`
	Node      string            `msgpack:"node" json:"node"`
	Status    string            `msgpack:"status" json:"status"`
	Reason    string            `msgpack:"reason" json:"reason,omitempty"`
	CreatedAt int64             `msgpack:"created_at" json:"created_at"`
	Conf      map[string]string `msgpack:"conf" json:"conf,omitempty"`
	// Access: see CreateSession.
	Principal   string   `msgpack:"owner,omitempty" json:"owner,omitempty"`
	ViewUsers   []string `msgpack:"view_users,omitempty" json:"view_users,omitempty"`
	ModifyUsers []string `msgpack:"modify_users,omitempty" json:"modify_users,omitempty"`
}

// RDD is a registry record of one named shared RDD.
type RDD struct {
	Name      string `msgpack:"name" json:"name"`
	SessionID int64  `msgpack:"session_id" json:"session_id"`
	Mode      string `msgpack:"mode" json:"mode"`
	CreatedAt int64  `msgpack:"created_at" json:"created_at"`
	// Durable RDDs only: the last checkpoint, the writes logged since it
	// (the tail, oldest first; entries are never modified once appended)
	// and the index of the last logged write.
	// Incarnation is the log index that created the RDD: checkpoints and
	// idempotency keys of an earlier RDD of the same name never apply.
	Incarnation uint64         `msgpack:"inc,omitempty" json:"-"`
	Checkpoint  *CheckpointRef `msgpack:"checkpoint,omitempty" json:"checkpoint,omitempty"`
	Tail        []*TailEntry   `msgpack:"tail,omitempty" json:"-"`
	TailOps     int            `msgpack:"tail_ops,omitempty" json:"tail_writes"`
	TailBytes   int64          `msgpack:"tail_bytes,omitempty" json:"tail_bytes"`
	LastWrite   uint64         `msgpack:"last_write,omitempty" json:"last_write_index"`
	// Replicas is the number of copies wanted, the owner's included: 0,
	// as in records from before it, means 1 (Wanted).
	Replicas int `msgpack:"replicas,omitempty" json:"replicas,omitempty"`
	// Copies are the copies besides the owner's (copies.go), and Trimmed
	// the index up to which the tail was trimmed (0 in records from
	// before copies: see Trim).
	Copies  []*CopyRef `msgpack:"copies,omitempty" json:"copies,omitempty"`
	Trimmed uint64     `msgpack:"trimmed,omitempty" json:"-"`
	// Loaded is the log index of the entry that recorded the owner's
	// newest checkpoint holding a bulk load (rows in no log entry): only
	// checkpoints whose Loaded is at least this hold every load, and a
	// copy built from an older one rebuilds.
	Loaded uint64 `msgpack:"loaded,omitempty" json:"-"`
}

// MaxReplicas bounds the copies a record may want (State.check keeps it).
const MaxReplicas = 256

// Wanted is the number of copies the RDD wants, at least 1.
func (r RDD) Wanted() int { return max(r.Replicas, 1) }

// State is the whole replicated registry. It is mutated only by apply,
// which is deterministic: the same entries give the same state on every node.
type State struct {
	Nodes         map[string]*Member `msgpack:"nodes"`
	Sessions      map[int64]*Session `msgpack:"sessions"`
	RDDs          map[string]*RDD    `msgpack:"rdds"`
	NextSessionID int64              `msgpack:"next_session_id"`
	// Livy batches (batches.go) and the next batch id; ids are never
	// reused. Omitted while empty, so older snapshots read the same.
	Batches     map[int64]*Batch `msgpack:"batches,omitempty"`
	NextBatchID int64            `msgpack:"next_batch_id,omitempty"`
	// Idempotency keys of recent durable writes (rdd + NUL + key), and
	// their order of arrival; the oldest are forgotten past idemCapacity.
	Idem      map[string]*IdemRecord `msgpack:"idem,omitempty"`
	IdemOrder []string               `msgpack:"idem_order,omitempty"`
	// Admitted are the node IDs an admin admitted that have not joined
	// yet (admission.go); a join uses its admission up. Omitted while
	// empty, so older snapshots read the same.
	Admitted map[string]*Admission `msgpack:"admitted,omitempty"`
	// Index is the last log index the state reflects; set in snapshots only.
	Index uint64 `msgpack:"index,omitempty"`
}

// NewState returns an empty registry.
func NewState() *State {
	return &State{
		Nodes:    map[string]*Member{},
		Sessions: map[int64]*Session{},
		RDDs:     map[string]*RDD{},
		Idem:     map[string]*IdemRecord{},
	}
}

// apply executes one decoded command against the state: it validates the
// body (a command no correct proposer writes is refused with
// ErrInvalidCommand) and runs the command's apply rule (commands.go). It
// returns the command's result (the new session id for CreateSession) or
// an error (for example ErrRDDExists), which leaves the state unchanged.
// It never panics on a decoded entry (docs/ARCHITECTURE.md invariant 10).
func (s *State) apply(c Command, index uint64) (any, error) {
	spec, err := c.validate()
	if err != nil {
		return nil, err
	}
	return spec.apply(s, c.Body, index)
}

func (s *State) applyRegisterNode(b *RegisterNode, _ uint64) (any, error) {
	if m, ok := s.Nodes[b.ID]; ok && m.Status == NodeRemoved && !b.Readmit {
		return nil, fmt.Errorf("%w: %q", ErrNodeRemoved, b.ID)
	}
	s.Nodes[b.ID] = &Member{ID: b.ID, RaftAddr: b.RaftAddr, HTTPAddr: b.HTTPAddr, Status: NodeUp}
	delete(s.Admitted, b.ID) // an admission is used once
	return nil, nil
}

func (s *State) applySetNodeStatus(b *SetNodeStatus, _ uint64) (any, error) {
	m, ok := s.Nodes[b.ID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNodeNotFound, b.ID)
	}
	if m.Status == NodeRemoved {
		return nil, fmt.Errorf("%w: %q", ErrNodeRemoved, b.ID)
	}
	if m.Status != b.Status {
		m.Status, m.Since = b.Status, b.At
	}
	if b.Status == NodeDown {
		// Sessions (and memory-mode data) on a node that is down are
		// lost; if the node comes back it stops their interpreters.
		s.loseSessions(b.ID, "node "+b.ID+" went down")
		s.loseBatches(b.ID, "node "+b.ID+" went down; the driver ran there", b.At)
	}
	return nil, nil
}

func (s *State) applyRemoveNode(b *RemoveNode, _ uint64) (any, error) {
	m, ok := s.Nodes[b.ID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNodeNotFound, b.ID)
	}
	m.Status = NodeRemoved
	s.loseSessions(b.ID, "node "+b.ID+" was removed from the cluster")
	s.loseBatches(b.ID, "node "+b.ID+" was removed from the cluster; the driver ran there", 0)
	return nil, nil
}

func (s *State) applyCreateSession(b *CreateSession, _ uint64) (any, error) {
	if b.Name != "" {
		for _, o := range s.Sessions {
			if o.Name == b.Name {
				return nil, fmt.Errorf("%w: %q is session %d", ErrSessionExists, b.Name, o.ID)
			}
		}
	}
	id := s.NextSessionID
	s.NextSessionID++
	s.Sessions[id] = &Session{ID: id, Name: b.Name, Kind: b.Kind, Node: b.Node,
		Status: SessionActive, CreatedAt: b.CreatedAt, Conf: b.Conf,
		Principal: b.Principal, ViewUsers: b.ViewUsers, ModifyUsers: b.ModifyUsers}
	return id, nil
}

func (s *State) applySetSessionStatus(b *SetSessionStatus, _ uint64) (any, error) {
	sess, ok := s.Sessions[b.ID]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrSessionNotFound, b.ID)
	}
	sess.Status, sess.Reason = b.Status, b.Reason
	if b.Status != SessionActive {
		s.pruneCopies()
	}
	return nil, nil
}

func (s *State) applyDeleteSession(b *DeleteSession, _ uint64) (any, error) {
	if _, ok := s.Sessions[b.ID]; !ok {
		return nil, fmt.Errorf("%w: %d", ErrSessionNotFound, b.ID)
	}
	delete(s.Sessions, b.ID)
	s.pruneCopies()
	for name, r := range s.RDDs {
		// A durable RDD outlives its session: it is moved to another
		// (kvstore adopts orphans). Only DropRDD deletes it.
		if r.SessionID == b.ID && r.Mode != ModeDurable {
			delete(s.RDDs, name)
		}
	}
	return nil, nil
}

// activeSession is session id if it is active; else ErrSessionNotFound or
// ErrSessionInactive.
func (s *State) activeSession(id int64) (*Session, error) {
	sess, ok := s.Sessions[id]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrSessionNotFound, id)
	}
	if sess.Status != SessionActive {
		return nil, fmt.Errorf("%w: session %d is %s", ErrSessionInactive, id, sess.Status)
	}
	return sess, nil
}

// applyCreateRDD records the RDD with the entry's index as its incarnation.
func (s *State) applyCreateRDD(b *CreateRDD, index uint64) (any, error) {
	if _, ok := s.RDDs[b.Name]; ok {
		return nil, fmt.Errorf("%w: %q", ErrRDDExists, b.Name)
	}
	if _, err := s.activeSession(b.SessionID); err != nil {
		return nil, err
	}
	s.RDDs[b.Name] = &RDD{Name: b.Name, SessionID: b.SessionID, Mode: b.Mode, CreatedAt: b.CreatedAt, Incarnation: index,
		Replicas: b.Replicas}
	return nil, nil
}

func (s *State) applyDropRDD(b *DropRDD, _ uint64) (any, error) {
	if _, ok := s.RDDs[b.Name]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrRDDNotFound, b.Name)
	}
	delete(s.RDDs, b.Name)
	return nil, nil
}

// loseSessions marks every active session of a node dead.
func (s *State) loseSessions(node, reason string) {
	for _, sess := range s.Sessions {
		if sess.Node == node && sess.Status == SessionActive {
			sess.Status, sess.Reason = SessionDead, reason
		}
	}
	s.pruneCopies()
}

// load is how busy a node is for placement: its active sessions plus the
// shared RDDs they hold.
func (s *State) load(node string) int {
	n := 0
	for _, sess := range s.Sessions {
		if sess.Node == node && sess.Status == SessionActive {
			n++
			for _, r := range s.RDDs {
				if r.SessionID == sess.ID {
					n++
				}
			}
		}
	}
	return n
}

// leastLoaded picks the up node with the least load; on a tie a node other
// than avoid (the Raft leader, which has the registry's work), then the
// smallest id.
func (s *State) leastLoaded(avoid string) (string, bool) {
	order := s.byLoad(avoid, nil)
	if len(order) == 0 {
		return "", false
	}
	return order[0], true
}

// byLoad lists the up nodes that skip does not exclude, least loaded
// first; on a tie a node other than avoid, then the smallest id.
func (s *State) byLoad(avoid string, skip func(id string) bool) []string {
	type ranked struct {
		id         string
		load, lead int
	}
	var rs []ranked
	for id, m := range s.Nodes {
		if m.Status != NodeUp || (skip != nil && skip(id)) {
			continue
		}
		r := ranked{id: id, load: s.load(id)}
		if id == avoid {
			r.lead = 1
		}
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.load != b.load {
			return a.load < b.load
		}
		if a.lead != b.lead {
			return a.lead < b.lead
		}
		return a.id < b.id
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.id
	}
	return out
}

// clone returns a deep copy, used for snapshots and for readers.
func (s *State) clone() *State {
	c := NewState()
	c.NextSessionID = s.NextSessionID
	s.cloneBatches(c)
	if len(s.Idem) > 0 {
		c.Idem = make(map[string]*IdemRecord, len(s.Idem))
		for k, v := range s.Idem {
			r := *v
			c.Idem[k] = &r
		}
		c.IdemOrder = append([]string(nil), s.IdemOrder...)
	}
	for k, v := range s.Nodes {
		n := *v
		c.Nodes[k] = &n
	}
	if len(s.Admitted) > 0 {
		c.Admitted = make(map[string]*Admission, len(s.Admitted))
		for k, v := range s.Admitted {
			a := *v
			c.Admitted[k] = &a
		}
	}
	for k, v := range s.Sessions {
		n := *v
		if v.Conf != nil {
			n.Conf = make(map[string]string, len(v.Conf))
			for ck, cv := range v.Conf {
				n.Conf[ck] = cv
			}
		}
		c.Sessions[k] = &n
	}
	for k, v := range s.RDDs {
		n := *v // tail entries are immutable: sharing them is safe
		n.Tail = append([]*TailEntry(nil), v.Tail...)
		if v.Checkpoint != nil {
			ck := *v.Checkpoint
			n.Checkpoint = &ck
		}
		n.Copies = cloneCopies(v.Copies)
		c.RDDs[k] = &n
	}
	return c
}

// sortedCopies copies the records of m, ordered by key.
func sortedCopies[K cmp.Ordered, V any](m map[K]*V) []V {
	out := make([]V, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, *m[k])
	}
	return out
}

// sortedSessions lists sessions by id.
func (s *State) sortedSessions() []Session { return sortedCopies(s.Sessions) }

// nodeCount is the number of registered nodes, up or down (removed ones
// are not counted).
func (s *State) nodeCount() int {
	n := 0
	for _, m := range s.Nodes {
		if m.Status != NodeRemoved {
			n++
		}
	}
	return n
}

// sortedRDDs lists shared RDDs by name.
func (s *State) sortedRDDs() []RDD { return sortedCopies(s.RDDs) }
