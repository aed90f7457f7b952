package cluster

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

func mustApply(t *testing.T, s *State, typ CommandType, body any) any {
	t.Helper()
	v, err := s.apply(roundTrip(t, Command{Type: typ, Body: body}), 0)
	if err != nil {
		t.Fatalf("apply %s: %v", typ, err)
	}
	return v
}

// applyWant applies a command to s as mustApply does and fails the test
// unless the error is want; a refused command must leave s as it was.
// It returns the command's result.
func applyWant(t *testing.T, s *State, typ CommandType, body any, want error) any {
	t.Helper()
	before := s.clone()
	v, err := s.apply(roundTrip(t, Command{Type: typ, Body: body}), 0)
	if !errors.Is(err, want) {
		t.Fatalf("%s %+v: err = %v, want %v", typ, body, err, want)
	}
	if want != nil && !equalStates(t, before, s) {
		t.Fatalf("%s %+v: failed command changed the state", typ, body)
	}
	return v
}

// roundTrip encodes and decodes a command, as the log does.
func roundTrip(t *testing.T, c Command) Command {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return d
}

func TestApplyRules(t *testing.T) {
	s := NewState()
	id0 := mustApply(t, s, CmdCreateSession, &CreateSession{Name: "a", Kind: "pyspark", Node: "n1"})
	id1 := mustApply(t, s, CmdCreateSession, &CreateSession{Kind: "pyspark", Node: "n1"})
	if id0 != int64(0) || id1 != int64(1) {
		t.Fatalf("session ids = %v, %v; want 0, 1", id0, id1)
	}
	f := func(typ CommandType, body any, want error) {
		t.Helper()
		applyWant(t, s, typ, body, want)
	}
	f(CmdCreateSession, &CreateSession{Name: "a"}, ErrSessionExists)
	f(CmdCreateRDD, &CreateRDD{Name: "states", SessionID: 0, Mode: "memory"}, nil)
	f(CmdCreateRDD, &CreateRDD{Name: "states", SessionID: 1}, ErrRDDExists)
	f(CmdCreateRDD, &CreateRDD{Name: "other", SessionID: 7}, ErrSessionNotFound)
	f(CmdDropRDD, &DropRDD{Name: "nope"}, ErrRDDNotFound)
	f(CmdSetSessionStatus, &SetSessionStatus{ID: 9, Status: SessionDead}, ErrSessionNotFound)
	f(CmdSetSessionStatus, &SetSessionStatus{ID: 1, Status: SessionDead, Reason: "gone"}, nil)
	f(CmdCreateRDD, &CreateRDD{Name: "late", SessionID: 1}, ErrSessionInactive)
	f(CmdCreateRDD, &CreateRDD{Name: "cities", SessionID: 0}, nil)
	f(CmdDeleteSession, &DeleteSession{ID: 0}, nil)
	if len(s.RDDs) != 0 {
		t.Fatalf("deleting a session must drop its rdds, left %v", s.RDDs)
	}
	// Ids are never reused, even after deletes.
	if id := mustApply(t, s, CmdCreateSession, &CreateSession{Name: "a"}); id != int64(2) {
		t.Fatalf("id after delete = %v, want 2", id)
	}
}

// TestReplicasRecorded: the copies wanted are recorded as created; a
// count out of the registry's bounds is refused and changes nothing; an
// entry written before the field existed (the golden bytes of issue 23's
// create) decodes to 0, which means 1; removed nodes are not counted.
func TestReplicasRecorded(t *testing.T) {
	s := NewState()
	mustApply(t, s, CmdCreateSession, &CreateSession{Name: "a", Kind: "pyspark", Node: "n1"})
	mustApply(t, s, CmdCreateRDD, &CreateRDD{Name: "three", SessionID: 0, Mode: ModeDurable, Replicas: 3})
	if r := s.RDDs["three"]; r.Replicas != 3 || r.Wanted() != 3 {
		t.Fatalf("recorded %+v, want 3 copies", r)
	}
	for _, n := range []int{-1, MaxReplicas + 1} {
		applyWant(t, s, CmdCreateRDD, &CreateRDD{Name: "bad", SessionID: 0, Replicas: n}, ErrInvalidCommand)
	}
	old, _ := hex.DecodeString("010584a46e616d65a6737461746573aa73657373696f6e5f6964d30000000000000003a46d6f6465a764757261626c65aa637265617465645f6174d30000018bcfe56801")
	c, err := Decode(old)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, CmdCreateSession, &CreateSession{})
	mustApply(t, s, CmdCreateSession, &CreateSession{})
	mustApply(t, s, CmdCreateSession, &CreateSession{})
	mustApply(t, s, c.Type, c.Body)
	if r := s.RDDs["states"]; r.Replicas != 0 || r.Wanted() != 1 {
		t.Fatalf("an old entry recorded %+v, want 0 copies (1 wanted)", r)
	}
	s.Nodes["n1"] = &Member{ID: "n1", Status: NodeUp}
	s.Nodes["n2"] = &Member{ID: "n2", Status: NodeDown}
	s.Nodes["n3"] = &Member{ID: "n3", Status: NodeRemoved}
	if n := s.nodeCount(); n != 2 {
		t.Fatalf("nodeCount = %d, want 2 (up and down count, removed does not)", n)
	}
}

func equalStates(t *testing.T, a, b *State) bool {
	x, err := canonical(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := canonical(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode(Command{Type: CmdDropRDD, Body: &DropRDD{Name: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	f := func(name string, b []byte) {
		t.Helper()
		if _, err := Decode(b); !errors.Is(err, ErrUndecodable) {
			t.Fatalf("%s: err = %v, want ErrUndecodable", name, err)
		}
	}
	f("empty", nil)
	f("short", []byte{1})
	f("future version", append([]byte{2}, good[1:]...))
	f("unknown type", append([]byte{1, 200}, good[2:]...))
	f("garbage body", []byte{1, byte(CmdCreateRDD), 0xc1})
}

// An entry this binary cannot decode halts applying at its index: no
// panic, nothing of it or after it applied, no snapshot that would let
// Raft drop it; a snapshot from past it (a leader that knows it) resumes.
func TestFSMHaltsOnUndecodableEntry(t *testing.T) {
	f := newFSM()
	entry := func(c Command) []byte {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	apply := func(index uint64, data []byte) applyResult {
		r, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Index: index, Data: data}).(applyResult)
		return r
	}
	if r := apply(1, entry(Command{CmdCreateSession, &CreateSession{Name: "a"}})); r.err != nil {
		t.Fatal(r.err)
	}
	for _, bad := range [][]byte{{2, byte(CmdCreateSession), 0x80}, {1, 250, 0x80}} {
		g := newFSM()
		r, _ := g.Apply(&raft.Log{Type: raft.LogCommand, Index: 7, Data: bad}).(applyResult)
		if !errors.Is(r.err, ErrHalted) || g.halted.Load() == nil || g.halted.Load().Index != 7 {
			t.Errorf("entry %x: result %v, halt %+v; want a halt at 7", bad, r.err, g.halted.Load())
		}
	}
	before, _ := canonical(f.state)
	if r := apply(2, []byte{1, 250, 0x80}); !errors.Is(r.err, ErrHalted) {
		t.Fatalf("undecodable entry: %v, want ErrHalted", r.err)
	}
	if r := apply(3, entry(Command{CmdCreateSession, &CreateSession{Name: "b"}})); !errors.Is(r.err, ErrHalted) {
		t.Fatalf("entry after the halt: %v, want ErrHalted", r.err)
	}
	after, _ := canonical(f.state)
	if !bytes.Equal(before, after) || f.applied.Load() != 1 {
		t.Fatalf("halted registry changed: applied %d", f.applied.Load())
	}
	if h := f.halted.Load(); h == nil || h.Index != 2 || h.Reason == "" {
		t.Fatalf("halt %+v, want index 2 with a reason", h)
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrHalted) {
		t.Fatalf("snapshot while halted: %v, want ErrHalted", err)
	}
	// A leader that knows the entry sends a snapshot at 3: applying resumes.
	src := newFSM()
	mustApply(t, src.state, CmdCreateSession, &CreateSession{Name: "a"})
	mustApply(t, src.state, CmdCreateSession, &CreateSession{Name: "b"})
	src.applied.Store(3)
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, snap.(*fsmSnapshot).state); err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(nopCloser{&buf}); err != nil {
		t.Fatal(err)
	}
	if f.halted.Load() != nil {
		t.Fatal("still halted after a snapshot past the entry")
	}
	if r := apply(4, entry(Command{CmdCreateSession, &CreateSession{Name: "c"}})); r.err != nil {
		t.Fatalf("after resuming: %v", r.err)
	}
}

func TestSnapshotRestoreReplaces(t *testing.T) {
	src := newFSM()
	mustApply(t, src.state, CmdCreateSession, &CreateSession{Name: "a", Conf: map[string]string{"k": "v"}})
	mustApply(t, src.state, CmdCreateRDD, &CreateRDD{Name: "states", SessionID: 0})
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Changes after Snapshot must not leak into it (point in time).
	mustApply(t, src.state, CmdCreateRDD, &CreateRDD{Name: "later", SessionID: 0})
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, snap.(*fsmSnapshot).state); err != nil {
		t.Fatal(err)
	}

	dst := newFSM()
	mustApply(t, dst.state, CmdCreateSession, &CreateSession{Name: "stale"})
	mustApply(t, dst.state, CmdCreateSession, &CreateSession{Name: "stale2"})
	mustApply(t, dst.state, CmdCreateRDD, &CreateRDD{Name: "stale_rdd", SessionID: 1})
	if err := dst.Restore(nopCloser{&buf}); err != nil {
		t.Fatal(err)
	}
	if _, ok := dst.state.RDDs["stale_rdd"]; ok {
		t.Fatal("restore merged instead of replacing")
	}
	if _, ok := dst.state.RDDs["later"]; ok {
		t.Fatal("snapshot was not point-in-time")
	}
	if r, ok := dst.state.RDDs["states"]; !ok || r.SessionID != 0 {
		t.Fatalf("restored rdds = %v", dst.state.RDDs)
	}
	if dst.state.Index != 0 {
		t.Fatalf("restored live state carries index %d", dst.state.Index)
	}
	if dst.state.NextSessionID != 1 || dst.state.Sessions[0].Conf["k"] != "v" {
		t.Fatalf("restored state = %+v", dst.state)
	}
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

func TestNodeStatusAndPlacement(t *testing.T) {
	s := NewState()
	for _, id := range []string{"n1", "n2", "n3"} {
		mustApply(t, s, CmdRegisterNode, &RegisterNode{ID: id, RaftAddr: id + ":1", HTTPAddr: id + ":2"})
	}
	// n1 gets a session with an rdd, n2 a session: n3 is least loaded.
	mustApply(t, s, CmdCreateSession, &CreateSession{Node: "n1"})
	mustApply(t, s, CmdCreateRDD, &CreateRDD{Name: "a", SessionID: 0})
	mustApply(t, s, CmdCreateSession, &CreateSession{Node: "n2"})
	if got, _ := s.leastLoaded(""); got != "n3" {
		t.Fatalf("least loaded = %s, want n3", got)
	}
	mustApply(t, s, CmdSetNodeStatus, &SetNodeStatus{ID: "n3", Status: NodeDown, At: 5})
	if got, _ := s.leastLoaded(""); got != "n2" {
		t.Fatalf("least loaded with n3 down = %s, want n2", got)
	}
	// A node going down takes its sessions with it.
	mustApply(t, s, CmdSetNodeStatus, &SetNodeStatus{ID: "n1", Status: NodeDown, At: 6})
	if sess := s.Sessions[0]; sess.Status != SessionDead || sess.Reason != "node n1 went down" {
		t.Fatalf("session on a down node = %+v", sess)
	}
	if s.Sessions[1].Status != SessionActive {
		t.Fatal("a session on another node was touched")
	}
	mustApply(t, s, CmdSetNodeStatus, &SetNodeStatus{ID: "n1", Status: NodeUp, At: 7})
	if s.Nodes["n1"].Since != 7 || s.Sessions[0].Status != SessionDead {
		t.Fatalf("node back up: %+v, session %+v", s.Nodes["n1"], s.Sessions[0])
	}
	// Removed nodes cannot re-register or change status.
	mustApply(t, s, CmdRemoveNode, &RemoveNode{ID: "n2"})
	for _, c := range []Command{
		{Type: CmdRegisterNode, Body: &RegisterNode{ID: "n2"}},
		{Type: CmdSetNodeStatus, Body: &SetNodeStatus{ID: "n2", Status: NodeUp}},
	} {
		if _, err := s.apply(roundTrip(t, c), 0); !errors.Is(err, ErrNodeRemoved) {
			t.Fatalf("%s on a removed node: %v", c.Type, err)
		}
	}
	// ... unless the leader readmits it (it joined with its state wiped).
	mustApply(t, s, CmdRegisterNode, &RegisterNode{ID: "n2", Readmit: true})
	if s.Nodes["n2"].Status != NodeUp {
		t.Fatalf("readmitted node = %+v", s.Nodes["n2"])
	}
	mustApply(t, s, CmdRemoveNode, &RemoveNode{ID: "n2"})
	if _, err := s.apply(roundTrip(t, Command{Type: CmdRemoveNode, Body: &RemoveNode{ID: "zz"}}), 0); !errors.Is(err, ErrNodeNotFound) {
		t.Fatalf("remove unknown node: %v", err)
	}
	if got, _ := s.leastLoaded(""); got != "n1" {
		t.Fatalf("least loaded = %s, want n1 (n2 removed, n3 down)", got)
	}
	// On a tie the leader is avoided.
	mustApply(t, s, CmdSetNodeStatus, &SetNodeStatus{ID: "n3", Status: NodeUp, At: 8})
	if got, _ := s.leastLoaded("n1"); got != "n3" {
		t.Fatalf("least loaded avoiding leader n1 = %s, want n3", got)
	}
}

func TestCanonicalIsStable(t *testing.T) {
	s := NewState()
	for i := 0; i < 50; i++ {
		mustApply(t, s, CmdCreateSession, &CreateSession{Node: "n1", Conf: map[string]string{"spark.a": "1", "spark.b": "2", "spark.c": "3"}})
		mustApply(t, s, CmdRegisterNode, &RegisterNode{ID: fmt.Sprintf("n%d", i)})
	}
	want, err := canonical(s)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		got, _ := canonical(s.clone())
		if !bytes.Equal(got, want) {
			t.Fatal("canonical encoding of the same state differs between calls")
		}
	}
	mustApply(t, s, CmdSetSessionStatus, &SetSessionStatus{ID: 7, Status: SessionDead})
	if got, _ := canonical(s); bytes.Equal(got, want) {
		t.Fatal("canonical encoding did not change with the state")
	}
}
