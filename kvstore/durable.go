package kvstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge"
)

// Durable RDDs (ARCHITECTURE.md invariants 4 and 5; DESIGN.md "Durable
// RDDs"). Every write is a Raft entry appended to the RDD's tail in the
// registry. On the owner's node a pusher (owned.run) applies the tail to
// the interpreter in log order, one call at a time, and a write is
// acknowledged once the pusher has applied its entry. The pusher also
// rebuilds the RDD from its checkpoint plus the tail when the RDD arrives
// on this node (creation, interpreter crash, node loss, restart), and
// writes checkpoints by policy or on demand.

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
func (s *Store) SetDurabilityHooks(h DurabilityHooks) { s.hooks = h }

// Read consistency levels (query parameter consistency=).
const (
	ConsistencyDefault      = "default"      // every write the owner acknowledged
	ConsistencyLinearizable = "linearizable" // every write committed before the read began
	ConsistencyStale        = "stale"        // whatever the owner holds now, even while it rebuilds
)

// DurableConfig configures checkpoints.
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
}

func (c *DurableConfig) fill(dataDir string) {
	if c.CheckpointURI == "" {
		abs, err := filepath.Abs(filepath.Join(dataDir, "checkpoints"))
		if err != nil {
			abs = filepath.Join(dataDir, "checkpoints")
		}
		c.CheckpointURI = abs
	}
	c.CheckpointURI = strings.TrimSuffix(c.CheckpointURI, "/")
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = 100_000
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = time.Minute
	}
	if c.CheckpointBytes <= 0 {
		c.CheckpointBytes = 64 << 20
	}
	if c.Tick <= 0 {
		c.Tick = time.Second
	}
}

// pushBatch and pushBytes bound one kv.apply call (frames are limited to
// 64 MiB).
const (
	pushBatch = 20_000
	pushBytes = 16 << 20
)

// resultsKept bounds the per-entry results a pusher remembers for writers
// (and for retried idempotent writes) that have not collected them yet.
const resultsKept = 1 << 16

// entryResult is what the interpreter reports for one applied entry.
type entryResult struct {
	Counts []int     `msgpack:"c"` // deletes: per group, how many keys existed
	Errors []*string `msgpack:"e"` // per group: why it was skipped, or nil
}

// owned is one durable RDD held by a session on this node.
type owned struct {
	name string
	sid  int64

	mu       sync.Mutex
	applied  uint64        // last log index pushed into the interpreter
	ready    bool          // rebuilt and caught up once
	created  bool          // the interpreter holds the RDD (stale reads may go)
	status   string        // why it is not ready (recovery errors)
	changed  chan struct{} // closed and replaced at every change of the fields above
	results  map[uint64]*entryResult
	order    []uint64
	since    int       // keys written since the last checkpoint began
	lastCkpt time.Time // when the last checkpoint began (or the RDD arrived)
	ckpt     *ckptRun  // the running checkpoint, if any
	loading  bool      // a bulk load runs; checkpoint when it ends
	loadCkpt bool      // a load ended; its rows are durable once a checkpoint succeeds
	restored bool      // the last rebuild loaded a checkpoint

	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	ctx    context.Context // cancelled by halt
	cancel context.CancelFunc
}

// halt stops the pusher; calls it has in flight are cancelled.
func (o *owned) halt() {
	close(o.stop)
	o.cancel()
}

type ckptRun struct {
	done chan struct{}
	ref  cluster.CheckpointRef
	err  error
}

func newOwned(name string, sid int64) *owned {
	ctx, cancel := context.WithCancel(context.Background())
	return &owned{name: name, sid: sid, changed: make(chan struct{}), results: map[uint64]*entryResult{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), lastCkpt: time.Now(),
		ctx: ctx, cancel: cancel}
}

func (o *owned) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// broadcastLocked wakes everyone waiting on o.changed.
func (o *owned) broadcastLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// await blocks until cond holds (checked under o.mu), ctx ends or the
// pusher stops.
func (o *owned) await(ctx context.Context, cond func() bool) error {
	for {
		o.mu.Lock()
		if cond() {
			o.mu.Unlock()
			return nil
		}
		ch := o.changed
		o.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-o.stop:
			return fmt.Errorf("%w: %q moved to another session while the call waited", cluster.ErrNotOwner, o.name)
		}
	}
}

// durable is the store's part for durable RDDs.
type durable struct {
	cfg   DurableConfig
	mu    sync.Mutex
	owned map[string]*owned
	wake  chan struct{}
	stop  chan struct{}
	wg    sync.WaitGroup
}

// EnableDurable turns durable RDDs on (call it before serving, so the
// default mode never depends on timing); StartDurable then starts the
// owner side. dataDir holds the default checkpoint directory.
func (s *Store) EnableDurable(cfg DurableConfig, dataDir string) {
	cfg.fill(dataDir)
	s.dur = &durable{cfg: cfg, owned: map[string]*owned{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// StartDurable starts the owner side of durable RDDs: adopting RDDs whose
// session died, rebuilding and feeding the ones this node owns, and
// checkpoints. Call it once the node's stale sessions are marked dead.
func (s *Store) StartDurable() {
	d := s.dur
	if d == nil {
		return
	}
	s.reg.WatchRDDs(func(name string, _ uint64, write bool) {
		if name != "" {
			d.mu.Lock()
			o, ok := d.owned[name]
			d.mu.Unlock()
			if ok {
				o.poke() // new log entries to push
			}
		}
		if !write {
			d.poke() // ownership may have changed
		}
	})
	d.wg.Add(1)
	go s.reconcileLoop()
}

// StopDurable stops every pusher (the node is closing).
func (s *Store) StopDurable() {
	d := s.dur
	if d == nil {
		return
	}
	close(d.stop)
	d.wg.Wait()
	d.mu.Lock()
	all := make([]*owned, 0, len(d.owned))
	for _, o := range d.owned {
		all = append(all, o)
	}
	d.mu.Unlock()
	for _, o := range all {
		o.halt()
		<-o.done
	}
}

// CheckpointURI returns where this node writes checkpoints.
func (s *Store) CheckpointURI() string {
	if s.dur == nil {
		return ""
	}
	return s.dur.cfg.CheckpointURI
}

func (d *durable) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (s *Store) reconcileLoop() {
	d := s.dur
	defer d.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.reconcile()
		select {
		case <-d.stop:
			return
		case <-d.wake:
		case <-t.C:
		}
	}
}

// reconcile starts a pusher for every durable RDD a live session of this
// node owns, stops the others, and adopts orphans this node should take.
func (s *Store) reconcile() {
	d := s.dur
	me := s.reg.ID()
	want := map[string]int64{}
	for _, r := range s.reg.RDDs() {
		if r.Mode != ModeDurable {
			continue
		}
		sess, ok := s.reg.Session(r.SessionID)
		if ok && sess.Status == cluster.SessionActive {
			if sess.Node == me {
				want[r.Name] = r.SessionID
			}
			continue
		}
		s.maybeAdopt(r, sess, ok)
	}
	d.mu.Lock()
	var stopped []*owned
	for name, o := range d.owned {
		if sid, ok := want[name]; !ok || sid != o.sid {
			delete(d.owned, name)
			stopped = append(stopped, o)
		}
	}
	for name, sid := range want {
		if _, ok := d.owned[name]; !ok {
			o := newOwned(name, sid)
			d.owned[name] = o
			go s.runOwned(o)
		}
	}
	d.mu.Unlock()
	for _, o := range stopped {
		o.halt()
	}
}

// maybeAdopt moves an RDD whose session is gone into this node's default
// session, if this node is the one to take it: the old node while it is
// up (an interpreter crash or a restart), else the least loaded up node.
// The move is a compare-and-set in the registry, so two adopters agree.
func (s *Store) maybeAdopt(r cluster.RDD, old cluster.Session, known bool) {
	me := s.reg.ID()
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
	sid, err := s.sess.DefaultSession()
	if err != nil {
		s.logf("cannot adopt durable rdd %q: no session: %v", r.Name, err)
		return
	}
	if sid == r.SessionID {
		return
	}
	_, err = s.reg.Apply(cluster.Command{Type: cluster.CmdMoveRDD, Body: &cluster.MoveRDD{RDD: r.Name, From: r.SessionID, To: sid}})
	if err != nil {
		if !errors.Is(err, cluster.ErrNotOwner) && !errors.Is(err, cluster.ErrRDDNotFound) {
			s.logf("cannot adopt durable rdd %q: %v", r.Name, err)
		}
		return
	}
	s.logf("adopted durable rdd %q from session %d into session %d", r.Name, r.SessionID, sid)
	if s.hooks != nil && known && old.Node == me {
		s.hooks.InterpreterRestarted() // its interpreter died here: a new one took over
	}
	if err := s.sess.RDDCreated(sid, r.Name); err != nil {
		s.logf("adopted durable rdd %q: %v", r.Name, err)
	}
}

func (s *Store) logf(format string, args ...any) {
	if s.log != nil {
		s.log(fmt.Sprintf(format, args...))
	}
}

// ownedHere returns the pusher of a durable RDD on this node, waiting up
// to the session's ready timeout for reconcile to start it.
func (s *Store) ownedHere(ctx context.Context, name string, sid int64) (*owned, error) {
	d := s.dur
	if d == nil {
		return nil, fmt.Errorf("%w: durable rdds are not enabled on this node", ErrInvalid)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d.mu.Lock()
		o, ok := d.owned[name]
		d.mu.Unlock()
		if ok && o.sid == sid {
			return o, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: session %d of %q is not served here", sessions.ErrNotLocal, sid, name)
		}
		d.poke()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ---------------------------------------------------------------- pusher

func (s *Store) runOwned(o *owned) {
	defer close(o.done)
	if s.hooks != nil {
		s.hooks.Track(o.name, time.Now())
		defer s.hooks.Forget(o.name)
	}
	for s.serveOwned(o) {
		// The log has a gap before what this pusher applied: rebuild.
		o.mu.Lock()
		o.ready, o.created = false, false
		o.broadcastLocked()
		o.mu.Unlock()
	}
}

// errGap: the registry's tail no longer holds the entries after what the
// pusher applied (a checkpoint it did not write trimmed them): only a
// rebuild from that checkpoint is correct.
var errGap = errors.New("the log was trimmed past what this node applied")

// serveOwned rebuilds the RDD, then feeds it the log until the pusher is
// stopped (false) or finds a gap (true: rebuild again).
func (s *Store) serveOwned(o *owned) bool {
	for attempt := 0; ; attempt++ {
		began := time.Now()
		replayed, err := s.rebuild(o)
		if s.hooks != nil && (replayed > 0 || err != nil || o.restored) {
			s.hooks.RecoveryDone(o.name, time.Since(began), replayed, err)
		}
		if err == nil {
			break
		}
		if stopped(o) {
			return false
		}
		o.mu.Lock()
		o.status = err.Error()
		o.broadcastLocked()
		o.mu.Unlock()
		s.logf("rebuilding durable rdd %q: %v (retrying)", o.name, err)
		select {
		case <-o.stop:
			return false
		case <-time.After(backoff(attempt)):
		}
	}
	tick := time.NewTicker(s.dur.cfg.Tick)
	defer tick.Stop()
	for {
		n, err := s.pushOnce(o)
		more := n > 0
		if errors.Is(err, errGap) {
			s.logf("durable rdd %q: %v; rebuilding", o.name, err)
			return true
		}
		if err != nil {
			if !stopped(o) {
				s.logf("applying the log of %q: %v (retrying)", o.name, err)
			}
			select {
			case <-o.stop:
				return false
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		s.maybeCheckpoint(o, false)
		if more {
			continue
		}
		select {
		case <-o.stop:
			s.waitCheckpoint(o)
			if _, ok := s.reg.RDD(o.name); !ok {
				s.removeCheckpoints(o)
			}
			return false
		case <-o.wake:
		case <-tick.C:
			s.checkLoad(o)
		}
	}
}

func stopped(o *owned) bool {
	select {
	case <-o.stop:
		return true
	default:
		return false
	}
}

func backoff(attempt int) time.Duration {
	d := 200 * time.Millisecond << min(attempt, 5)
	return min(d, 5*time.Second)
}

// interp waits for the owning session's interpreter.
func (s *Store) interp(o *owned) (*sparkbridge.Interpreter, error) {
	for {
		ctx, cancel := context.WithTimeout(o.ctx, 30*time.Second)
		it, err := s.sess.Interpreter(ctx, o.sid)
		cancel()
		if err == nil || !errors.Is(err, sessions.ErrNotReady) || stopped(o) {
			return it, err
		}
	}
}

// rebuild makes the interpreter hold the RDD as of its checkpoint plus
// every logged write after it; it returns the log entries it replayed.
func (s *Store) rebuild(o *owned) (int64, error) {
	began := time.Now()
	it, err := s.interp(o)
	if err != nil {
		return 0, err
	}
	ctx := o.ctx
	err = it.Call(ctx, "rdd.create", map[string]any{"name": o.name, "durable": true}, nil)
	if err != nil && !sparkbridge.IsCode(err, sparkbridge.CodeExists) {
		return 0, fmt.Errorf("cannot create it in session %d: %w", o.sid, err)
	}
	_, ck, ok := s.reg.TailAfter(o.name, 0, 0, 0)
	if !ok {
		return 0, fmt.Errorf("%w: shared rdd %q", ErrNotFound, o.name)
	}
	var from uint64
	rows := int64(0)
	if ck != nil {
		var res struct {
			Rows int64 `msgpack:"rows"`
		}
		if err := it.Call(ctx, "rdd.restore", map[string]any{"name": o.name, "path": ck.Path, "index": ck.Index}, &res); err != nil {
			return 0, fmt.Errorf("cannot load checkpoint %s: %w", ck.Path, err)
		}
		from, rows = ck.Index, res.Rows
		o.restored = true
	}
	o.mu.Lock()
	o.applied, o.created = from, true
	o.broadcastLocked()
	o.mu.Unlock()
	// Ready once the log up to its end as of now is applied: under a
	// steady write load the log never runs dry.
	var target uint64
	if r, ok := s.reg.RDD(o.name); ok {
		target = r.LastWrite
	}
	var replayed int64
	for {
		n, err := s.pushOnce(o)
		if err != nil {
			return replayed, err
		}
		replayed += int64(n)
		o.mu.Lock()
		done := o.applied >= target
		o.mu.Unlock()
		if n == 0 || done {
			break
		}
	}
	o.mu.Lock()
	o.ready, o.status = true, ""
	o.broadcastLocked()
	applied := o.applied
	o.mu.Unlock()
	if ck != nil || applied > 0 {
		s.logf("durable rdd %q rebuilt in session %d in %s (checkpoint rows %d, log up to index %d)",
			o.name, o.sid, time.Since(began).Round(time.Millisecond), rows, applied)
	}
	return replayed, nil
}

// pushOnce applies the next logged writes to the interpreter; it returns
// how many entries it applied (0: none waiting).
func (s *Store) pushOnce(o *owned) (int, error) {
	o.mu.Lock()
	after := o.applied
	o.mu.Unlock()
	entries, ck, ok := s.reg.TailAfter(o.name, after, pushBatch, pushBytes)
	if !ok {
		return 0, nil // dropped; reconcile stops us
	}
	if ck != nil && ck.Index > after {
		return 0, fmt.Errorf("%w (checkpoint at %d, applied %d)", errGap, ck.Index, after)
	}
	if len(entries) == 0 {
		return 0, nil
	}
	it, err := s.interp(o)
	if err != nil {
		return 0, err
	}
	// No timeout: a call given up on would go on in the interpreter while
	// the retry runs (the interpreter skips entries it applied, but the
	// order of two calls in flight is not ours). Halting cancels it.
	ctx := o.ctx
	var res struct {
		Results []*entryResult `msgpack:"results"`
	}
	if err := it.Call(ctx, "kv.apply", map[string]any{"name": o.name, "entries": entries}, &res); err != nil {
		return 0, err
	}
	if len(res.Results) != len(entries) {
		return 0, fmt.Errorf("kv.apply answered %d results for %d entries", len(res.Results), len(entries))
	}
	keys := 0
	o.mu.Lock()
	for i, e := range entries {
		o.results[e.Index] = res.Results[i]
		o.order = append(o.order, e.Index)
		keys += e.Ops()
	}
	if over := len(o.order) - resultsKept; over > resultsKept/8 {
		for _, idx := range o.order[:over] {
			delete(o.results, idx)
		}
		o.order = append([]uint64(nil), o.order[over:]...)
	}
	o.applied = entries[len(entries)-1].Index
	o.since += keys
	o.broadcastLocked()
	o.mu.Unlock()
	s.reportTail(o.name)
	return len(entries), nil
}

// reportTail publishes the size of an RDD's log tail.
func (s *Store) reportTail(name string) {
	if s.hooks == nil {
		return
	}
	if r, ok := s.reg.RDD(name); ok {
		s.hooks.SetLogTail(name, int64(r.TailOps), r.TailBytes)
	}
}

// ---------------------------------------------------------------- writes

// groupOutcome is one client batch's result after its entry was applied.
type groupOutcome struct {
	count int // deletes: keys that existed (-1: not known, a retried write)
	err   error
}

// logWrite logs one coalesced batch on a durable RDD and waits until the
// owner's interpreter applied it. idem and hashes may be nil.
func (s *Store) logWrite(ctx context.Context, name string, del bool, keys []string, vals [][]byte,
	groups []int, idem []string, hashes []uint64) ([]groupOutcome, error) {
	r, ok := s.reg.RDD(name)
	if !ok {
		return nil, fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
	}
	// A session still starting answers 503 within --ready-timeout, as for
	// memory-mode RDDs, instead of logging writes it cannot apply soon.
	if _, err := s.sess.Interpreter(ctx, r.SessionID); err != nil {
		if errors.Is(err, sessions.ErrDead) {
			return nil, fmt.Errorf("%w: %q: %v; it is being moved to a live session", ErrRecovering, name, err)
		}
		return nil, err
	}
	o, err := s.ownedHere(ctx, name, r.SessionID)
	if err != nil {
		return nil, err
	}
	v, err := s.reg.Apply(cluster.Command{Type: cluster.CmdWrite, Body: &cluster.Write{
		RDD: name, Session: r.SessionID, Delete: del, Keys: keys, Values: vals, Groups: groups, Idem: idem, Hashes: hashes,
	}})
	if err != nil {
		return nil, err
	}
	wr, ok := v.(*cluster.WriteResult)
	if !ok || len(wr.Groups) != len(groups) {
		return nil, fmt.Errorf("%w: the registry answered %T to a write", cluster.ErrOutcomeUnknown, v)
	}
	out := make([]groupOutcome, len(groups))
	for i, g := range wr.Groups {
		if g.Err != "" {
			out[i].err = fmt.Errorf("%w: the Idempotency-Key was used for a different request to %q", cluster.ErrIdempotencyMismatch, name)
			continue
		}
		var res *entryResult
		err := o.await(ctx, func() bool {
			if o.applied < g.Index {
				return false
			}
			res = o.results[g.Index]
			return true
		})
		if err != nil {
			return nil, fmt.Errorf("%w: logged at index %d, not yet applied by the owner: %v", cluster.ErrOutcomeUnknown, g.Index, err)
		}
		out[i].count = -1
		if res != nil && g.Group < len(res.Errors) {
			if e := res.Errors[g.Group]; e != nil {
				out[i].err = fmt.Errorf("%w: %s", ErrInvalid, *e)
			}
			if g.Group < len(res.Counts) {
				out[i].count = res.Counts[g.Group]
			}
		}
	}
	return out, nil
}

// requestHash identifies a write request for its idempotency key: its
// kind (vals nil: a delete) and its items in key order (a JSON object's
// members arrive in any order).
func requestHash(keys []string, vals [][]byte) uint64 {
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return keys[order[a]] < keys[order[b]] })
	h := fnv.New64a()
	if vals == nil {
		h.Write([]byte{1})
	}
	for _, i := range order {
		h.Write([]byte(keys[i]))
		h.Write([]byte{0})
		if vals != nil {
			h.Write(vals[i])
			h.Write([]byte{0})
		}
	}
	return h.Sum64()
}

// ---------------------------------------------------------------- reads

// ReadGate waits until a read of a durable RDD at the given consistency
// may be served here; memory-mode RDDs pass at once.
func (s *Store) ReadGate(ctx context.Context, name, consistency string) error {
	switch consistency {
	case "", ConsistencyDefault, ConsistencyLinearizable, ConsistencyStale:
	default:
		return fmt.Errorf("%w: consistency must be %q, %q or %q", ErrInvalid, ConsistencyDefault, ConsistencyLinearizable, ConsistencyStale)
	}
	r, ok := s.reg.RDD(name)
	if !ok {
		return fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
	}
	if r.Mode != ModeDurable {
		return nil
	}
	if consistency == ConsistencyLinearizable {
		// The leader's commit index when the read began, then the RDD's
		// last write as of that index.
		if err := s.reg.ReadBarrier(); err != nil {
			return err
		}
		if r, ok = s.reg.RDD(name); !ok {
			return fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
		}
	}
	if sess, ok := s.reg.Session(r.SessionID); !ok || sess.Status != cluster.SessionActive {
		return fmt.Errorf("%w: %q: its session %d is gone; it is being moved to a live session", ErrRecovering, name, r.SessionID)
	}
	o, err := s.ownedHere(ctx, name, r.SessionID)
	if err != nil {
		return err
	}
	wait, cancel := context.WithTimeout(ctx, s.readyTimeout)
	defer cancel()
	var cond func() bool
	switch consistency {
	case ConsistencyStale:
		cond = func() bool { return o.created }
	case ConsistencyLinearizable:
		cond = func() bool { return o.ready && o.applied >= r.LastWrite }
	default:
		cond = func() bool { return o.ready }
	}
	if err := o.await(wait, cond); err != nil {
		if ctx.Err() != nil {
			return err
		}
		o.mu.Lock()
		status := o.status
		o.mu.Unlock()
		if status == "" {
			status = "rebuilding from its checkpoint and log"
		}
		return fmt.Errorf("%w: %q: %s", ErrRecovering, name, status)
	}
	return nil
}

// ---------------------------------------------------------------- checkpoints

// CheckpointResult describes a finished checkpoint.
type CheckpointResult struct {
	Index   uint64  `json:"index"`
	Path    string  `json:"path"`
	Rows    int64   `json:"rows"`
	Seconds float64 `json:"seconds"`
}

// Checkpoint writes a checkpoint of a durable RDD now and records it.
func (s *Store) Checkpoint(ctx context.Context, name string) (CheckpointResult, error) {
	r, ok := s.reg.RDD(name)
	if !ok {
		return CheckpointResult{}, fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
	}
	if r.Mode != ModeDurable {
		return CheckpointResult{}, fmt.Errorf("%w: %q is a memory-mode rdd; only durable rdds have checkpoints", ErrInvalid, name)
	}
	if err := s.ReadGate(ctx, name, ConsistencyDefault); err != nil {
		return CheckpointResult{}, err
	}
	o, err := s.ownedHere(ctx, name, r.SessionID)
	if err != nil {
		return CheckpointResult{}, err
	}
	began := time.Now()
	// A checkpoint already running may have begun before the caller's
	// last write: wait for it, then take a fresh one.
	s.waitCheckpoint(o)
	run := s.maybeCheckpoint(o, true)
	if run == nil {
		return CheckpointResult{}, fmt.Errorf("%w: %q has a checkpoint running; try again", ErrBusy, name)
	}
	select {
	case <-run.done:
	case <-ctx.Done():
		return CheckpointResult{}, ctx.Err()
	}
	if run.err != nil {
		return CheckpointResult{}, run.err
	}
	return CheckpointResult{Index: run.ref.Index, Path: run.ref.Path, Rows: run.ref.Rows,
		Seconds: time.Since(began).Seconds()}, nil
}

// maybeCheckpoint starts a checkpoint if the policy (or force) asks for
// one and none is running; it returns the started run.
func (s *Store) maybeCheckpoint(o *owned, force bool) *ckptRun {
	cfg := s.dur.cfg
	o.mu.Lock()
	if o.ckpt != nil || !o.ready || o.loading {
		o.mu.Unlock()
		return nil
	}
	tailBytes := int64(0)
	if r, ok := s.reg.RDD(o.name); ok {
		tailBytes = r.TailBytes
	}
	due := o.since >= cfg.CheckpointEvery || (o.since > 0 && time.Since(o.lastCkpt) >= cfg.CheckpointInterval) ||
		(o.since > 0 && tailBytes >= cfg.CheckpointBytes)
	if !force && !due {
		o.mu.Unlock()
		return nil
	}
	idx, since := o.applied, o.since
	run := &ckptRun{done: make(chan struct{})}
	o.ckpt, o.since, o.lastCkpt = run, 0, time.Now()
	o.mu.Unlock()
	go s.writeCheckpoint(o, run, idx, since)
	return run
}

func (s *Store) waitCheckpoint(o *owned) {
	o.mu.Lock()
	run := o.ckpt
	o.mu.Unlock()
	if run != nil {
		<-run.done
	}
}

func (s *Store) checkpointDir(name string) string {
	return s.dur.cfg.CheckpointURI + "/" + url.PathEscape(name)
}

// writeCheckpoint has the interpreter write the data as of index idx (it
// has applied every entry up to idx; it may hold later ones too, which a
// replay of the tail after idx re-applies harmlessly), records it in the
// registry, which trims the tail, and deletes older checkpoints.
func (s *Store) writeCheckpoint(o *owned, run *ckptRun, idx uint64, since int) {
	began := time.Now()
	o.mu.Lock()
	coversLoad := o.loadCkpt
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.ckpt = nil
		if run.err != nil {
			o.since += since // still to be covered
		} else if coversLoad {
			o.loadCkpt = false
		}
		o.mu.Unlock()
		close(run.done)
	}()
	prev, _ := s.reg.RDD(o.name)
	path := fmt.Sprintf("%s/%020d-%d", s.checkpointDir(o.name), idx, began.UnixMilli())
	it, err := s.interp(o)
	if err != nil {
		run.err = err
		return
	}
	ctx, cancel := context.WithTimeout(o.ctx, 30*time.Minute)
	defer cancel()
	var res struct {
		Rows  int64 `msgpack:"rows"`
		Bytes int64 `msgpack:"bytes"`
	}
	defer func() {
		if s.hooks != nil {
			s.hooks.CheckpointDone(o.name, time.Since(began), res.Bytes, run.err)
		}
	}()
	if err := it.Call(ctx, "rdd.checkpoint", map[string]any{"name": o.name, "path": path, "index": idx}, &res); err != nil {
		run.err = fmt.Errorf("cannot write checkpoint of %q: %w", o.name, err)
		s.logf("%v", run.err)
		return
	}
	ref := cluster.CheckpointRef{Index: idx, Path: path, Rows: res.Rows, At: time.Now().UnixMilli()}
	if _, err := s.reg.Apply(cluster.Command{Type: cluster.CmdCheckpoint, Body: &cluster.Checkpoint{
		RDD: o.name, Session: o.sid, Incarnation: prev.Incarnation, Index: idx, Path: path, Rows: res.Rows, At: ref.At}}); err != nil {
		// Not recorded (a former owner, a newer checkpoint): this one is
		// garbage; the next GC of the owner deletes it.
		run.err = fmt.Errorf("cannot record checkpoint of %q: %w", o.name, err)
		s.logf("%v", run.err)
		return
	}
	run.ref = ref
	s.reportTail(o.name)
	// Keep this checkpoint and the one before it; delete the rest.
	keep := []string{path}
	if prev.Checkpoint != nil {
		keep = append(keep, prev.Checkpoint.Path)
	}
	_ = it.Call(ctx, "path.gc", map[string]any{"dir": s.checkpointDir(o.name), "keep": keep}, nil)
}

// removeCheckpoints deletes a dropped RDD's checkpoints.
func (s *Store) removeCheckpoints(o *owned) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	it, err := s.sess.Interpreter(ctx, o.sid)
	if err != nil {
		return
	}
	_ = it.Call(ctx, "path.delete", map[string]any{"path": s.checkpointDir(o.name)}, nil)
}

// markLoading marks a bulk load on a durable RDD (on: the pusher
// checkpoints when it ends, which makes the loaded rows durable), or
// clears the mark of a load whose call failed.
func (s *Store) markLoading(name string, on bool) {
	if s.dur == nil {
		return
	}
	s.dur.mu.Lock()
	o, ok := s.dur.owned[name]
	s.dur.mu.Unlock()
	if ok {
		o.mu.Lock()
		o.loading = on
		o.mu.Unlock()
	}
}

// checkLoad checkpoints a durable RDD whose bulk load has ended.
func (s *Store) checkLoad(o *owned) {
	o.mu.Lock()
	loading := o.loading
	o.mu.Unlock()
	if !loading {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := s.Describe(ctx, o.name)
	if err != nil || (info.Load != nil && info.Load.State == LoadRunning) {
		return
	}
	o.mu.Lock()
	o.loading, o.loadCkpt = false, true
	o.since++ // the loaded rows are not in any checkpoint yet: the policy retries if this fails
	o.mu.Unlock()
	s.maybeCheckpoint(o, true)
}

// durableState describes a durable RDD's owner-side state for listings.
func (s *Store) durableState(name string) (state, message string, applied uint64, ok bool) {
	if s.dur == nil {
		return "", "", 0, false
	}
	s.dur.mu.Lock()
	o, found := s.dur.owned[name]
	s.dur.mu.Unlock()
	if !found {
		return "", "", 0, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.ready {
		msg := o.status
		if msg == "" {
			msg = "rebuilding from its checkpoint and log"
		}
		return StateRecovering, msg, o.applied, true
	}
	if o.loading || o.loadCkpt {
		return StateLoading, "the loaded rows are durable once the checkpoint after the load is recorded", o.applied, true
	}
	return "", "", o.applied, true
}

// servable reports whether this node can serve a call on a durable RDD
// owned by session sid now: its pusher has the RDD in that session's
// interpreter (a read routed by the registry must not reach a session the
// RDD just moved to and is not rebuilt in yet).
func (s *Store) servable(name string, sid int64) bool {
	if s.dur == nil {
		return false
	}
	s.dur.mu.Lock()
	o, ok := s.dur.owned[name]
	s.dur.mu.Unlock()
	if !ok || o.sid != sid {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.created
}

// entryBytes bounds the keys and values of one logged entry: a follower
// owner forwards it to the leader in one request (bodies <= 4 MiB), and
// it is one Raft log entry.
const entryBytes = 2 << 20

// flushDurableSets logs several clients' set batches, as few entries as
// the size bound allows.
func (s *Store) flushDurableSets(name string, batch []*setReq) {
	splitSets(batch, entryBytes, func(part []*setReq) { s.logSets(name, part) })
}

func (s *Store) logSets(name string, batch []*setReq) {
	n := 0
	for _, r := range batch {
		n += len(r.items)
	}
	keys, vals := make([]string, 0, n), make([][]byte, 0, n)
	groups := make([]int, len(batch))
	var idem []string
	var hashes []uint64
	for i, r := range batch {
		start := len(keys)
		for _, it := range r.items {
			keys = append(keys, it.Key)
			vals = append(vals, it.Value)
		}
		groups[i] = len(r.items)
		if r.idem != "" {
			if idem == nil {
				idem, hashes = make([]string, len(batch)), make([]uint64, len(batch))
			}
			idem[i], hashes[i] = r.idem, requestHash(keys[start:], vals[start:])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.callTimeout)
	defer cancel()
	out, err := s.logWrite(ctx, name, false, keys, vals, groups, idem, hashes)
	for i, r := range batch {
		switch {
		case err != nil:
			r.err = err
		case out[i].err != nil:
			r.err = out[i].err
		default:
			r.written = len(r.items)
		}
		close(r.done)
	}
}

// flushDurableDeletes logs several clients' delete batches as one entry.
func (s *Store) flushDurableDeletes(name string, batch []*delReq) {
	var keys []string
	groups := make([]int, len(batch))
	var idem []string
	var hashes []uint64
	for i, r := range batch {
		keys = append(keys, r.keys...)
		groups[i] = len(r.keys)
		if r.idem != "" {
			if idem == nil {
				idem, hashes = make([]string, len(batch)), make([]uint64, len(batch))
			}
			idem[i], hashes[i] = r.idem, requestHash(r.keys, nil)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.callTimeout)
	defer cancel()
	out, err := s.logWrite(ctx, name, true, keys, nil, groups, idem, hashes)
	for i, r := range batch {
		switch {
		case err != nil:
			r.err = err
		case out[i].err != nil:
			r.err = out[i].err
		case out[i].count < 0:
			r.deleted = len(r.keys)
		default:
			r.deleted = out[i].count
		}
		close(r.done)
	}
}
