package sessions

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/srdd/srdd/internal/livyapp"
	"github.com/srdd/srdd/sparkbridge"
	"github.com/vmihailenco/msgpack/v5"
)

// Livy session states.
const (
	StateStarting     = "starting"
	StateIdle         = "idle"
	StateBusy         = "busy"
	StateShuttingDown = "shutting_down"
	StateError        = "error"
	StateDead         = "dead"
	StateKilled       = "killed"
)

// Livy statement states.
const (
	StmtWaiting    = "waiting"
	StmtRunning    = "running"
	StmtAvailable  = "available"
	StmtError      = "error"
	StmtCancelling = "cancelling"
	StmtCancelled  = "cancelled"
)

// Statement is one piece of code submitted to a session (Livy's shape).
type Statement struct {
	ID        int             `json:"id"`
	Code      string          `json:"code"`
	State     string          `json:"state"`
	Output    json.RawMessage `json:"output"`
	Progress  float64         `json:"progress"`
	Started   int64           `json:"started"`
	Completed int64           `json:"completed"`

	kind string        // pyspark, sql or spark
	done chan struct{} // closed once the statement is final
}

func isFinal(state string) bool {
	return state == StmtAvailable || state == StmtError || state == StmtCancelled
}

// session is the live side of a session owned by this node: its
// interpreter, statement queue and recent log lines.
type session struct {
	id        int64
	name      string
	kind      string
	proxyUser string
	principal string // the authenticated principal that created it ("" without auth)
	internal  bool   // the node's default KV session: no principal's quota
	it        *sparkbridge.Interpreter
	hist      *history
	// revoke ends the session's capability (Config.MintToken); it runs
	// when the interpreter stops or exits (revokeToken).
	revoke func()

	// inactivity > 0 reaps the session after that long without work (a
	// statement or a KV call): Livy's ttl, srdd's idleTimeout.
	inactivity    time.Duration
	inactivityWhy string
	lastWork      atomic.Int64 // unix nanoseconds
	// heartbeat > 0 reaps the session after that long without any client
	// request about it (Livy's heartbeatTimeoutInSecond).
	heartbeat   time.Duration
	lastContact atomic.Int64 // unix nanoseconds

	mu    sync.Mutex
	state string
	appID string
	// statements are the kept ones, oldest first: ids first, first+1, ...;
	// lower ids were trimmed (HistoryLimits), and ids are never reused.
	statements []*Statement
	first      int
	stmtBytes  int64 // stmtSize of the kept statements
	histLim    HistoryLimits
	running    *Statement
	log        livyapp.Log // recent output lines
	deleting   bool

	// hydrateMu is held while the session's shared RDDs are created in the
	// interpreter (bringUp) and while one RDD is created or dropped there
	// (IfStarted), so an RDD registered during bring-up is never missed.
	// hydrated (also under mu) and kvReady change at the end of bring-up.
	hydrateMu sync.Mutex
	hydrated  bool
	kvReady   chan struct{}
	startErr  error

	queue    chan *Statement
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// touch records work (which is also client contact).
func (s *session) touch() {
	now := time.Now().UnixNano()
	s.lastWork.Store(now)
	s.lastContact.Store(now)
}

// contact records a client request about the session (a heartbeat).
func (s *session) contact() { s.lastContact.Store(time.Now().UnixNano()) }

// reapReason says why the session is due for reaping at now, or "".
func (s *session) reapReason(now time.Time) string {
	if s.inactivity > 0 {
		if idle := now.Sub(time.Unix(0, s.lastWork.Load())); idle > s.inactivity {
			return fmt.Sprintf("reaped after %s without activity (%s)", s.inactivity, s.inactivityWhy)
		}
	}
	if s.heartbeat > 0 {
		if quiet := now.Sub(time.Unix(0, s.lastContact.Load())); quiet > s.heartbeat {
			return fmt.Sprintf("reaped after %s without a client heartbeat (heartbeatTimeoutInSecond)", s.heartbeat)
		}
	}
	return ""
}

// finish makes st final: it stamps the completion time, records it on disk
// and wakes long-polling readers. Callers hold s.mu.
func (s *session) finish(st *Statement, state string, out json.RawMessage) {
	st.State, st.Output, st.Progress = state, out, 1
	if st.Completed == 0 {
		st.Completed = time.Now().UnixMilli()
	}
	s.stmtBytes += int64(len(out))
	s.trim()
	_ = s.hist.record(st, s.first, s.statements)
	close(st.done)
}

// nextID is the id the next statement gets. Callers hold s.mu.
func (s *session) nextID() int { return s.first + len(s.statements) }

// add appends a new statement and trims the oldest. Callers hold s.mu.
func (s *session) add(st *Statement) {
	s.statements = append(s.statements, st)
	s.stmtBytes += stmtSize(st)
	s.trim()
}

// trim drops the oldest finished statements while the kept ones are over
// the limits; the newest is always kept. Callers hold s.mu.
func (s *session) trim() {
	n := 0
	for n < len(s.statements)-1 && isFinal(s.statements[n].State) &&
		(len(s.statements)-n > s.histLim.MaxStatements || s.stmtBytes > s.histLim.MaxBytes) {
		s.stmtBytes -= stmtSize(s.statements[n])
		n++
	}
	if n > 0 {
		clear(s.statements[:n])
		s.statements = s.statements[n:]
		s.first += n
	}
}

// stmt returns statement sid. Callers hold s.mu.
func (s *session) stmt(sid int) (*Statement, error) {
	return pick(s.id, sid, s.first, len(s.statements), func(i int) *Statement { return s.statements[i] })
}

// pick finds statement sid among n kept ones from id first.
func pick(id int64, sid, first, n int, at func(int) *Statement) (*Statement, error) {
	switch {
	case sid >= 0 && sid < first:
		return nil, fmt.Errorf("%w: statement %d in session %d was trimmed from its history (--max-statements, --max-statement-bytes)", ErrNoStatement, sid, id)
	case sid < first || sid >= first+n:
		return nil, fmt.Errorf("%w: statement %d in session %d", ErrNoStatement, sid, id)
	}
	return at(sid - first), nil
}

// appendLog adds an output line, keeping at most maxLines lines and
// maxBytes bytes (a longer line is cut).
func (s *session) appendLog(maxLines, maxBytes int, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Append(line, maxLines, maxBytes)
}

// runStatements executes queued statements one at a time, in order.
func (s *session) runStatements(callTimeout time.Duration) {
	defer s.wg.Done()
	<-s.kvReady // statements wait for Spark and the session's shared RDDs
	for st := range s.queue {
		s.mu.Lock()
		if isFinal(st.State) || s.deleting {
			s.mu.Unlock()
			continue
		}
		if s.startErr != nil {
			s.finish(st, StmtError, errorOutput(s.startErr))
			s.mu.Unlock()
			continue
		}
		st.State, st.Started = StmtRunning, time.Now().UnixMilli()
		s.running = st
		if s.state == StateIdle {
			s.state = StateBusy
		}
		s.mu.Unlock()
		s.touch()

		var raw msgpack.RawMessage
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		err := s.it.Call(ctx, "execute", map[string]any{"code": st.Code, "kind": st.kind}, &raw)
		cancel()
		var out json.RawMessage
		if err == nil {
			out, err = toJSON(raw)
		}
		s.touch()

		s.mu.Lock()
		s.running = nil
		switch {
		case isFinal(st.State): // failed by a concurrent stop
		case st.State == StmtCancelling:
			s.finish(st, StmtCancelled, out)
		case err != nil:
			s.finish(st, StmtError, errorOutput(err))
		default:
			s.finish(st, StmtAvailable, out)
		}
		if s.state == StateBusy {
			s.state = StateIdle
		}
		s.mu.Unlock()
	}
}

// errorOutput renders a bridge failure as a Livy error output.
func errorOutput(err error) json.RawMessage {
	b, _ := json.Marshal(map[string]any{
		"status": "error", "ename": "InterpreterError", "evalue": err.Error(), "traceback": []string{},
	})
	return b
}

// failPending marks every statement that has not finished as errored.
func (s *session) failPending(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.statements {
		if !isFinal(st.State) {
			s.finish(st, StmtError, errorOutput(fmt.Errorf("%s", reason)))
		}
	}
}

// revokeToken ends the session's capability, if it has one.
func (s *session) revokeToken() {
	if s.revoke != nil {
		s.revoke()
	}
}
