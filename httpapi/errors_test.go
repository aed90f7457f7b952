package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/kvstore"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge"
	"github.com/valyala/fasthttp"
)

func TestFailMapsErrors(t *testing.T) {
	f := func(err error, status int, code string) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		fail(&ctx, fmt.Errorf("context: %w", err))
		var body apiError
		if e := json.Unmarshal(ctx.Response.Body(), &body); e != nil {
			t.Fatalf("%v: body %q is not JSON", err, ctx.Response.Body())
		}
		if got := ctx.Response.StatusCode(); got != status || body.Error.Code != code || body.Error.Message == "" {
			t.Fatalf("%v -> %d %+v, want %d %q", err, got, body, status, code)
		}
	}
	f(kvstore.ErrInvalid, 400, "invalid")
	f(sessions.ErrInvalid, 400, "invalid")
	f(kvstore.ErrTooLarge, 413, "too_large")
	f(kvstore.ErrNotFound, 404, "rdd_not_found")
	f(cluster.ErrRDDNotFound, 404, "rdd_not_found")
	f(sessions.ErrNotFound, 404, "session_not_found")
	f(cluster.ErrRDDExists, 409, "exists")
	f(kvstore.ErrLost, 410, "lost")
	f(sessions.ErrQueueFull, 429, "queue_full")
	f(sessions.ErrNotReady, 503, "starting")
	f(sparkbridge.ErrExited, 503, "unavailable")
	f(errors.New("surprise"), 500, "internal")
}

func TestLivyRoutesCarryMsg(t *testing.T) {
	f := func(path string, want bool) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(path)
		fail(&ctx, fmt.Errorf("context: %w", sessions.ErrInvalid))
		var body map[string]any
		if err := json.Unmarshal(ctx.Response.Body(), &body); err != nil {
			t.Fatalf("%s: body %q is not JSON", path, ctx.Response.Body())
		}
		e, _ := body["error"].(map[string]any)
		msg, has := body["msg"]
		if e == nil || e["code"] != "invalid" || has != want || (want && msg != e["message"]) {
			t.Fatalf("%s: body %v; want msg present %v and equal to error.message", path, body, want)
		}
	}
	f("/sessions", true)
	f("/sessions/3/statements", true)
	f("/batches/1", true)
	f("/version", true)
	f("/v1/rdds/states", false)
	f("/sessionsx", false)
	f("/v1/cluster", false)
}

func TestSegmentsDecodeEachPart(t *testing.T) {
	f := func(path string, want []string, ok bool) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(path)
		got, gotOK := segments(&ctx)
		if gotOK != ok || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("segments(%q) = %q, %v; want %q, %v", path, got, gotOK, want, ok)
		}
	}
	f("/v1/rdds/states/keys/ak", []string{"v1", "rdds", "states", "keys", "ak"}, true)
	f("/v1/rdds/states/keys/a%2Fb", []string{"v1", "rdds", "states", "keys", "a/b"}, true)
	f("/v1/rdds/states/keys/..", []string{"v1", "rdds", "states", "keys", ".."}, true)
	f("/v1/rdds/states/keys/x%22%29?q=1", []string{"v1", "rdds", "states", "keys", `x")`}, true)
	f("/sessions/", []string{"sessions"}, true)
	f("/", nil, true)
	f("/v1/rdds/%zz", nil, false)
}

func TestPageNeverOverflows(t *testing.T) {
	f := func(n, from, size, lo, hi int) {
		t.Helper()
		if a, b := page(n, from, size); a != lo || b != hi {
			t.Fatalf("page(%d, %d, %d) = %d, %d; want %d, %d", n, from, size, a, b, lo, hi)
		}
	}
	f(0, 0, 100, 0, 0)
	f(5, 1, 2, 1, 3)
	f(5, 4, 100, 4, 5)
	f(5, 9, 100, 5, 5)
	f(5, 1, maxQueryInt, 1, 5)
	f(5, maxQueryInt, maxQueryInt, 5, 5)
}
