package node

import (
	"fmt"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// BenchmarkRequestPath is the whole request path of a real node (fasthttp,
// routing, metrics, the bridge to a real interpreter) over an in-memory
// listener: /healthz (the cheapest route: metrics are the largest share
// there) and GET of a cached key (the hot KV path). Run it at two commits
// to see what the metrics cost (deploy/README.md, "What recording costs").
func BenchmarkRequestPath(b *testing.B) {
	n, err := Start(testConfig(b, b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	base := "http://" + n.HTTPAddr()
	if err := createSessionAndWait(base, `{"kind":"pyspark"}`); err != nil {
		b.Fatal(err)
	}
	if st, body := rawDo("POST", base+"/v1/rdds", `{"name":"bench_path","session":0}`); st != 201 && st != 409 {
		b.Fatalf("create: %d %s", st, body)
	}
	if st, body := rawDo("PUT", base+"/v1/rdds/bench_path/keys/k", `{"v":1}`); st != 204 {
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
				req.SetRequestURI("http://srdd" + path)
				for pb.Next() {
					if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						panic(fmt.Sprintf("%s: %v %d", path, err, resp.StatusCode()))
					}
				}
			})
		})
	}
}
