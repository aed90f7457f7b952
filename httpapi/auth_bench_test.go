package httpapi

import (
	"encoding/base64"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/internal/testutil"
	"github.com/valyala/fasthttp"
)

// BenchmarkAuthCheck is what authentication and authorization add to one
// GET of a key (issue 13: a cached get with auth stays within 3% of one
// without): the bearer-token and the cached-Basic paths through
// authenticate and authorize, without the rest of the request. Compare
// with BenchmarkRequestPath's cached get in node/ (tens of µs).
func BenchmarkAuthCheck(b *testing.B) {
	users := filepath.Join(b.TempDir(), "users.json")
	tok := testutil.WriteUsers(b, users, map[string][]string{"bench": {"read:*"}}, func(f *auth.File) {
		if err := f.AddUser("bench", nil, "", "bench-pw"); err != nil { // a password too
			b.Fatal(err)
		}
	})["bench"]
	a, err := auth.New(users, nil)
	if err != nil {
		b.Fatal(err)
	}
	s := New(Config{Registry: prometheus.NewRegistry(), Auth: a})
	keyGet := routeByName["GET /v1/rdds/{name}/keys/{key}"]
	for name, authz := range map[string]string{
		"bearer": "Bearer " + tok,
		"basic":  "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:bench-pw")),
	} {
		b.Run(name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI("/v1/rdds/states/keys/ak")
			ctx.Request.Header.Set("Authorization", authz)
			b.ReportAllocs()
			for b.Loop() {
				ctx.ResetUserValues()
				if !s.authenticate(&ctx, false) || !s.authorize(&ctx, keyGet, "states") {
					b.Fatalf("refused: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
