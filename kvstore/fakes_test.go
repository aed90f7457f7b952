package kvstore

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge"
	"github.com/vmihailenco/msgpack/v5"
)

// Fakes for unit tests of the durable back end without Raft or Spark.
// The real parts are tested end to end in node/ and cmd/srdd/.

// fakeReg is a one-node registry: the parts of cluster's state machine
// the store uses (writes with idempotency keys, checkpoints that trim
// the tail, moves, tail reads).
type fakeReg struct {
	mu       sync.Mutex
	id       string
	index    uint64
	rdds     map[string]*cluster.RDD
	sessions map[int64]cluster.Session
	idem     map[string]*cluster.IdemRecord
	watch    func(rdd string, index uint64, write bool)
}

func newFakeReg() *fakeReg {
	return &fakeReg{id: "n1", rdds: map[string]*cluster.RDD{}, sessions: map[int64]cluster.Session{},
		idem: map[string]*cluster.IdemRecord{}}
}

// addSession records an active session on this node.
func (f *fakeReg) addSession(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions[id] = cluster.Session{ID: id, Node: f.id, Status: cluster.SessionActive}
}

// addDurable records a durable RDD owned by session sid, with a seeded
// checkpoint and tail (either may be nil).
func (f *fakeReg) addDurable(name string, sid int64, ck *cluster.CheckpointRef, tail []*cluster.TailEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	r := &cluster.RDD{Name: name, SessionID: sid, Mode: cluster.ModeDurable, Incarnation: f.index, Checkpoint: ck}
	for _, e := range tail {
		f.index = max(f.index, e.Index)
		f.appendLocked(r, e)
	}
	f.rdds[name] = r
}

// addMemory records a memory-mode RDD owned by session sid.
func (f *fakeReg) addMemory(name string, sid int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	f.rdds[name] = &cluster.RDD{Name: name, SessionID: sid, Mode: cluster.ModeMemory, Incarnation: f.index}
}

func (f *fakeReg) appendLocked(r *cluster.RDD, e *cluster.TailEntry) {
	r.Tail = append(r.Tail, e)
	r.TailOps += e.Ops()
	r.TailBytes += e.Bytes()
	r.LastWrite = e.Index
}

func (f *fakeReg) ID() string { return f.id }

func (f *fakeReg) Apply(c cluster.Command) (any, error) {
	f.mu.Lock()
	f.index++
	idx := f.index
	var name string
	var res any
	var err error
	switch b := c.Body.(type) {
	case *cluster.Write:
		name = b.RDD
		res, err = f.writeLocked(b, idx)
	case *cluster.Checkpoint:
		name = b.RDD
		err = f.checkpointLocked(b)
	case *cluster.MoveRDD:
		name = b.RDD
		r, ok := f.rdds[b.RDD]
		switch {
		case !ok:
			err = cluster.ErrRDDNotFound
		case r.SessionID != b.From:
			err = cluster.ErrNotOwner
		default:
			r.SessionID = b.To
		}
	default:
		err = fmt.Errorf("fakeReg: command %v is not faked", c.Type)
	}
	watch := f.watch
	f.mu.Unlock()
	if watch != nil && err == nil {
		_, write := c.Body.(*cluster.Write)
		watch(name, idx, write)
	}
	return res, err
}

// writeLocked is cluster's applyWrite, less its validation.
func (f *fakeReg) writeLocked(b *cluster.Write, index uint64) (any, error) {
	r, ok := f.rdds[b.RDD]
	if !ok {
		return nil, cluster.ErrRDDNotFound
	}
	if r.SessionID != b.Session {
		return nil, cluster.ErrNotOwner
	}
	res := &cluster.WriteResult{Groups: make([]cluster.GroupPlace, len(b.Groups))}
	e := &cluster.TailEntry{Index: index, Delete: b.Delete}
	pos := 0
	for gi, g := range b.Groups {
		keys := b.Keys[pos : pos+g]
		var vals [][]byte
		if !b.Delete {
			vals = b.Values[pos : pos+g]
		}
		pos += g
		var ik string
		if len(b.Idem) != 0 && b.Idem[gi] != "" {
			ik = b.RDD + "\x00" + b.Idem[gi]
			if rec, ok := f.idem[ik]; ok {
				if rec.Hash != b.Hashes[gi] {
					res.Groups[gi] = cluster.GroupPlace{Err: cluster.GroupErrIdempotency}
				} else {
					res.Groups[gi] = cluster.GroupPlace{Index: rec.Index, Group: rec.Group, Dup: true}
				}
				continue
			}
			f.idem[ik] = &cluster.IdemRecord{Index: index, Group: len(e.Groups), Hash: b.Hashes[gi]}
		}
		res.Groups[gi] = cluster.GroupPlace{Index: index, Group: len(e.Groups)}
		e.Groups = append(e.Groups, g)
		e.Keys = append(e.Keys, keys...)
		e.Values = append(e.Values, vals...)
	}
	if len(e.Groups) > 0 {
		f.appendLocked(r, e)
		res.Index = index
	}
	return res, nil
}

func (f *fakeReg) checkpointLocked(b *cluster.Checkpoint) error {
	r, ok := f.rdds[b.RDD]
	if !ok {
		return cluster.ErrRDDNotFound
	}
	if r.SessionID != b.Session || r.Incarnation != b.Incarnation {
		return cluster.ErrNotOwner
	}
	if r.Checkpoint != nil && b.Index <= r.Checkpoint.Index {
		return cluster.ErrStaleCheckpoint
	}
	r.Checkpoint = &cluster.CheckpointRef{Index: b.Index, Path: b.Path, Rows: b.Rows, At: b.At}
	f.trimLocked(r, b.Index)
	return nil
}

func (f *fakeReg) trimLocked(r *cluster.RDD, upTo uint64) {
	cut := sort.Search(len(r.Tail), func(i int) bool { return r.Tail[i].Index > upTo })
	rest := append([]*cluster.TailEntry(nil), r.Tail[cut:]...)
	r.Tail, r.TailOps, r.TailBytes = nil, 0, 0
	for _, e := range rest {
		f.appendLocked(r, e)
	}
}

// checkpointBehind records a checkpoint this node's pusher did not write
// (as a former owner's would be) and trims the tail it covers.
func (f *fakeReg) checkpointBehind(name string, ref cluster.CheckpointRef) {
	f.mu.Lock()
	r := f.rdds[name]
	r.Checkpoint = &ref
	f.trimLocked(r, ref.Index)
	watch := f.watch
	f.mu.Unlock()
	watch(name, ref.Index, false)
}

func (f *fakeReg) RDD(name string) (cluster.RDD, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rdds[name]
	if !ok {
		return cluster.RDD{}, false
	}
	return *r, true
}

func (f *fakeReg) RDDs() []cluster.RDD {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []cluster.RDD
	for _, r := range f.rdds {
		out = append(out, *r)
	}
	return out
}

func (f *fakeReg) Session(id int64) (cluster.Session, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	return s, ok
}

func (f *fakeReg) Member(id string) (cluster.Member, bool) {
	return cluster.Member{ID: id, Status: cluster.NodeUp}, id == f.id
}

func (f *fakeReg) LeastLoaded() (string, bool) { return f.id, true }

// TailAfter is cluster.Node.TailAfter over the fake's state.
func (f *fakeReg) TailAfter(name string, after uint64, maxKeys int, maxBytes int64) ([]*cluster.TailEntry, *cluster.CheckpointRef, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rdds[name]
	if !ok {
		return nil, nil, false
	}
	var ck *cluster.CheckpointRef
	if r.Checkpoint != nil {
		c := *r.Checkpoint
		ck = &c
	}
	var out []*cluster.TailEntry
	ops, size := 0, int64(0)
	for i := sort.Search(len(r.Tail), func(i int) bool { return r.Tail[i].Index > after }); i < len(r.Tail); i++ {
		e := r.Tail[i]
		if len(out) > 0 && (ops+e.Ops() > maxKeys || size+e.Bytes() > maxBytes) {
			break
		}
		out = append(out, e)
		ops += e.Ops()
		size += e.Bytes()
	}
	return out, ck, true
}

func (f *fakeReg) WatchRDDs(fn func(rdd string, index uint64, write bool)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watch = fn
}

func (f *fakeReg) CatchUp() error     { return nil }
func (f *fakeReg) ReadBarrier() error { return nil }

// fakeInterp is an interpreter holding RDDs as maps, answering the ops
// the durable back end calls the way srdd_interpreter does: kv.apply
// skips entries at or below the last index it applied.
type fakeInterp struct {
	mu      sync.Mutex
	data    map[string]map[string]string // rdd -> key -> JSON value
	applied map[string]uint64            // rdd -> last applied log index
	order   []uint64                     // every entry index kv.apply applied, in order
	files   map[string]map[string]string // checkpoint path -> data
	calls   map[string]int               // op -> calls
	durable map[string]bool              // rdd -> the durable flag of its last rdd.create
	gcKeep  [][]string                   // keep lists of path.gc calls

	failApply      int // fail this many kv.apply calls before applying
	failAfterApply int // then fail this many after applying (a lost answer)

	restored chan string // receives the path of each rdd.restore, if not nil
}

func newFakeInterp() *fakeInterp {
	return &fakeInterp{data: map[string]map[string]string{}, applied: map[string]uint64{},
		files: map[string]map[string]string{}, calls: map[string]int{}, durable: map[string]bool{}}
}

// reply encodes v as the interpreter would and decodes it into out.
func reply(v any, out any) error {
	if out == nil {
		return nil
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		return err
	}
	return msgpack.Unmarshal(b, out)
}

func (f *fakeInterp) Call(ctx context.Context, op string, a any, out any) error {
	args, _ := a.(map[string]any)
	name, _ := args["name"].(string)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	switch op {
	case "rdd.create":
		f.durable[name] = args["durable"] == true
		if _, ok := f.data[name]; ok {
			return &sparkbridge.RemoteError{Code: sparkbridge.CodeExists, Message: name}
		}
		f.data[name] = map[string]string{}
		return nil
	case "rdd.drop":
		if _, ok := f.data[name]; !ok {
			return &sparkbridge.RemoteError{Code: sparkbridge.CodeNotFound, Message: name}
		}
		delete(f.data, name)
		return nil
	case "rdd.list":
		return reply(map[string]any{"rdds": []any{}}, out)
	case "kv.apply":
		if f.failApply > 0 {
			f.failApply--
			return fmt.Errorf("fake: kv.apply failed")
		}
		res := f.applyLocked(name, args["entries"].([]*cluster.TailEntry))
		if f.failAfterApply > 0 {
			f.failAfterApply--
			return fmt.Errorf("fake: the answer to kv.apply was lost")
		}
		return reply(map[string]any{"results": res}, out)
	case "rdd.checkpoint":
		snap := map[string]string{}
		for k, v := range f.data[name] {
			snap[k] = v
		}
		f.files[args["path"].(string)] = snap
		return reply(map[string]any{"rows": len(snap), "bytes": 1}, out)
	case "rdd.restore":
		path := args["path"].(string)
		snap, ok := f.files[path]
		if !ok {
			return &sparkbridge.RemoteError{Code: sparkbridge.CodeNotFound, Message: path}
		}
		d := map[string]string{}
		for k, v := range snap {
			d[k] = v
		}
		f.data[name] = d
		f.applied[name] = args["index"].(uint64)
		if f.restored != nil {
			f.restored <- path
		}
		return reply(map[string]any{"rows": len(d)}, out)
	case "path.gc":
		f.gcKeep = append(f.gcKeep, args["keep"].([]string))
		return nil
	case "path.delete":
		return nil
	}
	return &sparkbridge.RemoteError{Code: sparkbridge.CodeBadRequest, Message: "fake: op " + op + " is not faked"}
}

// applyLocked applies log entries; a value 1e400 is refused per group as
// the real interpreter refuses a number that does not fit a float.
func (f *fakeInterp) applyLocked(name string, entries []*cluster.TailEntry) []entryResult {
	d := f.data[name]
	out := make([]entryResult, len(entries))
	for i, e := range entries {
		if e.Index <= f.applied[name] {
			continue
		}
		pos := 0
		for _, g := range e.Groups {
			keys := e.Keys[pos : pos+g]
			var errMsg *string
			count := 0
			if e.Delete {
				for _, k := range keys {
					if _, ok := d[k]; ok {
						count++
						delete(d, k)
					}
				}
			} else {
				vals := e.Values[pos : pos+g]
				for _, v := range vals {
					if string(v) == "1e400" {
						m := "value 1e400 does not fit a float"
						errMsg = &m
					}
				}
				if errMsg == nil {
					for j, k := range keys {
						d[k] = string(vals[j])
					}
				}
			}
			out[i].Counts = append(out[i].Counts, count)
			out[i].Errors = append(out[i].Errors, errMsg)
			pos += g
		}
		f.applied[name] = e.Index
		f.order = append(f.order, e.Index)
	}
	return out
}

func (f *fakeInterp) get(name, key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.data[name][key]
	return v, ok
}

// fakeSessions hands out one fake interpreter per session id.
type fakeSessions struct {
	its map[int64]*fakeInterp
	def int64
}

func (f *fakeSessions) Interpreter(_ context.Context, id int64) (Interpreter, error) {
	it, ok := f.its[id]
	if !ok {
		return nil, fmt.Errorf("%w: session %d", sessions.ErrDead, id)
	}
	return it, nil
}

func (f *fakeSessions) Resolve(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }
func (f *fakeSessions) DefaultSession() (int64, error)  { return f.def, nil }

func (f *fakeSessions) Get(id int64) (sessions.Info, error) {
	if _, ok := f.its[id]; !ok {
		return sessions.Info{}, sessions.ErrNotFound
	}
	return sessions.Info{ID: id, State: sessions.StateIdle}, nil
}

func (f *fakeSessions) IfStarted(id int64, fn func(ctx context.Context, it Interpreter) error) error {
	it, ok := f.its[id]
	if !ok {
		return nil
	}
	return fn(context.Background(), it)
}

// durableHarness is a store with durable RDDs on over a fake registry
// and one fake interpreter (session 1, this node's default).
type durableHarness struct {
	s   *Store
	reg *fakeReg
	it  *fakeInterp
}

// newDurableHarness seeds the registry with seed, then starts the
// durable back end; it stops when the test ends.
func newDurableHarness(t *testing.T, cfg DurableConfig, seed func(*fakeReg, *fakeInterp)) *durableHarness {
	t.Helper()
	reg, it := newFakeReg(), newFakeInterp()
	reg.addSession(1)
	if seed != nil {
		seed(reg, it)
	}
	s := New(reg, &fakeSessions{its: map[int64]*fakeInterp{1: it}, def: 1}, DefaultLimits())
	s.SetLogger(func(msg string) { t.Log(msg) })
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = 1 << 30 // checkpoints only when a test asks
		cfg.CheckpointInterval = time.Hour
	}
	s.EnableDurable(cfg, t.TempDir())
	s.StartDurable()
	t.Cleanup(s.StopDurable)
	return &durableHarness{s: s, reg: reg, it: it}
}

// waitFor polls cond (a state the code under test reaches on its own
// goroutine) until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
