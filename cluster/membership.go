package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// startHealthWatch makes the leader turn Raft's heartbeat observations
// into two signals. At once, a peer whose heartbeat failed is "silent":
// placement skips it until its heartbeats resume (Placement). After
// DownAfter without contact it is marked down in the registry, and up
// again once heartbeats resume. A change of leader forgets silence: the
// new leader's own heartbeats decide.
func (n *Node) startHealthWatch() {
	n.obsCh = make(chan raft.Observation, 64)
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(n.observer)
	n.lastTick.Store(monoNow())
	n.wg.Add(2)
	go n.watchPause()
	go func() {
		defer n.wg.Done()
		// A paused peer never fails a heartbeat until the transport times
		// out: contact.go marks it down after DownAfter of silence.
		tick := time.NewTicker(contactCheckEvery)
		defer tick.Stop()
		for {
			select {
			case <-n.stop:
				return
			case <-tick.C:
				n.checkContact()
			case o := <-n.obsCh:
				switch d := o.Data.(type) {
				case raft.FailedHeartbeatObservation:
					n.peers.markSilent(string(d.PeerID))
					if time.Since(d.LastContact) >= n.cfg.DownAfter {
						n.setStatus(string(d.PeerID), NodeDown)
					}
				case raft.ResumedHeartbeatObservation:
					n.peers.markHeard(string(d.PeerID))
					n.setStatus(string(d.PeerID), NodeUp)
				case raft.LeaderObservation:
					n.peers.reset()
					n.contact.reset()
				}
			}
		}
	}()
}

// peerHealth is the leader's own, unreplicated view of which peers it
// cannot reach right now. Safe for concurrent use.
type peerHealth struct {
	mu     sync.Mutex
	silent map[string]bool
}

func (p *peerHealth) markSilent(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.silent == nil {
		p.silent = map[string]bool{}
	}
	p.silent[id] = true
}

func (p *peerHealth) markHeard(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.silent, id)
}

func (p *peerHealth) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.silent = nil
}

func (p *peerHealth) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.silent))
	for id := range p.silent {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// silentPeers is the set of nodes placement must skip. The leader knows
// it first-hand; a follower asks the leader (briefly), and if the leader
// does not answer, it skips the leader itself when it has not heard from
// it for SilentAfter.
func (n *Node) silentPeers() map[string]bool {
	out := map[string]bool{}
	if n.IsLeader() {
		for _, id := range n.peers.list() {
			out[id] = true
		}
		return out
	}
	_, leader := n.raft.LeaderWithID()
	if ids, err := n.askSilent(); err == nil {
		for _, id := range ids {
			out[id] = true
		}
		return out
	}
	if leader != "" && time.Since(n.raft.LastContact()) > n.cfg.SilentAfter {
		out[string(leader)] = true
	}
	return out
}

func (n *Node) setStatus(id, status string) {
	if m, ok := n.Member(id); !ok || m.Status == status || m.Status == NodeRemoved || !n.IsLeader() {
		return
	}
	_, err := n.Apply(Command{Type: CmdSetNodeStatus, Body: &SetNodeStatus{ID: id, Status: status, At: time.Now().UnixMilli()}})
	if err != nil {
		n.cfg.Logger.Warn("cannot record node status", "node", id, "status", status, "error", err)
		return
	}
	n.cfg.Logger.Info("node status", "node", id, "status", status)
}

// MemberStatus is one node as GET /v1/cluster shows it.
type MemberStatus struct {
	Member
	Suffrage string   `json:"suffrage"` // voter, nonvoter, or "" when not in the Raft configuration
	Leader   bool     `json:"leader"`
	Sessions []int64  `json:"sessions"`
	RDDs     []string `json:"rdds"`
}

// Status is the cluster as this node sees it.
type Status struct {
	Node         string         `json:"node"`
	Admitted     []Admission    `json:"admitted"` // admitted, not joined yet
	Leader       string         `json:"leader"`
	State        string         `json:"state"`
	Term         string         `json:"term"`
	CommitIndex  string         `json:"commit_index"`
	AppliedIndex string         `json:"applied_index"`
	LastContact  string         `json:"last_contact"`
	Members      []MemberStatus `json:"members"`
}

// ClusterStatus reports members, their voter state and health, the
// leader, Raft indexes and each node's sessions and shared RDDs. It reads
// this node's registry (it may lag the leader by replication delay).
func (n *Node) ClusterStatus() Status {
	st := n.raft.Stats()
	_, leader := n.raft.LeaderWithID()
	out := Status{Node: n.cfg.NodeID, Leader: string(leader), State: st["state"], Term: st["term"],
		CommitIndex: st["commit_index"], AppliedIndex: st["applied_index"], LastContact: st["last_contact"],
		Admitted: n.Admitted()}
	suffrage := map[string]string{}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			s := "voter"
			if srv.Suffrage != raft.Voter {
				s = "nonvoter"
			}
			suffrage[string(srv.ID)] = s
		}
	}
	n.fsm.read(func(s *State) {
		for id, m := range s.Nodes {
			ms := MemberStatus{Member: *m, Suffrage: suffrage[id], Leader: id == string(leader),
				Sessions: []int64{}, RDDs: []string{}}
			for _, sess := range s.Sessions {
				if sess.Node == id {
					ms.Sessions = append(ms.Sessions, sess.ID)
					for _, r := range s.RDDs {
						if r.SessionID == sess.ID {
							ms.RDDs = append(ms.RDDs, r.Name)
						}
					}
				}
			}
			sort.Slice(ms.Sessions, func(i, j int) bool { return ms.Sessions[i] < ms.Sessions[j] })
			sort.Strings(ms.RDDs)
			out.Members = append(out.Members, ms)
		}
	})
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].ID < out.Members[j].ID })
	return out
}

// Placement lists the nodes a new session or shared RDD may go to, least
// loaded first (on a tie a follower, then the smallest id): nodes the
// registry has up, less those the leader has not heard from since a
// heartbeat failed (docs/ARCHITECTURE.md invariant 11). This node is
// always in the list when it is up, since it is evidently alive.
func (n *Node) Placement() []string {
	silent := n.silentPeers()
	delete(silent, n.cfg.NodeID)
	_, leader := n.raft.LeaderWithID()
	var out []string
	n.fsm.read(func(s *State) { out = s.byLoad(string(leader), func(id string) bool { return silent[id] }) })
	return out
}

// NodeCount is the number of nodes the registry has, up or down; removed
// ones are not counted.
func (n *Node) NodeCount() int {
	var c int
	n.fsm.read(func(s *State) { c = s.nodeCount() })
	return c
}

// LeastLoaded returns the first node of Placement.
func (n *Node) LeastLoaded() (string, bool) {
	p := n.Placement()
	if len(p) == 0 {
		return "", false
	}
	return p[0], true
}

// StateHash is a digest of the registry; equal on nodes that applied the
// same entries.
func (n *Node) StateHash() string {
	var b []byte
	n.fsm.read(func(s *State) { b, _ = canonical(s) })
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// VerifyLeader confirms this node still leads and has applied everything
// committed before the call (for reads that must be fresh).
func (n *Node) VerifyLeader() error {
	if err := n.haltErr(); err != nil {
		return err
	}
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("cannot catch up with the log: %w", err)
	}
	// The barrier may have reached an entry this node cannot decode.
	return n.haltErr()
}

// AppliedIndex is the index of the last entry this node's FSM applied.
func (n *Node) AppliedIndex() uint64 { return n.fsm.applied.Load() }
