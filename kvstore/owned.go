package kvstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge"
)

// entryResult is what the interpreter reports for one applied entry.
type entryResult struct {
	Counts []int     `msgpack:"c"` // deletes: per group, how many keys existed
	Errors []*string `msgpack:"e"` // per group: why it was skipped, or nil
}

// owned is one durable RDD held by a session on this node, and its
// pusher: one goroutine (run) that rebuilds the RDD in the interpreter
// and then applies its log there in order, one call at a time, and
// starts checkpoints. Writers and readers wait on it with await.
//
// mu guards the fields below it; changed is closed and replaced at every
// change of them, so await never misses one. halt may be called from any
// goroutine, once.
type owned struct {
	d    *durable
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
	from     uint64    // the log index of the checkpoint the last rebuild loaded (0: none)
	// A pusher started as a copy may be promoted to owner: its first
	// default read then waits for every write committed before it
	// (fence), since the former owner acknowledged writes this copy may
	// not have applied yet (promotionFence).
	wasCopy bool
	fenced  bool
	fence   uint64
	// loaded is the RDD.Loaded this interpreter's data holds (the bulk
	// loads in it): a copy with less rebuilds from the owner's checkpoint.
	loaded uint64
	// ownCkpt: a promoted copy has asked for a checkpoint of its own.
	ownCkpt bool

	// ckptFails counts checkpoints that failed in a row; the policy tries
	// none before ckptNext (backing off: a full disk, a broken URI).
	ckptFails int
	ckptNext  time.Time

	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	ctx    context.Context // cancelled by halt
	cancel context.CancelFunc
}

func newOwned(d *durable, name string, sid int64) *owned {
	ctx, cancel := context.WithCancel(context.Background())
	return &owned{d: d, name: name, sid: sid, changed: make(chan struct{}), results: map[uint64]*entryResult{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), lastCkpt: time.Now(),
		ctx: ctx, cancel: cancel}
}

// halt stops the pusher; calls it has in flight are cancelled. done is
// closed once run has returned.
func (o *owned) halt() {
	close(o.stop)
	o.cancel()
}

// poke tells the pusher there may be new log entries.
func (o *owned) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *owned) stopped() bool {
	select {
	case <-o.stop:
		return true
	default:
		return false
	}
}

// broadcastLocked wakes everyone waiting on o.changed.
func (o *owned) broadcastLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// statusLocked says why the RDD is not ready.
func (o *owned) statusLocked() string {
	if o.status == "" {
		return "rebuilding from its checkpoint and log"
	}
	return o.status
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

// ---------------------------------------------------------------- pusher

// run is the pusher's goroutine: it serves the RDD until halted.
func (o *owned) run() {
	defer close(o.done)
	if h := o.d.s.hooks; h != nil {
		h.Track(o.name, time.Now())
		defer h.Forget(o.name)
	}
	for o.serve() {
		// The log has a gap before what this pusher applied: rebuild,
		// once no checkpoint of the old data is still being written.
		o.waitCheckpoint()
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

// serve rebuilds the RDD, then feeds it the log until the pusher is
// stopped (false) or finds a gap (true: rebuild again).
func (o *owned) serve() bool {
	s := o.d.s
	for attempt := 0; ; attempt++ {
		began := time.Now()
		replayed, err := o.rebuild()
		if s.hooks != nil && (replayed > 0 || err != nil || o.restored) {
			s.hooks.RecoveryDone(o.name, time.Since(began), replayed, err)
		}
		if err == nil {
			break
		}
		if o.stopped() {
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
	tick := time.NewTicker(o.d.cfg.Tick)
	defer tick.Stop()
	for {
		n, err := o.push()
		if errors.Is(err, errGap) {
			s.logf("durable rdd %q: %v; rebuilding", o.name, err)
			return true
		}
		if err != nil {
			if !o.stopped() {
				s.logf("applying the log of %q: %v (retrying)", o.name, err)
			}
			select {
			case <-o.stop:
				return false
			case <-time.After(pushRetry):
			}
			continue
		}
		o.maybeCheckpoint(o.promotedWithoutCheckpoint())
		if n > 0 {
			continue
		}
		select {
		case <-o.stop:
			o.waitCheckpoint()
			if _, ok := s.reg.RDD(o.name); !ok {
				o.removeCheckpoints()
			}
			return false
		case <-o.wake:
		case <-tick.C:
			o.checkLoad()
		}
	}
}

// backoff is the wait before the attempt'th retry of a failed rebuild.
func backoff(attempt int) time.Duration {
	d := rebuildRetry << min(attempt, 5)
	return min(d, rebuildRetryMax)
}

// interp waits for the owning session's interpreter.
func (o *owned) interp() (Interpreter, error) {
	for {
		ctx, cancel := context.WithTimeout(o.ctx, interpreterWait)
		it, err := o.d.s.sess.Interpreter(ctx, o.sid)
		cancel()
		if err == nil || !errors.Is(err, sessions.ErrNotReady) || o.stopped() {
			return it, err
		}
	}
}

// rebuild makes the interpreter hold the RDD as of its checkpoint plus
// every logged write after it; it returns the log entries it replayed.
func (o *owned) rebuild() (int64, error) {
	s := o.d.s
	began := time.Now()
	it, err := o.interp()
	if err != nil {
		return 0, err
	}
	ctx := o.ctx
	err = it.Call(ctx, "rdd.create", map[string]any{"name": o.name, "durable": true}, nil)
	if err != nil && !sparkbridge.IsCode(err, sparkbridge.CodeExists) {
		return 0, fmt.Errorf("cannot create it in session %d: %w", o.sid, err)
	}
	r, ok := s.reg.RDD(o.name)
	if !ok {
		return 0, fmt.Errorf("%w: shared rdd %q", ErrNotFound, o.name)
	}
	ck, peer, err := o.d.restoreSource(r)
	if err != nil {
		return 0, err
	}
	var from uint64
	rows := int64(0)
	if ck != nil {
		var res struct {
			Rows int64 `msgpack:"rows"`
		}
		path := ck.Path
		if peer != "" {
			// Written on another node, to its own storage: streamed
			// over the peer channel into ours (never read off its disk).
			if path, err = o.d.fetchCheckpoint(ctx, it, peer, o.name, ck.Path); err != nil {
				return 0, fmt.Errorf("cannot fetch checkpoint %s from node %s: %w", ck.Path, peer, err)
			}
		}
		if err := o.d.ownCheckpoints(o.name, it); err != nil {
			return 0, fmt.Errorf("cannot hand checkpoint %s to session %d: %w", path, o.sid, err)
		}
		if err := it.Call(ctx, "rdd.restore", map[string]any{"name": o.name, "path": path, "index": ck.Index}, &res); err != nil {
			return 0, fmt.Errorf("cannot load checkpoint %s: %w", path, err)
		}
		from, rows = ck.Index, res.Rows
		o.restored, o.loaded = true, ck.Loaded
		if peer != "" || ck != ownCheckpoint(r, o.sid) {
			// Not this session's own record: now it is (it is on this
			// node's storage, or storage all nodes read), so a later
			// rebuild here, or a promotion, does not depend on its writer.
			o.recordFetched(r, path, ck, res.Rows)
		}
	} else {
		o.loaded = 0
	}
	o.mu.Lock()
	o.applied, o.created, o.from = from, true, from
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
		n, err := o.push()
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

// push applies the next logged writes to the interpreter; it returns how
// many entries it applied (0: none waiting).
func (o *owned) push() (int, error) {
	s := o.d.s
	o.mu.Lock()
	after := o.applied
	o.mu.Unlock()
	entries, trim, ok := s.reg.TailAfter(o.name, after, pushBatch, pushBytes)
	if !ok {
		return 0, nil // dropped; reconcile stops us
	}
	if trim > after {
		return 0, fmt.Errorf("%w (trimmed up to %d, applied %d)", errGap, trim, after)
	}
	if r, ok := s.reg.RDD(o.name); ok && (r.SessionID != o.sid || o.wasCopy) && r.Loaded > o.loaded {
		// A copy, and the owner loaded rows that are in no log entry:
		// only its checkpoint has them.
		return 0, fmt.Errorf("%w (a bulk load checkpointed at %d; this copy holds loads up to %d)", errGap, r.Loaded, o.loaded)
	}
	if len(entries) == 0 {
		return 0, nil
	}
	it, err := o.interp()
	if err != nil {
		return 0, err
	}
	// No timeout: a call given up on would go on in the interpreter while
	// the retry runs (the interpreter skips entries it applied, but the
	// order of two calls in flight is not ours). Halting cancels it.
	var res struct {
		Results []*entryResult `msgpack:"results"`
	}
	if err := it.Call(o.ctx, "kv.apply", map[string]any{"name": o.name, "entries": entries}, &res); err != nil {
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
