package cluster

import (
	"errors"
	"testing"
)

// copiesState: nodes n1, n2, n3; sessions 0 (n1), 1 (n2), 2 (n3); durable
// rdd "r" of session 0 wanting 2 copies, created at index 5.
func copiesState(t *testing.T) *State {
	t.Helper()
	s := NewState()
	for i, n := range []string{"n1", "n2", "n3"} {
		if _, err := applyAt(t, s, uint64(i+1), CmdRegisterNode, &RegisterNode{ID: n}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		mustApply(t, s, CmdCreateSession, &CreateSession{Kind: "pyspark", Node: n})
	}
	if _, err := applyAt(t, s, 5, CmdCreateRDD, &CreateRDD{Name: "r", SessionID: 0, Mode: ModeDurable, Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	return s
}

func writeAt(t *testing.T, s *State, index uint64, owner int64) {
	t.Helper()
	if _, err := applyAt(t, s, index, CmdWrite, &Write{RDD: "r", Session: owner, Keys: []string{"k"},
		Values: [][]byte{[]byte("1")}, Groups: []int{1}}); err != nil {
		t.Fatal(err)
	}
}

func ckptAt(t *testing.T, s *State, index uint64, sid int64, at uint64) error {
	t.Helper()
	_, err := applyAt(t, s, index, CmdCheckpoint, &Checkpoint{RDD: "r", Session: sid, Incarnation: 5, Index: at, Path: "/ck/r/x"})
	return err
}

// TestCopyHoldsTheTail: the tail is trimmed only below the oldest
// checkpoint of the live copies; a copy that died holds nothing.
func TestCopyHoldsTheTail(t *testing.T) {
	s := copiesState(t)
	writeAt(t, s, 10, 0)
	if _, err := applyAt(t, s, 11, CmdAddCopy, &AddCopy{RDD: "r", Node: "n2", Session: 1}); err != nil {
		t.Fatal(err)
	}
	writeAt(t, s, 12, 0)
	writeAt(t, s, 13, 0)
	if err := ckptAt(t, s, 14, 0, 13); err != nil {
		t.Fatal(err)
	}
	r := s.RDDs["r"]
	if r.Trim() != 0 || len(r.Tail) != 3 {
		t.Fatalf("after the owner's checkpoint: trim %d, tail %d; the copy holds it all", r.Trim(), len(r.Tail))
	}
	if err := ckptAt(t, s, 15, 1, 12); err != nil {
		t.Fatal(err)
	}
	if r.Trim() != 12 || len(r.Tail) != 1 || r.Tail[0].Index != 13 {
		t.Fatalf("after the copy's checkpoint at 12: trim %d, tail %+v", r.Trim(), r.Tail)
	}
	if r.Copies[0].Checkpoint == nil || r.Copies[0].Checkpoint.Index != 12 || r.Checkpoint.Index != 13 {
		t.Fatalf("checkpoints recorded: owner %+v, copy %+v", r.Checkpoint, r.Copies[0].Checkpoint)
	}
	// A stale copy checkpoint is refused; so is one by a session that is
	// neither owner nor copy.
	if err := ckptAt(t, s, 16, 1, 11); !errors.Is(err, ErrStaleCheckpoint) {
		t.Fatalf("stale copy checkpoint: %v", err)
	}
	if err := ckptAt(t, s, 16, 2, 13); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("checkpoint by a stranger: %v", err)
	}
	// The copy's session dies: it is forgotten and its hold released.
	mustApply(t, s, CmdSetSessionStatus, &SetSessionStatus{ID: 1, Status: SessionDead, Reason: "x"})
	if len(r.Copies) != 0 || r.Trim() != 13 || len(r.Tail) != 0 {
		t.Fatalf("after the copy died: copies %d, trim %d, tail %d", len(r.Copies), r.Trim(), len(r.Tail))
	}
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
}

// TestAddCopyRefusals: a copy on the owner's node, a second on a node,
// one past the wanted count, or a session on another node are refused
// and change nothing.
func TestAddCopyRefusals(t *testing.T) {
	s := copiesState(t)
	mustApply(t, s, CmdCreateSession, &CreateSession{Kind: "pyspark", Node: "n2"}) // session 3
	for what, c := range map[string]*AddCopy{
		"owner's node":         {RDD: "r", Node: "n1", Session: 0},
		"session elsewhere":    {RDD: "r", Node: "n3", Session: 1},
		"no such session":      {RDD: "r", Node: "n2", Session: 42},
		"no such rdd":          {RDD: "q", Node: "n2", Session: 1},
		"negative session id":  {RDD: "r", Node: "n2", Session: -1},
		"no node":              {RDD: "r", Session: 1},
		"copy of a memory rdd": {RDD: "m", Node: "n2", Session: 1},
	} {
		before := mustCanonical(t, s)
		if _, err := applyAt(t, s, 20, CmdAddCopy, c); err == nil {
			t.Errorf("%s: taken", what)
		}
		if string(before) != string(mustCanonical(t, s)) {
			t.Errorf("%s: a refused copy changed the registry", what)
		}
	}
	if _, err := applyAt(t, s, 21, CmdAddCopy, &AddCopy{RDD: "r", Node: "n2", Session: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := applyAt(t, s, 22, CmdAddCopy, &AddCopy{RDD: "r", Node: "n2", Session: 3}); !errors.Is(err, ErrCopyExists) {
		t.Fatalf("second copy on n2: %v", err)
	}
	if _, err := applyAt(t, s, 23, CmdAddCopy, &AddCopy{RDD: "r", Node: "n3", Session: 2}); !errors.Is(err, ErrCopyExists) {
		t.Fatalf("a third copy of an rdd wanting 2: %v", err)
	}
}

// TestPromoteCopy: the owner's node goes down; a move to the copy's
// session promotes it, its checkpoint becoming the owner's, and a new
// copy may then be added on the remaining node.
func TestPromoteCopy(t *testing.T) {
	s := copiesState(t)
	if _, err := applyAt(t, s, 10, CmdAddCopy, &AddCopy{RDD: "r", Node: "n2", Session: 1}); err != nil {
		t.Fatal(err)
	}
	writeAt(t, s, 11, 0)
	if err := ckptAt(t, s, 12, 1, 11); err != nil {
		t.Fatal(err)
	}
	writeAt(t, s, 13, 0)
	mustApply(t, s, CmdSetNodeStatus, &SetNodeStatus{ID: "n1", Status: NodeDown})
	r := s.RDDs["r"]
	if len(r.Copies) != 1 {
		t.Fatalf("the owner's node going down dropped the copy: %+v", r.Copies)
	}
	if _, err := applyAt(t, s, 14, CmdMoveRDD, &MoveRDD{RDD: "r", From: 0, To: 1}); err != nil {
		t.Fatal(err)
	}
	if r.SessionID != 1 || len(r.Copies) != 0 || r.Checkpoint == nil || r.Checkpoint.Index != 11 || r.Checkpoint.Node != "n2" {
		t.Fatalf("promoted: session %d, copies %+v, checkpoint %+v", r.SessionID, r.Copies, r.Checkpoint)
	}
	if len(r.Tail) != 1 || r.Tail[0].Index != 13 {
		t.Fatalf("the write after the copy's checkpoint is lost: %+v", r.Tail)
	}
	if _, err := applyAt(t, s, 15, CmdAddCopy, &AddCopy{RDD: "r", Node: "n3", Session: 2}); err != nil {
		t.Fatal(err)
	}
	if c := r.Copies[0]; c.Base != 11 {
		t.Fatalf("new copy's base %d, want the trim point 11", c.Base)
	}
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
}

// TestCopyCheckpointNeedsTheLoad: a bulk load's rows are in no log
// entry; once the owner records its load checkpoint, a copy's checkpoint
// from a state without it is refused, and one that holds it is taken.
func TestCopyCheckpointNeedsTheLoad(t *testing.T) {
	s := copiesState(t)
	if _, err := applyAt(t, s, 10, CmdAddCopy, &AddCopy{RDD: "r", Node: "n2", Session: 1}); err != nil {
		t.Fatal(err)
	}
	// A load into the empty RDD: its checkpoint is at index 0.
	if _, err := applyAt(t, s, 11, CmdCheckpoint, &Checkpoint{RDD: "r", Session: 0, Incarnation: 5, Index: 0, Path: "/ck/r/0", Load: true}); err != nil {
		t.Fatal(err)
	}
	r := s.RDDs["r"]
	if r.Loaded != 11 || r.Checkpoint.Loaded != 11 {
		t.Fatalf("after the load checkpoint: Loaded %d, its checkpoint's %d; want 11 (the entry's index)", r.Loaded, r.Checkpoint.Loaded)
	}
	writeAt(t, s, 12, 0)
	before := mustCanonical(t, s)
	if _, err := applyAt(t, s, 13, CmdCheckpoint, &Checkpoint{RDD: "r", Session: 1, Incarnation: 5, Index: 12, Path: "/ck/r/12"}); !errors.Is(err, ErrStaleCheckpoint) {
		t.Fatalf("a copy's checkpoint without the load: %v", err)
	}
	if string(before) != string(mustCanonical(t, s)) {
		t.Fatal("a refused checkpoint changed the registry")
	}
	if _, err := applyAt(t, s, 14, CmdCheckpoint, &Checkpoint{RDD: "r", Session: 1, Incarnation: 5, Index: 12, Path: "/ck/r/12", Loaded: 11}); err != nil {
		t.Fatal(err)
	}
	if c := r.Copies[0].Checkpoint; c == nil || c.Loaded != 11 {
		t.Fatalf("the copy's checkpoint: %+v", c)
	}
}
