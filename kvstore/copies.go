package kvstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/srdd/srdd/cluster"
)

// claimRetry bounds how often this node tries again to make a copy of
// one RDD after a try failed (a default session that cannot start, a
// registry that refused).
const claimRetry = 5 * time.Second

// readOp says whether an interpreter op only reads an RDD, so a copy may
// serve it.
func readOp(op string) bool { return op == "kv.get" || op == "kv.scan" || op == "kv.count" }

// localCopy returns the session of the copy of r whose pusher runs on
// this node, if one does and holds the RDD.
func (d *durable) localCopy(r cluster.RDD) (int64, bool) {
	if r.Mode != cluster.ModeDurable || len(r.Copies) == 0 {
		return 0, false
	}
	o, ok := d.lookup(r.Name)
	if !ok || o.sid == r.SessionID {
		return 0, false
	}
	o.mu.Lock()
	created := o.created
	o.mu.Unlock()
	return o.sid, created
}

// ServesCopy reports whether a read of the named RDD's keys may be served
// on this node from a copy (the HTTP layer then does not forward it to
// the owner).
func (s *Store) ServesCopy(name string) bool {
	r, ok := s.reg.RDD(name)
	if !ok {
		return false
	}
	_, ok = s.dur.localCopy(r)
	return ok
}

// copyGate is the read gate of a copy: stale reads take what it holds;
// linearizable ones first learn the leader's commit index (a Raft read
// index) and wait until the copy has applied every write logged up to
// it, so they see every acknowledged write. (Default reads go to the
// owner: readGate.)
func (d *durable) copyGate(ctx context.Context, o *owned, name, consistency string) error {
	s := d.s
	if consistency != ConsistencyStale {
		if err := s.reg.ReadBarrier(); err != nil {
			return err
		}
	}
	r, ok := s.reg.RDD(name)
	if !ok {
		return fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
	}
	cond := func() bool { return o.created }
	if consistency != ConsistencyStale {
		// A bulk load adds no log entry: the copy must have rebuilt
		// from the owner's checkpoint that holds it.
		cond = func() bool { return o.ready && o.applied >= r.LastWrite && o.loaded >= r.Loaded }
	}
	return o.gate(ctx, s.recoveryWait, cond, "the copy of "+strconv.Quote(name)+" here")
}

// holders lists the nodes that hold a live copy of r, the owner's
// included.
func (d *durable) holders(r cluster.RDD) map[string]bool {
	reg := d.s.reg
	out := map[string]bool{}
	if sess, ok := reg.Session(r.SessionID); ok && sess.Status == cluster.SessionActive {
		out[sess.Node] = true
	}
	for _, c := range r.Copies {
		if sess, ok := reg.Session(c.Session); ok && sess.Status == cluster.SessionActive {
			out[c.Node] = true
		}
	}
	return out
}

// claimCopies makes this node a copy of each durable RDD that has fewer
// live copies than it wants, when this node is the first placement
// candidate that holds none. The registry refuses a claim past the
// wanted count, so two nodes claiming at once agree.
func (d *durable) claimCopies(rdds []cluster.RDD) {
	s := d.s
	me := s.reg.ID()
	if m, ok := s.reg.Member(me); !ok || m.Status != cluster.NodeUp {
		return
	}
	var placement []string
	for _, r := range rdds {
		if r.Mode != cluster.ModeDurable || r.Wanted() < 2 {
			continue
		}
		owner, ok := s.reg.Session(r.SessionID)
		if !ok || owner.Status != cluster.SessionActive {
			continue // the owner is replaced first (maybeAdopt)
		}
		have := d.holders(r)
		if len(have) >= r.Wanted() || have[me] || !d.claimDue(r.Name) {
			continue
		}
		if placement == nil {
			placement = s.reg.Placement()
		}
		next := ""
		for _, n := range placement {
			if !have[n] {
				next = n
				break
			}
		}
		if next != me {
			continue
		}
		d.claim(r)
	}
}

// claimDue says whether a claim for name may be tried now (claimRetry
// after a failed one).
func (d *durable) claimDue(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Now().After(d.claimNext[name])
}

func (d *durable) claim(r cluster.RDD) {
	s := d.s
	fail := func(msg string) {
		d.mu.Lock()
		d.claimNext[r.Name] = time.Now().Add(claimRetry)
		d.mu.Unlock()
		d.setAdoptError(r.Name, msg)
	}
	sid, err := s.sess.DefaultSession()
	if err != nil {
		fail(fmt.Sprintf("cannot make a copy of %q here: no session: %v", r.Name, err))
		return
	}
	_, err = s.reg.Apply(cluster.Command{Type: cluster.CmdAddCopy, Body: &cluster.AddCopy{
		RDD: r.Name, Node: s.reg.ID(), Session: sid, Shared: !nodeLocal(d.cfg.CheckpointURI)}})
	if err != nil {
		if errors.Is(err, cluster.ErrCopyExists) || errors.Is(err, cluster.ErrRDDNotFound) {
			// Another node was first (or this registry is behind).
			d.mu.Lock()
			d.claimNext[r.Name] = time.Now().Add(claimRetry / 5)
			d.mu.Unlock()
			return
		}
		fail(fmt.Sprintf("cannot make a copy of %q here: %v", r.Name, err))
		return
	}
	d.mu.Lock()
	delete(d.claimNext, r.Name)
	d.mu.Unlock()
	s.logf("making a copy of durable rdd %q in session %d", r.Name, sid)
}

// bestCopy is the live copy of r to promote when its owner's session is
// lost: on an up node, able to rebuild without the lost owner (it has a
// checkpoint of its own, or the log still reaches back to the start),
// the one with the newest checkpoint first.
func (d *durable) bestCopy(r cluster.RDD) (*cluster.CopyRef, bool) {
	reg := d.s.reg
	var best *cluster.CopyRef
	for _, c := range r.Copies {
		sess, ok := reg.Session(c.Session)
		if !ok || sess.Status != cluster.SessionActive {
			continue
		}
		if m, ok := reg.Member(c.Node); !ok || m.Status != cluster.NodeUp {
			continue
		}
		switch {
		case c.Shared:
		case c.Checkpoint == nil && (r.Trim() > 0 || r.Loaded > 0):
			continue // it cannot rebuild without the lost owner's checkpoint
		case c.Checkpoint != nil && c.Checkpoint.Loaded < r.Loaded:
			continue // it may lack a bulk load's rows
		}
		if best == nil || ckIndex(c.Checkpoint) > ckIndex(best.Checkpoint) {
			best = c
		}
	}
	return best, best != nil
}

// sharedHere reports whether a checkpoint at a node-local path can be
// read in place here: it lies under this node's own checkpoint directory
// (the nodes were given the same --checkpoint-uri: a shared filesystem
// mounted at the same path) and is there. Checkpoint names hold their
// index, a timestamp and their node, so a node's own files never bear
// another's name; another node's directory that happens to be visible
// (nodes sharing one host) is never read: its checkpoints are fetched.
func (d *durable) sharedHere(path string) bool {
	p, mine := localPath(path), localPath(d.cfg.CheckpointURI)
	if p == "" || mine == "" || !strings.HasPrefix(p, strings.TrimSuffix(mine, "/")+"/") {
		return false
	}
	_, err := os.Stat(p)
	return err == nil
}

func ckIndex(c *cluster.CheckpointRef) uint64 {
	if c == nil {
		return 0
	}
	return c.Index
}

// restoreSource picks the checkpoint a rebuild of r in session sid
// starts from: nil to replay the whole log (nothing was trimmed yet, and
// no checkpoint is on this node), else the newest one that covers the
// trimmed part and can be read here (ours, on shared storage, or from a
// record of before copies), else one to fetch from the up node that
// wrote it (fetch names it).
func (d *durable) restoreSource(r cluster.RDD) (ck *cluster.CheckpointRef, fetch string, err error) {
	reg := d.s.reg
	me := reg.ID()
	trim := r.Trim()
	var all []*cluster.CheckpointRef
	if r.Checkpoint != nil {
		all = append(all, r.Checkpoint)
	}
	for _, c := range r.Copies {
		if c.Checkpoint != nil {
			all = append(all, c.Checkpoint)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Index > all[j].Index })
	// Only checkpoints that cover the trimmed log and hold every bulk load.
	all = slices.DeleteFunc(all, func(c *cluster.CheckpointRef) bool { return c.Index < trim || c.Loaded < r.Loaded })
	for _, c := range all {
		if c.Node == "" || !nodeLocal(c.Path) || d.sharedHere(c.Path) {
			return c, "", nil
		}
	}
	if trim == 0 && r.Loaded == 0 {
		return nil, "", nil // the log holds it all
	}
	var mine *cluster.CheckpointRef
	for _, c := range all {
		if c.Node == me {
			// Recorded here but not found (a data dir wiped): another
			// node's first; else try it in place (the interpreter may
			// read what this process cannot see).
			if mine == nil {
				mine = c
			}
			continue
		}
		if m, ok := reg.Member(c.Node); ok && m.Status == cluster.NodeUp {
			return c, c.Node, nil
		}
	}
	if mine != nil {
		return mine, "", nil
	}
	return nil, "", fmt.Errorf("no checkpoint of %q that covers its log up to index %d can be read: the nodes that wrote one are down", r.Name, trim)
}

// recordFetched records a checkpoint fetched from a peer as this
// session's own, now that it is on this node's storage: the copy then
// holds the tail from its index on, and a later rebuild here needs no
// peer. A registry that refuses it (a newer checkpoint of ours) is fine.
func (o *owned) recordFetched(r cluster.RDD, path string, ck *cluster.CheckpointRef, rows int64) {
	s := o.d.s
	_, err := s.reg.Apply(cluster.Command{Type: cluster.CmdCheckpoint, Body: &cluster.Checkpoint{
		RDD: o.name, Session: o.sid, Incarnation: r.Incarnation, Index: ck.Index, Path: path, Rows: rows,
		At: time.Now().UnixMilli(), Loaded: ck.Loaded}})
	if err != nil && !errors.Is(err, cluster.ErrStaleCheckpoint) {
		s.logf("cannot record the fetched checkpoint of %q: %v", o.name, err)
	}
}

// ownCheckpoint is the checkpoint r records for session sid: the owner's
// or that copy's (nil: none).
func ownCheckpoint(r cluster.RDD, sid int64) *cluster.CheckpointRef {
	if r.SessionID == sid {
		return r.Checkpoint
	}
	for _, c := range r.Copies {
		if c.Session == sid {
			return c.Checkpoint
		}
	}
	return nil
}

// promotionFence is the log index a default read on an owner must wait
// for: 0 for an owner that acknowledged every write it holds itself;
// for a promoted copy, until its first default read, the RDD's last
// write as of the leader's commit index (a Raft read index): the former
// owner acknowledged those writes, and this pusher may be behind them.
func (o *owned) promotionFence() (uint64, error) {
	o.mu.Lock()
	if !o.wasCopy || o.fenced {
		f := o.fence
		o.mu.Unlock()
		return f, nil
	}
	o.mu.Unlock()
	s := o.d.s
	if err := s.reg.ReadBarrier(); err != nil {
		return 0, err
	}
	r, ok := s.reg.RDD(o.name)
	if !ok {
		return 0, fmt.Errorf("%w: shared rdd %q", ErrNotFound, o.name)
	}
	o.mu.Lock()
	o.fence, o.fenced = max(o.fence, r.LastWrite), true
	f := o.fence
	o.mu.Unlock()
	return f, nil
}

// promotedWithoutCheckpoint reports, once, that this pusher is a promoted
// copy whose owner record has no checkpoint on this node: it writes one
// at once rather than by policy, so that its next rebuild needs no other
// node.
func (o *owned) promotedWithoutCheckpoint() bool {
	o.mu.Lock()
	if !o.wasCopy || o.ownCkpt || !o.ready {
		o.mu.Unlock()
		return false
	}
	o.mu.Unlock()
	s := o.d.s
	r, ok := s.reg.RDD(o.name)
	if !ok || r.SessionID != o.sid {
		return false
	}
	o.mu.Lock()
	o.ownCkpt = true
	o.mu.Unlock()
	return r.Checkpoint == nil || r.Checkpoint.Node != s.reg.ID()
}
