package httpapi

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestFromPeer(t *testing.T) {
	var ctx fasthttp.RequestCtx
	if fromPeer(&ctx) || peerID(&ctx) != "" {
		t.Fatal("a plain request counts as from a peer")
	}
	ctx.SetUserValue(peerIDKey, "")
	if fromPeer(&ctx) {
		t.Fatal("an empty peer id counts")
	}
	ctx.SetUserValue(peerIDKey, "n2")
	if !fromPeer(&ctx) || peerID(&ctx) != "n2" {
		t.Fatal("the peer channel's request does not count as from a peer")
	}
	var keyed fasthttp.RequestCtx
	keyed.SetUserValue(peerKey, true)
	if !fromPeer(&keyed) || peerID(&keyed) != "" {
		t.Fatal("a request with the cluster key (development) does not count as from a peer")
	}
}
