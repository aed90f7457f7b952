package httpapi

import "github.com/valyala/fasthttp"

// fromPeer reports whether the request came from another node of this
// cluster. Today that means it carried the valid cluster key (route sets
// peerKey); the peer mTLS channel (issue 14, branch peertls) replaces
// it. Node-to-node headers (X-Srdd-Hops, X-Srdd-Placed, X-Srdd-Principal)
// are honoured only when it is true (docs/ARCHITECTURE.md, "Sessions
// hold no secret": forwarding headers are internal).
func fromPeer(ctx *fasthttp.RequestCtx) bool {
	return ctx.UserValue(peerKey) != nil
}
