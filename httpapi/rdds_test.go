package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/kvstore"
)

// createKV is the fake store that records the creates it is asked for.
type createKV struct {
	fakeKV
	got []kvstore.CreateRequest
}

func (k *createKV) Create(req kvstore.CreateRequest) (kvstore.RDDInfo, error) {
	k.got = append(k.got, req)
	return kvstore.RDDInfo{Name: req.Name}, nil
}

// TestCreateRDDBody: POST /v1/rdds refuses a field it does not take with
// 400 invalid naming the field, and asks the store for nothing (a
// misspelt "replica" used to be dropped silently); the fields it takes,
// replicas among them, reach the store as sent, an absent replicas as nil.
func TestCreateRDDBody(t *testing.T) {
	kv := &createKV{}
	s := New(Config{Store: kv, Sessions: fakeSessions{}, Batches: fakeBatches{}, Cluster: fakeCluster{},
		Registry: prometheus.NewRegistry(), PlaintextCluster: true, Version: "test"})
	for _, tc := range []struct{ body, field string }{
		{`{"name":"r2","replica":2}`, `"replica"`},
		{`{"name":"r2","replicas":2,"copies":3}`, `"copies"`},
		{`{"name":"r2","session":0,"durable":true}`, `"durable"`},
	} {
		ctx, _ := fakeRequest(s, nil, "", "POST", "/v1/rdds", tc.body)
		var e apiError
		_ = json.Unmarshal(ctx.Response.Body(), &e)
		if ctx.Response.StatusCode() != 400 || e.Error.Code != "invalid" ||
			!strings.Contains(e.Error.Message, "unknown field "+tc.field) || !strings.Contains(e.Error.Message, "replicas") {
			t.Errorf("%s: %d %s, want 400 invalid naming %s and the fields taken", tc.body, ctx.Response.StatusCode(), ctx.Response.Body(), tc.field)
		}
	}
	// A body that does not decode still says why, not "unknown field".
	ctx, _ := fakeRequest(s, nil, "", "POST", "/v1/rdds", `{"name":"r2","replicas":"two"}`)
	if ctx.Response.StatusCode() != 400 || !strings.Contains(string(ctx.Response.Body()), `field \"replicas\" must be a JSON number`) {
		t.Errorf("replicas as a string: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if len(kv.got) != 0 {
		t.Fatalf("refused bodies reached the store: %+v", kv.got)
	}

	for _, body := range []string{`{"name":"r2","session":"s","mode":"memory","replicas":3}`, `{"name":"r3"}`} {
		if ctx, _ := fakeRequest(s, nil, "", "POST", "/v1/rdds", body); ctx.Response.StatusCode() != 201 {
			t.Fatalf("%s: %d %s", body, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	if len(kv.got) != 2 {
		t.Fatalf("store asked %d times, want 2", len(kv.got))
	}
	if g := kv.got[0]; g.Name != "r2" || g.Session != "s" || g.Mode != "memory" || g.Replicas == nil || *g.Replicas != 3 {
		t.Errorf("store got %+v (replicas %v)", g, g.Replicas)
	}
	if g := kv.got[1]; g.Replicas != nil {
		t.Errorf("absent replicas reached the store as %d, want nil (the default)", *g.Replicas)
	}
}
