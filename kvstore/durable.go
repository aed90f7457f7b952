package kvstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/sessions"
)

// Durable RDDs (docs/ARCHITECTURE.md invariants 4 and 5; DESIGN.md
// "Durable RDDs"). Every write is a Raft entry appended to the RDD's tail
// in the registry. On the owner's node a pusher (owned.run) applies the
// tail to the interpreter in log order, one call at a time, and a write
// is acknowledged once the pusher has applied its entry. The pusher also
// rebuilds the RDD from its checkpoint plus the tail when the RDD arrives
// on this node (creation, interpreter crash, node loss, restart), and
// writes checkpoints by policy or on demand.
//
// The durable back end is spread over these files:
//
//	durable.go     which durable RDDs this node owns (reconcile, adoption)
//	owned.go       one owned RDD's pusher: run, serve, rebuild, push, await
//	writelog.go    logging client writes and waiting for them to apply
//	checkpoint.go  checkpoints: policy, writing, trimming, bulk loads
//	readgate.go    the consistency gate in front of reads

// ErrRecovering: a durable RDD is being rebuilt on its owner (503).
var ErrRecovering = errors.New("shared rdd is recovering")

// DurabilityHooks receive checkpoint and recovery measurements (the
// node's metrics.Durability; every method must be cheap and nil-safe).
type DurabilityHooks interface {
	Track(rdd string, since time.Time)
	CheckpointDone(rdd string, took time.Duration, bytes int64, err error)
	SetLogTail(rdd string, entries, bytes int64)
	RecoveryDone(rdd string, took time.Duration, entries int64, err error)
	InterpreterRestarted()
	Forget(rdd string)
}

// SetDurabilityHooks sets where checkpoint and recovery measurements go.
// Call it before StartDurable.
func (s *Store) SetDurabilityHooks(h DurabilityHooks) { s.hooks = h }

// DurableConfig configures checkpoints. Zero values mean the defaults
// (defaultCheckpoint* in store.go).
type DurableConfig struct {
	// CheckpointURI is where checkpoints go: a directory path or any
	// Hadoop-compatible URI Spark can write (file://, hdfs://, s3a://).
	CheckpointURI string
	// CheckpointEvery checkpoints an RDD after this many logged writes
	// (keys); default 100,000.
	CheckpointEvery int
	// CheckpointInterval checkpoints an RDD with pending writes at least
	// this often; default 60s.
	CheckpointInterval time.Duration
	// CheckpointBytes checkpoints an RDD whose log tail holds this many
	// bytes of keys and values; default 64 MiB.
	CheckpointBytes int64
	// Tick is how often the pusher checks the time policy; default 1s.
	Tick time.Duration
	// DiskReserve is the free space a local CheckpointURI's filesystem
	// must keep: below it, writes to durable RDDs answer 507 and
	// checkpoints are not tried (docs/ARCHITECTURE.md, "Full disk").
	// Zero: cluster.DefaultDiskReserve; negative: no check.
	DiskReserve int64
}

func (c *DurableConfig) fill(dataDir string) {
	if c.CheckpointURI == "" {
		abs, err := filepath.Abs(filepath.Join(dataDir, "checkpoints"))
		if err != nil {
			abs = filepath.Join(dataDir, "checkpoints")
		}
		c.CheckpointURI = abs
	}
	if u, err := url.Parse(c.CheckpointURI); err == nil && u.Scheme == "" {
		// The registry takes only absolute checkpoint paths without ".."
		// (a relative one means something else in each interpreter's
		// working dir): make a plain path absolute and clean.
		if abs, err := filepath.Abs(c.CheckpointURI); err == nil {
			c.CheckpointURI = abs
		}
	}
	c.CheckpointURI = strings.TrimSuffix(c.CheckpointURI, "/")
	d := DefaultDurableConfig()
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = d.CheckpointEvery
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = d.CheckpointInterval
	}
	if c.CheckpointBytes <= 0 {
		c.CheckpointBytes = d.CheckpointBytes
	}
	if c.Tick <= 0 {
		c.Tick = d.Tick
	}
	if c.DiskReserve == 0 {
		c.DiskReserve = cluster.DefaultDiskReserve
	}
}

// localPath returns the local directory a checkpoint URI names (a plain
// path or file://), or "" for a remote one.
func localPath(uri string) string {
	u, err := url.Parse(uri)
	switch {
	case err != nil:
		return ""
	case u.Scheme == "":
		return uri
	case u.Scheme == "file":
		return u.Path
	}
	return ""
}

// DefaultDurableConfig is the one place the checkpoint policy's defaults
// live (the checkpoint URI's, DATA-DIR/checkpoints, depends on the data
// dir and is filled when durability is enabled).
func DefaultDurableConfig() DurableConfig {
	return DurableConfig{CheckpointEvery: 100_000, CheckpointInterval: time.Minute, CheckpointBytes: 64 << 20, Tick: time.Second}
}

// durable is the back end of durable RDDs: the pushers of the ones whose
// owning session lives on this node. It exists on every store; on is set
// by EnableDurable before the store serves, and never changes after.
// mu guards owned; each owned guards its own state.
type durable struct {
	s     *Store
	on    bool
	cfg   DurableConfig
	mu    sync.Mutex
	owned map[string]*owned
	// adoptErr is why adopting an RDD last failed (one line), by name;
	// cleared when it is adopted.
	adoptErr map[string]string
	// claimNext is when a failed copy claim may be tried again, by name.
	claimNext map[string]time.Time
	wake      chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
	// disk refuses writes while a local checkpoint dir's filesystem is
	// full (nil: remote checkpoints, or no check).
	disk *cluster.DiskGuard
	// ckptOwner hands checkpoint dirs to their session (ckptowner.go).
	ckptOwner CheckpointOwner
	fetcher   CheckpointFetcher // fetches a peer's checkpoint (ckptxfer.go)
}

func newDurable(s *Store) *durable {
	return &durable{s: s, owned: map[string]*owned{}, adoptErr: map[string]string{}, claimNext: map[string]time.Time{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// EnableDurable turns durable RDDs on (call it before serving, so the
// default mode never depends on timing); StartDurable then starts the
// owner side. dataDir holds the default checkpoint directory.
func (s *Store) EnableDurable(cfg DurableConfig, dataDir string) {
	cfg.fill(dataDir)
	s.dur.cfg, s.dur.on = cfg, true
	if p := localPath(cfg.CheckpointURI); p != "" {
		s.dur.disk = cluster.NewDiskGuard(cfg.DiskReserve, p)
	}
}

// CheckpointDiskFull returns cluster.ErrInsufficientStorage (naming the
// directory) while the local checkpoint dir's filesystem holds less than
// the reserve, else nil.
func (s *Store) CheckpointDiskFull() error { return s.dur.disk.Check() }

// StartDurable starts the owner side of durable RDDs: adopting RDDs whose
// session died, rebuilding and feeding the ones this node owns, and
// checkpoints. Call it once the node's stale sessions are marked dead.
func (s *Store) StartDurable() {
	d := s.dur
	if !d.on {
		return
	}
	s.reg.WatchRDDs(func(name string, _ uint64, write bool) {
		if name != "" {
			if o, ok := d.lookup(name); ok {
				o.poke() // new log entries to push
			}
		}
		if !write {
			d.poke() // ownership may have changed
		}
	})
	d.wg.Add(1)
	go d.reconcileLoop()
}

// StopDurable stops every pusher (the node is closing). Call it once,
// after StartDurable.
func (s *Store) StopDurable() {
	d := s.dur
	if !d.on {
		return
	}
	close(d.stop)
	d.wg.Wait()
	d.mu.Lock()
	all := slices.Collect(maps.Values(d.owned))
	d.mu.Unlock()
	for _, o := range all {
		o.halt()
		<-o.done
	}
}

// CheckpointURI returns where this node writes checkpoints ("" when
// durable RDDs are off).
func (s *Store) CheckpointURI() string { return s.dur.cfg.CheckpointURI }

func (d *durable) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// lookup returns the pusher of a durable RDD on this node, if it runs.
func (d *durable) lookup(name string) (*owned, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.owned[name]
	return o, ok
}

func (d *durable) reconcileLoop() {
	defer d.wg.Done()
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		d.reconcile()
		select {
		case <-d.stop:
			return
		case <-d.wake:
		case <-t.C:
		}
	}
}

// reconcile starts a pusher for every durable RDD a live session of this
// node owns or holds a copy of, stops the others, adopts orphans this
// node should take, and claims copies this node should make.
func (d *durable) reconcile() {
	reg := d.s.reg
	me := reg.ID()
	want := map[string]int64{}
	asCopy := map[string]bool{}
	rdds := reg.RDDs()
	for _, r := range rdds {
		if r.Mode != cluster.ModeDurable {
			continue
		}
		for _, c := range r.Copies {
			if cs, ok := reg.Session(c.Session); ok && c.Node == me && cs.Node == me && cs.Status == cluster.SessionActive {
				want[r.Name], asCopy[r.Name] = c.Session, true
			}
		}
		sess, ok := reg.Session(r.SessionID)
		if ok && sess.Status == cluster.SessionActive {
			if sess.Node == me {
				want[r.Name] = r.SessionID
			}
			continue
		}
		d.maybeAdopt(r, sess, ok)
	}
	d.claimCopies(rdds)
	d.mu.Lock()
	for name := range d.adoptErr {
		if r, ok := reg.RDD(name); !ok || r.Mode != cluster.ModeDurable {
			delete(d.adoptErr, name)
		}
	}
	for name := range d.claimNext {
		if _, ok := reg.RDD(name); !ok {
			delete(d.claimNext, name)
		}
	}
	var stopped []*owned
	for name, o := range d.owned {
		if sid, ok := want[name]; !ok || sid != o.sid {
			delete(d.owned, name)
			stopped = append(stopped, o)
		}
	}
	for name, sid := range want {
		if _, ok := d.owned[name]; !ok {
			o := newOwned(d, name, sid)
			o.wasCopy = asCopy[name]
			d.owned[name] = o
			go o.run()
		}
	}
	d.mu.Unlock()
	for _, o := range stopped {
		o.halt()
	}
}

// maybeAdopt moves an RDD whose session is gone: to its best live copy
// (bestCopy), which serves at once, if this node holds it; with no such
// copy, into this node's default session, if this node is the one to
// take it: the old node while it is up (an interpreter crash or a
// restart), else the least loaded up node. The move is a compare-and-set
// in the registry, so two adopters agree.
func (d *durable) maybeAdopt(r cluster.RDD, old cluster.Session, known bool) {
	s := d.s
	me := s.reg.ID()
	if c, ok := d.bestCopy(r); ok {
		if c.Node != me {
			return
		}
		_, err := s.reg.Apply(cluster.Command{Type: cluster.CmdMoveRDD, Body: &cluster.MoveRDD{RDD: r.Name, From: r.SessionID, To: c.Session}})
		if err != nil {
			if !errors.Is(err, cluster.ErrNotOwner) && !errors.Is(err, cluster.ErrRDDNotFound) {
				d.setAdoptError(r.Name, fmt.Sprintf("cannot promote the copy of %q here: %v", r.Name, err))
			}
			return
		}
		d.setAdoptError(r.Name, "")
		s.logf("promoted the copy of durable rdd %q in session %d: session %d is gone", r.Name, c.Session, r.SessionID)
		return
	}
	adopter := ""
	if known {
		if m, ok := s.reg.Member(old.Node); ok && m.Status == cluster.NodeUp {
			adopter = old.Node
		}
	}
	if adopter == "" {
		adopter, _ = s.reg.LeastLoaded()
	}
	if adopter != me {
		return
	}
	// At most one default session starts at a time, and one that failed
	// to start is retried after a back-off (sessions.ErrStartBackoff):
	// this loop never creates a session per tick.
	sid, err := s.sess.DefaultSession()
	if err != nil {
		d.setAdoptError(r.Name, fmt.Sprintf("cannot adopt durable rdd %q: no session: %v", r.Name, err))
		return
	}
	if sid == r.SessionID {
		return
	}
	_, err = s.reg.Apply(cluster.Command{Type: cluster.CmdMoveRDD, Body: &cluster.MoveRDD{RDD: r.Name, From: r.SessionID, To: sid}})
	if err != nil {
		if !errors.Is(err, cluster.ErrNotOwner) && !errors.Is(err, cluster.ErrRDDNotFound) {
			d.setAdoptError(r.Name, fmt.Sprintf("cannot adopt durable rdd %q: %v", r.Name, err))
		}
		return
	}
	d.setAdoptError(r.Name, "")
	s.logf("adopted durable rdd %q from session %d into session %d", r.Name, r.SessionID, sid)
	if s.hooks != nil && known && old.Node == me {
		s.hooks.InterpreterRestarted() // its interpreter died here: a new one took over
	}
	if err := s.created(sid, r.Name); err != nil {
		s.logf("adopted durable rdd %q: %v", r.Name, err)
	}
}

// setAdoptError records (and logs, when it changed) why adopting an RDD
// failed; "" clears it.
func (d *durable) setAdoptError(name, msg string) {
	d.mu.Lock()
	prev := d.adoptErr[name]
	if msg == "" {
		delete(d.adoptErr, name)
	} else {
		d.adoptErr[name] = msg
	}
	d.mu.Unlock()
	if msg != "" && msg != prev {
		d.s.logf("%s", msg)
	}
}

// adoptError is why adopting an RDD, or rebuilding it here, last
// failed, or "".
func (d *durable) adoptError(name string) string {
	d.mu.Lock()
	msg := d.adoptErr[name]
	d.mu.Unlock()
	if msg != "" {
		return msg
	}
	if o, ok := d.lookup(name); ok {
		o.mu.Lock()
		defer o.mu.Unlock()
		if !o.ready {
			return o.status
		}
	}
	return ""
}

// ownedHere returns the pusher of a durable RDD on this node, waiting up
// to ownedWait for reconcile to start it.
func (d *durable) ownedHere(ctx context.Context, name string, sid int64) (*owned, error) {
	if !d.on {
		return nil, fmt.Errorf("%w: durable rdds are not enabled on this node", ErrInvalid)
	}
	deadline := time.Now().Add(ownedWait)
	for {
		if o, ok := d.lookup(name); ok && o.sid == sid {
			return o, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: session %d of %q is not served here", sessions.ErrNotLocal, sid, name)
		}
		d.poke()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(ownedPoll):
		}
	}
}

// state describes a durable RDD's owner-side state for listings; ok is
// false when no pusher for it runs here.
func (d *durable) state(name string) (state, message string, ok bool) {
	o, found := d.lookup(name)
	if !found {
		return "", "", false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.ready {
		return StateRecovering, o.statusLocked(), true
	}
	if o.loading || o.loadCkpt {
		return StateLoading, "the loaded rows are durable once the checkpoint after the load is recorded", true
	}
	return "", "", true
}

// ---------------------------------------------------------------- backend

// admit lets a call through to the owner only if this node's pusher has
// the RDD in that session's interpreter (a read routed by the registry
// must not reach a session the RDD just moved to and is not rebuilt in
// yet). A node without durable RDDs routes as for memory RDDs.
func (d *durable) admit(r cluster.RDD) error {
	if !d.on {
		return nil
	}
	if o, ok := d.lookup(r.Name); ok && o.sid == r.SessionID {
		o.mu.Lock()
		created := o.created
		o.mu.Unlock()
		if created {
			return nil
		}
	}
	return fmt.Errorf("%w: %q is being rebuilt in session %d", ErrRecovering, r.Name, r.SessionID)
}

// gone explains a call on an RDD whose session died: it is moving.
func (d *durable) gone(name string, sid int64, err error) error {
	return fmt.Errorf("%w: %q: its session %d is gone (%v); it is being moved to a live session", ErrRecovering, name, sid, err)
}

// loading marks a bulk load on a durable RDD (on: the pusher checkpoints
// when it ends, which makes the loaded rows durable), or clears the mark
// of a load whose call failed.
func (d *durable) loading(name string, on bool) {
	if o, ok := d.lookup(name); ok {
		o.mu.Lock()
		o.loading = on
		o.mu.Unlock()
	}
}
