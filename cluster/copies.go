package cluster

import (
	"fmt"
	"sort"
)

// Copies of durable shared RDDs (docs/ARCHITECTURE.md, "Copies"). The
// owner's session is one copy; the others are sessions on other nodes,
// recorded in RDD.Copies. Every node holds the RDD's log tail in this
// registry, so a copy is built by applying that tail in its own
// interpreter, from a checkpoint when the tail no longer reaches back to
// the start. A copy on node-local checkpoint storage writes its own
// checkpoints there and holds the tail: the registry trims only below
// the oldest checkpoint of the live copies (RDD.Trimmed), so a lost
// machine takes none of the acknowledged writes with it. When the
// owner's session is lost, a MoveRDD to a copy's session promotes it.

// CopyRef is one copy of a durable RDD besides its owner's: Session runs
// on Node and applies the RDD's log. Base is what the registry had
// trimmed when the copy was added: the tail above it is kept for the
// copy until it records a checkpoint of its own. A copy on shared
// storage (Shared) writes no checkpoints and holds no tail: it rebuilds
// from the owner's checkpoint, which it can read.
type CopyRef struct {
	Node       string         `msgpack:"node" json:"node"`
	Session    int64          `msgpack:"session" json:"session"`
	Base       uint64         `msgpack:"base" json:"-"`
	Shared     bool           `msgpack:"shared,omitempty" json:"-"`
	Checkpoint *CheckpointRef `msgpack:"checkpoint,omitempty" json:"checkpoint,omitempty"`
}

// hold is the highest index below which the tail may be trimmed for c.
func (c *CopyRef) hold() uint64 {
	if c.Checkpoint != nil && c.Checkpoint.Index > c.Base {
		return c.Checkpoint.Index
	}
	return c.Base
}

// AddCopy records that Session, on Node, makes a copy of durable RDD RDD.
// The registry refuses it when the RDD already has the copies it wants,
// or one on that node.
type AddCopy struct {
	RDD     string `msgpack:"rdd"`
	Node    string `msgpack:"node"`
	Session int64  `msgpack:"session"`
	Shared  bool   `msgpack:"shared,omitempty"`
}

func (b *AddCopy) validate() error {
	return first(nonEmpty("rdd name", b.RDD), nonEmpty("node id", b.Node), sessionID("session id", b.Session))
}

// Trim is the index up to which the RDD's tail has been trimmed: the
// tail holds every logged write after it. Records from before copies
// existed trimmed exactly up to their checkpoint.
func (r RDD) Trim() uint64 {
	t := r.Trimmed
	if len(r.Copies) == 0 && r.Checkpoint != nil && r.Checkpoint.Index > t {
		t = r.Checkpoint.Index
	}
	return t
}

// liveCopies lists the copies of r whose sessions are active.
func (s *State) liveCopies(r *RDD) []*CopyRef {
	var out []*CopyRef
	for _, c := range r.Copies {
		if sess, ok := s.Sessions[c.Session]; ok && sess.Status == SessionActive {
			out = append(out, c)
		}
	}
	return out
}

// applyAddCopy records a new copy. The session must be active on the
// named node, which must hold no other copy (the owner's included), and
// the live copies must be fewer than wanted.
func (s *State) applyAddCopy(b *AddCopy, _ uint64) (any, error) {
	r, err := s.durableRDD(b.RDD)
	if err != nil {
		return nil, err
	}
	sess, err := s.activeSession(b.Session)
	if err != nil {
		return nil, err
	}
	if sess.Node != b.Node {
		return nil, fmt.Errorf("%w: session %d runs on %q, not %q", ErrInvalidCommand, b.Session, sess.Node, b.Node)
	}
	if owner, ok := s.Sessions[r.SessionID]; ok && owner.Node == b.Node && owner.Status == SessionActive {
		return nil, fmt.Errorf("%w: %q is owned on node %q already", ErrCopyExists, b.RDD, b.Node)
	}
	live := s.liveCopies(r)
	for _, c := range live {
		if c.Node == b.Node {
			return nil, fmt.Errorf("%w: %q has a copy on node %q already", ErrCopyExists, b.RDD, b.Node)
		}
	}
	if len(live)+1 >= r.Wanted() {
		return nil, fmt.Errorf("%w: %q has the %d copies it wants", ErrCopyExists, b.RDD, r.Wanted())
	}
	if len(r.Copies) >= MaxReplicas {
		return nil, fmt.Errorf("%w: %q records %d copies already", ErrCopyExists, b.RDD, len(r.Copies))
	}
	// From now on the trim point is explicit (Trim).
	r.Trimmed = r.Trim()
	// Copies whose sessions are gone are replaced, never kept beside.
	kept := make([]*CopyRef, 0, len(live)+1)
	kept = append(kept, live...)
	r.Copies = append(kept, &CopyRef{Node: b.Node, Session: b.Session, Base: r.Trimmed, Shared: b.Shared})
	return nil, nil
}

// pruneCopies forgets the copies whose sessions are no longer active, in
// every RDD: a dead copy holds no tail and is never promoted. The tail
// only they held is trimmed, so a record without copies always has its
// tail start after its checkpoint, as before copies.
func (s *State) pruneCopies() {
	for _, r := range s.RDDs {
		if len(r.Copies) == 0 {
			continue
		}
		live := s.liveCopies(r)
		if len(live) != len(r.Copies) {
			r.Copies = live
			s.trimTail(r) // what only the dead held
		}
	}
}

// copyOf returns r's copy held by session sid, if any.
func copyOf(r *RDD, sid int64) (*CopyRef, int) {
	for i, c := range r.Copies {
		if c.Session == sid {
			return c, i
		}
	}
	return nil, -1
}

// trimTail drops the tail entries every holder has checkpointed: those at
// or below the owner's checkpoint and each live copy's hold (copies on
// shared storage hold nothing). Without a checkpoint of the owner nothing
// is trimmed.
func (s *State) trimTail(r *RDD) {
	if r.Checkpoint == nil {
		return
	}
	upTo := r.Checkpoint.Index
	for _, c := range s.liveCopies(r) {
		if !c.Shared {
			upTo = min(upTo, c.hold())
		}
	}
	if upTo <= r.Trimmed {
		return
	}
	r.Trimmed = upTo
	cut := sort.Search(len(r.Tail), func(i int) bool { return r.Tail[i].Index > upTo })
	if cut == 0 {
		return
	}
	// A new slice: readers may still hold the old one.
	rest := make([]*TailEntry, len(r.Tail)-cut)
	copy(rest, r.Tail[cut:])
	r.Tail = rest
	r.TailOps, r.TailBytes = 0, 0
	for _, e := range rest {
		r.TailOps += e.Ops()
		r.TailBytes += e.Bytes()
	}
}

// checkCopies checks r's copies as applyAddCopy keeps them: bounded, on
// distinct nodes, none of them the owner's session, each with a valid
// checkpoint at or below the snapshot's index.
func (s *State) checkCopies(name string, r *RDD) error {
	if len(r.Copies) == 0 {
		return nil
	}
	if r.Mode != ModeDurable {
		return fmt.Errorf("rdd %q: copies of a %q rdd", name, r.Mode)
	}
	if len(r.Copies) > MaxReplicas {
		return fmt.Errorf("rdd %q: %d copies, more than %d", name, len(r.Copies), MaxReplicas)
	}
	nodes := map[string]bool{}
	for _, c := range r.Copies {
		if c == nil || c.Node == "" || c.Session < 0 || c.Session == r.SessionID || nodes[c.Node] {
			return fmt.Errorf("rdd %q: a copy is missing, on no node, the owner's, or beside another on its node", name)
		}
		nodes[c.Node] = true
		if ck := c.Checkpoint; ck != nil {
			if err := first(checkpointPath(name, ck.Path), nonNegative("row count", ck.Rows)); err != nil {
				return fmt.Errorf("rdd %q: copy on %q: %w", name, c.Node, err)
			}
			if s.Index != 0 && ck.Index > s.Index {
				return fmt.Errorf("rdd %q: copy on %q: checkpoint index %d is past the snapshot's index %d", name, c.Node, ck.Index, s.Index)
			}
		}
	}
	return nil
}

// cloneCopies deep-copies a copy list (nil stays nil).
func cloneCopies(in []*CopyRef) []*CopyRef {
	if in == nil {
		return nil
	}
	out := make([]*CopyRef, len(in))
	for i, c := range in {
		n := *c
		if c.Checkpoint != nil {
			ck := *c.Checkpoint
			n.Checkpoint = &ck
		}
		out[i] = &n
	}
	return out
}
