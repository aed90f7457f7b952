package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/srdd/srdd/kvstore"
	"github.com/valyala/fasthttp"
)

// routeRDDs serves /v1/rdds[/{name}[/keys/{key} | /get | /set | /delete]].
func (s *Server) routeRDDs(ctx *fasthttp.RequestCtx, m string, seg []string) string {
	switch len(seg) {
	case 0:
		return s.methods(ctx, m, map[string]routeHandler{
			"GET": {routeRDDList, s.listRDDs}, "POST": {routeRDDCreate, s.createRDD}})
	case 1:
		name := seg[0]
		return s.methods(ctx, m, map[string]routeHandler{
			"GET":    {routeRDDGet, func(c *fasthttp.RequestCtx) { s.describeRDD(c, name) }},
			"DELETE": {routeRDDDrop, func(c *fasthttp.RequestCtx) { s.dropRDD(c, name) }}})
	case 2:
		name := seg[0]
		switch seg[1] {
		case "get":
			return s.methods(ctx, m, map[string]routeHandler{"POST": {routeBatchGet, func(c *fasthttp.RequestCtx) { s.batchGet(c, name) }}})
		case "set":
			return s.methods(ctx, m, map[string]routeHandler{"POST": {routeBatchSet, func(c *fasthttp.RequestCtx) { s.batchSet(c, name) }}})
		case "delete":
			return s.methods(ctx, m, map[string]routeHandler{"POST": {routeBatchDelete, func(c *fasthttp.RequestCtx) { s.batchDelete(c, name) }}})
		}
	case 3:
		if seg[1] == "keys" {
			name, key := seg[0], seg[2]
			return s.methods(ctx, m, map[string]routeHandler{
				"GET":    {routeKeyGet, func(c *fasthttp.RequestCtx) { s.getKey(c, name, key) }},
				"PUT":    {routeKeyPut, func(c *fasthttp.RequestCtx) { s.putKey(c, name, key) }},
				"DELETE": {routeKeyDelete, func(c *fasthttp.RequestCtx) { s.deleteKey(c, name, key) }}})
		}
	}
	notFoundRoute(ctx)
	return routeOther
}

func (s *Server) listRDDs(ctx *fasthttp.RequestCtx) {
	c, cancel := reqContext(ctx)
	defer cancel()
	writeJSON(ctx, http.StatusOK, map[string]any{"rdds": s.cfg.Store.List(c)})
}

// sessionRef accepts a session id as a number or a string, or a name.
type sessionRef string

func (r *sessionRef) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		*r = sessionRef(strconv.FormatInt(n, 10))
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	*r = sessionRef(str)
	return nil
}

func (s *Server) createRDD(ctx *fasthttp.RequestCtx) {
	var req struct {
		Name    string     `json:"name"`
		Session sessionRef `json:"session"`
		Mode    string     `json:"mode"`
	}
	if !decodeBody(ctx, &req) {
		return
	}
	info, err := s.cfg.Store.Create(kvstore.CreateRequest{Name: req.Name, Session: string(req.Session), Mode: req.Mode})
	if err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusCreated, info)
}

func (s *Server) describeRDD(ctx *fasthttp.RequestCtx, name string) {
	c, cancel := reqContext(ctx)
	defer cancel()
	info, err := s.cfg.Store.Describe(c, name)
	if err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, info)
}

func (s *Server) dropRDD(ctx *fasthttp.RequestCtx, name string) {
	if err := s.cfg.Store.Drop(name); err != nil {
		fail(ctx, err)
		return
	}
	ctx.SetStatusCode(http.StatusNoContent)
}

func (s *Server) getKey(ctx *fasthttp.RequestCtx, name, key string) {
	c, cancel := reqContext(ctx)
	defer cancel()
	v, found, err := s.cfg.Store.Get(c, name, key)
	if err != nil {
		fail(ctx, err)
		return
	}
	if !found {
		writeError(ctx, http.StatusNotFound, "key_not_found", "key "+strconv.Quote(key)+" not found in shared rdd "+strconv.Quote(name))
		return
	}
	kb, _ := json.Marshal(key)
	buf := make([]byte, 0, len(kb)+len(v)+20)
	buf = append(buf, `{"key":`...)
	buf = append(buf, kb...)
	buf = append(buf, `,"value":`...)
	buf = append(buf, v...)
	buf = append(buf, '}')
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetBody(buf)
}

func (s *Server) putKey(ctx *fasthttp.RequestCtx, name, key string) {
	c, cancel := reqContext(ctx)
	defer cancel()
	// PostBody belongs to ctx; the store finishes with it before we return.
	if err := s.cfg.Store.Set(c, name, key, ctx.PostBody()); err != nil {
		fail(ctx, err)
		return
	}
	ctx.SetStatusCode(http.StatusNoContent)
}

func (s *Server) deleteKey(ctx *fasthttp.RequestCtx, name, key string) {
	c, cancel := reqContext(ctx)
	defer cancel()
	n, err := s.cfg.Store.DeleteMany(c, name, []string{key})
	if err != nil {
		fail(ctx, err)
		return
	}
	if n == 0 {
		writeError(ctx, http.StatusNotFound, "key_not_found", "key "+strconv.Quote(key)+" not found in shared rdd "+strconv.Quote(name))
		return
	}
	ctx.SetStatusCode(http.StatusNoContent)
}

func (s *Server) batchGet(ctx *fasthttp.RequestCtx, name string) {
	keys, ok := decodeKeys(ctx)
	if !ok {
		return
	}
	c, cancel := reqContext(ctx)
	defer cancel()
	vals, err := s.cfg.Store.GetMany(c, name, keys)
	if err != nil {
		fail(ctx, err)
		return
	}
	found := make(map[string]json.RawMessage, len(vals))
	missing := []string{}
	for i, v := range vals {
		if v == nil {
			missing = append(missing, keys[i])
		} else {
			found[keys[i]] = v
		}
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"values": found, "missing": missing})
}

func (s *Server) batchSet(ctx *fasthttp.RequestCtx, name string) {
	var req struct {
		Items map[string]json.RawMessage `json:"items"`
	}
	if !decodeBody(ctx, &req) {
		return
	}
	items := make([]kvstore.Item, 0, len(req.Items))
	for k, v := range req.Items {
		items = append(items, kvstore.Item{Key: k, Value: v})
	}
	c, cancel := reqContext(ctx)
	defer cancel()
	n, err := s.cfg.Store.SetMany(c, name, items)
	if err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"written": n})
}

func (s *Server) batchDelete(ctx *fasthttp.RequestCtx, name string) {
	keys, ok := decodeKeys(ctx)
	if !ok {
		return
	}
	c, cancel := reqContext(ctx)
	defer cancel()
	n, err := s.cfg.Store.DeleteMany(c, name, keys)
	if err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"deleted": n})
}

// decodeKeys parses a {"keys":[...]} body.
func decodeKeys(ctx *fasthttp.RequestCtx) ([]string, bool) {
	var req struct {
		Keys []string `json:"keys"`
	}
	if !decodeBody(ctx, &req) {
		return nil, false
	}
	return req.Keys, true
}
