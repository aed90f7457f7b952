package httpapi

import (
	"strings"
	"testing"
	"time"
)

// fakeConnect has one open stream in session 1.
type fakeConnect struct{}

func (fakeConnect) Streams(session int64) []ConnectStream {
	if session != 1 {
		return nil
	}
	return []ConnectStream{{Method: "ExecutePlan", Principal: "alice", Via: "n2",
		Started: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), Seconds: 1.5, BytesIn: 10, BytesOut: 20, Rows: 3}}
}

// TestSessionConnectStreams: GET /sessions/{id}/spark-connect lists the
// session's open Spark Connect streams, or none when the node serves no
// Spark Connect; a viewer of the session may read it, a stranger not.
func TestSessionConnectStreams(t *testing.T) {
	s, tokens := fakeServer(t)
	ctx, _ := fakeRequest(s, tokens, "vic", "GET", "/sessions/1/spark-connect", "")
	if got, want := string(ctx.Response.Body()), `{"enabled":false,"id":1,"node":"n1","streams":[]}`; ctx.Response.StatusCode() != 200 || got != want {
		t.Fatalf("without Spark Connect: %d %s, want %s", ctx.Response.StatusCode(), got, want)
	}
	s.cfg.Connect = fakeConnect{}
	ctx, _ = fakeRequest(s, tokens, "vic", "GET", "/sessions/s1/spark-connect", "")
	want := `{"enabled":true,"id":1,"node":"n1","streams":[{"method":"ExecutePlan","principal":"alice","via":"n2",` +
		`"started":"2026-12-06T12:00:00Z","seconds":1.5,"bytes_in":10,"bytes_out":20,"rows":3}]}`
	if got := string(ctx.Response.Body()); ctx.Response.StatusCode() != 200 || got != want {
		t.Fatalf("with a stream: %d %s, want %s", ctx.Response.StatusCode(), got, want)
	}
	ctx, _ = fakeRequest(s, tokens, "stranger", "GET", "/sessions/1/spark-connect", "")
	if ctx.Response.StatusCode() != 403 {
		t.Fatalf("a stranger: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	ctx, _ = fakeRequest(s, tokens, "admin", "GET", "/sessions/9/spark-connect", "")
	if ctx.Response.StatusCode() != 404 || !strings.Contains(string(ctx.Response.Body()), "session_not_found") {
		t.Fatalf("an unknown session: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}
