package cluster

import (
	"errors"
	"fmt"

	"github.com/srdd/srdd/internal/peerid"
)

// ErrInvalidSnapshot: a snapshot whose state breaks the rules that apply
// keeps (a name the API refuses, a tail that does not add up, ...). Restore
// refuses it whole, so raft fails the restore: a state no sequence of
// valid entries can build never reaches the registry, not even in part.
var ErrInvalidSnapshot = errors.New("invalid registry snapshot")

// check verifies that the state is one that applying entries up to
// s.Index could have built: the invariants State.apply keeps, checked with
// the same rules (docs/ARCHITECTURE.md invariant 10). Every state apply
// reaches passes (FuzzApply checks that); the error wraps
// ErrInvalidSnapshot and names the first fault.
func (s *State) check() error {
	if err := s.checkRecords(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSnapshot, err)
	}
	return nil
}

func (s *State) checkRecords() error {
	if s.NextSessionID < 0 {
		return fmt.Errorf("negative next session id %d", s.NextSessionID)
	}
	for id, m := range s.Nodes {
		if m == nil || m.ID != id || id == "" {
			return fmt.Errorf("node record %q is missing or misfiled", id)
		}
		if err := oneOf("node status", m.Status, NodeUp, NodeDown, NodeRemoved); err != nil {
			return fmt.Errorf("node %q: %w", id, err)
		}
	}
	if len(s.Admitted) > MaxAdmitted {
		return fmt.Errorf("%d admissions, more than %d", len(s.Admitted), MaxAdmitted)
	}
	for id, a := range s.Admitted {
		if a == nil || a.ID != id || peerid.Valid(id) != nil {
			return fmt.Errorf("admission %q is missing, misfiled or not a node id", id)
		}
		if m, ok := s.Nodes[id]; ok && m.Status != NodeRemoved {
			return fmt.Errorf("admission %q names a member", id)
		}
	}
	names := make(map[string]int64, len(s.Sessions))
	for id, sess := range s.Sessions {
		if sess == nil || sess.ID != id || id < 0 || id >= s.NextSessionID {
			return fmt.Errorf("session record %d is missing, misfiled or never allocated", id)
		}
		if err := oneOf("session status", sess.Status, SessionActive, SessionDead, SessionKilled); err != nil {
			return fmt.Errorf("session %d: %w", id, err)
		}
		if err := uniqueName(names, "session", id, sess.Name); err != nil {
			return err
		}
	}
	for name, r := range s.RDDs {
		if err := s.checkRDD(name, r); err != nil {
			return err
		}
	}
	if err := s.checkBatches(); err != nil {
		return err
	}
	return s.checkIdem()
}

// checkRDD checks one shared RDD record: its name, mode and owner, and
// for a durable one its checkpoint and tail as applyWrite and
// applyCheckpoint keep them.
func (s *State) checkRDD(name string, r *RDD) error {
	if r == nil || r.Name != name {
		return fmt.Errorf("rdd record %q is missing or misfiled", name)
	}
	if err := first(ValidRDDName(name), sessionID("session id", r.SessionID),
		oneOf("rdd mode", r.Mode, ModeDurable, ModeMemory, ""), replicas(r.Replicas)); err != nil {
		return fmt.Errorf("rdd %q: %w", name, err)
	}
	if s.Index != 0 && r.Incarnation > s.Index {
		return fmt.Errorf("rdd %q: incarnation %d is past the snapshot's index %d", name, r.Incarnation, s.Index)
	}
	if r.Mode != ModeDurable && (r.Checkpoint != nil || len(r.Tail) != 0 || r.TailOps != 0 || r.TailBytes != 0) {
		return fmt.Errorf("rdd %q: a checkpoint or tail on a %q rdd", name, r.Mode)
	}
	if ck := r.Checkpoint; ck != nil {
		if err := first(checkpointPath(name, ck.Path), nonNegative("row count", ck.Rows)); err != nil {
			return fmt.Errorf("rdd %q: %w", name, err)
		}
		if s.Index != 0 && ck.Index > s.Index {
			return fmt.Errorf("rdd %q: checkpoint index %d is past the snapshot's index %d", name, ck.Index, s.Index)
		}
	}
	if err := s.checkCopies(name, r); err != nil {
		return err
	}
	if s.Index != 0 && r.Loaded > s.Index {
		return fmt.Errorf("rdd %q: loaded at index %d, past the snapshot's index %d", name, r.Loaded, s.Index)
	}
	// The tail holds the writes after the trim point.
	after := r.Trim()
	if s.Index != 0 && after > s.Index {
		return fmt.Errorf("rdd %q: trimmed up to %d, past the snapshot's index %d", name, after, s.Index)
	}
	ops, size := 0, int64(0)
	for _, e := range r.Tail {
		if e == nil || e.Index <= after || (s.Index != 0 && e.Index > s.Index) {
			return fmt.Errorf("rdd %q: tail entries are missing, out of order or past the snapshot", name)
		}
		w := Write{RDD: name, Delete: e.Delete, Keys: e.Keys, Values: e.Values, Groups: e.Groups}
		if err := w.validate(); err != nil || len(e.Groups) == 0 {
			return fmt.Errorf("rdd %q: tail entry %d is malformed", name, e.Index)
		}
		after = e.Index
		ops += e.Ops()
		size += e.Bytes()
	}
	if ops != r.TailOps || size != r.TailBytes {
		return fmt.Errorf("rdd %q: tail holds %d keys and %d bytes, the record says %d and %d", name, ops, size, r.TailOps, r.TailBytes)
	}
	if n := len(r.Tail); n > 0 && r.LastWrite != r.Tail[n-1].Index {
		return fmt.Errorf("rdd %q: last write %d is not the tail's last entry %d", name, r.LastWrite, r.Tail[n-1].Index)
	}
	return nil
}

// checkIdem checks that the idempotency keys and their order of arrival
// name the same keys, once each.
func (s *State) checkIdem() error {
	if len(s.IdemOrder) != len(s.Idem) {
		return fmt.Errorf("%d idempotency keys but %d in their order", len(s.Idem), len(s.IdemOrder))
	}
	seen := make(map[string]bool, len(s.IdemOrder))
	for _, k := range s.IdemOrder {
		rec := s.Idem[k]
		if rec == nil || seen[k] {
			return fmt.Errorf("idempotency key %q is missing or listed twice", k)
		}
		if s.Index != 0 && rec.Index > s.Index {
			return fmt.Errorf("idempotency key %q: index %d is past the snapshot's index %d", k, rec.Index, s.Index)
		}
		seen[k] = true
	}
	return nil
}

// uniqueName checks the optional name of record id (a session or a batch,
// what): a valid name, not yet in names, which it is then added to.
func uniqueName(names map[string]int64, what string, id int64, name string) error {
	if name == "" {
		return nil
	}
	if err := ValidSessionName(name); err != nil {
		return fmt.Errorf("%s %d: %w", what, id, err)
	}
	if o, dup := names[name]; dup {
		return fmt.Errorf("%s name %q is both %s %d and %d", what, name, what, o, id)
	}
	names[name] = id
	return nil
}
