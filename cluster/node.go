package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/srdd/srdd/internal/defaults"
)

// Config configures a registry node. Zero values mean "default".
type Config struct {
	NodeID   string // unique, stable across restarts
	RaftAddr string // TCP address to bind for Raft, e.g. 127.0.0.1:8999 (port 0 allowed)
	HTTPAddr string // advertised HTTP address of this node, recorded in the registry
	DataDir  string // Raft log, stable store and snapshots live under DataDir/raft
	// Bootstrap makes this node a one-node cluster if it has no Raft state
	// yet. With existing state it is ignored: bootstrap happens exactly once.
	Bootstrap bool
	// RaftAdvertise is the address other nodes dial for Raft, host:port
	// (a DNS name allowed); empty: the bound RaftAddr.
	RaftAdvertise string

	// ApplyTimeout bounds one proposal: enqueueing it on the leader, or
	// forwarding it there, and waiting until it is applied here.
	ApplyTimeout time.Duration
	// LeaderWait is how long a registry write that finds no leader (start-up,
	// an election, a leader that just died) waits for one before it fails
	// with ErrNoLeader. Only writes that certainly were not appended are
	// sent again (docs/ARCHITECTURE.md invariant 11).
	LeaderWait time.Duration
	// SnapshotThreshold is how many log entries Raft lets pass between
	// snapshots, and SnapshotInterval how often it checks; TrailingLogs is
	// how many entries it keeps after a snapshot (kvstore/DESIGN.md, "Log
	// compaction and disk use").
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// HeartbeatTimeout and ElectionTimeout are Raft's; tests use less.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// StrictBootstrap refuses Bootstrap (instead of ignoring it) when the
	// node already belongs to a cluster of several servers.
	StrictBootstrap bool
	// ClusterKey, if set, is sent with every internal call to other nodes
	// (X-Srdd-Cluster-Key); nodes started with a key require it.
	ClusterKey string
	// PeerTLS, if set, makes calls to other nodes' HTTP API over https
	// with this configuration (every node of a cluster serves TLS or none).
	PeerTLS *tls.Config
	// Peer, if set, runs every node-to-node path over mutual TLS on the
	// Raft port (peertls.go; docs/ARCHITECTURE.md, "Peer trust").
	Peer *PeerCreds
	// PlaintextPeers says the operator asked for a cluster without peer
	// TLS (--insecure): it is then logged loudly, once.
	PlaintextPeers bool
	// ForwardApply sends writes made on a follower to the leader over HTTP
	// (ApplyPath). Off, a follower's Apply fails with ErrNotLeader.
	ForwardApply bool
	// DownAfter is how long the leader waits without contact before it
	// marks a node down in the registry (a replicated, slow signal; see
	// SilentAfter for placement).
	DownAfter time.Duration
	// SilentAfter is how long the leader may go without hearing from a
	// peer before placement stops choosing it: a small multiple of Raft's
	// heartbeat interval (HeartbeatTimeout/10).
	SilentAfter time.Duration
	// DiskReserve is the free space DataDir/raft's filesystem must keep:
	// below it, every proposal is refused with ErrInsufficientStorage
	// (diskspace.go). Zero: DefaultDiskReserve; negative: no check.
	DiskReserve int64
	Logger      hclog.Logger
}

// DefaultConfig returns the single-node embedded defaults. Every timing
// field of a Config left zero takes its value from here.
func DefaultConfig() Config {
	return Config{
		NodeID:       "node1",
		RaftAddr:     "127.0.0.1:8999",
		DataDir:      "data",
		Bootstrap:    true,
		ApplyTimeout: 10 * time.Second,
		LeaderWait:   10 * time.Second,
		// Durable RDDs log every write: keep the on-disk log to a few
		// thousand entries (a snapshot holds the rest; see
		// kvstore/DESIGN.md, "Log compaction and disk use").
		SnapshotThreshold: 2048,
		SnapshotInterval:  10 * time.Second,
		TrailingLogs:      1024,
		HeartbeatTimeout:  time.Second,
		ElectionTimeout:   time.Second,
		DownAfter:         3 * time.Second,
		// Three of the leader's heartbeats (HeartbeatTimeout/10 each).
		SilentAfter: 300 * time.Millisecond,
	}
}

// Validate reports the first problem with the configuration, checking
// fields against each other.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("node id must not be empty")
	case c.RaftAddr == "":
		return errors.New("raft address must not be empty")
	case c.DataDir == "":
		return errors.New("data dir must not be empty")
	case c.ApplyTimeout < 0, c.LeaderWait < 0, c.DownAfter < 0, c.SilentAfter < 0:
		return errors.New("timeouts must not be negative")
	case c.HeartbeatTimeout > 0 && c.DownAfter > 0 && c.DownAfter < c.HeartbeatTimeout:
		return fmt.Errorf("down-after (%s) must be at least the heartbeat timeout (%s)", c.DownAfter, c.HeartbeatTimeout)
	case c.HeartbeatTimeout > 0 && c.SilentAfter > 0 && c.SilentAfter < c.HeartbeatTimeout/10:
		return fmt.Errorf("silent-after (%s) must be at least one heartbeat interval (%s)", c.SilentAfter, c.HeartbeatTimeout/10)
	}
	if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
		return fmt.Errorf("invalid raft address %q: %w", c.RaftAddr, err)
	}
	return nil
}

// fillDefaults sets every zero timing field from DefaultConfig.
func (c *Config) fillDefaults() {
	d := DefaultConfig()
	defaults.Set(&c.ApplyTimeout, d.ApplyTimeout)
	defaults.Set(&c.LeaderWait, d.LeaderWait)
	defaults.Set(&c.SnapshotThreshold, d.SnapshotThreshold)
	defaults.Set(&c.SnapshotInterval, d.SnapshotInterval)
	defaults.Set(&c.TrailingLogs, d.TrailingLogs)
	defaults.Set(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	defaults.Set(&c.ElectionTimeout, d.ElectionTimeout)
	defaults.Set(&c.DownAfter, d.DownAfter)
	defaults.Set(&c.DiskReserve, DefaultDiskReserve)
	// Silence is measured in heartbeats: scale with a test's shorter ones.
	defaults.Set(&c.SilentAfter, 3*c.HeartbeatTimeout/10)
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
}

// Node is this process's member of the Raft group holding the registry.
type Node struct {
	cfg       Config
	raft      *raft.Raft
	fsm       *fsm
	transport *raft.NetworkTransport
	stream    *tcpStreamLayer
	mux       *peerMux                  // nil without peer TLS
	ptrans    *peerTransport            // nil without peer TLS
	running   atomic.Pointer[raft.Raft] // n.raft once NewRaft returned, for the transport's goroutines
	store     *raftboltdb.BoltStore
	http      *http.Client // pooled connections to the leader for forwarding

	isolated atomic.Bool
	peers    peerHealth // the leader's view of unreachable peers
	joinMu   sync.Mutex // Join: one at a time
	// disk refuses proposals while DataDir/raft's filesystem is full.
	disk *DiskGuard
	// contact: when each peer last answered the leader (contact.go).
	contact peerContact
	// watchPause's record of this process running: lastTick (monoNow of
	// its last tick), pauses (how many pauses were noticed) and cleared
	// (the pauses a passed read barrier covers; FreshRead).
	lastTick atomic.Int64
	pauses   atomic.Uint64
	cleared  atomic.Uint64
	// bootstrapped: this Open made a new one-node cluster.
	bootstrapped bool
	// nudging/nudgeAgain: see nudgeFollowers.
	nudging, nudgeAgain atomic.Bool
	metrics             *clusterMetrics // nil until Instrument

	observer *raft.Observer
	obsCh    chan raft.Observation
	stop     chan struct{}
	wg       sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Open starts Raft on disk under cfg.DataDir/raft and, if asked and the
// node is new, bootstraps a one-node cluster. It does not wait for a leader.
func Open(cfg Config) (*Node, error) {
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid registry config: %w", err)
	}
	dir := filepath.Join(cfg.DataDir, "raft")
	// Only the node reads its log: 0700, even when the data dir is
	// shared for traversal with an interpreter user (docs/ARCHITECTURE.md,
	// "Sessions hold no secret").
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create raft dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot restrict raft dir: %w", err)
	}
	f := newFSM()
	f.log = cfg.Logger.Named("fsm")
	n := &Node{cfg: cfg, fsm: f, stop: make(chan struct{}), disk: NewDiskGuard(cfg.DiskReserve, dir),
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute, TLSClientConfig: cfg.PeerTLS}}}
	ok := false
	defer func() {
		if !ok {
			if n.raft != nil {
				_ = n.raft.Shutdown().Error()
			}
			n.closeResources()
		}
	}()

	var err error
	n.store, err = raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		return nil, fmt.Errorf("cannot open raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, cfg.Logger.Named("snapshot"))
	if err != nil {
		return nil, fmt.Errorf("cannot open snapshot store: %w", err)
	}
	bind, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve raft address: %w", err)
	}
	ln, err := net.ListenTCP("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for raft: %w", err)
	}
	n.stream = &tcpStreamLayer{ln: ln, owner: n}
	if cfg.Peer != nil {
		if id := cfg.Peer.NodeID(); id != cfg.NodeID {
			ln.Close()
			return nil, fmt.Errorf("the peer certificate names node %q, not this node's id %q", id, cfg.NodeID)
		}
		n.mux = newPeerMux(ln, cfg.Peer, cfg.Logger.Named("peer"), &n.stream.isolated, n.stream.track)
		n.stream.mux = n.mux
		n.http.Transport.(*http.Transport).DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			if n.isolated.Load() {
				return nil, errIsolated
			}
			return n.mux.dial(ctx, addr, muxHTTP, n.memberAt(addr))
		}
	} else if cfg.PlaintextPeers {
		cfg.Logger.Warn("INSECURE: no peer TLS (--peer-cert, --peer-key, --peer-ca) and --insecure: Raft and node-to-node calls are " +
			"plaintext and unauthenticated; any host that reaches " + cfg.RaftAddr + " can rewrite the registry. Run nodes on a trusted network only")
	} else {
		cfg.Logger.Info("no peer TLS: Raft stays on loopback and no other node may join (give --peer-cert, --peer-key and --peer-ca to form a cluster)")
	}
	if cfg.RaftAdvertise != "" {
		if _, _, err := net.SplitHostPort(cfg.RaftAdvertise); err != nil {
			return nil, fmt.Errorf("invalid raft advertise address %q: %w", cfg.RaftAdvertise, err)
		}
		n.stream.adv = hostPort(cfg.RaftAdvertise)
	}
	n.transport = raft.NewNetworkTransportWithLogger(n.stream, 3, 10*time.Second, cfg.Logger.Named("transport"))

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = cfg.Logger.Named("raft")
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("invalid raft config: %w", err)
	}

	existing, err := raft.HasExistingState(n.store, n.store, snaps)
	if err != nil {
		return nil, fmt.Errorf("cannot inspect raft state: %w", err)
	}
	var trans fullTransport = n.transport
	if n.mux != nil {
		n.ptrans = newPeerTransport(n.transport, n.mux, n.checkRPC, cfg.Logger.Named("peer"))
		trans = n.ptrans
	}
	n.contact.reset()
	n.raft, err = raft.NewRaft(rc, n.fsm, n.store, n.store, snaps, &contactTransport{fullTransport: trans, heard: n.contact.heard})
	if err != nil {
		return nil, fmt.Errorf("cannot start raft: %w", err)
	}
	if cfg.Bootstrap && !existing {
		boot := raft.Configuration{Servers: []raft.Server{{
			ID: rc.LocalID, Address: n.transport.LocalAddr(), Suffrage: raft.Voter,
		}}}
		if err := n.raft.BootstrapCluster(boot).Error(); err != nil {
			return nil, fmt.Errorf("cannot bootstrap cluster: %w", err)
		}
		n.bootstrapped = true
	}
	if cfg.Bootstrap && cfg.StrictBootstrap && existing {
		if f := n.raft.GetConfiguration(); f.Error() == nil && len(f.Configuration().Servers) > 1 {
			return nil, fmt.Errorf("refusing to bootstrap: this node already belongs to a cluster of %d servers; start it without --bootstrap", len(f.Configuration().Servers))
		}
	}
	n.running.Store(n.raft)
	if n.mux != nil {
		admit := n.AdmitPeer
		n.mux.admitRaft.Store(&admit)
	}
	n.startHealthWatch()
	n.electAlone(rc.HeartbeatTimeout)
	ok = true
	return n, nil
}

// electAlone makes a node that is the only voter of its configuration
// stand for election at once, instead of after Raft's randomized
// heartbeat timeout (1-2 s): with one voter nobody else can lead, so the
// wait only delays start-up. hashicorp/raft re-checks a follower's
// heartbeat timer immediately when the timeout is lowered (ReloadConfig);
// it is lowered by a millisecond and then restored.
func (n *Node) electAlone(heartbeat time.Duration) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	voters := 0
	self := false
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters++
			self = self || srv.ID == raft.ServerID(n.cfg.NodeID)
		}
	}
	if voters != 1 || !self {
		return
	}
	rc := n.raft.ReloadableConfig()
	fast := rc
	fast.HeartbeatTimeout = heartbeat - time.Millisecond
	if err := n.raft.ReloadConfig(fast); err != nil {
		n.cfg.Logger.Warn("cannot start the single-voter election early", "error", err)
		return
	}
	if err := n.raft.ReloadConfig(rc); err != nil {
		n.cfg.Logger.Warn("cannot restore the heartbeat timeout", "error", err)
	}
}

// Isolate cuts this node off from Raft traffic and from forwarding writes
// (true), or restores it (false). It is fault injection for tests of
// partitions; a node never isolates itself.
func (n *Node) Isolate(on bool) {
	n.isolated.Store(on)
	n.stream.isolate(on)
}

// Bootstrapped reports whether this Open made a new one-node cluster
// (the node had no Raft state and was asked to bootstrap).
func (n *Node) Bootstrapped() bool { return n.bootstrapped }

// HasState reports whether the node had Raft state when it was opened.
func (n *Node) HasState() bool {
	last := n.raft.LastIndex()
	return last > 0
}

// ID returns this node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// RaftAddr returns the address Raft actually listens on.
func (n *Node) RaftAddr() string { return string(n.transport.LocalAddr()) }

// HasLeader reports whether this node knows a leader it can reach now
// (it does not wait; see LeaderHTTP).
func (n *Node) HasLeader() bool {
	_, id := n.raft.LeaderWithID()
	return id != "" && !n.isolated.Load()
}

// IsLeader reports whether this node currently leads the Raft group.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Apply proposes one command and waits until it is committed and applied
// here. On a follower the command is forwarded to the leader, and Apply
// returns once this node has applied it as well (read-your-writes). It
// returns the command's result, or the FSM's business error. A command
// that fails its validation (ErrInvalidCommand) is refused before it is
// proposed; every replica validates it again when applying it.
//
// A proposal that finds no leader, or a node that is no longer the
// leader, certainly was not appended: Apply waits for a leader (up to
// LeaderWait) and sends it again, so start-up and elections never reach
// a client as errors. A proposal whose fate is unknown is never sent
// again (ErrOutcomeUnknown).
func (n *Node) Apply(c Command) (any, error) {
	if _, err := c.validate(); err != nil {
		return nil, fmt.Errorf("cannot apply %s: %w", c.Type, err)
	}
	if err := n.haltErr(); err != nil {
		return nil, fmt.Errorf("cannot apply %s: %w", c.Type, err)
	}
	// This node appends the entry too (and waits until it applied it).
	if err := n.disk.Check(); err != nil {
		return nil, fmt.Errorf("cannot apply %s: %w", c.Type, err)
	}
	b, err := Encode(c)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(n.cfg.LeaderWait)
	for attempt := 0; ; attempt++ {
		var v any
		if n.IsLeader() {
			_, v, err = n.applyLocal(b)
		} else if n.cfg.ForwardApply && !n.isolated.Load() {
			if _, id := n.raft.LeaderWithID(); id == "" {
				err = ErrNoLeader
			} else {
				began := time.Now()
				v, err = n.forward(b, c.Type)
				n.metrics.forwarded(time.Since(began), err)
			}
		} else if n.cfg.ForwardApply {
			err = ErrNoLeader // cut off (Isolate): no leader reachable
		} else {
			err = ErrNotLeader
		}
		if err == nil {
			return v, nil
		}
		if !n.cfg.ForwardApply || !resendable(err) || !time.Now().Before(deadline) {
			return v, fmt.Errorf("cannot apply %s: %w", c.Type, err)
		}
		n.awaitLeader(deadline, retryPause(attempt))
	}
}

// resendable reports whether a failed proposal certainly was not
// appended, so it may be sent again.
func resendable(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader)
}

// retryPause spaces out resends while a dead leader is still believed to
// lead (its address refuses connections until followers time out).
func retryPause(attempt int) time.Duration {
	d := time.Duration(attempt+1) * 20 * time.Millisecond
	return min(d, 200*time.Millisecond)
}

// awaitLeader sleeps pause, then until a leader is known or deadline.
func (n *Node) awaitLeader(deadline time.Time, pause time.Duration) {
	select {
	case <-time.After(pause):
	case <-n.stop:
		return
	}
	for time.Now().Before(deadline) {
		if _, id := n.raft.LeaderWithID(); id != "" && !n.isolated.Load() {
			return
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-n.stop:
			return
		}
	}
}

// WaitForLeader blocks until the group has a leader or timeout passes.
func (n *Node) WaitForLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	n.awaitLeader(deadline, 0)
	if _, id := n.raft.LeaderWithID(); id == "" {
		return fmt.Errorf("%w after %s", ErrNoLeader, timeout)
	}
	return nil
}

// LeaderWait is how long calls wait for a leader (Config.LeaderWait).
func (n *Node) LeaderWait() time.Duration { return n.cfg.LeaderWait }

// applyLocal applies an encoded entry on this node, which must lead.
func (n *Node) applyLocal(b []byte) (uint64, any, error) {
	if err := n.disk.Check(); err != nil {
		return 0, nil, err // not proposed: a forwarded write answers 507 too
	}
	f := n.raft.Apply(b, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		if err := noSpace(err); errors.Is(err, ErrInsufficientStorage) {
			// The local append failed (the log store rolled it back and
			// the leader stepped down): nothing was appended.
			n.disk.Forget()
			return 0, nil, err
		}
		if errors.Is(err, raft.ErrNotLeader) {
			return 0, nil, ErrNotLeader // nothing was appended: safe to retry
		}
		if errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrEnqueueTimeout) {
			return 0, nil, fmt.Errorf("%v: %w", err, ErrOutcomeUnknown)
		}
		if errors.Is(err, raft.ErrRaftShutdown) {
			return 0, nil, ErrClosed
		}
		return 0, nil, err
	}
	r, _ := f.Response().(applyResult)
	return f.Index(), r.value, r.err
}

// DiskFull returns ErrInsufficientStorage (naming the directory) while the
// Raft dir's filesystem holds less than Config.DiskReserve, else nil.
func (n *Node) DiskFull() error { return n.disk.Check() }

// Snapshot forces a snapshot now (used by tests and operators).
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("cannot snapshot: %w", err)
	}
	return nil
}

// Stats returns Raft's own counters (term, indexes, state).
func (n *Node) Stats() map[string]string { return n.raft.Stats() }

// readOne copies one record out of the state under the read lock.
func readOne[V any](f *fsm, find func(*State) (*V, bool)) (V, bool) {
	var out V
	var ok bool
	f.read(func(s *State) {
		var p *V
		if p, ok = find(s); ok {
			out = *p
		}
	})
	return out, ok
}

// Session returns the session record with that id.
func (n *Node) Session(id int64) (Session, bool) {
	return readOne(n.fsm, func(s *State) (*Session, bool) { p, ok := s.Sessions[id]; return p, ok })
}

// SessionByName returns the session record with that name.
func (n *Node) SessionByName(name string) (Session, bool) {
	return readOne(n.fsm, func(s *State) (*Session, bool) {
		for _, p := range s.Sessions {
			if p.Name == name {
				return p, true
			}
		}
		return nil, false
	})
}

// readAll copies a listing out of the state under the read lock.
func readAll[V any](f *fsm, list func(*State) []V) []V {
	var out []V
	f.read(func(s *State) { out = list(s) })
	return out
}

// Sessions lists every session record, by id.
func (n *Node) Sessions() []Session { return readAll(n.fsm, (*State).sortedSessions) }

// RDD returns the shared RDD record with that name.
func (n *Node) RDD(name string) (RDD, bool) {
	return readOne(n.fsm, func(s *State) (*RDD, bool) { p, ok := s.RDDs[name]; return p, ok })
}

// RDDs lists every shared RDD record, by name.
func (n *Node) RDDs() []RDD { return readAll(n.fsm, (*State).sortedRDDs) }

// Member returns the registry record of a node.
func (n *Node) Member(id string) (Member, bool) {
	return readOne(n.fsm, func(s *State) (*Member, bool) { p, ok := s.Nodes[id]; return p, ok })
}

// Close shuts Raft down, then the transport and the log store. It is
// idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		if n.raft != nil && n.observer != nil {
			n.raft.DeregisterObserver(n.observer)
		}
		n.wg.Wait()
		if n.raft != nil {
			n.closeErr = n.raft.Shutdown().Error()
		}
		n.closeResources()
		n.http.CloseIdleConnections()
	})
	return n.closeErr
}

func (n *Node) closeResources() {
	if n.ptrans != nil {
		_ = n.ptrans.Close()
	} else if n.transport != nil {
		_ = n.transport.Close()
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil && n.closeErr == nil {
			n.closeErr = err
		}
	}
}

// peerURL is the URL of path on the node at addr (host:port).
func (n *Node) peerURL(addr, path string) string {
	if n.mux != nil {
		return "http://" + addr + path // TLS is below, in the peer channel (peertls.go)
	}
	if n.cfg.PeerTLS != nil {
		return "https://" + addr + path
	}
	return "http://" + addr + path
}
