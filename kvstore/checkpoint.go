package kvstore

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/srdd/srdd/cluster"
)

// Checkpoints of durable RDDs. The pusher starts one by policy
// (DurableConfig) after it applied log entries, or at once when asked
// (Store.Checkpoint) or when a bulk load ends. A checkpoint runs on its
// own goroutine; at most one runs per RDD (owned.ckpt). Once the registry
// records it, the registry trims the log tail it covers.

// CheckpointResult describes a finished checkpoint.
type CheckpointResult struct {
	Index   uint64  `json:"index"`
	Path    string  `json:"path"`
	Rows    int64   `json:"rows"`
	Seconds float64 `json:"seconds"`
}

// ckptRun is one running checkpoint; ref and err are set before done is
// closed.
type ckptRun struct {
	done chan struct{}
	ref  cluster.CheckpointRef
	err  error
}

// Checkpoint writes a checkpoint of a durable RDD now and records it.
func (s *Store) Checkpoint(ctx context.Context, name string) (CheckpointResult, error) {
	r, ok := s.reg.RDD(name)
	if !ok {
		return CheckpointResult{}, fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
	}
	if r.Mode != cluster.ModeDurable {
		return CheckpointResult{}, fmt.Errorf("%w: %q is a memory-mode rdd; only durable rdds have checkpoints", ErrInvalid, name)
	}
	if err := s.ReadGate(ctx, name, ConsistencyDefault); err != nil {
		return CheckpointResult{}, err
	}
	o, err := s.dur.ownedHere(ctx, name, r.SessionID)
	if err != nil {
		return CheckpointResult{}, err
	}
	began := time.Now()
	// A checkpoint already running may have begun before the caller's
	// last write: wait for it, then take a fresh one.
	o.waitCheckpoint()
	if ref, ok := o.upToDate(); ok {
		// Nothing new since the recorded checkpoint: a second one at the
		// same index would be refused by the registry as stale.
		return CheckpointResult{Index: ref.Index, Path: ref.Path, Rows: ref.Rows, Seconds: time.Since(began).Seconds()}, nil
	}
	run := o.maybeCheckpoint(true)
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

// upToDate returns the recorded checkpoint when it already holds all this
// owner has: no key written since it began, no load waiting for one, and
// nothing applied past its index.
func (o *owned) upToDate() (cluster.CheckpointRef, bool) {
	o.mu.Lock()
	applied, since, load, busy := o.applied, o.since, o.loadCkpt, o.ckpt != nil || o.loading
	o.mu.Unlock()
	r, ok := o.d.s.reg.RDD(o.name)
	if !ok || r.Checkpoint == nil || since > 0 || load || busy || r.Checkpoint.Index < applied {
		return cluster.CheckpointRef{}, false
	}
	return *r.Checkpoint, true
}

// maybeCheckpoint starts a checkpoint if the policy (or force) asks for
// one and none is running; it returns the started run.
func (o *owned) maybeCheckpoint(force bool) *ckptRun {
	cfg := o.d.cfg
	o.mu.Lock()
	if o.ckpt != nil || !o.ready || o.loading {
		o.mu.Unlock()
		return nil
	}
	tailBytes := int64(0)
	if r, ok := o.d.s.reg.RDD(o.name); ok {
		tailBytes = r.TailBytes
		if r.SessionID != o.sid && !nodeLocal(cfg.CheckpointURI) {
			// A copy on shared storage rebuilds from the owner's
			// checkpoints and holds no tail: it writes none.
			o.mu.Unlock()
			return nil
		}
	}
	due := o.since >= cfg.CheckpointEvery || (o.since > 0 && time.Since(o.lastCkpt) >= cfg.CheckpointInterval) ||
		(o.since > 0 && tailBytes >= cfg.CheckpointBytes)
	if !force && (!due || time.Now().Before(o.ckptNext)) {
		o.mu.Unlock()
		return nil
	}
	idx, since := o.applied, o.since
	run := &ckptRun{done: make(chan struct{})}
	o.ckpt, o.since, o.lastCkpt = run, 0, time.Now()
	o.mu.Unlock()
	go o.writeCheckpoint(run, idx, since)
	return run
}

// checkpointBackoff is the pause after the n-th checkpoint failure in a
// row: 1 s doubling, at most a minute.
func checkpointBackoff(n int) time.Duration {
	if n > 7 {
		return time.Minute
	}
	return min(time.Second<<max(n-1, 0), time.Minute)
}

// waitCheckpoint returns once no checkpoint runs.
func (o *owned) waitCheckpoint() {
	o.mu.Lock()
	run := o.ckpt
	o.mu.Unlock()
	if run != nil {
		<-run.done
	}
}

// checkpointDir is the directory of an RDD's checkpoints.
func (d *durable) checkpointDir(name string) string {
	return d.cfg.CheckpointURI + "/" + url.PathEscape(name)
}

// writeCheckpoint has the interpreter write the data as of index idx (it
// has applied every entry up to idx; it may hold later ones too, which a
// replay of the tail after idx re-applies harmlessly), records it in the
// registry, which trims the tail, and deletes older checkpoints.
func (o *owned) writeCheckpoint(run *ckptRun, idx uint64, since int) {
	s := o.d.s
	began := time.Now()
	o.mu.Lock()
	coversLoad, loaded := o.loadCkpt, o.loaded
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.ckpt = nil
		if run.err != nil {
			o.since += since // still to be covered
			o.ckptFails++
			o.ckptNext = time.Now().Add(checkpointBackoff(o.ckptFails))
		} else {
			o.ckptFails, o.ckptNext = 0, time.Time{}
			if coversLoad {
				o.loadCkpt = false
			}
		}
		o.mu.Unlock()
		close(run.done)
	}()
	prev, _ := s.reg.RDD(o.name)
	prevCkpt := ownCheckpoint(prev, o.sid)
	dir := o.d.checkpointDir(o.name)
	path := dir + "/" + checkpointName(fmt.Sprintf("%020d", idx), began, s.reg.ID())
	it, err := o.interp()
	if err != nil {
		run.err = err
		return
	}
	ctx, cancel := context.WithTimeout(o.ctx, checkpointTimeout)
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
	// A full local checkpoint dir: not worth a Spark job (the policy
	// tries again after the back-off).
	if err := o.d.disk.Check(); err != nil {
		run.err = fmt.Errorf("cannot write checkpoint of %q: %w", o.name, err)
		s.logf("%v", run.err)
		return
	}
	if err := o.d.ownCheckpoints(o.name, it); err != nil {
		run.err = fmt.Errorf("cannot write checkpoint of %q: %w", o.name, err)
		s.logf("%v", run.err)
		return
	}
	if err := it.Call(ctx, "rdd.checkpoint", map[string]any{"name": o.name, "path": path, "index": idx}, &res); err != nil {
		run.err = fmt.Errorf("cannot write checkpoint of %q: %w", o.name, err)
		s.logf("%v", run.err)
		return
	}
	ref := cluster.CheckpointRef{Index: idx, Path: path, Rows: res.Rows, At: time.Now().UnixMilli()}
	if _, err := s.reg.Apply(cluster.Command{Type: cluster.CmdCheckpoint, Body: &cluster.Checkpoint{
		RDD: o.name, Session: o.sid, Incarnation: prev.Incarnation, Index: idx, Path: path, Rows: res.Rows, At: ref.At,
		Load: coversLoad, Loaded: loaded}}); err != nil {
		// Not recorded (a former owner, a newer checkpoint): this one is
		// garbage; the next GC of the owner deletes it.
		run.err = fmt.Errorf("cannot record checkpoint of %q: %w", o.name, err)
		s.logf("%v", run.err)
		return
	}
	run.ref = ref
	if coversLoad {
		// Recorded as the owner's load checkpoint: this data holds it.
		if r, ok := s.reg.RDD(o.name); ok && r.Checkpoint != nil && r.Checkpoint.Path == path {
			o.mu.Lock()
			o.loaded = max(o.loaded, r.Loaded)
			o.mu.Unlock()
		}
	}
	s.reportTail(o.name)
	// Keep this checkpoint and the one before it; delete the rest.
	keep := []string{path}
	if prevCkpt != nil {
		keep = append(keep, prevCkpt.Path)
	}
	// Only this node's own (on a checkpoint URI that several nodes
	// share, the others' are theirs to delete).
	_ = it.Call(ctx, "path.gc", map[string]any{"dir": dir, "keep": keep, "node": s.reg.ID()}, nil)
}

// checkpointName is the file name of a checkpoint at log index index
// (20 digits) that node began at t: unique among the nodes that may
// share a checkpoint directory.
func checkpointName(index string, t time.Time, node string) string {
	return index + "-" + strconv.FormatInt(t.UnixMilli(), 10) + "-" + node
}

// removeCheckpoints deletes a dropped RDD's checkpoints.
func (o *owned) removeCheckpoints() {
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	it, err := o.d.s.sess.Interpreter(ctx, o.sid)
	if err != nil {
		return
	}
	if err := o.d.ownCheckpoints(o.name, it); err != nil {
		o.d.s.logf("cannot delete checkpoints of %q: %v", o.name, err)
		return
	}
	_ = it.Call(ctx, "path.delete", map[string]any{"path": o.d.checkpointDir(o.name)}, nil)
}

// checkLoad checkpoints a durable RDD whose bulk load has ended.
func (o *owned) checkLoad() {
	o.mu.Lock()
	loading := o.loading
	o.mu.Unlock()
	if !loading {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadStatusTimeout)
	defer cancel()
	info, err := o.d.s.Describe(ctx, o.name)
	if err != nil || (info.Load != nil && info.Load.State == LoadRunning) {
		return
	}
	o.mu.Lock()
	o.loading, o.loadCkpt = false, true
	o.since++ // the loaded rows are not in any checkpoint yet: the policy retries if this fails
	o.mu.Unlock()
	o.maybeCheckpoint(true)
}
