package connectapi

import (
	"slices"
	"sync"
	"time"

	"github.com/srdd/srdd/httpapi"
)

// openStreams are the streams this node runs for its own sessions (not
// the ones it routes elsewhere: those show on the session's node), for
// GET /sessions/{id}/spark-connect and the console. Each holds one of the
// node's stream slots while it is here, so there are at most MaxStreams.
type openStreams struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]openStream
}

type openStream struct {
	session int64
	info    httpapi.ConnectStream // Method, Principal, Via, Started
	st      *streamStats
}

// add records a stream that began at began; the func it answers removes
// it.
func (o *openStreams) add(session int64, principal, method, via string, began time.Time, st *streamStats) func() {
	if principal == "-" {
		principal = ""
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[uint64]openStream{}
	}
	o.next++
	id := o.next
	o.m[id] = openStream{session: session, st: st,
		info: httpapi.ConnectStream{Method: method, Principal: principal, Via: via, Started: began.UTC()}}
	return func() {
		o.mu.Lock()
		delete(o.m, id)
		o.mu.Unlock()
	}
}

// Streams answers session's open streams on this node, oldest first,
// with what each has carried so far (httpapi.ConnectStreams).
func (s *Server) Streams(session int64) []httpapi.ConnectStream {
	now := time.Now()
	s.open.mu.Lock()
	out := make([]httpapi.ConnectStream, 0, len(s.open.m))
	for _, o := range s.open.m {
		if o.session != session {
			continue
		}
		c := o.info
		c.Seconds = now.Sub(c.Started).Seconds()
		c.BytesIn, c.BytesOut, c.Rows = max(o.st.in.Load(), 0), max(o.st.out.Load(), 0), max(o.st.rows.Load(), 0)
		out = append(out, c)
	}
	s.open.mu.Unlock()
	slices.SortFunc(out, func(a, b httpapi.ConnectStream) int { return a.Started.Compare(b.Started) })
	return out
}
