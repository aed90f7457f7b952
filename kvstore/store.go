package kvstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/fileroot"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge"
)

// Timeouts and bounds. Every one is a default or a fixed limit of this
// package; DurableConfig overrides the checkpoint policy.
const (
	// defaultCallTimeout bounds one interpreter call for a KV request.
	defaultCallTimeout = time.Minute
	// defaultRecoveryWait bounds a read's wait for a durable RDD being
	// rebuilt before it answers 503 with Retry-After.
	defaultRecoveryWait = 5 * time.Second
	// listTimeout bounds how long a listing waits for an owner's key
	// counts; listing never waits for a starting session.
	listTimeout = 2 * time.Second
	// saveTimeout bounds a save, which writes every key.
	saveTimeout = 30 * time.Minute

	// reconcileEvery is how often a node checks which durable RDDs it
	// owns even when the registry did not say something changed.
	reconcileEvery = time.Second
	// ownedWait bounds how long a call on a durable RDD waits for this
	// node to start its pusher (reconcile runs at once when poked), and
	// ownedPoll is how often it looks.
	ownedWait = 5 * time.Second
	ownedPoll = 10 * time.Millisecond
	// interpreterWait bounds one wait of a pusher for its session's
	// interpreter; the pusher waits again while the session is starting.
	interpreterWait = 30 * time.Second
	// pushRetry is the pause after a failed kv.apply before the retry.
	pushRetry = 200 * time.Millisecond
	// rebuildRetry doubles per failed rebuild up to rebuildRetryMax.
	rebuildRetry    = 200 * time.Millisecond
	rebuildRetryMax = 5 * time.Second
	// checkpointTimeout bounds writing one checkpoint.
	checkpointTimeout = 30 * time.Minute
	// removeTimeout bounds deleting a dropped RDD's checkpoints.
	removeTimeout = time.Minute
	// loadStatusTimeout bounds the pusher's question whether a bulk load
	// on its RDD has ended.
	loadStatusTimeout = 5 * time.Second

	// pushBatch and pushBytes bound one kv.apply call (bridge frames are
	// limited to 64 MiB).
	pushBatch = 20_000
	pushBytes = 16 << 20
	// resultsKept bounds the per-entry results a pusher remembers for
	// writers (and for retried idempotent writes) that have not collected
	// them yet.
	resultsKept = 1 << 16
	// entryBytes bounds the keys and values of one logged entry: a
	// follower owner forwards it to the leader in one request (bodies <=
	// 4 MiB), and it is one Raft log entry.
	entryBytes = 2 << 20
	// setCallBytes bounds the keys and values of one kv.set call.
	setCallBytes = 32 << 20
)

// Interpreter is what the store needs from a session's interpreter: one
// call of an op (sparkbridge/DESIGN.md lists them). *sparkbridge.Interpreter
// satisfies it; Call is safe for concurrent use.
type Interpreter interface {
	Call(ctx context.Context, op string, args any, out any) error
}

// Registry is what the store needs from the Raft registry.
type Registry interface {
	ID() string
	Apply(cluster.Command) (any, error)
	RDD(name string) (cluster.RDD, bool)
	RDDs() []cluster.RDD
	Session(id int64) (cluster.Session, bool)
	Member(id string) (cluster.Member, bool)
	// NodeCount is the number of registered nodes, up or down.
	NodeCount() int
	LeastLoaded() (string, bool)
	// Placement lists the nodes new work may go to, least loaded first.
	Placement() []string
	TailAfter(name string, after uint64, maxKeys int, maxBytes int64) ([]*cluster.TailEntry, uint64, bool)
	WatchRDDs(fn func(rdd string, index uint64, write bool))
	CatchUp() error
	ReadBarrier() error
}

// Sessions is what the store needs from the session manager.
type Sessions interface {
	// Interpreter returns the session's interpreter once it can serve KV
	// calls, waiting for a starting one (sessions.Manager.Interpreter).
	Interpreter(ctx context.Context, id int64) (Interpreter, error)
	Resolve(idOrName string) (int64, error)
	DefaultSession() (int64, error)
	// IfStarted calls fn with the interpreter of a session that runs on
	// this node and has finished bring-up, serialised with bring-up, and
	// does nothing otherwise (sessions.Manager.IfStarted).
	IfStarted(id int64, fn func(ctx context.Context, it Interpreter) error) error
	Get(id int64) (sessions.Info, error)
}

// FromManager adapts the session manager to Sessions: it is the one
// place that knows Interpreter returns a *sparkbridge.Interpreter.
func FromManager(m *sessions.Manager) Sessions { return manager{m} }

type manager struct{ *sessions.Manager }

func (m manager) IfStarted(id int64, fn func(ctx context.Context, it Interpreter) error) error {
	return m.Manager.IfStarted(id, func(ctx context.Context, it *sparkbridge.Interpreter) error { return fn(ctx, it) })
}

func (m manager) Interpreter(ctx context.Context, id int64) (Interpreter, error) {
	it, err := m.Manager.Interpreter(ctx, id)
	if err != nil {
		return nil, err // never a non-nil interface holding a nil pointer
	}
	return it, nil
}

// RDD states shown in listings.
const (
	StateReady    = "ready"
	StateStarting = "starting"
	StateLoading  = "loading" // ready, and a bulk load is running
	StateLost     = "lost"
	// StateRecovering: a durable RDD is being rebuilt from its checkpoint
	// and log on its (new) owner; calls answer 503 with Retry-After.
	StateRecovering = "recovering"
)

// RDDInfo describes a shared RDD for listings.
type RDDInfo struct {
	Name      string `json:"name"`
	SessionID int64  `json:"session"`
	Node      string `json:"node"`
	Mode      string `json:"mode"`
	State     string `json:"state"`
	Keys      *int64 `json:"keys"` // null when the owner cannot be asked now
	CreatedAt int64  `json:"created_at"`
	Message   string `json:"message,omitempty"`
	// Load is the running bulk load's progress, or the last one's outcome.
	Load *LoadStatus `json:"load,omitempty"`
	// Engine describes the KV engine's state in the owner (partitions,
	// pending writes, compactions, lookup jobs).
	Engine map[string]any `json:"engine,omitempty"`
	// Durable RDDs: the last checkpoint and the writes logged since.
	Checkpoint *cluster.CheckpointRef `json:"checkpoint,omitempty"`
	TailWrites *int                   `json:"tail_writes,omitempty"`
	LastWrite  uint64                 `json:"last_write_index,omitempty"`
	// A durable RDD that is recovering: why its last try failed (one
	// line), and when the next try may start (unix ms; absent: it is
	// under way or due now). Failing session starts back off.
	LastError     string `json:"last_error,omitempty"`
	NextAttemptAt int64  `json:"next_attempt_at,omitempty"`
	// Replicas is the number of copies the RDD wants (its registry
	// record), the owner's included; Copies are the ones that exist.
	Replicas        int    `json:"replicas"`
	Copies          []Copy `json:"copies"`
	UnderReplicated bool   `json:"under_replicated"`
	// AtRisk says why losing one machine would lose the RDD's
	// acknowledged writes (AtRiskOneLocalCopy), or is empty.
	AtRisk string `json:"at_risk,omitempty"`
}

// Copy is one copy of a shared RDD: a session that holds its data.
type Copy struct {
	Node    string `json:"node"`
	Session int64  `json:"session"`
	// Role is "owner" (writes go to it) or "copy".
	Role string `json:"role"`
	// AppliedIndex is the last write-log index the copy holds, when the
	// node answering knows it (it runs the copy's pusher); durable only.
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	// CheckpointIndex is the log index of the copy's last checkpoint.
	CheckpointIndex uint64 `json:"checkpoint_index,omitempty"`
}

// startFailures is what the store asks of the session manager about its
// default session's failed starts (sessions.Manager.DefaultStartFailure).
type startFailures interface {
	DefaultStartFailure() (sessions.StartFailure, bool)
}

// ownerInfo is what the owning interpreter reports about one RDD.
type ownerInfo struct {
	Name  string         `msgpack:"name"`
	Count int64          `msgpack:"count"`
	Stats map[string]any `msgpack:"stats"`
	Load  *LoadStatus    `msgpack:"load"`
}

// Store gives key/value semantics to shared RDDs: it validates input,
// coalesces concurrent calls on one RDD (coalesce.go) and routes each call
// to the interpreter of the session that owns the RDD.
type Store struct {
	reg    Registry
	sess   Sessions
	limits Limits
	// callTimeout bounds one interpreter call.
	callTimeout time.Duration
	batch       sync.Map // rdd name -> *batchers
	metrics     *metrics // nil until Instrument
	// recoveryWait bounds a read's wait for a durable RDD being rebuilt
	// before it answers 503 with Retry-After.
	recoveryWait time.Duration
	dur          *durable // the durable back end; off until EnableDurable
	hooks        DurabilityHooks
	log          func(string)
	createMu     sync.Mutex // serialises the MaxRDDs check with the create
	// files confines bulk load and save paths; the zero Roots refuses all.
	files *fileroot.Roots
}

// SetFileRoots sets where bulk loads and saves may read and write.
func (s *Store) SetFileRoots(r *fileroot.Roots) { s.files = r }

// SetLogger sets where the store reports background events (adoptions,
// rebuilds, checkpoint failures).
func (s *Store) SetLogger(fn func(string)) { s.log = fn }

func (s *Store) logf(format string, args ...any) {
	if s.log != nil {
		s.log(fmt.Sprintf(format, args...))
	}
}

// New returns a store over the registry and the session manager.
func New(reg Registry, sess Sessions, limits Limits) *Store {
	limits.fill()
	s := &Store{reg: reg, sess: sess, limits: limits, callTimeout: defaultCallTimeout, recoveryWait: defaultRecoveryWait,
		files: &fileroot.Roots{}}
	s.dur = newDurable(s)
	return s
}

// Limits returns the limits in force.
func (s *Store) Limits() Limits { return s.limits }

// CreateRequest asks for a new shared RDD. Session is an id or a name;
// empty means this node's default session. Replicas is the number of
// copies wanted; nil means the default (defaultReplicas).
type CreateRequest struct {
	Name     string
	Session  string
	Mode     string
	Replicas *int
}

// Create registers a shared RDD and makes it exist in its session.
func (s *Store) Create(req CreateRequest) (RDDInfo, error) {
	if err := ValidateName(req.Name); err != nil {
		return RDDInfo{}, err
	}
	switch req.Mode {
	case "":
		req.Mode = cluster.ModeDurable
		if !s.dur.on {
			req.Mode = cluster.ModeMemory
		}
	case cluster.ModeMemory:
	case cluster.ModeDurable:
		if !s.dur.on {
			return RDDInfo{}, fmt.Errorf("%w: durable rdds are not enabled on this node", ErrInvalid)
		}
	default:
		return RDDInfo{}, fmt.Errorf("%w: mode %q is unknown; use %q or %q", ErrInvalid, req.Mode, cluster.ModeDurable, cluster.ModeMemory)
	}
	// The node count, the name and the sessions are read from this
	// node's registry: bring it up to the leader's first (a node that
	// just joined with an empty data dir may still be catching up, and
	// would count too few nodes). Without a leader the create's own
	// registry command fails below.
	_ = s.reg.CatchUp()
	replicas, err := s.replicasFor(req)
	if err != nil {
		return RDDInfo{}, err
	}
	if _, ok := s.reg.RDD(req.Name); ok {
		return RDDInfo{}, fmt.Errorf("%w: %q", cluster.ErrRDDExists, req.Name)
	}
	var sid int64
	if req.Session == "" {
		sid, err = s.sess.DefaultSession()
	} else {
		sid, err = s.sess.Resolve(req.Session)
	}
	if err != nil {
		return RDDInfo{}, err
	}
	// Creates through this node are serialised so the count holds; a
	// create through another node at the same moment can pass it by one.
	s.createMu.Lock()
	if err := s.checkRDDLimit(sid); err != nil {
		s.createMu.Unlock()
		return RDDInfo{}, err
	}
	_, err = s.reg.Apply(cluster.Command{Type: cluster.CmdCreateRDD, Body: &cluster.CreateRDD{
		Name: req.Name, SessionID: sid, Mode: req.Mode, CreatedAt: time.Now().UnixMilli(), Replicas: replicas,
	}})
	s.createMu.Unlock()
	if err != nil {
		return RDDInfo{}, err
	}
	s.dur.poke() // a durable RDD's pusher starts now, not at the next tick
	if err := s.created(sid, req.Name); err != nil {
		// Undo the registration so the name is not left pointing nowhere.
		_, _ = s.reg.Apply(cluster.Command{Type: cluster.CmdDropRDD, Body: &cluster.DropRDD{Name: req.Name}})
		return RDDInfo{}, fmt.Errorf("cannot create %q in session %d: %w", req.Name, sid, err)
	}
	if req.Mode == cluster.ModeDurable {
		local := false
		_ = s.sess.IfStarted(sid, func(context.Context, Interpreter) error { local = true; return nil })
		if local {
			s.awaitPusherReady(req.Name, sid)
		}
	}
	return s.Describe(context.Background(), req.Name)
}

// awaitPusherReady waits, up to ownedWait, for the pusher of a durable
// RDD just created in a session of this node to mark it ready, so the
// create answers "ready" rather than racing the pusher. A pusher slower
// than that leaves the RDD described as it is (recovering).
func (s *Store) awaitPusherReady(name string, sid int64) {
	ctx, cancel := context.WithTimeout(context.Background(), ownedWait)
	defer cancel()
	o, err := s.dur.ownedHere(ctx, name, sid)
	if err != nil {
		return
	}
	_ = o.await(ctx, func() bool { return o.ready })
}

// replicasFor checks the copies a create asks for against the cluster's
// node count (registered nodes, up or down: a create with too few live
// ones is taken, and the RDD reported under-replicated), or gives the
// default: 2 for a durable RDD in a cluster of 2 or more nodes, else 1.
// req.Mode is already filled.
func (s *Store) replicasFor(req CreateRequest) (int, error) {
	nodes := max(s.reg.NodeCount(), 1)
	if req.Replicas == nil {
		if req.Mode == cluster.ModeDurable && nodes >= 2 {
			return 2, nil
		}
		return 1, nil
	}
	limit, why := nodes, "the cluster's node count"
	if limit > cluster.MaxReplicas {
		limit, why = cluster.MaxReplicas, "the most an RDD may want"
	}
	if n := *req.Replicas; n < 1 || n > limit {
		return 0, fmt.Errorf("%w: replicas must be between 1 and %d (%s), not %d", ErrInvalid, limit, why, n)
	}
	return *req.Replicas, nil
}

// checkRDDLimit refuses a new RDD in session sid when the node that runs
// it holds Limits.MaxRDDs already.
func (s *Store) checkRDDLimit(sid int64) error {
	sess, ok := s.reg.Session(sid)
	if !ok {
		return nil // the registry refuses the create
	}
	n := 0
	for _, r := range s.reg.RDDs() {
		if rs, ok := s.reg.Session(r.SessionID); ok && rs.Node == sess.Node {
			n++
		}
	}
	if n >= s.limits.MaxRDDs {
		return fmt.Errorf("%w: node %s holds its maximum of %d shared rdds (--max-rdds)", ErrLimit, sess.Node, s.limits.MaxRDDs)
	}
	return nil
}

// Drop removes a shared RDD from the registry and from its session.
func (s *Store) Drop(name string) error {
	rec, ok := s.reg.RDD(name)
	if !ok {
		return fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
	}
	if _, err := s.reg.Apply(cluster.Command{Type: cluster.CmdDropRDD, Body: &cluster.DropRDD{Name: name}}); err != nil {
		return err
	}
	s.forget(name)
	return s.dropped(rec.SessionID, name)
}

// List describes every shared RDD with its key count where the owner can
// answer within a short time.
func (s *Store) List(ctx context.Context) []RDDInfo {
	recs := s.reg.RDDs()
	out := make([]RDDInfo, len(recs))
	counts := s.counts(ctx, recs)
	for i, r := range recs {
		out[i] = s.describe(r, counts)
	}
	return out
}

// Describe describes one shared RDD.
func (s *Store) Describe(ctx context.Context, name string) (RDDInfo, error) {
	r, ok := s.reg.RDD(name)
	if !ok {
		return RDDInfo{}, fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
	}
	return s.describe(r, s.counts(ctx, []cluster.RDD{r})), nil
}

func (s *Store) describe(r cluster.RDD, counts map[string]ownerInfo) RDDInfo {
	info := RDDInfo{Name: r.Name, SessionID: r.SessionID, Mode: r.Mode, CreatedAt: r.CreatedAt, State: StateStarting}
	info.Replicas, info.Copies = r.Wanted(), s.copies(r)
	info.UnderReplicated = len(info.Copies) < info.Replicas
	info.AtRisk = s.atRisk(r, len(info.Copies), s.reg.NodeCount())
	if r.Mode == cluster.ModeDurable {
		tail := r.TailOps
		info.Checkpoint, info.TailWrites, info.LastWrite = r.Checkpoint, &tail, r.LastWrite
	}
	if rec, ok := s.reg.Session(r.SessionID); ok {
		info.Node = rec.Node
		if rec.Status == cluster.SessionDead {
			info.State, info.Message = StateLost, fmt.Sprintf("session %d is dead: %s", r.SessionID, rec.Reason)
			if r.Mode == cluster.ModeDurable {
				info.State, info.Message = StateRecovering, fmt.Sprintf("session %d is dead (%s); moving to a live session", r.SessionID, rec.Reason)
			}
		}
	}
	if o, ok := counts[r.Name]; ok {
		n := o.Count
		info.Keys, info.State, info.Load, info.Engine = &n, StateReady, o.Load, o.Stats
		if o.Load != nil && o.Load.State == LoadRunning {
			info.State = StateLoading
		}
		if st, msg, ok := s.dur.state(r.Name); ok && st != "" {
			info.State, info.Message = st, msg
		}
	} else if info.State == StateStarting {
		if si, err := s.sess.Get(r.SessionID); err == nil && (si.State == sessions.StateDead || si.State == sessions.StateError) {
			info.State, info.Message = StateLost, fmt.Sprintf("session %d is %s", r.SessionID, si.State)
			if r.Mode == cluster.ModeDurable {
				info.State = StateRecovering
			}
		}
	}
	if r.Mode == cluster.ModeDurable && info.State != StateReady && info.State != StateLoading {
		s.describeRecovery(&info)
	}
	return info
}

// describeRecovery adds why a durable RDD that is not ready failed its
// last try to come back, and when the next try is due.
func (s *Store) describeRecovery(info *RDDInfo) {
	if sf, ok := s.sess.(startFailures); ok {
		if f, failing := sf.DefaultStartFailure(); failing {
			info.State = StateRecovering
			info.LastError = oneLine("the session to rebuild it in failed to start: " + f.LastError)
			if !f.NextAttempt.IsZero() {
				info.NextAttemptAt = f.NextAttempt.UnixMilli()
			}
			return
		}
	}
	if msg := s.dur.adoptError(info.Name); msg != "" && info.State == StateRecovering {
		info.LastError = oneLine(msg)
	}
}

// oneLine folds s into one line of at most 300 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:297] + "..."
	}
	return s
}

// counts asks each ready session that owns one of recs for its key counts.
func (s *Store) counts(ctx context.Context, recs []cluster.RDD) map[string]ownerInfo {
	bySession := map[int64]bool{}
	for _, r := range recs {
		bySession[r.SessionID] = true
	}
	var mu sync.Mutex
	out := map[string]ownerInfo{}
	var wg sync.WaitGroup
	for sid := range bySession {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Listing never waits for a starting session.
			c, cancel := context.WithTimeout(ctx, listTimeout)
			defer cancel()
			it, err := s.readyInterpreter(c, sid)
			if err != nil {
				return
			}
			var res struct {
				RDDs []ownerInfo `msgpack:"rdds"`
			}
			if err := it.Call(c, "rdd.list", map[string]any{"details": true}, &res); err != nil {
				return
			}
			mu.Lock()
			for _, r := range res.RDDs {
				out[r.Name] = r
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// readyInterpreter returns the interpreter only if it is ready right now.
func (s *Store) readyInterpreter(ctx context.Context, sid int64) (Interpreter, error) {
	info, err := s.sess.Get(sid)
	if err != nil {
		return nil, err
	}
	if info.State != sessions.StateIdle && info.State != sessions.StateBusy {
		return nil, fmt.Errorf("session %d is %s", sid, info.State)
	}
	return s.sess.Interpreter(ctx, sid)
}

// route finds the interpreter that holds a shared RDD: its owner's, or
// for a read (readOp) on a node that holds a copy of it, the copy's
// (the read gate has checked that the copy holds what the read needs).
func (s *Store) route(ctx context.Context, name, op string) (Interpreter, error) {
	r, ok := s.reg.RDD(name)
	if !ok {
		return nil, fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
	}
	if readOp(op) {
		if sid, ok := s.dur.localCopy(r); ok {
			return s.sess.Interpreter(ctx, sid)
		}
	}
	b := s.backendFor(r)
	if err := b.admit(r); err != nil {
		return nil, err
	}
	it, err := s.sess.Interpreter(ctx, r.SessionID)
	if errors.Is(err, sessions.ErrDead) {
		return nil, b.gone(name, r.SessionID, err)
	}
	return it, err
}

func (s *Store) call(ctx context.Context, name, op string, args any, out any) error {
	return s.callWithin(ctx, s.callTimeout, name, op, args, out)
}

// callWithin routes one call to the RDD's owner, bounded by timeout, and
// maps the interpreter's error codes to the store's sentinel errors.
func (s *Store) callWithin(ctx context.Context, timeout time.Duration, name, op string, args any, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	it, err := s.route(ctx, name, op)
	if err != nil {
		return err
	}
	err = it.Call(ctx, op, args, out)
	switch {
	case err == nil:
		return nil
	case sparkbridge.IsCode(err, sparkbridge.CodeInvalid):
		return fmt.Errorf("%w: %v", ErrInvalid, remoteMessage(err))
	case sparkbridge.IsCode(err, sparkbridge.CodeRDDNotFound):
		return fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
	case sparkbridge.IsCode(err, codeBusy):
		return fmt.Errorf("%w: %v", ErrBusy, remoteMessage(err))
	}
	return err
}

// codeBusy is the interpreter's answer to a load while another one runs.
const codeBusy = "busy"

func remoteMessage(err error) string {
	var re *sparkbridge.RemoteError
	if errors.As(err, &re) {
		return re.Message
	}
	return err.Error()
}
