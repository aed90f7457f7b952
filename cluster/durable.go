package cluster

import (
	"fmt"
	"slices"
	"sort"
)

// Durable shared RDDs (see DESIGN.md, "Durable RDDs"): every write is a
// log entry (Write) appended to the RDD's tail in the registry; the owner
// pushes the tail, in log order, into its interpreter; a checkpoint
// (Parquet written by the owner) is recorded with Checkpoint, which trims
// the tail it covers; MoveRDD hands the RDD to another session, whose
// node rebuilds it from checkpoint + tail.

// Modes of a shared RDD, as the registry records them (CreateRDD.Mode).
// These are the only definitions; kvstore and sessions use them.
const (
	// ModeDurable: every write is logged through Raft before it is
	// acknowledged (docs/ARCHITECTURE.md invariant 4).
	ModeDurable = "durable"
	// ModeMemory: writes go straight to the owner's interpreter, and the
	// data dies with it.
	ModeMemory = "memory"
)

// idemCapacity bounds the idempotency keys the registry remembers.
const idemCapacity = 100_000

// Write logs one coalesced batch of sets (Values set) or deletes (Delete)
// on a durable RDD. Groups are the sizes of the client batches it joins,
// in order; Idem and Hashes, if present, hold one idempotency key ("" for
// none) and one request hash per group.
type Write struct {
	RDD     string   `msgpack:"rdd"`
	Session int64    `msgpack:"session"` // the owner the proposer routed to
	Delete  bool     `msgpack:"del,omitempty"`
	Keys    []string `msgpack:"keys"`
	Values  [][]byte `msgpack:"values,omitempty"`
	Groups  []int    `msgpack:"groups"`
	Idem    []string `msgpack:"idem,omitempty"`
	Hashes  []uint64 `msgpack:"hashes,omitempty"`
}

// Checkpoint records that Path holds the RDD's data as of log index Index.
// Session and Incarnation name the owner that wrote it: a checkpoint from
// a former owner (or of an earlier RDD of the same name) is refused.
type Checkpoint struct {
	RDD         string `msgpack:"rdd"`
	Session     int64  `msgpack:"session"`
	Incarnation uint64 `msgpack:"inc"`
	Index       uint64 `msgpack:"index"`
	Path        string `msgpack:"path"`
	Rows        int64  `msgpack:"rows"`
	At          int64  `msgpack:"at"` // unix ms, chosen by the proposer
	// Load: it holds the rows of a bulk load, which are in no log
	// entry; copies must rebuild from it (RDD.Loaded).
	Load bool `msgpack:"load,omitempty"`
	// Loaded (a copy's checkpoint): the RDD.Loaded its state holds, the
	// index of the owner's load checkpoint it was built from. One below
	// the RDD's is refused: it lacks a bulk load's rows.
	Loaded uint64 `msgpack:"loaded,omitempty"`
}

// MoveRDD hands a durable RDD from session From to session To, if it is
// still owned by From (a compare-and-set, so concurrent adopters agree).
type MoveRDD struct {
	RDD  string `msgpack:"rdd"`
	From int64  `msgpack:"from"`
	To   int64  `msgpack:"to"`
}

// validate checks the shape of the batch: group sizes that are not
// negative and add up to the keys (summed so that no sizes can overflow),
// one value per key for sets and none for deletes, and one idempotency key
// and hash per group if any.
func (b *Write) validate() error {
	if err := first(nonEmpty("rdd name", b.RDD), sessionID("session id", b.Session)); err != nil {
		return err
	}
	total := 0
	for _, g := range b.Groups {
		if g < 0 {
			return fmt.Errorf("write to %q: negative group size", b.RDD)
		}
		if g > len(b.Keys)-total {
			return fmt.Errorf("write to %q: malformed batch", b.RDD)
		}
		total += g
	}
	if total != len(b.Keys) || (!b.Delete && len(b.Values) != len(b.Keys)) || (b.Delete && len(b.Values) != 0) ||
		(len(b.Idem) != 0 && (len(b.Idem) != len(b.Groups) || len(b.Hashes) != len(b.Groups))) {
		return fmt.Errorf("write to %q: malformed batch", b.RDD)
	}
	return nil
}

// validate checks the fields and that the path is a file in the RDD's own
// checkpoint directory (checkpointPath). That the index is not past the
// entry's own is checked when it is applied (applyCheckpoint).
func (b *Checkpoint) validate() error {
	return first(nonEmpty("rdd name", b.RDD), sessionID("session id", b.Session),
		nonEmpty("checkpoint path", b.Path), checkpointPath(b.RDD, b.Path), nonNegative("row count", b.Rows))
}

func (b *MoveRDD) validate() error {
	return first(nonEmpty("rdd name", b.RDD), sessionID("from session id", b.From), sessionID("to session id", b.To))
}

// CheckpointRef is the registry's record of an RDD's last checkpoint.
type CheckpointRef struct {
	Index uint64 `msgpack:"index" json:"index"`
	Path  string `msgpack:"path" json:"path"`
	Rows  int64  `msgpack:"rows" json:"rows"`
	At    int64  `msgpack:"at" json:"at"`
	// Node is the node whose session wrote it, where a node-local path
	// is (empty in records from before copies).
	Node string `msgpack:"node,omitempty" json:"node,omitempty"`
	// Loaded is the RDD.Loaded its data holds: the bulk loads in it.
	Loaded uint64 `msgpack:"loaded,omitempty" json:"-"`
}

// TailEntry is one logged write still to be covered by a checkpoint. Only
// the groups that were not duplicates of an earlier idempotent write are
// kept, so replaying the tail applies each client batch once.
type TailEntry struct {
	Index  uint64   `msgpack:"i"`
	Delete bool     `msgpack:"d,omitempty"`
	Keys   []string `msgpack:"k"`
	Values [][]byte `msgpack:"v,omitempty"`
	Groups []int    `msgpack:"g"`
}

// Ops is the number of keys the entry writes.
func (e *TailEntry) Ops() int { return len(e.Keys) }

// Bytes is the size of the entry's keys and values.
func (e *TailEntry) Bytes() int64 {
	n := 0
	for _, k := range e.Keys {
		n += len(k)
	}
	for _, v := range e.Values {
		n += len(v)
	}
	return int64(n)
}

// IdemRecord remembers where the group of an idempotent write was logged.
type IdemRecord struct {
	Index       uint64 `msgpack:"i"`
	Group       int    `msgpack:"g"` // the group's position in that entry's Groups
	Hash        uint64 `msgpack:"h"`
	Incarnation uint64 `msgpack:"inc"` // of the RDD it was written to
}

// WriteResult tells the proposer of a Write where each of its groups is:
// in the entry just logged, or (a retried idempotent write) in an earlier
// one. Index is 0 when nothing new was logged.
type WriteResult struct {
	Index  uint64       `msgpack:"index"`
	Groups []GroupPlace `msgpack:"groups"`
}

// GroupPlace locates one client batch in the log, or says why it was
// refused (Err; nothing of it was logged).
type GroupPlace struct {
	Index uint64 `msgpack:"i"`
	Group int    `msgpack:"g"`
	Dup   bool   `msgpack:"dup,omitempty"`
	Err   string `msgpack:"err,omitempty"`
}

// GroupErrIdempotency is GroupPlace.Err for an idempotency key reused
// with a different request.
const GroupErrIdempotency = "idempotency_mismatch"

func (s *State) durableRDD(name string) (*RDD, error) {
	r, ok := s.RDDs[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrRDDNotFound, name)
	}
	if r.Mode != ModeDurable {
		return nil, fmt.Errorf("%w: %q", ErrNotDurable, name)
	}
	return r, nil
}

// ownedRDD is durableRDD(name) if session owns it; else ErrNotOwner.
func (s *State) ownedRDD(name string, session int64) (*RDD, error) {
	r, err := s.durableRDD(name)
	if err != nil {
		return nil, err
	}
	if r.SessionID != session {
		return nil, fmt.Errorf("%w: %q is owned by session %d, not %d", ErrNotOwner, name, r.SessionID, session)
	}
	return r, nil
}

// applyWrite appends the groups of a validated Write to the RDD's tail,
// except those an idempotency key shows were logged before.
func (s *State) applyWrite(b *Write, index uint64) (any, error) {
	r, err := s.ownedRDD(b.RDD, b.Session)
	if err != nil {
		return nil, err
	}
	res := &WriteResult{Groups: make([]GroupPlace, len(b.Groups))}
	e := &TailEntry{Index: index, Delete: b.Delete}
	pos := 0
	for gi, g := range b.Groups {
		keys := b.Keys[pos : pos+g]
		var vals [][]byte
		if !b.Delete {
			vals = b.Values[pos : pos+g]
		}
		pos += g
		var ik string
		if len(b.Idem) != 0 && b.Idem[gi] != "" {
			ik = b.RDD + "\x00" + b.Idem[gi]
			// A key of an earlier RDD of the same name does not count.
			if rec, ok := s.Idem[ik]; ok && rec.Incarnation == r.Incarnation {
				if rec.Hash != b.Hashes[gi] {
					// Only this client's batch is refused; the others of
					// the entry go on.
					res.Groups[gi] = GroupPlace{Err: GroupErrIdempotency}
				} else {
					res.Groups[gi] = GroupPlace{Index: rec.Index, Group: rec.Group, Dup: true}
				}
				continue
			}
		}
		res.Groups[gi] = GroupPlace{Index: index, Group: len(e.Groups)}
		if ik != "" {
			s.remember(ik, &IdemRecord{Index: index, Group: len(e.Groups), Hash: b.Hashes[gi], Incarnation: r.Incarnation})
		}
		e.Groups = append(e.Groups, g)
		e.Keys = append(e.Keys, keys...)
		e.Values = append(e.Values, vals...)
	}
	if len(e.Groups) > 0 {
		r.Tail = append(r.Tail, e)
		r.TailOps += e.Ops()
		r.TailBytes += e.Bytes()
		r.LastWrite = index
		res.Index = index
	}
	return res, nil
}

// remember records an idempotency key, forgetting the oldest past capacity.
func (s *State) remember(key string, rec *IdemRecord) {
	if s.Idem == nil {
		s.Idem = map[string]*IdemRecord{}
	}
	if _, ok := s.Idem[key]; ok {
		s.Idem[key] = rec // a key of an earlier incarnation: reused in place
		return
	}
	s.Idem[key] = rec
	s.IdemOrder = append(s.IdemOrder, key)
	// Trim in chunks of a tenth, so the copy is paid once per 10,000 keys.
	if over := len(s.IdemOrder) - idemCapacity; over > idemCapacity/10 {
		for _, k := range s.IdemOrder[:over] {
			delete(s.Idem, k)
		}
		s.IdemOrder = append([]string(nil), s.IdemOrder[over:]...)
	}
}

// applyCheckpoint records a checkpoint of the owner or of a copy, and
// trims the tail every live copy has covered (trimTail). Its index must
// not be past the entry's own: a session checkpoints what it has
// applied, which is older than the entry recording it. (A forged
// checkpoint at index 10^9 made the interpreter skip every later write.)
func (s *State) applyCheckpoint(b *Checkpoint, index uint64) (any, error) {
	if b.Index > index {
		return nil, fmt.Errorf("%w: checkpoint of %q at index %d, past its own entry %d", ErrInvalidCommand, b.RDD, b.Index, index)
	}
	r, err := s.durableRDD(b.RDD)
	if err != nil {
		return nil, err
	}
	prev, copyAt := r.Checkpoint, -1
	if b.Session != r.SessionID {
		c, i := copyOf(r, b.Session)
		if c == nil {
			// Written by a former owner (its log may lack what the
			// current owner applied since) or by no copy.
			return nil, fmt.Errorf("%w: checkpoint of %q by session %d; it is owned by session %d", ErrNotOwner, b.RDD, b.Session, r.SessionID)
		}
		prev, copyAt = c.Checkpoint, i
	}
	if r.Incarnation != b.Incarnation {
		// For an earlier RDD of this name.
		return nil, fmt.Errorf("%w: checkpoint of %q for an earlier rdd of that name", ErrNotOwner, b.RDD)
	}
	if prev != nil && b.Index <= prev.Index {
		return nil, fmt.Errorf("%w: %q at index %d, not %d", ErrStaleCheckpoint, b.RDD, prev.Index, b.Index)
	}
	if copyAt >= 0 && b.Loaded < r.Loaded {
		// The copy's state lacks a bulk load the owner checkpointed.
		return nil, fmt.Errorf("%w: %q: a copy's checkpoint without the bulk load of index %d", ErrStaleCheckpoint, b.RDD, r.Loaded)
	}
	node := ""
	if sess, ok := s.Sessions[b.Session]; ok {
		node = sess.Node
	}
	ref := &CheckpointRef{Index: b.Index, Path: b.Path, Rows: b.Rows, At: b.At, Node: node}
	if copyAt < 0 {
		if b.Load {
			// The entry's own index marks the load (the checkpoint's may
			// be 0: a load into an RDD with no logged write).
			r.Loaded = index
		}
		ref.Loaded = r.Loaded // the owner holds every load it made
		r.Checkpoint = ref
	} else {
		ref.Loaded = b.Loaded
		// Copy on write: readers share the records of the old slice.
		c := *r.Copies[copyAt]
		c.Checkpoint = ref
		r.Copies = slices.Clone(r.Copies)
		r.Copies[copyAt] = &c
	}
	s.trimTail(r)
	return nil, nil
}

// applyMove hands the RDD to session To. When To holds a copy, the copy
// is promoted: its checkpoint becomes the owner's, and it is no longer
// listed among the copies.
func (s *State) applyMove(b *MoveRDD, _ uint64) (any, error) {
	r, err := s.ownedRDD(b.RDD, b.From)
	if err != nil {
		return nil, err
	}
	sess, err := s.activeSession(b.To)
	if err != nil {
		return nil, err
	}
	r.Trimmed = r.Trim() // explicit from now on
	if c, i := copyOf(r, b.To); c != nil {
		if c.Checkpoint != nil || !c.Shared {
			// A copy on shared storage with no checkpoint of its own
			// rebuilds from the owner's, which stays. (A node-local copy
			// without one is promoted only while the log reaches back to
			// the start: kvstore's bestCopy.)
			r.Checkpoint = c.Checkpoint
		}
		r.Copies = append(r.Copies[:i:i], r.Copies[i+1:]...)
	} else {
		// A session on a node that holds another copy becomes the owner
		// there: that copy is dropped, so no node holds two.
		kept := r.Copies[:0:0]
		for _, c := range r.Copies {
			if c.Node != sess.Node {
				kept = append(kept, c)
			}
		}
		r.Copies = kept
	}
	if len(r.Copies) == 0 {
		r.Copies = nil
	}
	r.SessionID = b.To
	s.trimTail(r)
	return nil, nil
}

// TailAfter returns the logged writes of a durable RDD with an index above
// after (at most maxKeys keys and maxBytes bytes' worth, but at least one
// entry), the index the tail was trimmed up to (RDD.Trim: entries at or
// below it are gone), and whether the RDD exists. The entries must not
// be modified.
func (n *Node) TailAfter(name string, after uint64, maxKeys int, maxBytes int64) ([]*TailEntry, uint64, bool) {
	var out []*TailEntry
	var trim uint64
	var ok bool
	n.fsm.read(func(s *State) { out, trim, ok = s.tailAfter(name, after, maxKeys, maxBytes) })
	return out, trim, ok
}

// tailAfter is TailAfter over s (the caller holds its lock).
func (s *State) tailAfter(name string, after uint64, maxKeys int, maxBytes int64) ([]*TailEntry, uint64, bool) {
	r, found := s.RDDs[name]
	if !found {
		return nil, 0, false
	}
	var out []*TailEntry
	i := sort.Search(len(r.Tail), func(i int) bool { return r.Tail[i].Index > after })
	ops, size := 0, int64(0)
	for ; i < len(r.Tail); i++ {
		e := r.Tail[i]
		if len(out) > 0 && (ops+e.Ops() > maxKeys || size+e.Bytes() > maxBytes) {
			break
		}
		out = append(out, e)
		ops += e.Ops()
		size += e.Bytes()
	}
	return out, r.Trim(), true
}

// WatchRDDs registers fn to hear of every applied change to a shared RDD
// (its name; "" when sessions, nodes or the whole state changed; write is
// true for a logged write, which changes no ownership). fn runs on Raft's
// apply goroutine and must not block.
func (n *Node) WatchRDDs(fn func(rdd string, index uint64, write bool)) { n.fsm.watch.Store(&fn) }
