package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// A paused peer (docs/ARCHITECTURE.md, "A paused peer"). A peer stopped
// with SIGSTOP keeps its TCP connections open, so the leader's heartbeat
// to it neither succeeds nor fails until the transport's 10 s timeout,
// and Raft's FailedHeartbeatObservation comes only then. The leader
// therefore also tracks when each peer last acknowledged an AppendEntries
// (heartbeats included; contactTransport) and, on a ticker, marks a peer
// down once it has been quiet for DownAfter and up again when it answers.
// The other side: a node that was paused passes a read barrier first
// (FreshRead), so a resumed node applies its own replacement before it
// serves anything.

// fullTransport is what NetworkTransport (and peerTransport, which embeds
// it) provides and Raft looks for.
type fullTransport interface {
	raft.Transport
	raft.WithClose
	raft.WithPreVote
}

// contactTransport records every AppendEntries a peer acknowledged.
type contactTransport struct {
	fullTransport
	heard func(id raft.ServerID)
}

// AppendEntries implements raft.Transport.
func (t *contactTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.fullTransport.AppendEntries(id, target, args, resp)
	if err == nil {
		t.heard(id)
	}
	return err
}

// peerContact is the leader's record of when each peer last answered.
type peerContact struct {
	mu    sync.Mutex
	since time.Time            // this node's view began (a leader change)
	last  map[string]time.Time // last acknowledged AppendEntries, by node id
	quiet map[string]bool      // peers this ticker marked silent or down
}

func (p *peerContact) heard(id raft.ServerID) {
	now := time.Now()
	p.mu.Lock()
	if p.last == nil {
		p.last = map[string]time.Time{}
	}
	p.last[string(id)] = now
	p.mu.Unlock()
}

func (p *peerContact) reset() {
	p.mu.Lock()
	p.since, p.last, p.quiet = time.Now(), nil, nil
	p.mu.Unlock()
}

// quietFor is how long peer id has not answered (since the view began at
// most).
func (p *peerContact) quietFor(id string, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	last := p.since
	if t, ok := p.last[id]; ok && t.After(last) {
		last = t
	}
	return now.Sub(last)
}

func (p *peerContact) setQuiet(id string, q bool) (was bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	was = p.quiet[id]
	if q {
		if p.quiet == nil {
			p.quiet = map[string]bool{}
		}
		p.quiet[id] = true
	} else {
		delete(p.quiet, id)
	}
	return was
}

// contactCheckEvery is how often the leader looks at its peers' contact.
const contactCheckEvery = 200 * time.Millisecond

// checkContact runs on the leader's ticker: a peer quiet for DownAfter is
// marked down (and silent for placement after three times SilentAfter);
// one that answers again is marked up.
func (n *Node) checkContact() {
	if !n.IsLeader() {
		return
	}
	type peer struct{ id, status string }
	var peers []peer
	n.fsm.read(func(s *State) {
		for id, m := range s.Nodes {
			if id != n.cfg.NodeID && m.Status != NodeRemoved {
				peers = append(peers, peer{id, m.Status})
			}
		}
	})
	now := time.Now()
	for _, p := range peers {
		q := n.contact.quietFor(p.id, now)
		switch {
		case q >= n.cfg.DownAfter:
			n.contact.setQuiet(p.id, true)
			n.peers.markSilent(p.id)
			if p.status == NodeUp {
				n.cfg.Logger.Warn("peer has not answered; marking it down", "node", p.id, "quiet", q.Round(time.Millisecond))
				n.setStatus(p.id, NodeDown)
			}
		case q >= 3*n.cfg.SilentAfter:
			n.contact.setQuiet(p.id, true)
			n.peers.markSilent(p.id)
		case q < n.cfg.SilentAfter:
			if n.contact.setQuiet(p.id, false) {
				n.peers.markHeard(p.id)
				if p.status == NodeDown {
					n.setStatus(p.id, NodeUp)
				}
			}
		}
	}
}

// watchPause notices that this process stopped running for longer than
// half of DownAfter (its ticker fell behind): FreshRead then confirms the
// registry with the leader before the next read. pauses is counted up
// before lastTick moves on, and FreshRead reads them in the other order,
// so a read never misses a pause. The gap is measured on the monotonic
// clock (monoNow: a wall clock stepped back during the pause hides
// nothing), never with the tick's value: since Go 1.23 a late tick
// carries the time it was due, so a tick overdue by the whole pause
// looked punctual and the pause went unnoticed whenever this goroutine
// ran before the first read.
func (n *Node) watchPause() {
	defer n.wg.Done()
	n.lastTick.Store(monoNow())
	t := time.NewTicker(pauseTick)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			now := monoNow()
			if time.Duration(now-n.lastTick.Load()) > n.cfg.DownAfter/2 {
				n.pauses.Add(1)
			}
			n.lastTick.Store(now)
		}
	}
}

// processStart is the origin of monoNow.
var processStart = time.Now()

// monoNow is the time since this process started, on the monotonic clock.
func monoNow() int64 { return int64(time.Since(processStart)) }

// pauseTick is watchPause's period.
const pauseTick = 100 * time.Millisecond

// FreshRead waits until this node may serve a read of what it owns as
// the registry now says: at once, unless this process was paused (it did
// not run for half of DownAfter); then once a read barrier with the
// leader passed. It fails with ErrNoLeader when the barrier fails. (A
// follower lease, waiting to hear from the leader within DownAfter/2,
// was tried and dropped: it turned every election into 503s for reads.)
func (n *Node) FreshRead(ctx context.Context) error {
	if err := n.haltErr(); err != nil {
		return err
	}
	lease := n.cfg.DownAfter / 2
	// lastTick first, then pauses: watchPause counts a pause before it
	// moves lastTick on, so one of the two shows it.
	last := n.lastTick.Load()
	p := n.pauses.Load()
	gap := time.Duration(monoNow()-last) > lease
	if gap || p != n.cleared.Load() {
		// This process did not run for a while (SIGSTOP, a frozen VM): what
		// it received meanwhile, even a "fresh" heartbeat still buffered
		// in its socket, may be old. Ask the leader (a quorum, if this node
		// believes it leads) before serving again.
		if gap { // noticed here before watchPause did
			p = n.pauses.Add(1)
		}
		if err := n.ReadBarrier(); err != nil {
			return fmt.Errorf("%w: this node was not running for a while and cannot confirm the registry with the leader: %v", ErrNoLeader, err)
		}
		// The barrier covers the pauses counted before it began; one
		// noticed meanwhile (the process stopped again) needs its own.
		for {
			c := n.cleared.Load()
			if c >= p || n.cleared.CompareAndSwap(c, p) {
				break
			}
		}
		return nil
	}
	// A follower that was not paused serves as before: waiting here to
	// hear from a new leader turned every election into 503s for reads
	// (invariant 11; the edge tests' leader kill).
	return nil
}
