package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/srdd/srdd/internal/testutil"
	"github.com/vmihailenco/msgpack/v5"
)

// lockedBuffer is a log sink hclog may write from any goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPoisonEntriesKeepReplicasIdentical applies the poison entries of
// issue 14 through fsm.Apply on two replicas: each is refused with
// ErrInvalidCommand and a log line, nothing panics, the replicas' states
// stay byte-identical, and the registry keeps taking valid entries (the
// write after a forged checkpoint is kept, not skipped).
func TestPoisonEntriesKeepReplicasIdentical(t *testing.T) {
	var logs [2]lockedBuffer
	var replicas [2]*fsm
	for i := range replicas {
		replicas[i] = newFSM()
		replicas[i].log = hclog.New(&hclog.LoggerOptions{Output: &logs[i], Level: hclog.Warn})
	}
	index := uint64(0)
	apply := func(entry []byte) []applyResult {
		t.Helper()
		index++
		var out []applyResult
		for _, f := range replicas {
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("entry %d: apply panicked: %v", index, p)
					}
				}()
				out = append(out, f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: entry}).(applyResult))
			}()
		}
		a, _ := canonical(replicas[0].state)
		b, _ := canonical(replicas[1].state)
		if !bytes.Equal(a, b) {
			t.Fatalf("entry %d: the replicas' states differ", index)
		}
		return out
	}
	for _, c := range fuzzSetup() {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if r := apply(b); r[0].err != nil {
			t.Fatalf("setup %s: %v", c.Type, r[0].err)
		}
	}
	poison := map[string][]byte{
		"overflowing group sizes": forged(CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"a"},
			Values: [][]byte{[]byte("1")}, Groups: []int{math.MaxInt64, math.MaxInt64, 3}}),
		"checkpoint at 10^9, attacker path": forged(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Incarnation: 4,
			Index: 1_000_000_000, Path: "/tmp/attacker/evil.parquet"}),
		"checkpoint at 10^9": forged(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Incarnation: 4,
			Index: 1_000_000_000, Path: "/ck/d/x"}),
		"checkpoint outside its dir": forged(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Incarnation: 4,
			Index: 6, Path: "/ck/d/../../etc"}),
		"rdd named ..":        forged(CmdCreateRDD, &CreateRDD{Name: "..", SessionID: 0, Mode: ModeDurable}),
		"session named ../x":  forged(CmdCreateSession, &CreateSession{Name: "../x", Kind: "pyspark", Node: "n1"}),
		"delete with values":  forged(CmdWrite, &Write{RDD: "d", Session: 0, Delete: true, Keys: []string{"a"}, Values: [][]byte{[]byte("1")}, Groups: []int{1}}),
		"keys without values": forged(CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"a", "b"}, Values: [][]byte{[]byte("1")}, Groups: []int{2}}),
	}
	for name, entry := range poison {
		for i, r := range apply(entry) {
			if !errors.Is(r.err, ErrInvalidCommand) {
				t.Errorf("%s: replica %d answered %v, want ErrInvalidCommand", name, i, r.err)
			}
		}
	}
	for i := range logs {
		if n := strings.Count(logs[i].String(), "refused an invalid registry entry"); n != len(poison) {
			t.Errorf("replica %d logged %d refusals, want %d:\n%s", i, n, len(poison), logs[i].String())
		}
	}
	// A forged member is a valid entry: only peer TLS keeps it out. It is
	// at least the same on every replica.
	apply(forged(CmdRegisterNode, &RegisterNode{ID: "evil-node", RaftAddr: "10.6.6.6:7000", HTTPAddr: "10.6.6.6:8998"}))
	// Later writes and checkpoints still work.
	if r := apply(forged(CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"c"}, Values: [][]byte{[]byte("3")}, Groups: []int{1}})); r[0].err != nil {
		t.Fatalf("write after the poison: %v", r[0].err)
	}
	if r := apply(forged(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Incarnation: 4, Index: 6, Path: "/ck/d/6"})); r[0].err != nil {
		t.Fatalf("checkpoint after the poison: %v", r[0].err)
	}
	d := replicas[0].state.RDDs["d"]
	if d.Checkpoint.Index != 6 || len(d.Tail) != 1 || d.Tail[0].Keys[0] != "c" {
		t.Fatalf("rdd d after the poison: checkpoint %+v, tail %+v", d.Checkpoint, d.Tail)
	}
	if _, ok := replicas[0].state.RDDs[".."]; ok {
		t.Fatal(`an rdd named ".." was created`)
	}
}

// TestServeApplyRefusesInvalidEntries: the leader refuses a forwarded
// entry that does not validate before it reaches the log (this node has
// no Raft: proposing would panic), and says so with the sentinel's name.
func TestServeApplyRefusesInvalidEntries(t *testing.T) {
	n := &Node{fsm: newFSM()}
	f := func(entry []byte, kind string) {
		t.Helper()
		var r applyReply
		if err := msgpack.Unmarshal(n.ServeApply(entry), &r); err != nil {
			t.Fatal(err)
		}
		if r.Kind != kind || r.Error == "" || r.Index != 0 {
			t.Errorf("reply %+v, want kind %q", r, kind)
		}
	}
	f(forged(CmdCreateRDD, &CreateRDD{Name: "..", SessionID: 0, Mode: ModeDurable}), "invalid_command")
	f(forged(CmdWrite, &Write{RDD: "d", Keys: []string{"a"}, Values: [][]byte{[]byte("1")}, Groups: []int{math.MaxInt64, math.MaxInt64, 3}}), "invalid_command")
	f([]byte{1, 200}, "")
}

// TestPoisonEntriesOverRaft commits the poison entries of issue 14 to a
// real 3-node Raft log, as a forged proposer would (bypassing
// Node.Apply's checks): each is refused on every replica, the cluster
// keeps taking writes, the replicas' state hashes match, and nodes
// restarted from a snapshot or from the log alone replay them cleanly.
func TestPoisonEntriesOverRaft(t *testing.T) {
	addrs := []string{testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	open := func(i int) *Node {
		t.Helper()
		n, err := Open(Config{NodeID: fmt.Sprintf("n%d", i+1), RaftAddr: addrs[i], DataDir: dirs[i], Bootstrap: i == 0,
			HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
			Logger: testutil.Logger(t, hclog.Warn)})
		if err != nil {
			t.Fatalf("open n%d: %v", i+1, err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	nodes := []*Node{open(0), open(1), open(2)}
	leader := nodes[0]
	if err := leader.WaitForLeader(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if err := leader.Admit(n.ID(), true, "test"); err != nil {
			t.Fatal(err)
		}
		if err := leader.Join(n.ID(), n.RaftAddr(), "", true, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := leader.Apply(Command{Type: CmdCreateSession, Body: &CreateSession{Name: "s0", Kind: "pyspark", Node: "n1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.Apply(Command{Type: CmdCreateRDD, Body: &CreateRDD{Name: "d", SessionID: 0, Mode: ModeDurable}}); err != nil {
		t.Fatal(err)
	}
	r, _ := leader.RDD("d")
	write := func(key string) {
		t.Helper()
		if _, err := leader.Apply(Command{Type: CmdWrite, Body: &Write{RDD: "d", Session: 0, Keys: []string{key},
			Values: [][]byte{[]byte("1")}, Groups: []int{1}}}); err != nil {
			t.Fatalf("write %s: %v", key, err)
		}
	}
	write("a")
	for name, entry := range map[string][]byte{
		"overflowing group sizes": forged(CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"a"},
			Values: [][]byte{[]byte("1")}, Groups: []int{math.MaxInt64, math.MaxInt64, 3}}),
		"checkpoint at 10^9, attacker path": forged(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Incarnation: r.Incarnation,
			Index: 1_000_000_000, Path: "/tmp/attacker/evil.parquet"}),
		"checkpoint outside its dir": forged(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Incarnation: r.Incarnation,
			Index: 1, Path: "/ck/d/../../etc"}),
		"rdd named ..": forged(CmdCreateRDD, &CreateRDD{Name: "..", SessionID: 0, Mode: ModeDurable}),
	} {
		idx, _, err := leader.applyLocal(entry)
		if idx == 0 || !errors.Is(err, ErrInvalidCommand) {
			t.Fatalf("%s: committed at %d with %v, want a refusal in the log", name, idx, err)
		}
	}
	write("b")
	sameHashes := func(ns []*Node) {
		t.Helper()
		want := leader.AppliedIndex()
		err := testutil.WaitFor(30*time.Second, func() (bool, error) {
			for _, n := range ns {
				if n.AppliedIndex() < want {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("replicas did not apply up to %d: %v", want, err)
		}
		for _, n := range ns[1:] {
			if n.StateHash() != ns[0].StateHash() {
				t.Fatalf("%s's registry differs from %s's", n.ID(), ns[0].ID())
			}
		}
	}
	sameHashes(nodes)
	// n2 restarts from a snapshot (which Restore checks) plus the log, n3
	// from the log alone: both replay the poison entries.
	if err := nodes[1].Snapshot(); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		if err := nodes[i].Close(); err != nil {
			t.Fatal(err)
		}
		nodes[i] = open(i)
	}
	write("c")
	sameHashes(nodes)
	if _, ok := nodes[2].RDD(".."); ok {
		t.Fatal(`an rdd named ".." exists after replay`)
	}
	if got, _ := nodes[1].RDD("d"); got.Checkpoint != nil || got.TailOps != 3 {
		t.Fatalf("rdd d after restart: checkpoint %+v, %d logged writes; want none and 3", got.Checkpoint, got.TailOps)
	}
}
