package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"
)

// FuzzApply feeds fsm.Apply (decode, then apply) with sequences of log
// entries, on two fresh registries, and checks what docs/ARCHITECTURE.md
// invariant 10 promises:
//   - no panic: an entry either does not decode (ErrUndecodable: both
//     replicas halt at its index and apply nothing after it) or is
//     applied or refused;
//   - determinism: both registries give the same results and end with the
//     same canonical bytes;
//   - a refused entry leaves the registry byte-identical;
//   - every state apply reaches passes Restore's check (State.check).
//
// An input is a sequence of entries, each prefixed with its length as a
// uvarint (fuzzEntries); the seed corpus is testdata/fuzz/FuzzApply,
// written from fuzzSeeds (TestFuzzApplyCorpus). `make test` runs it for
// 30 s, `make fuzz` for 10 minutes.
func FuzzApply(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := fuzzFSM(t), fuzzFSM(t)
		index := uint64(fuzzFirstIndex)
		var haltedAt uint64
		for _, e := range fuzzEntries(data) {
			index++
			before := mustCanonical(t, a.state)
			ra := applyFSMNoPanic(t, a, e, index)
			rb := applyFSMNoPanic(t, b, append([]byte(nil), e...), index)
			if fmt.Sprint(ra.err) != fmt.Sprint(rb.err) || !reflect.DeepEqual(ra.value, rb.value) {
				t.Fatalf("entry %d: replicas disagree: %v, %v / %v, %v", index, ra.value, ra.err, rb.value, rb.err)
			}
			afterA, afterB := mustCanonical(t, a.state), mustCanonical(t, b.state)
			if !bytes.Equal(afterA, afterB) {
				t.Fatalf("entry %d: replicas' states differ", index)
			}
			if ra.err != nil && !bytes.Equal(before, afterA) {
				t.Fatalf("entry %d: refused (%v) but changed the state", index, ra.err)
			}
			if _, err := Decode(e); err != nil {
				if !errors.Is(err, ErrUndecodable) {
					t.Fatalf("entry %d: Decode error %v is not ErrUndecodable", index, err)
				}
				if haltedAt == 0 {
					haltedAt = index
				}
			}
			ha, hb := a.halted.Load(), b.halted.Load()
			switch {
			case haltedAt == 0 && (ha != nil || hb != nil):
				t.Fatalf("entry %d: halted on a decodable entry: %+v", index, ha)
			case haltedAt != 0 && (ha == nil || hb == nil || ha.Index != haltedAt || hb.Index != haltedAt):
				t.Fatalf("entry %d: halt %+v / %+v, want both at %d", index, ha, hb, haltedAt)
			case haltedAt != 0 && !errors.Is(ra.err, ErrHalted):
				t.Fatalf("entry %d after the halt at %d: %v, want ErrHalted", index, haltedAt, ra.err)
			}
		}
		st := a.state.clone()
		st.Index = a.applied.Load()
		if err := st.check(); err != nil {
			t.Fatalf("apply reached a state Restore refuses: %v", err)
		}
	})
}

// fuzzFSM is a registry FSM holding fuzzSetup.
func fuzzFSM(t *testing.T) *fsm {
	f := newFSM()
	f.state = fuzzState(t)
	f.applied.Store(uint64(len(fuzzSetup())))
	return f
}

// applyFSMNoPanic runs fsm.Apply (decode, halt, validate, apply) on one
// entry and fails the test if it panics.
func applyFSMNoPanic(t *testing.T, f *fsm, e []byte, index uint64) (r applyResult) {
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("entry %d (%x): apply panicked: %v", index, e, p)
		}
	}()
	r, _ = f.Apply(&raft.Log{Type: raft.LogCommand, Index: index, Data: e}).(applyResult)
	return r
}

// fuzzFirstIndex: fuzzed entries get the log indexes after it; the setup
// (fuzzSetup) uses the ones below.
const fuzzFirstIndex = 100

// fuzzMaxEntries bounds the entries of one input.
const fuzzMaxEntries = 64

// fuzzEntries splits an input into entries: a uvarint length, then that
// many bytes; whatever does not parse is the last entry.
func fuzzEntries(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 && len(out) < fuzzMaxEntries {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return append(out, data)
		}
		out = append(out, data[k:k+int(n)])
		data = data[k+int(n):]
	}
	return out
}

// joinEntries is the inverse of fuzzEntries.
func joinEntries(entries ...[]byte) []byte {
	var out []byte
	for _, e := range entries {
		out = binary.AppendUvarint(out, uint64(len(e)))
		out = append(out, e...)
	}
	return out
}

// fuzzSetup is the registry every input starts from, as entries at
// indexes 1, 2, ...: node n1, sessions 0 ("s0") and 1 ("s1"), durable rdd
// "d" of session 0 (incarnation 4), memory rdd "m", and a write to "d"
// with an idempotency key.
func fuzzSetup() []Command {
	return []Command{
		{CmdRegisterNode, &RegisterNode{ID: "n1", RaftAddr: "127.0.0.1:7000", HTTPAddr: "127.0.0.1:8998"}},
		{CmdCreateSession, &CreateSession{Name: "s0", Kind: "pyspark", Node: "n1", CreatedAt: 1}},
		{CmdCreateSession, &CreateSession{Name: "s1", Kind: "pyspark", Node: "n1", CreatedAt: 2}},
		{CmdCreateRDD, &CreateRDD{Name: "d", SessionID: 0, Mode: ModeDurable, CreatedAt: 3}},
		{CmdCreateRDD, &CreateRDD{Name: "m", SessionID: 0, Mode: ModeMemory, CreatedAt: 4}},
		{CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"a", "b"}, Values: [][]byte{[]byte("1"), []byte("2")},
			Groups: []int{2}, Idem: []string{"k"}, Hashes: []uint64{7}}},
	}
}

func fuzzState(t *testing.T) *State {
	s := NewState()
	for i, c := range fuzzSetup() {
		if _, err := s.apply(c, uint64(i+1)); err != nil {
			t.Fatalf("setup %s: %v", c.Type, err)
		}
	}
	return s
}

func mustCanonical(t *testing.T, s *State) []byte {
	b, err := canonical(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forged encodes a body without any check, as a buggy or forged proposer
// could write it.
func forged(typ CommandType, body any) []byte {
	b, err := msgpack.Marshal(body)
	if err != nil {
		panic(err)
	}
	return append([]byte{EntryVersion, byte(typ)}, b...)
}

// fuzzSeeds are the seed inputs, by corpus file name: every poison entry
// of issue 14, each next to entries that must still work after it.
func fuzzSeeds() map[string][]byte {
	write := forged(CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"c"}, Values: [][]byte{[]byte("3")}, Groups: []int{1}})
	goodCkpt := forged(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Incarnation: 4, Index: 6, Path: "/ck/d/00000000000000000006-1", Rows: 2})
	return map[string][]byte{
		// Group sizes whose sum overflows int64 to the number of keys: it
		// passed the size check, then sliced out of range in apply.
		"poison-overflowing-group-sizes": joinEntries(
			forged(CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"a"}, Values: [][]byte{[]byte("1")},
				Groups: []int{math.MaxInt64, math.MaxInt64, 3}}),
			write),
		// A checkpoint at index 10^9 with an attacker's path: it was
		// recorded, trimmed acknowledged writes and made the owner skip
		// every later one.
		"poison-checkpoint-index-1e9-attacker-path": joinEntries(
			forged(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Incarnation: 4, Index: 1_000_000_000,
				Path: "/tmp/attacker/evil.parquet", Rows: 0, At: 1}),
			write),
		"poison-checkpoint-index-1e9": joinEntries(
			forged(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Incarnation: 4, Index: 1_000_000_000,
				Path: "/ck/d/01000000000000000000-1", Rows: 0, At: 1}),
			write, goodCkpt),
		"poison-checkpoint-attacker-path": joinEntries(
			forged(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Incarnation: 4, Index: 6, Path: "/ck/d/../../../etc/x"}),
			forged(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Incarnation: 4, Index: 6, Path: "hdfs://evil/other/x"}),
			forged(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Incarnation: 4, Index: 6, Path: "d/x"}),
			goodCkpt, write),
		// An rdd named "..": its checkpoint dir would be the root's parent.
		"poison-rdd-named-dotdot": joinEntries(
			forged(CmdCreateRDD, &CreateRDD{Name: "..", SessionID: 0, Mode: ModeDurable}),
			forged(CmdCheckpoint, &Checkpoint{RDD: "..", Session: 0, Index: 1, Path: "/ck/../x"}),
			forged(CmdDropRDD, &DropRDD{Name: ".."}),
			forged(CmdCreateRDD, &CreateRDD{Name: "e", SessionID: 1, Mode: ModeDurable})),
		"poison-bad-names": joinEntries(
			forged(CmdCreateRDD, &CreateRDD{Name: "a/b", SessionID: 0, Mode: ModeMemory}),
			forged(CmdCreateRDD, &CreateRDD{Name: "spark", SessionID: 0, Mode: ModeMemory}),
			forged(CmdCreateSession, &CreateSession{Name: "../x", Kind: "pyspark", Node: "n1"}),
			forged(CmdCreateSession, &CreateSession{Name: "12", Kind: "pyspark", Node: "n1"}),
			forged(CmdCreateSession, &CreateSession{Name: "ok-1", Kind: "pyspark", Node: "n1"})),
		// A forged member: accepted by apply (only peer TLS keeps it out),
		// but the same on every replica.
		"poison-forged-member": joinEntries(
			forged(CmdRegisterNode, &RegisterNode{ID: "evil-node", RaftAddr: "10.6.6.6:7000", HTTPAddr: "10.6.6.6:8998"}),
			forged(CmdSetNodeStatus, &SetNodeStatus{ID: "n1", Status: NodeDown, At: 5}),
			forged(CmdCreateSession, &CreateSession{Kind: "pyspark", Node: "evil-node"}),
			forged(CmdMoveRDD, &MoveRDD{RDD: "d", From: 0, To: 2}),
			forged(CmdRemoveNode, &RemoveNode{ID: "evil-node"})),
		"poison-malformed-writes": joinEntries(
			forged(CmdWrite, &Write{RDD: "d", Session: 0, Delete: true, Keys: []string{"a"}, Values: [][]byte{[]byte("1")}, Groups: []int{1}}),
			forged(CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"a", "b"}, Values: [][]byte{[]byte("1")}, Groups: []int{2}}),
			forged(CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"a"}, Values: [][]byte{[]byte("1")}, Groups: []int{-1, 2}}),
			forged(CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"a"}, Values: [][]byte{[]byte("1")}, Groups: []int{1},
				Idem: []string{"k"}, Hashes: []uint64{}}),
			forged(CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"a"}, Values: [][]byte{[]byte("9")}, Groups: []int{1},
				Idem: []string{"k"}, Hashes: []uint64{8}}),
			write),
		// Batches: a forged create on an unknown node, a bad name, a state
		// no one writes, a change after the end; then valid ones and the
		// node going down, which kills the live batch.
		"batches": joinEntries(
			forged(CmdCreateBatch, &CreateBatch{Node: "evil-node"}),
			forged(CmdCreateBatch, &CreateBatch{Name: "../x", Node: "n1"}),
			forged(CmdCreateBatch, &CreateBatch{Name: "etl", Node: "n1", CreatedAt: 5, Principal: "ana"}),
			forged(CmdCreateBatch, &CreateBatch{Name: "etl", Node: "n1"}),
			forged(CmdSetBatchState, &SetBatchState{ID: 0, State: "exploded"}),
			forged(CmdSetBatchState, &SetBatchState{ID: -4, State: BatchRunning}),
			forged(CmdSetBatchState, &SetBatchState{ID: 0, State: BatchRunning, AppID: "local-1", At: 6}),
			forged(CmdCreateBatch, &CreateBatch{Node: "n1", CreatedAt: 7}),
			forged(CmdSetBatchState, &SetBatchState{ID: 1, State: BatchSuccess, At: 8}),
			forged(CmdSetBatchState, &SetBatchState{ID: 1, State: BatchRunning, At: 9}),
			forged(CmdSetNodeStatus, &SetNodeStatus{ID: "n1", Status: NodeDown, At: 10}),
			forged(CmdSetBatchState, &SetBatchState{ID: 0, State: BatchSuccess, At: 11})),
		"undecodable": joinEntries([]byte{2, byte(CmdWrite), 0x80}, []byte{1, 200, 0x80}, []byte{1, byte(CmdWrite), 0xc1}, []byte{1}, write),
		// Admissions: a bad id, a member, a removed member, one used up
		// by the node's registration and one that stays.
		"admissions": joinEntries(
			forged(CmdAdmitNode, &AdmitNode{ID: "../x", Voter: true}),
			forged(CmdAdmitNode, &AdmitNode{ID: "n1", Voter: true}),
			forged(CmdAdmitNode, &AdmitNode{ID: "n2", Voter: true, By: "admin", At: 5}),
			forged(CmdAdmitNode, &AdmitNode{ID: "n3", By: "admin", At: 6}),
			forged(CmdRegisterNode, &RegisterNode{ID: "n2", RaftAddr: "127.0.0.1:7002", HTTPAddr: "127.0.0.1:8992", Readmit: true}),
			forged(CmdRemoveNode, &RemoveNode{ID: "n2"}),
			forged(CmdAdmitNode, &AdmitNode{ID: "n2", Voter: true, At: 7})),
		// Copies wanted (issue 24): out of bounds both ways, then in
		// bounds, absent, and dropped.
		"replicas": joinEntries(
			forged(CmdCreateRDD, &CreateRDD{Name: "r", SessionID: 0, Mode: ModeDurable, Replicas: -1}),
			forged(CmdCreateRDD, &CreateRDD{Name: "r", SessionID: 0, Mode: ModeDurable, Replicas: MaxReplicas + 1}),
			forged(CmdCreateRDD, &CreateRDD{Name: "r", SessionID: 0, Mode: ModeDurable, Replicas: 3}),
			forged(CmdCreateRDD, &CreateRDD{Name: "r1", SessionID: 1, Mode: ModeMemory}),
			forged(CmdCreateRDD, &CreateRDD{Name: "r2", SessionID: 1, Mode: ModeMemory, Replicas: MaxReplicas}),
			forged(CmdDropRDD, &DropRDD{Name: "r"})),
		// Copies (issue 24): refused ones (no such rdd, a memory rdd, a
		// session on another node, the owner's node, one too many), one
		// taken, its checkpoint, the owner's, and its promotion.
		"copies": joinEntries(
			forged(CmdRegisterNode, &RegisterNode{ID: "n2", RaftAddr: "127.0.0.1:7002", HTTPAddr: "127.0.0.1:8992"}),
			forged(CmdCreateSession, &CreateSession{Name: "c2", Kind: "pyspark", Node: "n2", CreatedAt: 5}),
			forged(CmdAddCopy, &AddCopy{RDD: "nope", Node: "n2", Session: 2}),
			forged(CmdAddCopy, &AddCopy{RDD: "m", Node: "n2", Session: 2}),
			forged(CmdAddCopy, &AddCopy{RDD: "d", Node: "n1", Session: 2}),
			forged(CmdAddCopy, &AddCopy{RDD: "d", Node: "n1", Session: 1}),
			forged(CmdAddCopy, &AddCopy{RDD: "d", Node: "n2", Session: 2}),
			forged(CmdCreateRDD, &CreateRDD{Name: "r", SessionID: 0, Mode: ModeDurable, Replicas: 2}),
			forged(CmdAddCopy, &AddCopy{RDD: "r", Node: "n2", Session: 2}),
			forged(CmdAddCopy, &AddCopy{RDD: "r", Node: "n2", Session: 2}),
			write, forged(CmdCheckpoint, &Checkpoint{RDD: "r", Session: 2, Incarnation: 12, Index: 14, Path: "/ck/r/14"}),
			forged(CmdCheckpoint, &Checkpoint{RDD: "r", Session: 0, Incarnation: 12, Index: 15, Path: "/ck/r/15"}),
			forged(CmdMoveRDD, &MoveRDD{RDD: "r", From: 0, To: 2}),
			forged(CmdSetSessionStatus, &SetSessionStatus{ID: 2, Status: SessionDead, Reason: "gone"})),
		"valid-sequence": joinEntries(write, goodCkpt, write,
			forged(CmdMoveRDD, &MoveRDD{RDD: "d", From: 0, To: 1}),
			forged(CmdDeleteSession, &DeleteSession{ID: 0}),
			forged(CmdSetSessionStatus, &SetSessionStatus{ID: 1, Status: SessionDead, Reason: "gone"}),
			forged(CmdDropRDD, &DropRDD{Name: "d"})),
	}
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzApply from fuzzSeeds")

// TestFuzzApplyCorpus checks that the checked-in seed corpus is what
// fuzzSeeds writes (go test -run TestFuzzApplyCorpus -update-corpus
// rewrites it). Files the fuzzer adds there are left alone.
func TestFuzzApplyCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzApply")
	for name, data := range fuzzSeeds() {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		path := filepath.Join(dir, name)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("seed %s is missing or stale (err %v); run go test ./cluster -run TestFuzzApplyCorpus -update-corpus", name, err)
		}
	}
}
