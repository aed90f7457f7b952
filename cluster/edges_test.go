package cluster

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/srdd/srdd/internal/testutil"
)

// A single voter stands for election at once: with a heartbeat timeout
// of a minute, it still leads within seconds, fresh and after a restart.
func TestSingleVoterElectsWithoutHeartbeatWait(t *testing.T) {
	dir := t.TempDir()
	open := func() *Node {
		n, err := Open(Config{NodeID: "n1", RaftAddr: "127.0.0.1:0", DataDir: dir, Bootstrap: true,
			HeartbeatTimeout: time.Minute, ElectionTimeout: time.Minute, DownAfter: 3 * time.Minute, Logger: testutil.Logger(t, hclog.Info)})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, run := range []string{"fresh", "restart"} {
		n := open()
		if err := n.WaitForLeader(10 * time.Second); err != nil {
			t.Fatalf("%s: a single voter must not wait out its heartbeat timeout: %v", run, err)
		}
		if got := n.raft.ReloadableConfig().HeartbeatTimeout; got != time.Minute {
			t.Fatalf("%s: heartbeat timeout left at %s, want it restored to 1m", run, got)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A write proposed before there is a leader waits for one and succeeds;
// one that finds none within LeaderWait fails once, saying so once.
func TestApplyWaitsForALeader(t *testing.T) {
	n, err := Open(Config{NodeID: "n1", RaftAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		ForwardApply: true, LeaderWait: 300 * time.Millisecond, Logger: testutil.Logger(t, hclog.Info)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	_, err = n.Apply(Command{Type: CmdCreateSession, Body: &CreateSession{Name: "a", Node: "n1"}})
	if !errors.Is(err, ErrNoLeader) {
		t.Fatalf("err = %v, want ErrNoLeader", err)
	}
	if strings.Count(err.Error(), "cannot apply") != 1 {
		t.Fatalf("the error says %q: it must say what failed once", err)
	}

	n.cfg.LeaderWait = 30 * time.Second
	done := make(chan error, 1)
	go func() {
		_, err := n.Apply(Command{Type: CmdCreateSession, Body: &CreateSession{Name: "b", Node: "n1"}})
		done <- err
	}()
	// The cluster forms only after the write was proposed.
	boot := raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: n.transport.LocalAddr(), Suffrage: raft.Voter}}}
	if err := n.raft.BootstrapCluster(boot).Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a write proposed before the leader existed failed: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the write never finished")
	}
	if _, ok := n.SessionByName("b"); !ok {
		t.Fatal("the write was not applied")
	}
}

// Placement lists up nodes by load, skips silent ones, prefers a follower
// on a tie; the leader's view of silent peers resets with a new leader.
func TestPlacementOrder(t *testing.T) {
	s := NewState()
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		s.Nodes[id] = &Member{ID: id, Status: NodeUp}
	}
	s.Nodes["n4"].Status = NodeDown
	s.Sessions[0] = &Session{ID: 0, Node: "n2", Status: SessionActive}
	f := func(leader string, silent map[string]bool, want string) {
		t.Helper()
		got := strings.Join(s.byLoad(leader, func(id string) bool { return silent[id] }), ",")
		if got != want {
			t.Fatalf("byLoad(leader %q, silent %v) = %s, want %s", leader, silent, got, want)
		}
	}
	f("", nil, "n1,n3,n2")
	f("n1", nil, "n3,n1,n2")
	f("n1", map[string]bool{"n3": true}, "n1,n2")
	f("n1", map[string]bool{"n1": true, "n2": true, "n3": true}, "")

	var p peerHealth
	p.markSilent("n3")
	p.markSilent("n2")
	p.markHeard("n2")
	if got := strings.Join(p.list(), ","); got != "n3" {
		t.Fatalf("silent = %s, want n3", got)
	}
	p.reset()
	if len(p.list()) != 0 {
		t.Fatalf("a new leader must start with no silent peers, got %v", p.list())
	}
}
