package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// durableState has session 0 (active) owning durable rdd "d", session 1
// (active) and memory rdd "m".
func durableState(t *testing.T) *State {
	t.Helper()
	s := NewState()
	mustApply(t, s, CmdCreateSession, &CreateSession{Kind: "pyspark", Node: "n1"})
	mustApply(t, s, CmdCreateSession, &CreateSession{Kind: "pyspark", Node: "n2"})
	mustApply(t, s, CmdCreateRDD, &CreateRDD{Name: "d", SessionID: 0, Mode: ModeDurable})
	mustApply(t, s, CmdCreateRDD, &CreateRDD{Name: "m", SessionID: 0, Mode: "memory"})
	return s
}

func applyAt(t *testing.T, s *State, index uint64, typ CommandType, body any) (any, error) {
	t.Helper()
	return s.apply(roundTrip(t, Command{Type: typ, Body: body}), index)
}

func TestDurableWritesAppendToTheTail(t *testing.T) {
	s := durableState(t)
	v, err := applyAt(t, s, 10, CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"a", "b", "c"},
		Values: [][]byte{[]byte("1"), []byte("2"), []byte("3")}, Groups: []int{2, 1}})
	if err != nil {
		t.Fatal(err)
	}
	res := v.(*WriteResult)
	if res.Index != 10 || len(res.Groups) != 2 || res.Groups[1] != (GroupPlace{Index: 10, Group: 1}) {
		t.Fatalf("result = %+v", res)
	}
	if _, err := applyAt(t, s, 11, CmdWrite, &Write{RDD: "d", Session: 0, Delete: true, Keys: []string{"a"}, Groups: []int{1}}); err != nil {
		t.Fatal(err)
	}
	r := s.RDDs["d"]
	if len(r.Tail) != 2 || r.TailOps != 4 || r.LastWrite != 11 || r.TailBytes != 3+3+1 || !r.Tail[1].Delete {
		t.Fatalf("rdd = %+v", r)
	}
	// A proposer that routed to a former owner, a memory rdd, bad shapes:
	// refused, and nothing changes.
	bad := []*Write{
		{RDD: "d", Session: 1, Keys: []string{"x"}, Values: [][]byte{[]byte("1")}, Groups: []int{1}},
		{RDD: "m", Session: 0, Keys: []string{"x"}, Values: [][]byte{[]byte("1")}, Groups: []int{1}},
		{RDD: "nope", Session: 0, Keys: []string{"x"}, Values: [][]byte{[]byte("1")}, Groups: []int{1}},
		{RDD: "d", Session: 0, Keys: []string{"x"}, Values: [][]byte{[]byte("1")}, Groups: []int{2}},
		{RDD: "d", Session: 0, Keys: []string{"x"}, Groups: []int{1}},
		{RDD: "d", Session: 0, Keys: []string{"x"}, Values: [][]byte{[]byte("1")}, Groups: []int{1}, Idem: []string{"k"}},
	}
	wantErr := []error{ErrNotOwner, ErrNotDurable, ErrRDDNotFound, nil, nil, nil}
	for i, w := range bad {
		before, _ := canonical(s)
		_, err := applyAt(t, s, uint64(20+i), CmdWrite, w)
		if err == nil || (wantErr[i] != nil && !errors.Is(err, wantErr[i])) {
			t.Fatalf("bad write %d: err %v, want %v", i, err, wantErr[i])
		}
		if after, _ := canonical(s); !bytes.Equal(before, after) {
			t.Fatalf("bad write %d changed the state", i)
		}
	}
}

func TestIdempotencyKeys(t *testing.T) {
	s := durableState(t)
	w := func(idem string, hash uint64, val string) *Write {
		return &Write{RDD: "d", Session: 0, Keys: []string{"k"}, Values: [][]byte{[]byte(val)}, Groups: []int{1},
			Idem: []string{idem}, Hashes: []uint64{hash}}
	}
	if _, err := applyAt(t, s, 5, CmdWrite, w("a", 1, "1")); err != nil {
		t.Fatal(err)
	}
	// The retry logs nothing and points at the first entry.
	v, err := applyAt(t, s, 6, CmdWrite, w("a", 1, "1"))
	if err != nil {
		t.Fatal(err)
	}
	if res := v.(*WriteResult); res.Index != 0 || res.Groups[0] != (GroupPlace{Index: 5, Group: 0, Dup: true}) {
		t.Fatalf("retry = %+v", res)
	}
	if len(s.RDDs["d"].Tail) != 1 {
		t.Fatalf("retry was logged: %+v", s.RDDs["d"].Tail)
	}
	// The same key for another request is refused, but only that batch:
	// another client's batch in the same entry is logged.
	v, err = applyAt(t, s, 7, CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"k", "other"},
		Values: [][]byte{[]byte("2"), []byte("3")}, Groups: []int{1, 1}, Idem: []string{"a", ""}, Hashes: []uint64{2, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if res := v.(*WriteResult); res.Groups[0].Err != GroupErrIdempotency || res.Groups[1] != (GroupPlace{Index: 7, Group: 0}) {
		t.Fatalf("reused key = %+v", res)
	}
	if tail := s.RDDs["d"].Tail; len(tail) != 2 || len(tail[1].Keys) != 1 || tail[1].Keys[0] != "other" {
		t.Fatalf("tail after a refused group: %+v", tail[1])
	}
	// Two groups with the same new key in one entry: the second is a dup
	// of the first; with another request, it is refused.
	v, err = applyAt(t, s, 8, CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"x", "x", "y"},
		Values: [][]byte{[]byte("1"), []byte("1"), []byte("9")}, Groups: []int{1, 1, 1}, Idem: []string{"b", "b", "b"}, Hashes: []uint64{3, 3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	if res := v.(*WriteResult); !res.Groups[1].Dup || res.Groups[1].Index != 8 || res.Groups[2].Err != GroupErrIdempotency ||
		len(s.RDDs["d"].Tail[2].Groups) != 1 {
		t.Fatalf("same key thrice in one entry = %+v, tail %+v", res, s.RDDs["d"].Tail[2])
	}
	// A dropped and re-created RDD does not inherit its keys.
	mustApply(t, s, CmdDropRDD, &DropRDD{Name: "d"})
	if _, err := applyAt(t, s, 9, CmdCreateRDD, &CreateRDD{Name: "d", SessionID: 0, Mode: ModeDurable}); err != nil {
		t.Fatal(err)
	}
	v, err = applyAt(t, s, 10, CmdWrite, w("a", 9, "5"))
	if err != nil {
		t.Fatal(err)
	}
	if res := v.(*WriteResult); res.Index != 10 || res.Groups[0].Dup || res.Groups[0].Err != "" {
		t.Fatalf("key of the dropped rdd applied to the new one: %+v", res)
	}
	// The oldest keys are forgotten past capacity, the same way everywhere.
	for i := 0; i <= idemCapacity+idemCapacity/10; i++ {
		s.remember(fmt.Sprintf("d\x00fill-%d", i), &IdemRecord{Index: 1})
	}
	if _, ok := s.Idem["d\x00a"]; ok || len(s.Idem) < idemCapacity || len(s.Idem) > idemCapacity+idemCapacity/10 || len(s.IdemOrder) != len(s.Idem) {
		t.Fatalf("idempotency table: %d keys, %d in order; oldest kept: %v", len(s.Idem), len(s.IdemOrder), ok)
	}
}

func TestCheckpointTrimsTheTailAndMoveIsACompareAndSet(t *testing.T) {
	s := durableState(t)
	for i := uint64(1); i <= 4; i++ {
		if _, err := applyAt(t, s, 10*i, CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"k"},
			Values: [][]byte{[]byte("1")}, Groups: []int{1}}); err != nil {
			t.Fatal(err)
		}
	}
	held := s.clone().RDDs["d"].Tail // a reader's copy
	if _, err := applyAt(t, s, 50, CmdCheckpoint, &Checkpoint{RDD: "d", Index: 25, Path: "/c/d/25"}); err != nil {
		t.Fatal(err)
	}
	r := s.RDDs["d"]
	if len(r.Tail) != 2 || r.Tail[0].Index != 30 || r.TailOps != 2 || r.Checkpoint.Path != "/c/d/25" {
		t.Fatalf("after checkpoint at 25: %+v", r)
	}
	if len(held) != 4 || held[0].Index != 10 {
		t.Fatalf("a reader's tail changed under it: %+v", held)
	}
	// An older checkpoint that finishes late is refused, as is one by a
	// former owner or for an earlier rdd of the same name.
	if _, err := applyAt(t, s, 51, CmdCheckpoint, &Checkpoint{RDD: "d", Index: 15, Path: "/c/d/15"}); !errors.Is(err, ErrStaleCheckpoint) {
		t.Fatalf("late checkpoint: %v", err)
	}
	if _, err := applyAt(t, s, 51, CmdCheckpoint, &Checkpoint{RDD: "d", Session: 1, Index: 45, Path: "/c/d/x"}); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("checkpoint by a former owner: %v", err)
	}
	if _, err := applyAt(t, s, 51, CmdCheckpoint, &Checkpoint{RDD: "d", Incarnation: 3, Index: 45, Path: "/c/d/x"}); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("checkpoint of another incarnation: %v", err)
	}
	if s.RDDs["d"].Checkpoint.Path != "/c/d/25" {
		t.Fatalf("late checkpoint replaced the newer one")
	}
	if _, err := applyAt(t, s, 52, CmdCheckpoint, &Checkpoint{RDD: "m", Index: 15, Path: "/c/m/15"}); !errors.Is(err, ErrNotDurable) {
		t.Fatalf("checkpoint of a memory rdd: %v", err)
	}
	// Move: only from the current owner, only to an active session.
	if _, err := applyAt(t, s, 53, CmdMoveRDD, &MoveRDD{RDD: "d", From: 1, To: 0}); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("move from a non-owner: %v", err)
	}
	mustApply(t, s, CmdSetSessionStatus, &SetSessionStatus{ID: 1, Status: SessionDead})
	if _, err := applyAt(t, s, 54, CmdMoveRDD, &MoveRDD{RDD: "d", From: 0, To: 1}); !errors.Is(err, ErrSessionInactive) {
		t.Fatalf("move to a dead session: %v", err)
	}
	mustApply(t, s, CmdCreateSession, &CreateSession{Kind: "pyspark", Node: "n3"})
	if _, err := applyAt(t, s, 55, CmdMoveRDD, &MoveRDD{RDD: "d", From: 0, To: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := applyAt(t, s, 56, CmdMoveRDD, &MoveRDD{RDD: "d", From: 0, To: 2}); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("a second adopter won too: %v", err)
	}
	if s.RDDs["d"].SessionID != 2 || len(s.RDDs["d"].Tail) != 2 {
		t.Fatalf("after move: %+v", s.RDDs["d"])
	}
	// Deleting a session keeps its durable rdds (they move on), not its memory ones.
	mustApply(t, s, CmdCreateRDD, &CreateRDD{Name: "m2", SessionID: 2, Mode: "memory"})
	mustApply(t, s, CmdDeleteSession, &DeleteSession{ID: 2})
	if _, ok := s.RDDs["d"]; !ok {
		t.Fatal("deleting its session dropped a durable rdd")
	}
	if _, ok := s.RDDs["m2"]; ok {
		t.Fatal("deleting its session kept a memory rdd")
	}
	mustApply(t, s, CmdCreateSession, &CreateSession{Kind: "pyspark", Node: "n3"})
	mustApply(t, s, CmdMoveRDD, &MoveRDD{RDD: "d", From: 2, To: 3})
	// Tails, checkpoints and idempotency keys survive a snapshot.
	mustApply(t, s, CmdWrite, &Write{RDD: "d", Session: 3, Keys: []string{"z"}, Values: [][]byte{[]byte("9")},
		Groups: []int{1}, Idem: []string{"i"}, Hashes: []uint64{4}})
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, s.clone()); err != nil {
		t.Fatal(err)
	}
	back, err := readSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := canonical(s)
	if got, _ := canonical(back); !bytes.Equal(got, want) {
		t.Fatalf("snapshot round trip lost durable state: %+v", back.RDDs["d"])
	}
}
