package sessions

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/defaults"
	"github.com/srdd/srdd/internal/fileroot"
	"github.com/srdd/srdd/internal/livyapp"
	"github.com/srdd/srdd/sparkbridge"
)

// Registry is what the manager needs from the Raft registry.
type Registry interface {
	ID() string
	Apply(cluster.Command) (any, error)
	Session(id int64) (cluster.Session, bool)
	SessionByName(name string) (cluster.Session, bool)
	Sessions() []cluster.Session
}

// Hydrator makes a session's shared RDDs exist in its interpreter (the
// store owns every rdd.* call; kvstore.Store.Hydrate). The manager calls
// it once per session, when Spark is up and before the session serves
// statements or KV calls; ctx bounds it by Config.ReadyTimeout. An error
// fails the session's start.
type Hydrator func(ctx context.Context, sessionID int64, it *sparkbridge.Interpreter) error

// Config configures the session manager. Zero values mean "default".
type Config struct {
	// Bridge is the template for every interpreter; SessionID, Logger and
	// OnOutput are filled in per session.
	Bridge           sparkbridge.Config
	ReadyTimeout     time.Duration // how long calls wait for a starting session; default 2m
	StatementTimeout time.Duration // upper bound of one statement; default 24h
	LogLines         int           // recent output lines kept per session; default 1000
	LogBytes         int           // and their bytes; default 1 MiB
	History          HistoryLimits // statements kept per session
	// MaxSessions bounds the live sessions of this node (default 16), and
	// MaxSessionsPerPrincipal those of one principal, CreateRequest.Principal
	// (default 8; "" is one anonymous principal). The node's default KV
	// session counts towards MaxSessions only.
	MaxSessions, MaxSessionsPerPrincipal int
	QueueSize                            int // waiting statements per session; default 1024
	// DataDir keeps each session's statement history; empty keeps none.
	DataDir      string
	ReapInterval time.Duration // how often inactive sessions are looked for; default 1s
	// Policy rules the Spark settings clients ask for (sparkconf.go).
	Policy Policy
	// MintToken, if set, makes the capability a new session's interpreter
	// gets (sparkbridge.Config.SessionToken) and the function that
	// revokes it; it is revoked when the interpreter stops or exits
	// (docs/ARCHITECTURE.md, "Sessions hold no secret").
	MintToken func(id int64) (token string, revoke func(), err error)
	// MaxDeadSessions is how many ended (dead or killed) sessions of this
	// node the registry and DataDir keep; the oldest go first (0: 100,
	// negative: none).
	MaxDeadSessions int
	// UIDs, if set (--interpreter-uids), gives each session's interpreter
	// a uid of its own (Bridge.RunAs is then replaced per session); the
	// uid goes back once the interpreter has exited. No free uid is a
	// limit (ErrLimit).
	UIDs   *sparkbridge.UIDPool
	Logger hclog.Logger
}

// Manager owns the sessions of this node: it records them in the
// registry, runs their interpreters and their statement queues.
type Manager struct {
	cfg Config
	reg Registry
	// startedAt (unix ms): sessions this manager creates are recorded at
	// or after it; only older ones can be leftovers of a previous run.
	startedAt int64

	mu     sync.Mutex
	live   map[int64]*session
	closed bool
	// creating counts creates under way (reserved against the session
	// limits), in all and per principal.
	creating            int
	creatingByPrincipal map[string]int

	defaultMu sync.Mutex // serialises creation of the default KV session
	hydrate   Hydrator   // set before any session is created; may be nil

	stopReaper chan struct{}
	reaperDone chan struct{}

	// starts is the default session's start history (startfail.go);
	// startFailures counts every session's failed starts.
	starts        startState
	startFailures atomic.Int64
}

// DefaultConfig is the one place the manager's defaults live: zero
// fields of a Config take them, and srdd server's flags start from them.
func DefaultConfig() Config {
	return Config{
		ReadyTimeout:            2 * time.Minute,
		StatementTimeout:        24 * time.Hour,
		LogLines:                1000,
		LogBytes:                1 << 20,
		History:                 DefaultHistoryLimits(),
		MaxSessions:             16,
		MaxSessionsPerPrincipal: 8,
		QueueSize:               1024,
		ReapInterval:            time.Second,
		Policy:                  DefaultPolicy(),
		MaxDeadSessions:         DefaultMaxDeadSessions,
	}
}

// NewManager returns a manager; call Reconcile once the registry has a leader.
func NewManager(cfg Config, reg Registry) *Manager {
	defaults.Fields(&cfg, DefaultConfig())
	cfg.History.fill() // a History or Policy set in part takes the rest
	cfg.Policy.fill()
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	m := &Manager{cfg: cfg, reg: reg, live: map[int64]*session{}, creatingByPrincipal: map[string]int{}, startedAt: time.Now().UnixMilli(),
		stopReaper: make(chan struct{}), reaperDone: make(chan struct{})}
	go m.reapLoop()
	return m
}

// SetHydrator sets what creates a session's shared RDDs when it starts.
// Call it before any session is created.
func (m *Manager) SetHydrator(h Hydrator) { m.hydrate = h }

// SetFileRoots sets where session jars, pyFiles, files and archives may
// come from (Policy.Files); call it before the manager takes requests.
func (m *Manager) SetFileRoots(r *fileroot.Roots) { m.cfg.Policy.Files = r }

// Reconcile marks dead every session the registry says runs here but for
// which this process has no interpreter (the node restarted).
func (m *Manager) Reconcile() error {
	return livyapp.Reconcile(m.reg.Sessions(),
		// A session created by this run (the node serves HTTP while it
		// starts) may not be in live yet: it is not a leftover.
		func(s cluster.Session) bool {
			return s.Node == m.reg.ID() && s.Status == cluster.SessionActive && s.CreatedAt < m.startedAt
		},
		func(s cluster.Session) bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			_, ok := m.live[s.ID]
			return ok
		},
		func(s cluster.Session) error {
			return m.markDead(s.ID, "node restarted; the interpreter and its in-memory data are gone")
		})
}

func (m *Manager) markDead(id int64, reason string) error {
	_, err := m.reg.Apply(cluster.Command{Type: cluster.CmdSetSessionStatus,
		Body: &cluster.SetSessionStatus{ID: id, Status: cluster.SessionDead, Reason: reason}})
	if err != nil && !errors.Is(err, cluster.ErrSessionNotFound) {
		return fmt.Errorf("cannot mark session %d dead: %w", id, err)
	}
	return nil
}

// Create records a new session in the registry and starts its
// interpreter. It returns while Spark is still starting.
func (m *Manager) Create(req CreateRequest) (Info, error) {
	return m.create(req, false)
}

// reserve takes a slot under the session limits for a create, or says
// which limit is reached; release gives it back.
func (m *Manager) reserve(principal string, internal bool) (release func(), err error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	live := slices.Collect(maps.Values(m.live))
	m.creating++
	if !internal {
		m.creatingByPrincipal[principal]++
	}
	total, mine := m.creating, m.creatingByPrincipal[principal]
	m.mu.Unlock()
	release = func() {
		m.mu.Lock()
		m.creating--
		if !internal {
			if m.creatingByPrincipal[principal]--; m.creatingByPrincipal[principal] == 0 {
				delete(m.creatingByPrincipal, principal)
			}
		}
		m.mu.Unlock()
	}
	for _, s := range live {
		s.mu.Lock()
		active := s.state == StateStarting || s.state == StateIdle || s.state == StateBusy
		s.mu.Unlock()
		if active {
			total++
			if !s.internal && s.principal == principal {
				mine++
			}
		}
	}
	switch {
	case total > m.cfg.MaxSessions:
		err = fmt.Errorf("%w: this node runs its maximum of %d sessions (--max-sessions)", ErrLimit, m.cfg.MaxSessions)
	case !internal && mine > m.cfg.MaxSessionsPerPrincipal:
		err = fmt.Errorf("%w: %d sessions per principal on this node (--max-sessions-per-principal)", ErrLimit, m.cfg.MaxSessionsPerPrincipal)
	}
	if err != nil {
		release()
		return nil, err
	}
	return release, nil
}

func (m *Manager) create(req CreateRequest, internal bool) (Info, error) {
	spec, err := req.spec(&m.cfg.Policy)
	if err != nil {
		return Info{}, err
	}
	release, err := m.reserve(req.Principal, internal)
	if err != nil {
		return Info{}, err
	}
	defer release()
	// The uid is taken before anything is recorded: none free is a 429
	// that changes nothing. Until the interpreter is launched, a failure
	// gives it back here; then it goes back once the interpreter is gone.
	var user *sparkbridge.User
	if m.cfg.UIDs != nil {
		if user, err = m.cfg.UIDs.Acquire(); err != nil {
			return Info{}, fmt.Errorf("%w: %v", ErrLimit, err)
		}
		defer func() { m.cfg.UIDs.Release(user) }()
	}
	v, err := m.reg.Apply(cluster.Command{Type: cluster.CmdCreateSession, Body: &cluster.CreateSession{
		Name: spec.name, Kind: spec.kind, Node: m.reg.ID(), CreatedAt: time.Now().UnixMilli(), Conf: spec.conf,
		Principal: spec.principal, ViewUsers: spec.viewUsers, ModifyUsers: spec.modUsers,
	}})
	if err != nil {
		return Info{}, err
	}
	id := v.(int64)
	s := &session{id: id, name: spec.name, kind: spec.kind, proxyUser: spec.proxyUser, state: StateStarting, histLim: m.cfg.History,
		principal: req.Principal, internal: internal,
		inactivity: spec.inactivity, inactivityWhy: spec.inactivityWhy, heartbeat: spec.heartbeat,
		kvReady: make(chan struct{}), queue: make(chan *Statement, m.cfg.QueueSize)}
	s.touch()
	if m.cfg.DataDir != "" {
		if s.hist, err = openHistory(m.cfg.DataDir, id, m.cfg.History); err != nil {
			_ = m.markDead(id, err.Error())
			return Info{}, err
		}
	}

	bc := m.cfg.Bridge
	bc.SessionID = id
	if m.cfg.MintToken != nil {
		tok, revoke, err := m.cfg.MintToken(id)
		if err != nil {
			s.hist.close()
			_ = m.markDead(id, err.Error())
			return Info{}, fmt.Errorf("%w: %v", ErrLimit, err)
		}
		bc.SessionToken, s.revoke = tok, revoke
	}
	if user != nil {
		bc.RunAs = user
	}
	bc.Logger = m.cfg.Logger.Named(fmt.Sprintf("session-%d", id))
	bc.OnOutput = func(line string) { s.appendLog(m.cfg.LogLines, m.cfg.LogBytes, line) }
	if len(spec.conf) > 0 {
		conf := map[string]string{}
		for k, v := range bc.SparkConf {
			conf[k] = v
		}
		for k, v := range spec.conf {
			conf[k] = v
		}
		bc.SparkConf = conf
	}
	// The interpreter starts in the background, as Livy's sessions do: the
	// client gets its session "starting" without waiting for Python, and
	// a failure to start shows as the session going dead (bringUp, watch).
	it := sparkbridge.Launch(bc)
	s.it = it
	if user != nil {
		// The uid is the session's until its interpreter is gone.
		pooled := user
		user = nil // not given back by the deferred Release
		go func() { <-it.Done(); m.cfg.UIDs.Release(pooled) }()
	}
	m.mu.Lock()
	if m.closed {
		// Close ran while Spark was starting: it never saw this session.
		m.mu.Unlock()
		it.Stop()
		s.revokeToken()
		s.hist.close()
		_ = m.markDead(id, "the node stopped while the session was starting")
		return Info{}, ErrClosed
	}
	m.live[id] = s
	m.mu.Unlock()

	s.wg.Add(1)
	go s.runStatements(m.cfg.StatementTimeout)
	go m.bringUp(s)
	go m.watch(s)
	return m.info(s), nil
}

// reapLoop stops sessions that saw no activity for their ttl, idleTimeout
// or heartbeatTimeoutInSecond (the smallest one given).
func (m *Manager) reapLoop() {
	defer close(m.reaperDone)
	t := time.NewTicker(m.cfg.ReapInterval)
	defer t.Stop()
	// The first tick prunes (off the start-up path: a data dir from a
	// start loop may hold hundreds of ended sessions), then every pruneEvery.
	var lastPrune time.Time
	for {
		select {
		case <-m.stopReaper:
			return
		case now := <-t.C:
			if now.Sub(lastPrune) >= pruneEvery {
				lastPrune = now
				m.pruneEnded()
			}
			m.mu.Lock()
			due := map[*session]string{}
			var lost []*session
			for _, s := range m.live {
				if rec, ok := m.reg.Session(s.id); ok && rec.Status != cluster.SessionActive {
					lost = append(lost, s) // e.g. the leader marked this node down
					continue
				}
				s.mu.Lock()
				busy := s.running != nil || s.state == StateStarting
				s.mu.Unlock()
				if why := s.reapReason(now); why != "" && !busy {
					due[s] = why
				}
			}
			m.mu.Unlock()
			for s, why := range due {
				m.reap(s, why)
			}
			for _, s := range lost {
				m.drop(s)
			}
		}
	}
}

// retire stops a live session's interpreter and forgets it, leaving the
// reason in its log.
func (m *Manager) retire(s *session, reason string) {
	m.cfg.Logger.Info("stopping session", "session", s.id, "reason", reason)
	s.appendLog(m.cfg.LogLines, m.cfg.LogBytes, "srdd: "+reason)
	m.stop(s)
	m.mu.Lock()
	delete(m.live, s.id)
	m.mu.Unlock()
}

// drop stops a live session that the registry no longer counts as active
// (its node was marked down while it was cut off, for example).
func (m *Manager) drop(s *session) {
	rec, _ := m.reg.Session(s.id)
	m.retire(s, fmt.Sprintf("the registry marked the session %s: %s", rec.Status, rec.Reason))
}

// reap stops an inactive session and records it as killed.
func (m *Manager) reap(s *session, reason string) {
	m.retire(s, reason)
	_, err := m.reg.Apply(cluster.Command{Type: cluster.CmdSetSessionStatus,
		Body: &cluster.SetSessionStatus{ID: s.id, Status: cluster.SessionKilled, Reason: reason}})
	if err != nil {
		m.cfg.Logger.Error("cannot record reaped session", "session", s.id, "error", err)
	}
}

// bringUp waits for Spark, then has the hydrator create the session's
// shared RDDs in the interpreter before the session serves KV calls.
func (m *Manager) bringUp(s *session) {
	info, err := s.it.WaitReady(context.Background())
	s.hydrateMu.Lock()
	if err == nil && m.hydrate != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ReadyTimeout)
		err = m.hydrate(ctx, s.id, s.it)
		cancel()
	}
	s.mu.Lock()
	s.appID = info.AppID
	if err != nil {
		s.startErr = err
		s.state = StateError
	} else if s.state == StateStarting {
		s.state = StateIdle
	}
	s.hydrated = true
	close(s.kvReady)
	s.mu.Unlock()
	s.hydrateMu.Unlock()
	if err != nil {
		m.cfg.Logger.Error("session failed to start", "session", s.id, "error", err)
		m.startFailed(s, err)
		_ = m.markDead(s.id, "spark failed to start: "+err.Error())
		s.it.Stop()
	} else if s.internal {
		m.startSucceeded()
	}
}

// watch notices an interpreter that exits on its own.
func (m *Manager) watch(s *session) {
	<-s.it.Done()
	s.revokeToken() // its capability dies with it
	reason := fmt.Sprintf("interpreter exited: %v", s.it.ExitErr())
	s.mu.Lock()
	deleting := s.deleting
	if !deleting {
		// One step: whoever sees the session dead finds the reason in
		// its log.
		s.state = StateDead
		s.log.Append("srdd: "+reason, m.cfg.LogLines, m.cfg.LogBytes)
	}
	s.mu.Unlock()
	if deleting {
		return
	}
	m.cfg.Logger.Error("session died", "session", s.id, "reason", reason)
	s.failPending(reason)
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	// Retried until the registry takes it (an election may be running):
	// a session left "active" with a dead interpreter would keep its
	// durable RDDs from being adopted.
	for attempt := 0; !closed; attempt++ {
		err := m.markDead(s.id, reason)
		if err == nil {
			break
		}
		if attempt%20 == 0 {
			m.cfg.Logger.Warn("cannot record a dead session yet; retrying", "session", s.id, "error", err)
		}
		time.Sleep(250 * time.Millisecond)
		m.mu.Lock()
		closed = m.closed
		m.mu.Unlock()
	}
}

// lookup returns the live session or the reason it cannot serve.
func (m *Manager) lookup(id int64) (*session, error) {
	m.mu.Lock()
	s, ok := m.live[id]
	m.mu.Unlock()
	if ok {
		return s, nil
	}
	rec, ok := m.reg.Session(id)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	case rec.Status != cluster.SessionActive:
		return nil, fmt.Errorf("%w: session %d is %s: %s", ErrDead, id, rec.Status, rec.Reason)
	case rec.Node != m.reg.ID():
		return nil, fmt.Errorf("%w: session %d is on node %s", ErrNotLocal, id, rec.Node)
	}
	return nil, fmt.Errorf("%w: session %d has no interpreter here", ErrDead, id)
}

// Interpreter returns the session's interpreter once it can serve KV
// calls, waiting up to ReadyTimeout (or ctx) while Spark starts.
func (m *Manager) Interpreter(ctx context.Context, id int64) (*sparkbridge.Interpreter, error) {
	s, err := m.lookup(id)
	if err != nil {
		return nil, err
	}
	select {
	case <-s.kvReady:
	default:
		t := time.NewTimer(m.cfg.ReadyTimeout)
		defer t.Stop()
		select {
		case <-s.kvReady:
		case <-t.C:
			return nil, fmt.Errorf("%w: session %d is still starting after %s", ErrNotReady, id, m.cfg.ReadyTimeout)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: session %d is still starting: %v", ErrNotReady, id, ctx.Err())
		}
	}
	s.touch()
	s.mu.Lock()
	startErr, state := s.startErr, s.state
	s.mu.Unlock()
	if startErr != nil {
		return nil, fmt.Errorf("%w: session %d: %v", ErrDead, id, startErr)
	}
	if state == StateDead || state == StateShuttingDown {
		return nil, fmt.Errorf("%w: session %d is %s", ErrDead, id, state)
	}
	return s.it, nil
}

// IfStarted calls fn with the interpreter of session id if that session
// runs here and has finished bring-up; otherwise it returns nil at once
// without calling fn (a session still starting hydrates from the registry
// later; a dead or remote one has nothing here to change). fn runs under
// the session's hydration lock, so a caller that changed the registry
// before calling IfStarted is seen either by bring-up or by fn, never by
// neither. ctx bounds fn by Config.ReadyTimeout. It never waits for Spark.
func (m *Manager) IfStarted(id int64, fn func(ctx context.Context, it *sparkbridge.Interpreter) error) error {
	m.mu.Lock()
	s, ok := m.live[id]
	m.mu.Unlock()
	if !ok {
		return nil
	}
	s.hydrateMu.Lock()
	defer s.hydrateMu.Unlock()
	s.mu.Lock()
	hydrated, dead := s.hydrated, s.startErr != nil || s.state == StateDead
	s.mu.Unlock()
	if !hydrated || dead {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ReadyTimeout)
	defer cancel()
	return fn(ctx, s.it)
}

// DefaultSession returns the id of this node's session for shared RDDs
// created without naming a session, creating it on first use. At most
// one default session starts at a time (a starting one is returned); after
// a failed start the next one waits for its back-off (ErrStartBackoff).
func (m *Manager) DefaultSession() (int64, error) {
	m.defaultMu.Lock()
	defer m.defaultMu.Unlock()
	prefix := "srdd-default-" + m.reg.ID()
	next := 0
	best := int64(-1)
	for _, rec := range m.reg.Sessions() {
		k, ok := defaultName(prefix, rec.Name)
		if !ok {
			continue
		}
		next = max(next, k+1)
		if rec.Status != cluster.SessionActive || rec.Node != m.reg.ID() {
			continue
		}
		m.mu.Lock()
		s, live := m.live[rec.ID]
		m.mu.Unlock()
		if !live || !s.internal {
			continue
		}
		s.mu.Lock()
		usable := s.startErr == nil && s.state != StateDead && s.state != StateShuttingDown && s.state != StateError
		s.mu.Unlock()
		if usable && rec.ID > best {
			best = rec.ID
		}
	}
	if best >= 0 {
		return best, nil
	}
	if f, ok := m.DefaultStartFailure(); ok && !f.NextAttempt.IsZero() {
		return 0, fmt.Errorf("%w %d time(s) in a row (%s); next attempt at %s",
			ErrStartBackoff, f.Failures, f.LastError, f.NextAttempt.UTC().Format(time.RFC3339))
	}
	for tries := 0; ; next++ {
		name := prefix
		if next > 0 {
			name = fmt.Sprintf("%s-%d", prefix, next)
		}
		if _, taken := m.reg.SessionByName(name); taken {
			continue
		}
		info, err := m.create(CreateRequest{Name: name, Kind: "pyspark"}, true)
		if errors.Is(err, cluster.ErrSessionExists) && tries < defaultNameTries {
			// This node's registry is behind (a node that just joined
			// with an empty data dir is still catching up): the name is
			// taken at the leader. The next one.
			tries++
			continue
		}
		if err != nil {
			return 0, err
		}
		return info.ID, nil
	}
}

// defaultNameTries bounds the names DefaultSession tries that its
// registry thought free but the leader had taken.
const defaultNameTries = 8
