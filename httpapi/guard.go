package httpapi

import (
	"bytes"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"
)

// The checks every request passes before routing, with or without auth
// (README, "Securing srdd"; docs/ARCHITECTURE.md invariant 9).

// mediaTypeOK reports whether a mutating request says what it sends in a
// way a browser cannot forge cross-site without a CORS preflight:
// Content-Type application/json (application/msgpack between nodes), or
// Livy's X-Requested-By header. Other methods pass, and so does a DELETE
// without a body (what Livy clients such as pylivy send to close a
// session): a browser cannot send a cross-site DELETE without a CORS
// preflight, which srdd never grants, and there is no body to forge.
func mediaTypeOK(ctx *fasthttp.RequestCtx) bool {
	if !ctx.IsPost() && !ctx.IsPut() && !ctx.IsDelete() && !ctx.IsPatch() {
		return true
	}
	if ctx.IsDelete() && len(ctx.Request.Body()) == 0 {
		return true
	}
	if len(ctx.Request.Header.Peek("X-Requested-By")) > 0 {
		return true
	}
	ct := ctx.Request.Header.ContentType()
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	if bytes.EqualFold(ct, []byte("application/json")) {
		return true
	}
	return bytes.EqualFold(ct, []byte("application/msgpack")) && bytes.HasPrefix(ctx.Path(), []byte("/internal/"))
}

func unsupportedMediaType(ctx *fasthttp.RequestCtx) {
	writeError(ctx, http.StatusUnsupportedMediaType, "unsupported_media_type",
		"a "+string(ctx.Method())+" must send Content-Type: application/json (or an X-Requested-By header)")
}

// loopbackHost reports whether a Host header names this machine's
// loopback: localhost, 127.0.0.0/8 or ::1, with or without a port. A node
// bound to loopback answers only such requests, which stops DNS
// rebinding (a web page's script reaching it under an attacker's name).
func loopbackHost(host []byte) bool {
	h := string(host)
	if hp, _, err := net.SplitHostPort(h); err == nil {
		h = hp
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") || strings.EqualFold(h, "localhost.") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// hostName is a Host header's host, without port or brackets, lower
// case, without a trailing dot.
func hostName(host []byte) string {
	h := string(host)
	if hp, _, err := net.SplitHostPort(h); err == nil {
		h = hp
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// hostAllowed applies the Host check (DNS rebinding, issue 25): with
// --allowed-hosts, the Host must be one of them (or, on a loopback bind,
// a loopback name); without, a loopback bind answers loopback names only
// and any other bind any Host. Members' forwarded calls carry the member's
// address and are not checked.
func (s *Server) hostAllowed(ctx *fasthttp.RequestCtx) bool {
	if peerID(ctx) != "" || s.fromMember(ctx) || isLocal(ctx) {
		return true // the peer channel, a member with the cluster key, or another front end of this node
	}
	if s.cfg.LoopbackOnly && loopbackHost(ctx.Host()) {
		return true
	}
	if len(s.cfg.AllowedHosts) > 0 {
		return slices.Contains(s.cfg.AllowedHosts, hostName(ctx.Host()))
	}
	return !s.cfg.LoopbackOnly
}

// IsLoopbackAddr reports whether a listen address (host:port) binds
// loopback only. An empty host, 0.0.0.0 or :: bind every interface.
func IsLoopbackAddr(addr string) bool {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		h = addr
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
