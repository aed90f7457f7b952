package node

import (
	"encoding/base64"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/internal/testutil"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// BenchmarkRequestPath is the whole request path of a real node (fasthttp,
// routing, metrics, the bridge to a real interpreter) over an in-memory
// listener: /healthz (the cheapest route: metrics are the largest share
// there) and GET of a cached key (the hot KV path). Run it at two commits
// to see what the metrics cost (deploy/README.md, "What recording costs").
func BenchmarkRequestPath(b *testing.B) {
	benchRequestPath(b, testConfig(b, b.TempDir()), "")
}

// BenchmarkRequestPathWithAuth is BenchmarkRequestPath on a node with a
// users file, the client sending a bearer token and, apart, HTTP Basic
// (cached after the first bcrypt): the cost of authentication (issue 13
// asks a cached get to stay within 3% of the one without auth).
func BenchmarkRequestPathWithAuth(b *testing.B) {
	dir := b.TempDir()
	users := filepath.Join(dir, "users.json")
	tok, _ := auth.NewToken()
	var f auth.File
	if err := f.AddUser("bench", []string{"admin"}, tok, "bench-pw"); err != nil {
		b.Fatal(err)
	}
	if err := auth.WriteFile(users, &f); err != nil {
		b.Fatal(err)
	}
	// A fresh node for each: a node restarted on the same data dir finds
	// its previous sessions dead.
	withAuth := func(b *testing.B) Config {
		cfg := testConfig(b, b.TempDir())
		cfg.AuthFile = users
		return cfg
	}
	b.Run("bearer", func(b *testing.B) { benchRequestPath(b, withAuth(b), "Bearer "+tok) })
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:bench-pw"))
	b.Run("basic", func(b *testing.B) { benchRequestPath(b, withAuth(b), basic) })
}

func benchRequestPath(b *testing.B, cfg Config, authz string) {
	n, err := Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	base := "http://" + n.HTTPAddr()
	if st, _, body := authDo("POST", base+"/sessions", `{"kind":"pyspark"}`, authz); st != 201 {
		b.Fatalf("create session: %d %s", st, body)
	}
	err = testutil.WaitFor(4*time.Minute, func() (bool, error) {
		_, _, body := authDo("GET", base+"/sessions/0/state", "", authz)
		if strings.Contains(string(body), `"dead"`) || strings.Contains(string(body), `"error"`) {
			return false, fmt.Errorf("session failed: %s", body)
		}
		return strings.Contains(string(body), `"idle"`), nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if st, _, body := authDo("POST", base+"/v1/rdds", `{"name":"bench_path","session":0}`, authz); st != 201 && st != 409 {
		b.Fatalf("create: %d %s", st, body)
	}
	if st, _, body := authDo("PUT", base+"/v1/rdds/bench_path/keys/k", `{"v":1}`, authz); st != 204 {
		b.Fatalf("put: %d %s", st, body)
	}
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	go func() { _ = n.HTTP.Serve(ln) }()
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxConnsPerHost: 64}
	for _, path := range []string{"/healthz", "/v1/rdds/bench_path/keys/k"} {
		b.Run(path, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI("http://localhost" + path) // a loopback node answers loopback names only
				if authz != "" {
					req.Header.Set("Authorization", authz)
				}
				for pb.Next() {
					if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						panic(fmt.Sprintf("%s: %v %d", path, err, resp.StatusCode()))
					}
				}
			})
		})
	}
}
