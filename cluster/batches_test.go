package cluster

import (
	"bytes"
	"errors"
	"testing"
)

func TestBatchRules(t *testing.T) {
	s := NewState()
	mustApply(t, s, CmdRegisterNode, &RegisterNode{ID: "n1"})
	mustApply(t, s, CmdRegisterNode, &RegisterNode{ID: "n2"})
	f := func(typ CommandType, body any, want error) any {
		t.Helper()
		return applyWant(t, s, typ, body, want)
	}
	if id := f(CmdCreateBatch, &CreateBatch{Name: "etl", Node: "n1", CreatedAt: 1, Principal: "ana"}, nil); id != int64(0) {
		t.Fatalf("first batch id = %v, want 0", id)
	}
	f(CmdCreateBatch, &CreateBatch{Name: "etl", Node: "n2"}, ErrBatchExists)
	f(CmdCreateBatch, &CreateBatch{Node: "n9"}, ErrNodeNotFound)
	f(CmdCreateBatch, &CreateBatch{Node: ""}, ErrInvalidCommand)
	f(CmdCreateBatch, &CreateBatch{Name: "../x", Node: "n1"}, ErrInvalidCommand)
	if id := f(CmdCreateBatch, &CreateBatch{Node: "n2", CreatedAt: 2}, nil); id != int64(1) {
		t.Fatalf("second batch id = %v, want 1", id)
	}
	f(CmdSetBatchState, &SetBatchState{ID: 7, State: BatchRunning}, ErrBatchNotFound)
	f(CmdSetBatchState, &SetBatchState{ID: 0, State: "exploded"}, ErrInvalidCommand)
	f(CmdSetBatchState, &SetBatchState{ID: -1, State: BatchRunning}, ErrInvalidCommand)
	f(CmdSetBatchState, &SetBatchState{ID: 0, State: BatchRunning, AppID: "local-1", At: 3}, nil)
	f(CmdSetBatchState, &SetBatchState{ID: 0, State: BatchKilled, Reason: "deleted", At: 4}, nil)
	// Final states never change: a late report of the driver loses.
	f(CmdSetBatchState, &SetBatchState{ID: 0, State: BatchSuccess, At: 5}, ErrBatchFinished)
	if b := s.Batches[0]; b.State != BatchKilled || b.AppID != "local-1" || b.UpdatedAt != 4 || b.Principal != "ana" {
		t.Fatalf("batch 0 = %+v", b)
	}
	// The node of batch 1 goes down: the batch is dead, with the reason.
	f(CmdSetNodeStatus, &SetNodeStatus{ID: "n2", Status: NodeDown, At: 9}, nil)
	if b := s.Batches[1]; b.State != BatchDead || b.Reason == "" || b.UpdatedAt != 9 {
		t.Fatalf("batch on a down node = %+v", b)
	}
	if s.Batches[0].State != BatchKilled {
		t.Fatalf("a finished batch changed when its node went down: %+v", s.Batches[0])
	}
	if err := s.check(); err != nil {
		t.Fatalf("check: %v", err)
	}
	// Snapshots carry batches and the counter.
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, s); err != nil {
		t.Fatal(err)
	}
	r, err := readSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !equalStates(t, s, r) || r.NextBatchID != 2 || len(r.Batches) != 2 {
		t.Fatalf("snapshot round trip lost batches: %+v", r.Batches)
	}
}

// TestBatchIDsNeverReused fills the registry past MaxBatchRecords: the
// oldest finished records go, ids keep counting, and a registry full of
// live batches refuses a new one.
func TestBatchIDsNeverReused(t *testing.T) {
	s := NewState()
	mustApply(t, s, CmdRegisterNode, &RegisterNode{ID: "n1"})
	for i := 0; i < MaxBatchRecords; i++ {
		id := mustApply(t, s, CmdCreateBatch, &CreateBatch{Node: "n1"}).(int64)
		if id != int64(i) {
			t.Fatalf("batch %d got id %d", i, id)
		}
		if i < 10 {
			mustApply(t, s, CmdSetBatchState, &SetBatchState{ID: id, State: BatchSuccess})
		}
	}
	for i := 0; i < 10; i++ {
		id := mustApply(t, s, CmdCreateBatch, &CreateBatch{Node: "n1"}).(int64)
		if id != int64(MaxBatchRecords+i) {
			t.Fatalf("id after pruning = %d, want %d", id, MaxBatchRecords+i)
		}
		if _, kept := s.Batches[int64(i)]; kept {
			t.Fatalf("finished batch %d was not pruned", i)
		}
	}
	if len(s.Batches) != MaxBatchRecords {
		t.Fatalf("%d records kept, want %d", len(s.Batches), MaxBatchRecords)
	}
	before := s.clone()
	if _, err := s.apply(Command{Type: CmdCreateBatch, Body: &CreateBatch{Node: "n1"}}, 0); !errors.Is(err, ErrBatchLimit) {
		t.Fatalf("create with every record live: %v, want ErrBatchLimit", err)
	}
	if !equalStates(t, before, s) {
		t.Fatal("a refused create changed the state")
	}
	if err := s.check(); err != nil {
		t.Fatalf("check: %v", err)
	}
}

func TestCheckRefusesBadBatches(t *testing.T) {
	f := func(what string, mutate func(s *State)) {
		t.Helper()
		s := NewState()
		s.NextBatchID = 1
		s.Batches = map[int64]*Batch{0: {ID: 0, Node: "n1", State: BatchRunning}}
		if err := s.check(); err != nil {
			t.Fatalf("good state refused: %v", err)
		}
		mutate(s)
		if err := s.check(); !errors.Is(err, ErrInvalidSnapshot) {
			t.Errorf("%s: check = %v, want ErrInvalidSnapshot", what, err)
		}
	}
	f("misfiled", func(s *State) { s.Batches[0].ID = 3 })
	f("never allocated", func(s *State) { s.NextBatchID = 0 })
	f("bad state", func(s *State) { s.Batches[0].State = "odd" })
	f("no node", func(s *State) { s.Batches[0].Node = "" })
	f("bad name", func(s *State) { s.Batches[0].Name = "a/b" })
	f("nil", func(s *State) { s.Batches[0] = nil })
}
