package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Admission (docs/ARCHITECTURE.md, "Peer trust"): a node joins only if
// an admin admitted its ID first (`srdd cluster admit ID`, or
// `srdd server --bootstrap --admit n2,n3`). The admission is a registry
// record; the leader checks it when it decides a join (Node.Join), and
// the join's RegisterNode uses it up, so it serves once. A node
// certificate alone, even for the right ID, does not make a member.

// MaxAdmitted bounds the admissions waiting for their node.
const MaxAdmitted = 256

// Admission is one admitted node ID that has not joined yet.
type Admission struct {
	ID    string `msgpack:"id" json:"id"`
	Voter bool   `msgpack:"voter" json:"voter"`
	By    string `msgpack:"by,omitempty" json:"by,omitempty"`
	At    int64  `msgpack:"at" json:"at"`
}

func (s *State) applyAdmitNode(b *AdmitNode, _ uint64) (any, error) {
	if m, ok := s.Nodes[b.ID]; ok && m.Status != NodeRemoved {
		return nil, fmt.Errorf("%w: %q", ErrMemberExists, b.ID)
	}
	if _, again := s.Admitted[b.ID]; !again && len(s.Admitted) >= MaxAdmitted {
		return nil, fmt.Errorf("%w: %d are waiting", ErrAdmitLimit, len(s.Admitted))
	}
	if s.Admitted == nil {
		s.Admitted = map[string]*Admission{}
	}
	s.Admitted[b.ID] = &Admission{ID: b.ID, Voter: b.Voter, By: b.By, At: b.At}
	return nil, nil
}

// sortedAdmitted lists the admissions by node ID.
func (s *State) sortedAdmitted() []Admission { return sortedCopies(s.Admitted) }

// Admit records that node id may join once, as a voter or not. by names
// who admitted it, for the record. Any member may propose it (it is
// forwarded to the leader); the caller checks that by is an admin.
func (n *Node) Admit(id string, voter bool, by string) error {
	_, err := n.Apply(Command{Type: CmdAdmitNode, Body: &AdmitNode{ID: id, Voter: voter, By: by, At: time.Now().UnixMilli()}})
	return err
}

// Admitted lists the admitted node IDs that have not joined yet.
func (n *Node) Admitted() []Admission { return readAll(n.fsm, (*State).sortedAdmitted) }

// admission checks, on the leader, that node id may join now: it is in
// the Raft configuration at raftAddr already (a join sent again), or an
// unused admission names it, for a voter if it asks to be one.
func (n *Node) admission(id, raftAddr string, voter bool, servers []raft.Server) error {
	for _, srv := range servers {
		if srv.ID == raft.ServerID(id) {
			return nil // a member: its address may move, by its own certificate
		}
	}
	a, ok := readOne(n.fsm, func(s *State) (*Admission, bool) { p, ok := s.Admitted[id]; return p, ok })
	switch {
	case !ok:
		return fmt.Errorf("%w: node %q was not admitted; an admin runs `srdd cluster admit %s` (or starts the first node with --admit %s) before it joins",
			ErrNotAdmitted, id, id, id)
	case voter && !a.Voter:
		return fmt.Errorf("%w: node %q was admitted as a non-voter; join with --non-voter, or admit it with `srdd cluster admit %s --voter`",
			ErrNotAdmitted, id, id)
	}
	return nil
}
