package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/srdd/srdd/sessions"
	"github.com/valyala/fasthttp"
)

// intArg reads an optional non-negative integer query argument.
func intArg(ctx *fasthttp.RequestCtx, name string, def int) (int, bool) {
	v := ctx.QueryArgs().Peek(name)
	if v == nil {
		return def, true
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 || n > maxQueryInt {
		badRequest(ctx, "query argument "+name+" must be an integer from 0 to "+strconv.Itoa(maxQueryInt))
		return 0, false
	}
	return n, true
}

// maxQueryInt bounds from/size/wait arguments, so no arithmetic on them
// can overflow.
const maxQueryInt = 1 << 30

// page returns the [from, from+size) window of n items as slice bounds.
func page(n, from, size int) (int, int) {
	lo := min(from, n)
	return lo, lo + min(size, n-lo)
}

// pageArgs reads Livy's from/size paging arguments (size defaults to 100).
func pageArgs(ctx *fasthttp.RequestCtx) (from, size int, ok bool) {
	if from, ok = intArg(ctx, "from", 0); !ok {
		return 0, 0, false
	}
	size, ok = intArg(ctx, "size", 100)
	return from, size, ok
}

func (s *Server) listSessions(ctx *fasthttp.RequestCtx) {
	from, size, ok := pageArgs(ctx)
	if !ok {
		return
	}
	all := s.cfg.Sessions.List()
	lo, hi := page(len(all), from, size)
	out := all[lo:hi]
	for i := range out {
		if !s.mayViewSession(ctx, out[i].ID) {
			out[i].Log = []string{}
		}
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"from": from, "total": len(all), "sessions": out})
}

// mayViewSession reports whether the caller may see session id's log:
// what GET /sessions/{id}/log allows (ruleSessionView). Listings are
// open to every user; the logs in them are not (issue 25).
func (s *Server) mayViewSession(ctx *fasthttp.RequestCtx, id int64) bool {
	rec, ok := s.cfg.Cluster.Session(id)
	return !ok || s.mayView(ctx, rec.Principal, rec.ViewUsers, rec.ModifyUsers)
}

// mayView applies ruleSessionView to a record's principal and ACLs.
func (s *Server) mayView(ctx *fasthttp.RequestCtx, principal string, viewUsers, modifyUsers []string) bool {
	if s.cfg.Auth == nil {
		return true
	}
	p := principalOf(ctx)
	switch {
	case p == nil || p.Capability:
		return false
	case p.IsAdmin(), principal != "" && principal == p.Name:
		return true
	}
	return slices.Contains(viewUsers, p.Name) || slices.Contains(modifyUsers, p.Name)
}

func (s *Server) createSession(ctx *fasthttp.RequestCtx) {
	var req sessions.CreateRequest
	if len(ctx.PostBody()) == 0 {
		ctx.Request.SetBodyString("{}")
	}
	if !s.decodeCreation(ctx, &req, &req.Principal, &req.ProxyUser) {
		return
	}
	info, err := s.cfg.Sessions.Create(req)
	answerCreated(ctx, "/sessions/"+strconv.FormatInt(info.ID, 10), info, err)
}

func (s *Server) getSession(ctx *fasthttp.RequestCtx, id int64) {
	info, err := s.cfg.Sessions.Get(id)
	answer(ctx, info, err)
}

func (s *Server) deleteSession(ctx *fasthttp.RequestCtx, id int64) {
	if err := s.cfg.Sessions.Delete(id); err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]string{"msg": "deleted"})
}

func (s *Server) sessionState(ctx *fasthttp.RequestCtx, id int64) {
	info, err := s.cfg.Sessions.Get(id)
	if err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"id": info.ID, "state": info.State})
}

func (s *Server) sessionLog(ctx *fasthttp.RequestCtx, id int64) {
	from, size, ok := pageArgs(ctx)
	if !ok {
		return
	}
	if ctx.QueryArgs().Peek("from") == nil {
		from = -1 // Livy: without from, the newest size lines
	}
	lines, from, total, err := s.cfg.Sessions.Log(id, from, size)
	if err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"id": id, "from": from, "total": total, "log": lines})
}

func (s *Server) listStatements(ctx *fasthttp.RequestCtx, id int64) {
	from, ok := intArg(ctx, "from", 0)
	if !ok {
		return
	}
	// Livy lists every statement unless size says otherwise (the history
	// is bounded by --max-statements).
	size, ok := intArg(ctx, "size", maxQueryInt)
	if !ok {
		return
	}
	order := string(ctx.QueryArgs().Peek("order"))
	if order != "" && order != "asc" && order != "desc" {
		badRequest(ctx, `query argument order must be "asc" or "desc"`)
		return
	}
	sts, err := s.cfg.Sessions.Statements(id)
	if err != nil {
		fail(ctx, err)
		return
	}
	if order == "desc" {
		for i, j := 0, len(sts)-1; i < j; i, j = i+1, j-1 {
			sts[i], sts[j] = sts[j], sts[i]
		}
	}
	lo, hi := page(len(sts), from, size)
	writeJSON(ctx, http.StatusOK, map[string]any{"total_statements": len(sts), "statements": sts[lo:hi]})
}

func (s *Server) submitStatement(ctx *fasthttp.RequestCtx, id int64) {
	var req struct {
		Code *string `json:"code"`
		Kind string  `json:"kind"`
	}
	if !decodeBody(ctx, &req) {
		return
	}
	if req.Code == nil {
		badRequest(ctx, `statement needs a "code" field`)
		return
	}
	st, err := s.cfg.Sessions.Submit(id, *req.Code, req.Kind)
	if err != nil {
		fail(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/sessions/"+strconv.FormatInt(id, 10)+"/statements/"+strconv.Itoa(st.ID))
	writeJSON(ctx, http.StatusCreated, st)
}

// maxWait bounds ?wait= on GET statement (long-poll).
const maxWait = 300

func (s *Server) getStatement(ctx *fasthttp.RequestCtx, id int64, sid int) {
	wait, ok := intArg(ctx, "wait", 0)
	if !ok {
		return
	}
	if wait > maxWait {
		badRequest(ctx, "query argument wait must be at most "+strconv.Itoa(maxWait)+" seconds")
		return
	}
	c, cancel := reqContext(ctx)
	defer cancel()
	st, err := s.cfg.Sessions.WaitStatement(c, id, sid, time.Duration(wait)*time.Second)
	answer(ctx, st, err)
}

func (s *Server) cancelStatement(ctx *fasthttp.RequestCtx, id int64, sid int) {
	if _, err := s.cfg.Sessions.Cancel(id, sid); err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]string{"msg": "canceled"})
}

func (s *Server) complete(ctx *fasthttp.RequestCtx, id int64) {
	var req struct {
		Code   *string `json:"code"`
		Kind   string  `json:"kind"`
		Cursor *int    `json:"cursor"`
	}
	if !decodeBody(ctx, &req) {
		return
	}
	if req.Code == nil {
		badRequest(ctx, `completion needs a "code" field`)
		return
	}
	cursor := len(*req.Code)
	if req.Cursor != nil {
		cursor = *req.Cursor
	}
	c, cancel := reqContext(ctx)
	defer cancel()
	cands, err := s.cfg.Sessions.Complete(c, id, *req.Code, req.Kind, cursor)
	if err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"candidates": cands})
}

// decodeCreation decodes the body of a session or batch creation into
// req and sets *principal, the creator, from the caller and *proxyUser
// (fields of req). It answers and returns false on a bad body or a
// refused proxy user.
func (s *Server) decodeCreation(ctx *fasthttp.RequestCtx, req any, principal, proxyUser *string) bool {
	if !decodeBody(ctx, req) {
		return false
	}
	p, ok := s.creator(ctx, *proxyUser)
	if ok {
		*principal = p
	}
	return ok
}

// creator is the principal of a session or batch the caller creates (""
// without authentication). As Livy, proxyUser (impersonation) is for
// admins only; otherwise it answers 403 and returns false.
func (s *Server) creator(ctx *fasthttp.RequestCtx, proxyUser string) (string, bool) {
	if s.cfg.Auth == nil {
		return "", true
	}
	p := principalOf(ctx)
	if proxyUser != "" && !p.IsAdmin() {
		forbidden(ctx, "proxyUser is honoured only for admins")
		return "", false
	}
	return p.Name, true
}
