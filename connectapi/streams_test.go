package connectapi

import (
	"testing"
	"time"

	"github.com/srdd/srdd/httpapi"
)

// TestOpenStreamsAreListed: Streams lists a session's open streams on
// this node (the console's rows): method, caller, the member that routed
// it, bytes each way so far; a stream leaves the list when it ends, and
// another session's list is its own.
func TestOpenStreamsAreListed(t *testing.T) {
	r := start(t, true, Config{})
	before := time.Now()
	_, end := r.hold(t, execute, SessionHeader, "etl", "authorization", "Bearer "+r.tokens["ana"])
	routed := &rig{addr: r.peerAddr}
	_, endRouted := routed.hold(t, "/spark.connect.SparkConnectService/AnalyzePlan", SessionHeader, "1", principalHeader, "root")
	// The echo's answer may reach the client before the node counts it
	// (SendMsg returns once the bytes are queued): wait for the counts.
	var got []httpapi.ConnectStream
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got = r.srv.Streams(1)
		if len(got) == 2 && got[0].BytesOut == 4 && got[1].BytesOut == 4 || time.Now().After(deadline) {
			break
		}
	}
	if len(got) != 2 {
		t.Fatalf("session 1's open streams: %+v, want 2", got)
	}
	for i, want := range []struct{ method, principal, via string }{{"ExecutePlan", "ana", ""}, {"AnalyzePlan", "root", "n0"}} {
		s := got[i]
		if s.Method != want.method || s.Principal != want.principal || s.Via != want.via {
			t.Errorf("stream %d: %+v, want %+v", i, s, want)
		}
		if s.BytesIn != int64(len("held")) || s.BytesOut != int64(len("held")) || s.Rows != 0 {
			t.Errorf("stream %d carried %d in, %d out, %d rows; want 4, 4, 0", i, s.BytesIn, s.BytesOut, s.Rows)
		}
		if s.Started.Before(before.Add(-time.Second)) || s.Seconds < 0 || s.Seconds > 60 {
			t.Errorf("stream %d: started %v, open %v s", i, s.Started, s.Seconds)
		}
	}
	if other := r.srv.Streams(2); len(other) != 0 {
		t.Fatalf("session 2 has no stream here: %+v", other)
	}
	end()
	endRouted()
	r.waitIdle(t)
	if left := r.srv.Streams(1); len(left) != 0 {
		t.Fatalf("ended streams are still listed: %+v", left)
	}
}
