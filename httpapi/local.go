package httpapi

import (
	"github.com/srdd/srdd/auth"
	"github.com/valyala/fasthttp"
)

// localKey marks a request another front end of this node built in
// process (Local): its caller was authenticated by that front end.
// Only Local sets it; nothing a client sends can.
const localKey = "srdd.local"

// Local serves ctx, a request that another front end of this node built
// (the Redis port, package redisapi), through the same route table,
// permission rules, forwarding to the RDD's owner, metrics and audit
// log as a request on the API port. p is the caller that front end
// authenticated (nil: none; with auth, only public routes then pass).
// The Host header check does not apply: the front end has its own
// listener and its own bind rules. ctx must have been initialised
// (RequestCtx.Init); the answer is left in ctx.Response.
func (s *Server) Local(ctx *fasthttp.RequestCtx, p *auth.Principal) {
	ctx.SetUserValue(localKey, true)
	if p != nil {
		ctx.SetUserValue(principalKey, p)
	}
	s.handle(ctx)
}

// isLocal reports whether ctx came through Local.
func isLocal(ctx *fasthttp.RequestCtx) bool { return ctx.UserValue(localKey) != nil }
