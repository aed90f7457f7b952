package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/cluster"
	"github.com/valyala/fasthttp/fasthttputil"
)

// TestInternalCheckpoint serves the checkpoint route over a real
// fasthttp server (in memory) with a cluster key: without the key a
// caller gets 403 and nothing of the store; with it, the store's stream,
// its refusals as 400 and 404, and a stream that breaks after its first
// bytes is a broken body (no last chunk), never a short whole one.
func TestInternalCheckpoint(t *testing.T) {
	s := New(Config{Store: fakeKV{}, Sessions: fakeSessions{}, Cluster: fakeCluster{},
		Registry: prometheus.NewRegistry(), ClusterKey: "k3y"})
	ln := fasthttputil.NewInmemoryListener()
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close(); _ = ln.Close() })
	c := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.Dial() }}}
	get := func(query, key string) (int, string, error) {
		t.Helper()
		req, err := http.NewRequest("GET", "http://127.0.0.1"+cluster.CheckpointPath+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set(cluster.KeyHeader, key)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	for _, c := range []struct {
		query, key string
		status     int
		body       string
	}{
		{"?rdd=d&path=/ck/d/1", "", 403, "cluster key"},
		{"?rdd=d&path=/ck/d/1", "wrong", 403, "cluster key"},
		{"?rdd=d&path=/ck/d/1", "k3y", 200, "tar of /ck/d/1"},
		{"?rdd=nope&path=/ck/nope/1", "k3y", 404, "rdd_not_found"},
		{"?rdd=d", "k3y", 400, "rdd and path"},
		{"?path=/ck/d/1", "k3y", 400, "rdd and path"},
	} {
		st, body, err := get(c.query, c.key)
		if err != nil || st != c.status || !strings.Contains(body, c.body) {
			t.Errorf("%s key %q: %d %q %v; want %d with %q", c.query, c.key, st, body, err, c.status, c.body)
		}
	}
	if st, body, err := get("?rdd=d&path=breaks", "k3y"); err == nil {
		t.Errorf("a stream that broke read as whole: %d %q", st, body)
	}
}
