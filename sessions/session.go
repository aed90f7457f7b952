package sessions

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

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
}

// session is the live side of a session owned by this node: its
// interpreter, statement queue and recent log lines.
type session struct {
	id   int64
	name string
	kind string
	it   *sparkbridge.Interpreter

	mu         sync.Mutex
	state      string
	appID      string
	statements []*Statement
	running    *Statement
	log        []string // ring of recent output lines
	logStart   int      // absolute index of log[0]
	deleting   bool

	// hydrateMu is held while the session's shared RDDs are created in the
	// interpreter (bringUp) and while one RDD is created or dropped there
	// (rddChanged), so an RDD registered during bring-up is never missed.
	// hydrated (also under mu) and kvReady change at the end of bring-up.
	hydrateMu sync.Mutex
	hydrated  bool
	kvReady   chan struct{}
	startErr  error

	queue    chan *Statement
	wg       sync.WaitGroup
	stopOnce sync.Once
}

func (s *session) appendLog(max int, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, line)
	if over := len(s.log) - max; over > 0 {
		s.log = append(s.log[:0], s.log[over:]...)
		s.logStart += over
	}
}

// runStatements executes queued statements one at a time, in order.
func (s *session) runStatements(callTimeout time.Duration) {
	defer s.wg.Done()
	<-s.kvReady // statements wait for Spark and the session's shared RDDs
	for st := range s.queue {
		s.mu.Lock()
		if st.State == StmtCancelled || s.deleting {
			s.mu.Unlock()
			continue
		}
		if s.startErr != nil {
			st.State, st.Completed = StmtError, time.Now().UnixMilli()
			st.Output = errorOutput(s.startErr)
			s.mu.Unlock()
			continue
		}
		st.State, st.Started = StmtRunning, time.Now().UnixMilli()
		s.running = st
		if s.state == StateIdle {
			s.state = StateBusy
		}
		s.mu.Unlock()

		var raw msgpack.RawMessage
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		err := s.it.Call(ctx, "execute", map[string]any{"code": st.Code}, &raw)
		cancel()
		var out json.RawMessage
		if err == nil {
			out, err = toJSON(raw)
		}

		s.mu.Lock()
		s.running = nil
		st.Completed, st.Progress = time.Now().UnixMilli(), 1
		switch {
		case st.State == StmtCancelling:
			st.State = StmtCancelled
			st.Output = out
		case err != nil:
			st.State = StmtError
			st.Output = errorOutput(err)
		default:
			st.State, st.Output = StmtAvailable, out
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
		if st.State == StmtWaiting || st.State == StmtRunning || st.State == StmtCancelling {
			st.State = StmtError
			st.Output = errorOutput(fmt.Errorf("%s", reason))
			st.Completed = time.Now().UnixMilli()
		}
	}
}
