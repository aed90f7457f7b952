package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// snapshotState is a registry with a node, sessions, a durable rdd with a
// checkpoint, a tail and an idempotency key, as of index 100.
func snapshotState(t *testing.T) *State {
	t.Helper()
	s := durableState(t)
	mustApply(t, s, CmdRegisterNode, &RegisterNode{ID: "n1"})
	mustApply(t, s, CmdCreateSession, &CreateSession{Name: "named", Kind: "pyspark", Node: "n1"})
	for i := uint64(1); i <= 3; i++ {
		if _, err := applyAt(t, s, 10*i, CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"k", "l"},
			Values: [][]byte{[]byte("1"), []byte("2")}, Groups: []int{1, 1}, Idem: []string{"", fmt.Sprint("i", i)}, Hashes: []uint64{0, i}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := applyAt(t, s, 40, CmdCheckpoint, &Checkpoint{RDD: "d", Index: 15, Path: "/ck/d/15", Rows: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := applyAt(t, s, 50, CmdWrite, &Write{RDD: "d", Session: 0, Delete: true, Keys: []string{"k"}, Groups: []int{1}}); err != nil {
		t.Fatal(err)
	}
	s.Index = 100
	return s
}

// TestRestoreRefusesBrokenSnapshots: a snapshot whose state breaks a rule
// that apply keeps is refused whole; the registry keeps its state and
// applied index. A valid one replaces the state.
func TestRestoreRefusesBrokenSnapshots(t *testing.T) {
	dst := newFSM()
	mustApply(t, dst.state, CmdCreateSession, &CreateSession{Name: "mine"})
	dst.applied.Store(7)
	before, _ := canonical(dst.state)
	f := func(what string, breakIt func(s *State)) {
		t.Helper()
		s := snapshotState(t)
		breakIt(s)
		var buf bytes.Buffer
		if err := writeSnapshot(&buf, s); err != nil {
			t.Fatal(err)
		}
		err := dst.Restore(nopCloser{&buf})
		t.Logf("%s: %v", what, err)
		if !errors.Is(err, ErrInvalidSnapshot) {
			t.Errorf("%s: Restore = %v, want ErrInvalidSnapshot", what, err)
		}
		if after, _ := canonical(dst.state); !bytes.Equal(before, after) || dst.applied.Load() != 7 {
			t.Errorf("%s: a refused snapshot changed the registry", what)
		}
	}
	d := func(s *State) *RDD { return s.RDDs["d"] }
	f("rdd named ..", func(s *State) { r := d(s); delete(s.RDDs, "d"); r.Name = ".."; s.RDDs[".."] = r })
	f("rdd filed under another name", func(s *State) { s.RDDs["e"] = d(s) })
	f("nil rdd", func(s *State) { s.RDDs["e"] = nil })
	f("unknown rdd mode", func(s *State) { s.RDDs["m"].Mode = "forever" })
	f("tail on a memory rdd", func(s *State) { s.RDDs["m"].Tail = d(s).Tail })
	f("tail ops disagree", func(s *State) { d(s).TailOps++ })
	f("tail bytes disagree", func(s *State) { d(s).TailBytes-- })
	f("tail out of order", func(s *State) { r := d(s); r.Tail[0], r.Tail[1] = r.Tail[1], r.Tail[0] })
	f("tail covered by the checkpoint", func(s *State) { d(s).Checkpoint.Index = 30 })
	f("tail past the snapshot", func(s *State) { s.Index = 40 })
	f("malformed tail entry", func(s *State) { d(s).Tail[0].Groups = []int{3} })
	f("nil tail entry", func(s *State) { d(s).Tail[0] = nil })
	f("last write disagrees", func(s *State) { d(s).LastWrite = 20 })
	f("checkpoint outside its dir", func(s *State) { d(s).Checkpoint.Path = "/ck/../etc/15" })
	f("checkpoint past the snapshot", func(s *State) { d(s).Checkpoint.Index = 1_000_000_000 })
	f("incarnation past the snapshot", func(s *State) { d(s).Incarnation = 101 })
	f("negative replicas", func(s *State) { d(s).Replicas = -1 })
	f("replicas past the bound", func(s *State) { d(s).Replicas = MaxReplicas + 1 })
	f("bad session name", func(s *State) { s.Sessions[2].Name = "../x" })
	f("session name twice", func(s *State) { s.Sessions[1].Name = "named" })
	f("session never allocated", func(s *State) { s.NextSessionID = 2 })
	f("session misfiled", func(s *State) { s.Sessions[9] = s.Sessions[1] })
	f("unknown session status", func(s *State) { s.Sessions[1].Status = "sleeping" })
	f("node misfiled", func(s *State) { s.Nodes["evil"] = s.Nodes["n1"] })
	f("unknown node status", func(s *State) { s.Nodes["n1"].Status = "king" })
	f("idempotency order lost", func(s *State) { s.IdemOrder = s.IdemOrder[1:] })
	f("idempotency key twice", func(s *State) { s.IdemOrder[1] = s.IdemOrder[0] })
	f("idempotency past the snapshot", func(s *State) { s.Idem[s.IdemOrder[0]].Index = 200 })

	good := snapshotState(t)
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, good); err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(nopCloser{&buf}); err != nil {
		t.Fatalf("valid snapshot: %v", err)
	}
	want, _ := canonical(good)
	if got, _ := canonical(dst.state); !bytes.Equal(got, want) || dst.applied.Load() != 100 {
		t.Fatalf("a valid snapshot was not restored as it was")
	}
}
