package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The node-to-node protocol: every HTTP call one node makes on another,
// its server side (transport-neutral: bytes in, bytes or an error out)
// and its client, here and in join.go. httpapi mounts the server side
// in its route table (httpapi/routes.go), whose rows name these paths;
// over peer TLS the calls run on the peer channel (peertls.go).
//
//	POST   ApplyPath   ServeApply   Node.forward   a follower's registry command (msgpack)
//	GET    IndexPath   ServeIndex   Node.CatchUp   the leader's applied index (a read index)
//	GET    SilentPath  ServeSilent  Node.askSilent peers the leader cannot reach now
//	GET    CheckpointPath (kvstore.Store.ServeCheckpoint) Node.FetchCheckpoint  a checkpoint held on a node's disk (ckptfetch.go)
//	POST   JoinPath    Node.Join    Node.JoinVia   add a node (join.go)
//	DELETE NodesPath+id Node.Remove Node.Leave     remove a node (join.go)
const (
	// ApplyPath is where a leader applies commands forwarded by followers.
	ApplyPath = "/internal/v1/apply"
	// IndexPath is where a leader tells its commit index to a follower
	// that wants to catch up.
	IndexPath = "/internal/v1/index"
	// SilentPath is where the leader tells a follower which peers it
	// cannot reach right now, so that placement through any node avoids
	// a node that just died.
	SilentPath = "/internal/v1/silent"
	// CheckpointPath is where a node streams a durable RDD's checkpoint
	// held on its own disk to a peer building a copy of the RDD
	// (?rdd=NAME&path=PATH; a tar stream).
	CheckpointPath = "/internal/v1/checkpoint"
	// JoinPath is where a member takes a join (the leader decides it).
	JoinPath = "/v1/cluster/join"
	// NodesPath + id is where a member takes the removal of node id.
	NodesPath = "/v1/cluster/nodes/"
)

// KeyHeader carries the cluster key on internal calls.
const KeyHeader = "X-Srdd-Cluster-Key"

// applyReply is the leader's answer to a forwarded command.
type applyReply struct {
	Index    uint64 `msgpack:"index"`
	Value    int64  `msgpack:"value"`
	HasValue bool   `msgpack:"has_value"`
	Kind     string `msgpack:"kind"`  // sentinel name of the error, if any
	Error    string `msgpack:"error"` // error text, if any
	// Write is the result of a durable write (CmdWrite).
	Write *WriteResult `msgpack:"write,omitempty"`
}

// ServeApply applies an encoded command on this node, which must lead, and
// encodes the outcome for the forwarding follower. An entry that does not
// decode, or does not validate, is refused before it reaches the log, as
// Node.Apply refuses one before proposing it.
func (n *Node) ServeApply(entry []byte) []byte {
	var r applyReply
	if c, err := Decode(entry); err != nil {
		r.Kind, r.Error = "", err.Error()
	} else if _, err := c.validate(); err != nil {
		r.Kind, r.Error = errorKind(err), err.Error()
	} else {
		idx, v, err := n.applyLocal(entry)
		r.Index = idx
		if idx > 0 {
			// The follower that forwarded this waits until it applies the
			// entry itself; tell it the commit now, not with a heartbeat.
			n.nudgeFollowers()
		}
		if id, ok := v.(int64); ok {
			r.Value, r.HasValue = id, true
		}
		if w, ok := v.(*WriteResult); ok {
			r.Write = w
		}
		if err != nil {
			r.Kind, r.Error = errorKind(err), err.Error()
		}
	}
	b, _ := msgpack.Marshal(&r)
	return b
}

// nudgeFollowers makes followers learn the leader's commit index at once.
// hashicorp/raft sends a new commit index with the next AppendEntries,
// which for an idle leader is the next heartbeat (HeartbeatTimeout/10,
// 100 ms by default); a follower waiting to apply a write it forwarded
// would wait that long. A barrier is a log entry, so it is replicated at
// once, carrying the commit index. One runs at a time; a nudge that comes
// while one runs starts another after it.
func (n *Node) nudgeFollowers() {
	n.nudgeAgain.Store(true)
	if !n.nudging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			for n.nudgeAgain.Swap(false) {
				_ = n.raft.Barrier(n.cfg.ApplyTimeout).Error()
			}
			n.nudging.Store(false)
			// A nudge between the last Swap and Store(false) would be lost
			// without this second look.
			if !n.nudgeAgain.Load() || !n.nudging.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// forward sends an encoded command to the leader and waits until this
// node has applied it too, so a read here right after sees the write.
func (n *Node) forward(entry []byte, what CommandType) (any, error) {
	if n.isolated.Load() {
		return nil, ErrNoLeader
	}
	addr, err := n.leaderPeer()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.peerURL(addr, ApplyPath), bytes.NewReader(entry))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/msgpack")
	req.Header.Set("X-Requested-By", "srdd")
	req.Header.Set(KeyHeader, n.cfg.ClusterKey)
	resp, err := n.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			// Never reached the leader: safe to try again.
			return nil, fmt.Errorf("cannot reach the leader at %s: %w", addr, ErrNoLeader)
		}
		return nil, fmt.Errorf("forwarded to the leader at %s: %v: %w", addr, err, ErrOutcomeUnknown)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("forwarded to the leader at %s: %v: %w", addr, err, ErrOutcomeUnknown)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("leader at %s answered %d to a forwarded %s: %s", addr, resp.StatusCode, what, bytes.TrimSpace(body))
	}
	var r applyReply
	if err := msgpack.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("cannot decode the leader's reply: %w", err)
	}
	var value any
	if r.HasValue {
		value = r.Value
	}
	if r.Write != nil {
		value = r.Write
	}
	var applyErr error
	if r.Error != "" {
		applyErr = errors.New(r.Error)
		if s, ok := errorKinds[r.Kind]; ok {
			applyErr = fmt.Errorf("%w (at the leader: %s)", s, r.Error)
		}
	}
	if r.Index > 0 {
		if err := n.waitApplied(r.Index); err != nil {
			// Committed at the leader, not yet applied here.
			return value, fmt.Errorf("%v: %w", err, ErrOutcomeUnknown)
		}
	}
	return value, applyErr
}

// waitApplied blocks until this node's FSM has applied index.
func (n *Node) waitApplied(index uint64) error {
	deadline := time.Now().Add(n.cfg.ApplyTimeout)
	for n.fsm.applied.Load() < index {
		if err := n.haltErr(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("entry %d not applied here within %s", index, n.cfg.ApplyTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// leaderPeer is where this node calls the leader's internal routes: its
// Raft address over the peer channel with peer TLS, else its HTTP address.
func (n *Node) leaderPeer() (string, error) {
	if n.mux == nil {
		return n.leaderHTTP()
	}
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return "", ErrNoLeader
	}
	return string(addr), nil
}

// leaderHTTP returns the HTTP address of the current leader.
func (n *Node) leaderHTTP() (string, error) {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return "", ErrNoLeader
	}
	m, ok := n.Member(string(id))
	if !ok || m.HTTPAddr == "" {
		return "", fmt.Errorf("%w: leader %s has no known HTTP address", ErrNoLeader, id)
	}
	return m.HTTPAddr, nil
}

// LeaderHTTP returns the HTTP address of the current leader, for
// forwarding requests that must run there (joins, removals, fresh reads).
// With no leader known it waits for one, up to LeaderWait, if this node
// belongs to a cluster; a node that has not joined one yet answers at
// once (ErrNoLeader), so a joiner asking it moves on to another member.
func (n *Node) LeaderHTTP() (string, error) {
	if _, id := n.raft.LeaderWithID(); id == "" && n.member() {
		n.awaitLeader(time.Now().Add(n.cfg.LeaderWait), 0)
	}
	return n.leaderHTTP()
}

// member reports whether this node's Raft configuration has any server,
// i.e. it was bootstrapped or has joined.
func (n *Node) member() bool {
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// ServeIndex confirms leadership and returns the commit index, for a
// follower's CatchUp (a Raft "read index").
//
// It answers the index of the last command its FSM applied after a
// barrier, not raft's commit index: entries that are not commands (no-ops
// after elections, barriers, configuration changes) never reach a
// follower's FSM, so a follower could never "apply" up to them.
func (n *Node) ServeIndex() ([]byte, error) {
	if err := n.VerifyLeader(); err != nil {
		return nil, err
	}
	return []byte(strconv.FormatUint(n.fsm.applied.Load(), 10)), nil
}

// ReadBarrier returns once this node has applied every command the
// leader had committed when it was called, with the leader's leadership
// confirmed by a quorum (a Raft read index): a read that follows sees
// every write that completed before ReadBarrier was called.
func (n *Node) ReadBarrier() error {
	if n.IsLeader() {
		return n.VerifyLeader()
	}
	return n.CatchUp()
}

// CatchUp makes this node apply everything the leader had committed when
// asked, so a read that follows sees every write acknowledged before it.
// The leader itself has nothing to catch up.
func (n *Node) CatchUp() error {
	if err := n.haltErr(); err != nil {
		return err
	}
	if n.IsLeader() {
		return nil
	}
	if n.isolated.Load() {
		return ErrNoLeader
	}
	n.awaitLeader(time.Now().Add(n.cfg.LeaderWait), 0)
	addr, err := n.leaderPeer()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.peerURL(addr, IndexPath), nil)
	if err != nil {
		return err
	}
	req.Header.Set(KeyHeader, n.cfg.ClusterKey)
	resp, err := n.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the leader at %s: %w", addr, ErrNoLeader)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("leader at %s answered %d: %s", addr, resp.StatusCode, body)
	}
	idx, err := strconv.ParseUint(string(body), 10, 64)
	if err != nil {
		return fmt.Errorf("bad commit index from the leader: %q", body)
	}
	return n.waitApplied(idx)
}

// ServeSilent answers the peers this leader has not heard from since its
// last heartbeat to them failed, as a JSON list of node ids.
func (n *Node) ServeSilent() ([]byte, error) {
	if !n.IsLeader() {
		return nil, ErrNotLeader
	}
	return json.Marshal(n.peers.list())
}

// askSilent fetches the leader's list of silent peers.
func (n *Node) askSilent() ([]string, error) {
	addr, err := n.leaderPeer()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), askSilentTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.peerURL(addr, SilentPath), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(KeyHeader, n.cfg.ClusterKey)
	resp, err := n.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot ask the leader at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	var ids []string
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("leader at %s answered %d", addr, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ids); err != nil {
		return nil, fmt.Errorf("cannot decode the leader's silent peers: %w", err)
	}
	return ids, nil
}

// askSilentTimeout bounds a follower's question to the leader during
// placement; past it the follower decides from its own view.
const askSilentTimeout = 500 * time.Millisecond
