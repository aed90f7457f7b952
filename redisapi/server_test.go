package redisapi

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/internal/peerid/peeridtest"
	"github.com/valyala/fasthttp"
)

// fakeAPI answers every call with status and body (a GET of a key, if
// keyBody is set, with keyStatus and keyBody), and records the calls it
// was given.
type fakeAPI struct {
	status    int
	body      string
	keyStatus int
	keyBody   string
	calls     chan string
}

func (f *fakeAPI) Local(ctx *fasthttp.RequestCtx, _ *auth.Principal) {
	select {
	case f.calls <- string(ctx.Method()) + " " + string(ctx.RequestURI()) + " " + string(ctx.PostBody()):
	default:
	}
	if f.keyBody != "" && ctx.IsGet() && strings.Contains(string(ctx.RequestURI()), "/keys/") {
		ctx.SetStatusCode(f.keyStatus)
		ctx.SetBodyString(f.keyBody)
		return
	}
	ctx.SetStatusCode(f.status)
	ctx.SetBodyString(f.body)
}

func serve(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(cfg)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return s, ln.Addr().String()
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, bufio.NewReader(c)
}

// TestServerCalls: each command is the REST call the design names, with
// the key split at the first ':' and escaped into the path: one GET is
// the single-key route, a pipelined run of GETs one batched lookup.
func TestServerCalls(t *testing.T) {
	api := &fakeAPI{status: 200, body: `{"values":{"a:b/c":"x\ny"},"missing":[]}`,
		keyStatus: 200, keyBody: `{"key":"a:b/c","value":"x\ny"}`, calls: make(chan string, 16)}
	_, addr := serve(t, Config{API: api})
	c, r := dial(t, addr)
	_, _ = io.WriteString(c, "*2\r\n$3\r\nGET\r\n$12\r\nstates:a:b/c\r\n")
	if line, _ := r.ReadString('\n'); line != "$3\r\n" { // the JSON string's text: x, LF, y
		t.Fatalf("GET answered %q", line)
	}
	_, _ = r.ReadString('\n')
	_, _ = r.ReadString('\n')
	if got := <-api.calls; got != `GET /v1/rdds/states/keys/a:b%2Fc ` {
		t.Fatalf("GET called %q", got)
	}
	_, _ = io.WriteString(c, "*2\r\n$3\r\nGET\r\n$12\r\nstates:a:b/c\r\n*2\r\n$3\r\nGET\r\n$12\r\nstates:a:b/c\r\n")
	for range 2 {
		if line, _ := r.ReadString('\n'); line != "$3\r\n" {
			t.Fatalf("pipelined GET answered %q", line)
		}
		_, _ = r.ReadString('\n')
		_, _ = r.ReadString('\n')
	}
	if got := <-api.calls; got != `POST /v1/rdds/states/get {"keys":["a:b/c"]}` {
		t.Fatalf("pipelined GETs called %q", got)
	}
}

// TestServerGetKey: the single-key route's answers: a value (its
// envelope read without a decode, or decoded if shaped otherwise), a
// missing key (null), and refusals (errors, a missing RDD included).
func TestServerGetKey(t *testing.T) {
	f := func(status int, body, want string) {
		t.Helper()
		api := &fakeAPI{keyStatus: status, keyBody: body, calls: make(chan string, 16)}
		_, addr := serve(t, Config{API: api})
		c, r := dial(t, addr)
		_, _ = io.WriteString(c, "GET states:ak\r\n")
		got, _ := r.ReadString('\n')
		if strings.HasPrefix(got, "$") && got != "$-1\r\n" {
			rest, _ := r.ReadString('\n')
			got += rest
		}
		if got != want {
			t.Fatalf("%d %s: %q, want %q", status, body, got, want)
		}
	}
	f(200, `{"key":"ak","value":"Alaska"}`, "$6\r\nAlaska\r\n")
	f(200, `{"key":"a\"k\\","value":"x\"y"}`, "$3\r\nx\"y\r\n")
	f(200, `{"key":"ak","value":{"pop":733391}}`, "$14\r\n{\"pop\":733391}\r\n")
	f(200, `{"value":"Alaska","key":"ak"}`, "$6\r\nAlaska\r\n")
	f(200, `{"key":"ak","value":"Al\u0061ska"}`, "$6\r\nAlaska\r\n")
	f(404, `{"error":{"code":"key_not_found","message":"x"}}`, "$-1\r\n")
	f(404, `{"error":{"code":"rdd_not_found","message":"x"}}`, "-ERR no such shared RDD 'states'\r\n")
	f(403, `{"error":{"code":"forbidden","message":"bob may not"}}`, "-NOPERM bob may not\r\n")
	f(200, `not json`, "-ERR cannot read the node's answer: not json\r\n")
}

// TestServerBounds: connections over MaxConns are refused, an idle one
// is closed, and a REST refusal becomes the matching Redis error.
func TestServerBounds(t *testing.T) {
	api := &fakeAPI{status: 403, body: `{"error":{"code":"forbidden","message":"bob may not"}}`, calls: make(chan string, 16)}
	_, addr := serve(t, Config{API: api, MaxConns: 1, IdleTimeout: 300 * time.Millisecond})
	c1, r1 := dial(t, addr)
	_, _ = io.WriteString(c1, "GET states:ak\r\n")
	if line, _ := r1.ReadString('\n'); line != "-NOPERM bob may not\r\n" {
		t.Fatalf("a 403 answered %q", line)
	}
	_, r2 := dial(t, addr)
	if line, _ := r2.ReadString('\n'); !strings.HasPrefix(line, "-ERR max number of clients reached") {
		t.Fatalf("a connection over MaxConns got %q", line)
	}
	// c1 says nothing more: it is closed after the idle timeout.
	if _, err := r1.ReadString('\n'); err != io.EOF {
		t.Fatalf("an idle connection: %v", err)
	}
}

// TestServerLargeRepliesLate: replies larger than the write buffer, sent
// long after the connection's previous write, arrive whole (each write
// has its own deadline).
func TestServerLargeRepliesLate(t *testing.T) {
	big := strings.Repeat("v", 100<<10)
	api := &fakeAPI{status: 200, body: `{"values":{"k":"` + big + `"},"missing":[]}`,
		keyStatus: 200, keyBody: `{"key":"k","value":"` + big + `"}`, calls: make(chan string, 16)}
	t.Cleanup(func(d time.Duration) func() { return func() { writeTimeout = d } }(writeTimeout)) // after the server's Close
	writeTimeout = 200 * time.Millisecond
	_, addr := serve(t, Config{API: api})
	c, r := dial(t, addr)
	_, _ = io.WriteString(c, "PING\r\n")
	if line, _ := r.ReadString('\n'); line != "+PONG\r\n" {
		t.Fatalf("PING: %q", line)
	}
	time.Sleep(2 * writeTimeout)
	_, _ = io.WriteString(c, "GET r:k\r\nGET r:k\r\n")
	for range 2 {
		if line, _ := r.ReadString('\n'); line != "$102400\r\n" {
			t.Fatalf("GET: %q", line)
		}
		if _, err := io.ReadFull(r, make([]byte, 100<<10+2)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServerErrors: the REST refusals become Redis's error codes.
func TestServerErrors(t *testing.T) {
	f := func(status int, body, want string) {
		t.Helper()
		api := &fakeAPI{status: status, body: body, calls: make(chan string, 16)}
		_, addr := serve(t, Config{API: api})
		c, r := dial(t, addr)
		_, _ = io.WriteString(c, "SET states:ak Alaska\r\n")
		if line, _ := r.ReadString('\n'); line != want+"\r\n" {
			t.Fatalf("%d %s: %q, want %q", status, body, line, want)
		}
	}
	f(401, `{"error":{"code":"unauthorized","message":"unknown token"}}`, "-NOAUTH unknown token")
	f(403, `{"error":{"code":"forbidden","message":"no write"}}`, "-NOPERM no write")
	f(404, `{"error":{"code":"rdd_not_found","message":"x"}}`, "-ERR no such shared RDD 'states'")
	f(400, `{"error":{"code":"invalid","message":"key too long\nreally"}}`, "-ERR key too long really")
	f(503, `{"error":{"code":"starting","message":"session 0 is starting"}}`, "-LOADING session 0 is starting")
	f(503, `{"error":{"code":"outcome_unknown","message":"logged, answer lost"}}`, "-ERR logged, answer lost")
	f(500, `not json`, "-ERR Internal Server Error")
}

// TestServerCapDoesNotWaitForASilentTLSClient: at the cap, a TCP client
// that never starts its TLS handshake must not hold the accept loop (the
// refusal's write runs the handshake, which reads): a later client is
// still refused at once.
func TestServerCapDoesNotWaitForASilentTLSClient(t *testing.T) {
	ca := peeridtest.NewCA(t, "redis-test-ca")
	f := ca.Node(t, "n1")
	kp, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	api := &fakeAPI{status: 200, body: `{}`, calls: make(chan string, 16)}
	_, addr := serve(t, Config{API: api, MaxConns: 1, TLS: &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}})
	client := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a test client of a test certificate
	first, err := tls.Dial("tcp", addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_ = first.SetDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.WriteString(first, "PING\r\n")
	if line, _ := bufio.NewReader(first).ReadString('\n'); line != "+PONG\r\n" {
		t.Fatalf("the first client: %q", line)
	}
	silent, _ := dial(t, addr) // over the cap, and it never speaks
	defer silent.Close()
	late, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	_ = late.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(late, client)
	line, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "-ERR max number of clients reached") {
		t.Fatalf("a client after a silent one, over the cap: %q %v; want refused at once", line, err)
	}
}

// delAPI answers batch deletes by RDD: "a" deletes what it is asked,
// "b" is refused (403), "c" is not reached.
type delAPI struct {
	mu    sync.Mutex
	calls []string
}

func (f *delAPI) Local(ctx *fasthttp.RequestCtx, _ *auth.Principal) {
	uri := string(ctx.RequestURI())
	f.mu.Lock()
	f.calls = append(f.calls, uri)
	f.mu.Unlock()
	switch uri {
	case "/v1/rdds/a/delete":
		ctx.SetStatusCode(200)
		ctx.SetBodyString(`{"deleted":2}`)
	case "/v1/rdds/b/delete":
		ctx.SetStatusCode(403)
		ctx.SetBodyString(`{"error":{"code":"forbidden","message":"bob may not write shared RDD 'b'"}}`)
	default:
		ctx.SetStatusCode(500)
	}
}

// TestServerDelAcrossRDDs: DEL goes RDD by RDD; a refusal after the
// first keeps its own prefix and says what was deleted before it; a
// refusal of the first RDD is the plain error; nothing is tried after.
func TestServerDelAcrossRDDs(t *testing.T) {
	api := &delAPI{}
	_, addr := serve(t, Config{API: api})
	c, r := dial(t, addr)
	_, _ = io.WriteString(c, "DEL a:x b:y a:z c:w\r\n")
	got, _ := r.ReadString('\n')
	if want := "-NOPERM bob may not write shared RDD 'b' (DEL stopped there: 2 keys of RDD 'a' were deleted before it)\r\n"; got != want {
		t.Fatalf("DEL answered %q, want %q", got, want)
	}
	_, _ = io.WriteString(c, "DEL b:y a:x\r\n")
	if got, _ := r.ReadString('\n'); got != "-NOPERM bob may not write shared RDD 'b'\r\n" {
		t.Fatalf("DEL answered %q", got)
	}
	_, _ = io.WriteString(c, "DEL a:x\r\n")
	if got, _ := r.ReadString('\n'); got != ":2\r\n" {
		t.Fatalf("DEL answered %q", got)
	}
	want := []string{"/v1/rdds/a/delete", "/v1/rdds/b/delete", "/v1/rdds/b/delete", "/v1/rdds/a/delete"}
	api.mu.Lock()
	defer api.mu.Unlock()
	if strings.Join(api.calls, " ") != strings.Join(want, " ") {
		t.Fatalf("calls %q, want %q", api.calls, want)
	}
}
