package httpapi

import "github.com/valyala/fasthttp"

// peerIDKey is the user value under which the peer channel stores the
// node ID proven by the caller's certificate (docs/ARCHITECTURE.md,
// "Peer trust").
const peerIDKey = "srdd.peerID"

// fromPeer reports whether the request came from another node of this
// cluster: over the peer channel (mutual TLS on the Raft port, the
// caller's node ID proven by its certificate), or, in development mode
// without peer TLS, with the cluster key. Node-to-node headers
// (X-Srdd-Hops, X-Srdd-Placed, X-Srdd-Principal) are honoured only when
// it is true.
func fromPeer(ctx *fasthttp.RequestCtx) bool {
	if id, _ := ctx.UserValue(peerIDKey).(string); id != "" {
		return true
	}
	return ctx.UserValue(peerKey) != nil
}

// peerID is the node ID proven by the caller's peer certificate, or "".
func peerID(ctx *fasthttp.RequestCtx) string {
	id, _ := ctx.UserValue(peerIDKey).(string)
	return id
}
