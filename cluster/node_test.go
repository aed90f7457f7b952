package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/srdd/srdd/internal/testutil"
)

func openTestNode(t *testing.T, dir string, bootstrap bool) *Node {
	t.Helper()
	n, err := Open(Config{
		NodeID: "n1", RaftAddr: "127.0.0.1:0", DataDir: dir, Bootstrap: bootstrap,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		SnapshotThreshold: 4, SnapshotInterval: 50 * time.Millisecond,
		Logger: testutil.Logger(t, hclog.Info),
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return n
}

func TestSingleNodeRestartKeepsRegistry(t *testing.T) {
	dir := t.TempDir()
	n := openTestNode(t, dir, true)
	if err := n.WaitForLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		if _, err := n.Apply(Command{Type: CmdCreateSession, Body: &CreateSession{Name: name, Node: "n1"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Apply(Command{Type: CmdCreateRDD, Body: &CreateRDD{Name: "states", SessionID: 1}}); err != nil {
		t.Fatal(err)
	}
	_, err := n.Apply(Command{Type: CmdCreateRDD, Body: &CreateRDD{Name: "states", SessionID: 2}})
	if !errors.Is(err, ErrRDDExists) {
		t.Fatalf("duplicate rdd through raft: err = %v", err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	// One more entry after the snapshot, so restart replays snapshot + log.
	if _, err := n.Apply(Command{Type: CmdCreateRDD, Body: &CreateRDD{Name: "cities", SessionID: 0}}); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Restart with --bootstrap again: existing state wins, bootstrap is skipped.
	n2 := openTestNode(t, dir, true)
	defer n2.Close()
	if err := n2.WaitForLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Raft replays the log asynchronously after election; a barrier-like
	// write makes sure everything before it is applied.
	id, err := n2.Apply(Command{Type: CmdCreateSession, Body: &CreateSession{Name: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	if id != int64(3) {
		t.Fatalf("next session id after restart = %v, want 3", id)
	}
	if r, ok := n2.RDD("states"); !ok || r.SessionID != 1 {
		t.Fatalf("rdd states after restart = %+v, %v", r, ok)
	}
	if _, ok := n2.RDD("cities"); !ok {
		t.Fatal("entry after snapshot lost on restart")
	}
	if s, ok := n2.SessionByName("b"); !ok || s.ID != 1 {
		t.Fatalf("session b after restart = %+v, %v", s, ok)
	}
	if got := len(n2.Sessions()); got != 4 {
		t.Fatalf("sessions after restart = %d, want 4", got)
	}
}

func TestNoBootstrapNoLeader(t *testing.T) {
	n := openTestNode(t, t.TempDir(), false)
	defer n.Close()
	if err := n.WaitForLeader(700 * time.Millisecond); err == nil {
		t.Fatal("a node that was never bootstrapped must not elect itself")
	}
	_, err := n.Apply(Command{Type: CmdDropRDD, Body: &DropRDD{Name: "x"}})
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("apply without leader: err = %v, want ErrNotLeader", err)
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(c Config, ok bool) {
		t.Helper()
		if err := c.Validate(); (err == nil) != ok {
			t.Fatalf("Validate(%+v) = %v, want ok=%v", c, err, ok)
		}
	}
	f(DefaultConfig(), true)
	f(Config{RaftAddr: "127.0.0.1:1", DataDir: "d"}, false)
	f(Config{NodeID: "n", RaftAddr: "nocolon", DataDir: "d"}, false)
	f(Config{NodeID: "n", RaftAddr: "127.0.0.1:1"}, false)
}
