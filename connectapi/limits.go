package connectapi

import (
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// executeMethods are the streams that run a plan: the caps on
// executions per session and per principal count these.
var executeMethods = map[string]bool{
	"/spark.connect.SparkConnectService/ExecutePlan":     true,
	"/spark.connect.SparkConnectService/ReattachExecute": true,
}

// execCounts counts the executions open per session and per principal.
// An entry goes when its count falls to zero, so the maps hold at most
// one entry per open stream.
type execCounts struct {
	mu          sync.Mutex
	bySession   map[int64]int
	byPrincipal map[string]int
}

// acquire takes one execution of session id for principal who ("": no
// principal, a node without a users file: no per-principal cap), or
// answers RESOURCE_EXHAUSTED naming the cap it would pass. release gives
// it back; call it once.
func (e *execCounts) acquire(id int64, who string, perSession, perPrincipal int) (release func(), err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bySession == nil {
		e.bySession, e.byPrincipal = map[int64]int{}, map[string]int{}
	}
	switch {
	case e.bySession[id] >= perSession:
		return nil, status.Errorf(codes.ResourceExhausted, "session %d has %d Spark Connect executions running, its limit (--connect-max-executions-per-session)", id, perSession)
	case who != "" && e.byPrincipal[who] >= perPrincipal:
		return nil, status.Errorf(codes.ResourceExhausted, "%s has %d Spark Connect executions running, the limit a principal (--connect-max-executions-per-principal)", who, perPrincipal)
	}
	e.bySession[id]++
	if who != "" {
		e.byPrincipal[who]++
	}
	var once sync.Once
	return func() { once.Do(func() { e.release(id, who) }) }, nil
}

func (e *execCounts) release(id int64, who string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bySession[id]--; e.bySession[id] <= 0 {
		delete(e.bySession, id)
	}
	if who != "" {
		if e.byPrincipal[who]--; e.byPrincipal[who] <= 0 {
			delete(e.byPrincipal, who)
		}
	}
}

// open reports the executions open in session id and for who (tests).
func (e *execCounts) open(id int64, who string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return fmt.Sprintf("session %d: %d, %s: %d, entries %d/%d", id, e.bySession[id], who, e.byPrincipal[who], len(e.bySession), len(e.byPrincipal))
}
