package kvstore

import (
	"context"
	"fmt"
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

// fakeReg is a one-node registry: cluster's real state machine and apply
// rules without Raft (cluster.Local; no copy of the apply here), plus
// set-up helpers that write records as they would be after some history.
type fakeReg struct{ *cluster.Local }

func newFakeReg() *fakeReg { return &fakeReg{cluster.NewLocal("n1")} }

// addSession records an active session on this node.
func (f *fakeReg) addSession(id int64) {
	f.Update(func(s *cluster.State, _ *uint64) {
		s.Sessions[id] = &cluster.Session{ID: id, Node: f.ID(), Status: cluster.SessionActive}
	})
}

// addDurable records a durable RDD owned by session sid, with a seeded
// checkpoint and tail (either may be nil) as earlier entries left them.
func (f *fakeReg) addDurable(name string, sid int64, ck *cluster.CheckpointRef, tail []*cluster.TailEntry) {
	f.Update(func(s *cluster.State, index *uint64) {
		*index++
		r := &cluster.RDD{Name: name, SessionID: sid, Mode: cluster.ModeDurable, Incarnation: *index, Checkpoint: ck}
		for _, e := range tail {
			*index = max(*index, e.Index)
			r.Tail = append(r.Tail, e)
			r.TailOps += e.Ops()
			r.TailBytes += e.Bytes()
			r.LastWrite = e.Index
		}
		s.RDDs[name] = r
	})
}

// addMemory records a memory-mode RDD owned by session sid.
func (f *fakeReg) addMemory(name string, sid int64) {
	f.Update(func(s *cluster.State, index *uint64) {
		*index++
		s.RDDs[name] = &cluster.RDD{Name: name, SessionID: sid, Mode: cluster.ModeMemory, Incarnation: *index}
	})
}

// checkpointBehind records, through the registry's real apply, a
// checkpoint this node's pusher did not write (as a former owner's would
// be), after the log has moved on to ref.Index.
func (f *fakeReg) checkpointBehind(t *testing.T, name string, ref cluster.CheckpointRef) {
	t.Helper()
	r, _ := f.RDD(name)
	f.Update(func(_ *cluster.State, index *uint64) { *index = max(*index, ref.Index) })
	if _, err := f.Apply(cluster.Command{Type: cluster.CmdCheckpoint, Body: &cluster.Checkpoint{
		RDD: name, Session: r.SessionID, Incarnation: r.Incarnation, Index: ref.Index, Path: ref.Path}}); err != nil {
		t.Fatalf("checkpoint of %s at %d: %v", name, ref.Index, err)
	}
}

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
			return &sparkbridge.RemoteError{Code: sparkbridge.CodeRDDNotFound, Message: name}
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
			return &sparkbridge.RemoteError{Code: sparkbridge.CodeRDDNotFound, Message: path}
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
	return &sparkbridge.RemoteError{Code: sparkbridge.CodeInvalid, Message: "fake: op " + op + " is not faked"}
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
