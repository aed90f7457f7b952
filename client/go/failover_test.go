package srddclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/srdd/srdd/internal/testutil"
)

func TestFailoverToReachableNode(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"rdds":[{"name":"states"}]}`))
	}))
	defer srv.Close()
	dead := testutil.FreeAddr(t)
	c := New(dead + ", " + strings.TrimPrefix(srv.URL, "http://"))
	rdds, err := c.ListRDDs(context.Background())
	if err != nil || len(rdds) != 1 || rdds[0].Name != "states" {
		t.Fatalf("list through a dead node then a live one: %v %v", rdds, err)
	}
	// The live node is remembered: the next call goes straight to it.
	if c.good.Load() != 1 {
		t.Fatalf("good node index = %d, want 1", c.good.Load())
	}
	if _, err := c.ListRDDs(context.Background()); err != nil || hits.Load() != 2 {
		t.Fatalf("second call: %v, hits %d", err, hits.Load())
	}
	// All nodes down: a clear error naming them.
	if _, err := New(dead + "," + testutil.FreeAddr(t)).ListRDDs(context.Background()); err == nil || !strings.Contains(err.Error(), "no node of") {
		t.Fatalf("all nodes down: %v", err)
	}
}

// A node that took the request and then failed is not retried elsewhere:
// the write may have happened, and sending it twice could apply it twice.
func TestNoFailoverAfterTheRequestReachedANode(t *testing.T) {
	var other atomic.Int32
	hijacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // took the request, then vanished
		}
	}))
	defer hijacker.Close()
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer second.Close()
	c := New(strings.TrimPrefix(hijacker.URL, "http://") + "," + strings.TrimPrefix(second.URL, "http://"))
	err := c.Set(context.Background(), "states", "ak", []byte(`"Alaska"`))
	if err == nil || other.Load() != 0 {
		t.Fatalf("set after the first node took it and failed: err %v, second node hit %d times", err, other.Load())
	}
}
