package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/cluster"
	"github.com/valyala/fasthttp"
)

// rule is what a route needs from the caller (docs/ARCHITECTURE.md
// invariant 9). Every row of the route table (routes.go) has exactly
// one; TestEveryRouteHasARule fails on a row without. With no users
// file every rule passes.
type rule int

const (
	rulePublic        rule = iota + 1 // anyone: liveness, readiness, version
	ruleAny                           // any authenticated principal (listings)
	ruleMetrics                       // the metrics role
	ruleRead                          // read:GLOB over the RDD in the path
	ruleWrite                         // write:GLOB over the RDD in the path
	ruleCreate                        // create:GLOB over the RDD named in the body
	ruleCode                          // the code role (create a session)
	ruleSessionView                   // principal, view or modify user of the session, or admin
	ruleSessionModify                 // principal or modify user of the session, or admin
	ruleSessionCode                   // the code role and ruleSessionModify: runs code
	ruleAdmin                         // admin
	ruleCluster                       // node-to-node: the cluster key (checked before routing); with auth and no key, admin
)

// User values set by route for authorize.
const (
	principalKey = "srdd.principal"
	segKey       = "srdd.seg"
	peerKey      = "srdd.peer" // the request carried a valid cluster key
)

// principalHeader carries, between nodes, the principal the first node
// authenticated; it is believed only from a member, on the client routes
// it forwards (internalHeaders drops it everywhere else).
const principalHeader = "X-Srdd-Principal"

// vouch marks a request this node forwards with the caller it
// authenticated, when the nodes share a cluster key.
func (s *Server) vouch(ctx *fasthttp.RequestCtx, req *fasthttp.Request) {
	req.Header.Del(principalHeader)
	if p := principalOf(ctx); p != nil && !p.Capability && (s.cfg.ClusterKey != "" || s.cfg.Peers != nil) {
		req.Header.Set(principalHeader, p.Name)
		if s.cfg.Peers == nil {
			req.Header.Set(cluster.KeyHeader, s.cfg.ClusterKey)
		}
	}
}

// principalOf returns the authenticated caller, or nil.
func principalOf(ctx *fasthttp.RequestCtx) *auth.Principal {
	p, _ := ctx.UserValue(principalKey).(*auth.Principal)
	return p
}

// authenticate finds the caller from the Authorization header. It
// answers 401 and reports false when credentials are present but wrong,
// or absent where the path may need a principal (anonymous is false:
// only public and node-to-node paths may go without; the permission
// check decides after routing).
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, anonymous bool) bool {
	a := s.cfg.Auth
	if a == nil {
		return true
	}
	if isLocal(ctx) { // authenticated by the front end that built it (Local)
		if principalOf(ctx) == nil && !anonymous {
			unauthorized(ctx, "this call needs credentials")
			return false
		}
		return true
	}
	h := ctx.Request.Header.Peek("Authorization")
	var p *auth.Principal
	if as := ctx.Request.Header.Peek(principalHeader); len(as) > 0 {
		// A peer forwarding a call vouches for the caller it authenticated
		// (a client certificate does not travel with the call).
		if !s.fromMember(ctx) { // internalHeaders dropped it; kept as a second lock
			unauthorized(ctx, principalHeader+" is accepted only from members of the cluster")
			return false
		}
		var ok bool
		if p, ok = a.ByName(string(as)); !ok {
			unauthorized(ctx, "unknown user")
			return false
		}
		ctx.SetUserValue(principalKey, p)
		return true
	}
	switch {
	case len(h) == 0:
		if p = s.certPrincipal(ctx); p != nil {
			break
		}
		if anonymous {
			return true
		}
		unauthorized(ctx, "this call needs credentials: a bearer token or HTTP Basic")
		return false
	default:
		var refusal string
		if p, refusal = Credentials(a, h); p == nil {
			unauthorized(ctx, refusal)
			return false
		}
	}
	ctx.SetUserValue(principalKey, p)
	return true
}

// Credentials resolves an Authorization value (a bearer token or HTTP
// Basic) with the users file. It answers the principal, or nil and why
// the credentials were refused. The Spark Connect port (connectapi)
// reads its authorization metadata with it.
func Credentials(a *auth.Authenticator, h []byte) (*auth.Principal, string) {
	switch {
	case hasPrefixFold(h, "Bearer "):
		if p, ok := a.Token(string(bytes.TrimSpace(h[len("Bearer "):]))); ok {
			return p, ""
		}
		return nil, "unknown token"
	case hasPrefixFold(h, "Basic "):
		raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(h[len("Basic "):])))
		name, pw, found := bytes.Cut(raw, []byte(":"))
		if err == nil && found {
			if p, ok := a.Basic(string(name), string(pw)); ok {
				return p, ""
			}
		}
		return nil, "wrong user name or password"
	}
	return nil, "unsupported Authorization scheme; use Bearer or Basic"
}

// certPrincipal maps a verified TLS client certificate's CN to the
// principal of that name, if there is one.
func (s *Server) certPrincipal(ctx *fasthttp.RequestCtx) *auth.Principal {
	if !ctx.IsTLS() {
		return nil
	}
	st := ctx.TLSConnectionState()
	if st == nil || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return nil
	}
	p, _ := s.cfg.Auth.ByName(st.VerifiedChains[0][0].Subject.CommonName)
	return p
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}

func unauthorized(ctx *fasthttp.RequestCtx, msg string) {
	ctx.Response.Header.Set("WWW-Authenticate", `Basic realm="srdd"`)
	writeError(ctx, http.StatusUnauthorized, "unauthorized", msg)
}

func forbidden(ctx *fasthttp.RequestCtx, msg string) {
	writeError(ctx, http.StatusForbidden, "forbidden", msg)
}

// authorize applies rt's rule to the caller; it answers 401 or 403 and
// reports false if the caller may not make this call. rdd is the shared
// RDD the path names, if any.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, rt *route, rdd string) bool {
	if s.cfg.Auth == nil {
		return true
	}
	r := rt.rule
	if r == 0 {
		s.cfg.Logger.Error("route has no permission rule; refused", "route", rt.name)
		forbidden(ctx, "this call is not allowed")
		return false
	}
	if p := principalOf(ctx); p != nil && p.Capability {
		if !rt.capability || !s.capabilityOwns(p, rdd) {
			forbidden(ctx, capabilityRefusal)
			return false
		}
		return true
	}
	switch r {
	case rulePublic:
		return true
	case ruleCluster:
		if peerID(ctx) != "" {
			return true // a member, proven by its peer certificate (peerGate)
		}
		if s.cfg.ClusterKey != "" {
			return true // the cluster key was checked before routing
		}
		// No cluster key: nothing proves a peer, so only an admin may
		// feed the registry directly (a single node makes no such calls).
		p := principalOf(ctx)
		switch {
		case p == nil:
			unauthorized(ctx, "this call needs credentials: a bearer token or HTTP Basic")
			return false
		case !p.IsAdmin():
			forbidden(ctx, "node-to-node calls need --cluster-key on a node with --auth-file")
			return false
		}
		return true
	}
	p := principalOf(ctx)
	if r == ruleAdmin && p == nil && fromPeer(ctx) && rt.nodeMay {
		return true // a node joining (admission decides) or leaving, by its certificate or the cluster key
	}
	if p == nil {
		unauthorized(ctx, "this call needs credentials: a bearer token or HTTP Basic")
		return false
	}
	var allowed bool
	var what string
	switch r {
	case ruleAny:
		allowed = true
	case ruleMetrics:
		allowed, what = p.Can(auth.PermMetrics, ""), "the metrics role"
	case ruleCode:
		allowed, what = p.Can(auth.PermCode, ""), "the code role"
	case ruleAdmin:
		allowed, what = p.IsAdmin(), "the admin role"
	case ruleRead, ruleWrite:
		perm, kind := auth.PermRead, "read"
		if r == ruleWrite {
			perm, kind = auth.PermWrite, "write"
		}
		if allowed = p.Can(perm, rdd); !allowed { // the message costs allocations: only on refusal
			what = kind + " on shared rdd " + quote(rdd)
		}
	case ruleCreate:
		var req struct {
			Name    string     `json:"name"`
			Session sessionRef `json:"session"`
		}
		_ = json.Unmarshal(ctx.PostBody(), &req)
		allowed, what = p.Can(auth.PermCreate, req.Name), "create for shared rdd "+quote(req.Name)
		// Binding an RDD into a named session is writing into that
		// session's namespace: it takes the right to run code there too
		// (issue 25). A session that does not exist is the handler's 404.
		if rec, found := s.sessionRecord([]string{"sessions", string(req.Session)}); allowed && req.Session != "" && found {
			allowed = SessionCodeAllowed(p, rec)
			what = "create for shared rdd " + quote(req.Name) + ", and the code role with modify access to session " + string(req.Session)
		}
	case ruleSessionView, ruleSessionModify, ruleSessionCode:
		seg, _ := ctx.UserValue(segKey).([]string)
		rec, found := s.aclRecord(seg)
		if !found {
			return true // the handler answers 404
		}
		modify := sessionModify(p, rec)
		switch r {
		case ruleSessionView:
			allowed, what = modify || slices.Contains(rec.ViewUsers, p.Name), "view access to this session"
		case ruleSessionModify:
			allowed, what = modify, "modify access to this session"
		default:
			allowed, what = SessionCodeAllowed(p, rec), "the code role and modify access to this session"
		}
	}
	if !allowed {
		forbidden(ctx, p.Name+" may not make this call: it needs "+what)
	}
	return allowed
}

// sessionModify reports whether p may change session rec (its owner, a
// modify user or an admin; Livy's ACLs).
func sessionModify(p *auth.Principal, rec cluster.Session) bool {
	return p.IsAdmin() || (rec.Principal != "" && rec.Principal == p.Name) || slices.Contains(rec.ModifyUsers, p.Name)
}

// SessionCodeAllowed is ruleSessionCode, what POST /sessions/{id}/statements
// needs: p has the code role and modify access to session rec. A session
// capability never has it. The Spark Connect port (connectapi) asks it
// for every stream.
func SessionCodeAllowed(p *auth.Principal, rec cluster.Session) bool {
	return !p.Capability && sessionModify(p, rec) && p.Can(auth.PermCode, "")
}

// A session capability (auth.Authenticator.MintSession) may call only
// the routes the table marks capability: reading and writing keys of its
// session's own RDDs, as session code does with states.set. Not drop,
// load, save or checkpoint; no session, code, listing, cluster, admin or
// internal route (docs/ARCHITECTURE.md, "Sessions hold no secret").
const capabilityRefusal = "a session's token may only read and write that session's own shared RDDs, on the node that runs it"

// capabilityOwns reports whether capability p may touch the shared RDD
// named rdd ("" for a path that names none): the registry names p's
// session as its owner, and that session is active on this node.
func (s *Server) capabilityOwns(p *auth.Principal, rdd string) bool {
	if rdd == "" {
		return false
	}
	r, ok := s.cfg.Cluster.RDD(rdd)
	if !ok || r.SessionID != p.Session {
		return false
	}
	rec, ok := s.cfg.Cluster.Session(p.Session)
	return ok && rec.Status == cluster.SessionActive && rec.Node == s.cfg.Cluster.ID()
}

// sessionRecord is the registry record of the session in /sessions/{id}/...
func (s *Server) sessionRecord(seg []string) (cluster.Session, bool) {
	if len(seg) < 2 {
		return cluster.Session{}, false
	}
	id, err := s.cfg.Sessions.Resolve(seg[1])
	if err != nil {
		return cluster.Session{}, false
	}
	return s.cfg.Cluster.Session(id)
}

// aclRecord is the principal and ACLs of the session or batch in the path
// (/sessions/{id}/... or /batches/{id}/...).
func (s *Server) aclRecord(seg []string) (cluster.Session, bool) {
	if len(seg) >= 2 && seg[0] == "batches" {
		b, ok := s.batchRecord(seg[1])
		return cluster.Session{Principal: b.Principal, ViewUsers: b.ViewUsers, ModifyUsers: b.ModifyUsers}, ok
	}
	return s.sessionRecord(seg)
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// auditLog writes one line for every mutating call and every statement:
// who, which route, which RDD or session, and the status.
func (s *Server) auditLog(ctx *fasthttp.RequestCtx, route string) {
	if rt := routeByName[route]; ctx.IsGet() || ctx.IsHead() || ctx.IsOptions() || (rt != nil && (rt.rule == ruleCluster || rt.rule == ruleRead)) {
		return // reads (a batch get is a POST), and registry traffic between nodes
	}
	who := "-"
	if p := principalOf(ctx); p != nil {
		who = p.Name
	} else if ctx.UserValue(peerKey) != nil {
		who = "peer"
	}
	args := []any{"principal", who, "route", route, "status", ctx.Response.StatusCode(), "remote", ctx.RemoteIP().String()}
	seg, _ := ctx.UserValue(segKey).([]string)
	switch {
	case len(seg) >= 3 && seg[0] == "v1" && seg[1] == "rdds":
		args = append(args, "rdd", seg[2])
	case len(seg) >= 2 && seg[0] == "sessions":
		args = append(args, "session", seg[1])
	case len(seg) >= 2 && seg[0] == "batches":
		args = append(args, "batch", seg[1])
	}
	s.audit.Info("call", args...)
}
