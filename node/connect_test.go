package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/connectapi"
	"github.com/srdd/srdd/internal/rawgrpc"
	"github.com/srdd/srdd/internal/testutil"
	"github.com/srdd/srdd/sparkbridge/bridgetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The Spark Connect port (issue 27) on the fast tier: the fake
// interpreter's connect.start serves an echoing gRPC server
// (bridgetest/connect.go), so the whole path — srdd's auth, the session
// lookup, starting Spark Connect in the session, the proxy — runs without
// a JVM. tests/connect runs pyspark's own client on real PySpark.

const connectExecute = "/spark.connect.SparkConnectService/ExecutePlan"

// connectCall opens one stream of method to addr with metadata md
// (pairs), sends msgs and reads the answer to the end; after, if set,
// runs once the first answer has come (rawgrpc.Exchange).
func connectCall(t *testing.T, addr, method string, msgs []string, after func(), md ...string) rawgrpc.Answer {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs(md...)), time.Minute)
	defer cancel()
	frames := make([]rawgrpc.Frame, len(msgs))
	for i, m := range msgs {
		frames[i] = rawgrpc.Frame(m)
	}
	return rawgrpc.Exchange(ctx, conn, method, frames, after)
}

func TestConnectPortOnTheFake(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.json")
	tokens := testutil.WriteUsers(t, users, map[string][]string{
		"ana": {"code", "create:*", "read:*", "write:*"},
		"bob": {"code"},
		"eve": {"read:*"},
	}, nil)
	c := testConfig(t, t.TempDir())
	c.AuthFile, c.ConnectAddr = users, "127.0.0.1:0"
	n, base := startNode(t, c)
	addr := n.ConnectAddr()
	if addr == "" {
		t.Fatal("no Spark Connect address")
	}
	ana := "Bearer " + tokens["ana"]
	st, _, b := authDo2(http.DefaultClient, "POST", base+"/sessions", `{"kind":"pyspark","name":"etl"}`, tokens["ana"])
	if st != http.StatusCreated {
		t.Fatalf("create session: %d %s", st, b)
	}
	var sess struct{ ID int64 }
	_ = json.Unmarshal(b, &sess)
	id := fmt.Sprint(sess.ID)

	// A client may come before the session is up: the stream waits for it.
	a := connectCall(t, addr, connectExecute, []string{"plan"}, nil, connectapi.SessionHeader, "etl", "authorization", ana)
	if a.Err != nil || len(a.Msgs) != 1 || string(a.Msgs[0]) != "plan" {
		t.Fatalf("ExecutePlan by name: %q %v", a.Msgs, a.Err)
	}
	// The views were refreshed before each plan, not before other calls.
	if v := a.Header.Get(bridgetest.EchoHeaderViews); len(v) != 1 || v[0] != "1" {
		t.Fatalf("views refreshes seen by the first plan: %v", v)
	}
	// (An empty ConfigRequest: the port reads what a Config call sets, and
	// refuses what it cannot read.)
	a = connectCall(t, addr, "/spark.connect.SparkConnectService/Config", []string{""}, nil, connectapi.SessionHeader, id, "authorization", ana)
	if a.Err != nil || a.Header.Get(bridgetest.EchoHeaderViews)[0] != "1" {
		t.Fatalf("Config: %v %v", a.Err, a.Header)
	}

	for _, tc := range []struct {
		md   []string
		code codes.Code
		in   string
	}{
		{[]string{connectapi.SessionHeader, id}, codes.Unauthenticated, "credentials"},
		{[]string{connectapi.SessionHeader, id, "authorization", "Bearer nope"}, codes.Unauthenticated, "unknown token"},
		{[]string{"authorization", ana}, codes.InvalidArgument, connectapi.SessionHeader},
		{[]string{connectapi.SessionHeader, "nope", "authorization", ana}, codes.NotFound, "nope"},
		{[]string{connectapi.SessionHeader, id, "authorization", "Bearer " + tokens["bob"]}, codes.PermissionDenied, "modify access"},
		{[]string{connectapi.SessionHeader, id, "authorization", "Bearer " + tokens["eve"]}, codes.PermissionDenied, "code role"},
	} {
		a := connectCall(t, addr, connectExecute, nil, nil, tc.md...)
		if s := status.Convert(a.Err); s.Code() != tc.code || !strings.Contains(s.Message(), tc.in) {
			t.Errorf("metadata %v: %v %q, want %v with %q", tc.md[:2], s.Code(), s.Message(), tc.code, tc.in)
		}
	}

	// An open stream is a row of GET /sessions/{id}/spark-connect (the
	// console's); deleting the session ends its open streams, with a
	// status.
	a = connectCall(t, addr, connectExecute, []string{"first"}, func() {
		st, _, b := authDo2(http.DefaultClient, "GET", base+"/sessions/"+id+"/spark-connect", "", tokens["ana"])
		if st != http.StatusOK || !strings.Contains(string(b), `"enabled":true`) ||
			!strings.Contains(string(b), `"method":"ExecutePlan","principal":"ana","started":`) {
			t.Errorf("the session's open streams: %d %s", st, b)
		}
		if st, _, b := authDo2(http.DefaultClient, "DELETE", base+"/sessions/"+id, "", tokens["ana"]); st != http.StatusOK {
			t.Errorf("delete session: %d %s", st, b)
		}
	}, connectapi.SessionHeader, id, "authorization", ana)
	if c := status.Code(a.Err); c != codes.FailedPrecondition && c != codes.Unavailable {
		t.Fatalf("stream of a deleted session ended with %v", a.Err)
	}
	a = connectCall(t, addr, connectExecute, nil, nil, connectapi.SessionHeader, id, "authorization", ana)
	if c := status.Code(a.Err); c != codes.FailedPrecondition && c != codes.NotFound {
		t.Fatalf("a deleted session: %v", a.Err)
	}
}

// TestConnectPortProtectedMode: without a users file the port is
// loopback only, as the API's and the Redis port's.
func TestConnectPortProtectedMode(t *testing.T) {
	c := testConfig(t, t.TempDir())
	c.ConnectAddr = "0.0.0.0:0"
	if err := c.Validate(); !errors.Is(err, ErrProtectedMode) || !strings.Contains(err.Error(), "Spark Connect") {
		t.Fatalf("Validate = %v, want protected mode", err)
	}
	c.Insecure = true
	if err := c.Validate(); err != nil {
		t.Fatalf("with --insecure: %v", err)
	}
}

// TestConnectLimitsMustNotBeNegative: a negative cap or idle timeout is
// refused at start-up, not taken as "refuse every plan".
func TestConnectLimitsMustNotBeNegative(t *testing.T) {
	for _, set := range []func(c *Config){
		func(c *Config) { c.ConnectMaxExecsPerSession = -1 },
		func(c *Config) { c.ConnectMaxExecsPerPrincipal = -1 },
		func(c *Config) { c.ConnectIdleTimeout = -time.Second },
	} {
		c := testConfig(t, t.TempDir())
		set(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "negative") {
			t.Fatalf("Validate = %v, want a refusal", err)
		}
	}
}

// TestConnectRoutedToTheSessionsNode: on a cluster with peer TLS, a
// Spark Connect client may dial any node: a stream for a session on
// another node is routed there over the peer channel, with the caller
// the first node authenticated; refusals come from the first node.
func TestConnectRoutedToTheSessionsNode(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.json")
	tokens := testutil.WriteUsers(t, users, map[string][]string{"ana": {"code"}, "bob": {"code"}}, nil)
	ms := startClusterWith(t, func(c *Config) { c.AuthFile, c.ConnectAddr = users, "127.0.0.1:0" })
	var sess struct {
		ID   int64  `json:"id"`
		Node string `json:"node"`
	}
	postCreated(t, ms[0].base()+"/sessions", `{"kind":"pyspark","name":"etl"}`, "Bearer "+tokens["ana"], &sess)
	owner, other := ownerAndOther(ms, sess.Node)
	id, ana := fmt.Sprint(sess.ID), "Bearer "+tokens["ana"]

	// Through a node that does not hold the session (by name, as the
	// client's registry knows it), and through the one that does.
	for _, m := range []*member{other, owner} {
		a := connectCall(t, m.n.ConnectAddr(), connectExecute, []string{"plan"}, nil, connectapi.SessionHeader, "etl", "authorization", ana)
		if a.Err != nil || len(a.Msgs) != 1 || string(a.Msgs[0]) != "plan" {
			t.Fatalf("ExecutePlan through %s: %q %v", m.id, a.Msgs, a.Err)
		}
		if keys := a.Header.Get(bridgetest.EchoHeaderKeys); len(keys) != 1 || strings.Contains(keys[0], "x-srdd") {
			t.Fatalf("through %s the session's Spark Connect saw %v", m.id, keys)
		}
	}
	a := connectCall(t, other.n.ConnectAddr(), connectExecute, nil, nil, connectapi.SessionHeader, id, "authorization", "Bearer "+tokens["bob"])
	if s := status.Convert(a.Err); s.Code() != codes.PermissionDenied || !strings.Contains(s.Message(), "bob may not use session") {
		t.Fatalf("bob through %s: %v", other.id, a.Err)
	}
	// The session's node closed: the client is told, not left hanging.
	owner.n.Close()
	owner.n = nil
	a = connectCall(t, other.n.ConnectAddr(), connectExecute, []string{"plan"}, nil, connectapi.SessionHeader, id, "authorization", ana)
	if c := status.Code(a.Err); c != codes.Unavailable && c != codes.FailedPrecondition {
		t.Fatalf("with the session's node gone: %v", a.Err)
	}
}
