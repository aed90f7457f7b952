package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/srdd/srdd/kvstore"
	"github.com/valyala/fasthttp"
)

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

// createRDDFields are the fields POST /v1/rdds takes; any other is
// refused (a misspelt "replica" must not create an RDD with one copy).
const createRDDFields = "name, session, mode, replicas"

func (s *Server) createRDD(ctx *fasthttp.RequestCtx) {
	var req struct {
		Name     string     `json:"name"`
		Session  sessionRef `json:"session"`
		Mode     string     `json:"mode"`
		Replicas *int       `json:"replicas"`
	}
	if !decodeStrict(ctx, &req, createRDDFields) {
		return
	}
	info, err := s.cfg.Store.Create(kvstore.CreateRequest{Name: req.Name, Session: string(req.Session), Mode: req.Mode,
		Replicas: req.Replicas})
	if err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusCreated, info)
}

// decodeStrict is decodeBody for a body that must hold only the fields
// of v: an unknown one answers 400 invalid naming it and the fields the
// route takes (fields).
func decodeStrict(ctx *fasthttp.RequestCtx, v any, fields string) bool {
	if !decodeBody(ctx, v) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(ctx.PostBody()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			badRequest(ctx, "unknown field "+name+" in the request body; this route takes "+fields)
		} else {
			badRequest(ctx, jsonProblem(err))
		}
		return false
	}
	return true
}

func (s *Server) describeRDD(ctx *fasthttp.RequestCtx, name string) {
	c, cancel := reqContext(ctx)
	defer cancel()
	info, err := s.cfg.Store.Describe(c, name)
	if err == nil && len(info.Copies) > 1 && !scopeLocal(ctx) {
		// Each copy's applied index, from the node that runs it.
		applied := s.copiesApplied(ctx, []kvstore.RDDInfo{info})
		for i, cp := range info.Copies {
			if a, ok := applied[cp.Node+"/"+name]; ok && cp.Role == "copy" {
				info.Copies[i].AppliedIndex = a
			}
		}
	}
	answer(ctx, info, err)
}

func (s *Server) dropRDD(ctx *fasthttp.RequestCtx, name string) {
	if err := s.cfg.Store.Drop(name); err != nil {
		fail(ctx, err)
		return
	}
	ctx.SetStatusCode(http.StatusNoContent)
}

// keyContext is the context of a single-key call: no per-request
// deadline (a timer per request costs ~6% of the CPU of a cached get);
// the call this request rides in is bounded.
func keyContext() context.Context { return context.Background() }

// keyNotFound answers 404 key_not_found for key of RDD name.
func keyNotFound(ctx *fasthttp.RequestCtx, name, key string) {
	writeError(ctx, http.StatusNotFound, "key_not_found", "key "+strconv.Quote(key)+" not found in shared rdd "+strconv.Quote(name))
}

// servedByHeader names the node whose copy answered a read of a key.
const servedByHeader = "X-Srdd-Served-By"

func (s *Server) getKey(ctx *fasthttp.RequestCtx, name, key string) {
	c := keyContext()
	vals, err := s.cfg.Store.GetManyWith(c, name, []string{key}, readOptions(ctx))
	if err != nil {
		fail(ctx, err)
		return
	}
	v := vals[0]
	if v == nil {
		keyNotFound(ctx, name, key)
		return
	}
	// Written straight into the response buffer: no intermediate copy.
	resp := &ctx.Response
	resp.Header.SetContentType("application/json")
	// Which node's copy answered (the owner's, or a copy's: reads of
	// keys may be served by a copy, docs/ARCHITECTURE.md "Copies").
	resp.Header.Set(servedByHeader, s.cfg.Cluster.ID())
	resp.AppendBodyString(`{"key":`)
	appendJSONString(resp, key)
	resp.AppendBodyString(`,"value":`)
	resp.AppendBody(v)
	resp.AppendBodyString("}")
}

// appendJSONString appends s as a JSON string; plain ASCII keys (the
// common case) are copied as they are.
func appendJSONString(resp *fasthttp.Response, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			resp.AppendBody(b)
			return
		}
	}
	resp.AppendBodyString(`"`)
	resp.AppendBodyString(s)
	resp.AppendBodyString(`"`)
}

func (s *Server) putKey(ctx *fasthttp.RequestCtx, name, key string) {
	c := keyContext()
	// PostBody belongs to ctx; the store copies it once before batching.
	items := [1]kvstore.Item{{Key: key, Value: ctx.PostBody()}}
	if _, err := s.cfg.Store.SetManyWith(c, name, items[:], writeOptions(ctx)); err != nil {
		fail(ctx, err)
		return
	}
	ctx.SetStatusCode(http.StatusNoContent)
}

func (s *Server) deleteKey(ctx *fasthttp.RequestCtx, name, key string) {
	c := keyContext()
	n, err := s.cfg.Store.DeleteManyWith(c, name, []string{key}, writeOptions(ctx))
	if err != nil {
		fail(ctx, err)
		return
	}
	if n == 0 {
		keyNotFound(ctx, name, key)
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
	vals, err := s.cfg.Store.GetManyWith(c, name, keys, readOptions(ctx))
	if err != nil {
		fail(ctx, err)
		return
	}
	writeValues(&ctx.Response, keys, vals)
}

// writeValues writes a batch get's answer, {"values":{key:value,...},
// "missing":[key,...]}, straight into the response: the values are the
// store's JSON bytes, appended as they are (as getKey does), with no map
// to build and no encoder to run them through (benchmarks/REDIS.md,
// "Pipelined GETs"). A key asked for twice is one member of "values";
// "missing" lists each miss as it was asked.
func writeValues(resp *fasthttp.Response, keys []string, vals [][]byte) {
	resp.Header.SetContentType("application/json")
	resp.SetStatusCode(http.StatusOK)
	resp.ResetBody()
	resp.AppendBodyString(`{"values":{`)
	var seen map[string]struct{} // for a long batch; a short one is searched
	if len(keys) > shortBatch {
		seen = make(map[string]struct{}, len(keys))
	}
	n := 0
	for i, v := range vals {
		if v == nil {
			continue
		}
		if seen != nil {
			if _, dup := seen[keys[i]]; dup {
				continue
			}
			seen[keys[i]] = struct{}{}
		} else if firstFound(keys, vals, i) != i {
			continue
		}
		appendMember(resp, &n, keys[i])
		resp.AppendBodyString(":")
		resp.AppendBody(v)
	}
	resp.AppendBodyString(`},"missing":[`)
	n = 0
	for i, v := range vals {
		if v == nil {
			appendMember(resp, &n, keys[i])
		}
	}
	resp.AppendBodyString("]}")
}

// appendMember appends key, as a JSON string, as the next member of a
// list or object that has *n members so far.
func appendMember(resp *fasthttp.Response, n *int, key string) {
	if *n > 0 {
		resp.AppendBodyString(",")
	}
	*n++
	appendJSONString(resp, key)
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
	n, err := s.cfg.Store.SetManyWith(c, name, items, writeOptions(ctx))
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
	n, err := s.cfg.Store.DeleteManyWith(c, name, keys, writeOptions(ctx))
	if err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"deleted": n})
}

// plainKeys reads {"keys":["k1","k2",...]}, written with no white space
// and keys of printable UTF-8 with no escapes (what the Redis port and
// most clients send), without a decoder. Anything else returns false,
// and the decoder reads it: the keys are the same either way.
func plainKeys(body []byte) ([]string, bool) {
	const head, tail = `{"keys":[`, "]}"
	if !bytes.HasPrefix(body, []byte(head)) || !bytes.HasSuffix(body, []byte(tail)) {
		return nil, false
	}
	b := body[len(head) : len(body)-len(tail)]
	if len(b) == 0 {
		return []string{}, true
	}
	keys := make([]string, 0, bytes.Count(b, []byte(`","`))+1)
	for {
		if len(b) < 2 || b[0] != '"' {
			return nil, false
		}
		end := 1
		for end < len(b) && b[end] != '"' {
			if c := b[end]; c < 0x20 || c == '\\' {
				return nil, false
			}
			end++
		}
		if end == len(b) || !utf8.Valid(b[1:end]) {
			return nil, false
		}
		keys = append(keys, string(b[1:end]))
		switch rest := b[end+1:]; {
		case len(rest) == 0:
			return keys, true
		case rest[0] == ',':
			b = rest[1:]
		default:
			return nil, false
		}
	}
}

// shortBatch is the longest batch whose repeated keys are found by
// search rather than with a map (a pipelined run of Redis GETs is 16).
const shortBatch = 32

// firstFound is the index of the first found value of keys[i].
func firstFound(keys []string, vals [][]byte, i int) int {
	for j := range i {
		if keys[j] == keys[i] && vals[j] != nil {
			return j
		}
	}
	return i
}

// decodeKeys parses a {"keys":[...]} body.
func decodeKeys(ctx *fasthttp.RequestCtx) ([]string, bool) {
	if keys, ok := plainKeys(ctx.PostBody()); ok {
		return keys, true
	}
	var req struct {
		Keys []string `json:"keys"`
	}
	if !decodeBody(ctx, &req) {
		return nil, false
	}
	return req.Keys, true
}

// scanRDD serves GET /v1/rdds/{name}/scan?prefix=&cursor=&limit=: a page
// of keys in key order, and a cursor for the next page while more follow.
func (s *Server) scanRDD(ctx *fasthttp.RequestCtx, name string) {
	q := ctx.QueryArgs()
	req := kvstore.ScanRequest{Prefix: string(q.Peek("prefix"))}
	if l := q.Peek("limit"); len(l) > 0 {
		n, err := strconv.Atoi(string(l))
		if err != nil || n < 1 {
			badRequest(ctx, "limit must be a positive integer")
			return
		}
		req.Limit = n
	}
	if cur := q.Peek("cursor"); len(cur) > 0 {
		after, err := base64.RawURLEncoding.DecodeString(string(cur))
		if err != nil || len(after) == 0 {
			badRequest(ctx, "malformed cursor")
			return
		}
		req.After = string(after)
	}
	c, cancel := reqContext(ctx)
	defer cancel()
	res, err := s.cfg.Store.Scan(c, name, req)
	if err != nil {
		fail(ctx, err)
		return
	}
	type item struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	out := struct {
		Items  []item `json:"items"`
		Cursor string `json:"cursor,omitempty"`
	}{Items: make([]item, len(res.Items))}
	for i, it := range res.Items {
		out.Items[i] = item{Key: it.Key, Value: it.Value}
	}
	if res.More && len(res.Items) > 0 {
		out.Cursor = base64.RawURLEncoding.EncodeToString([]byte(res.Items[len(res.Items)-1].Key))
	}
	writeJSON(ctx, http.StatusOK, out)
}

func (s *Server) countRDD(ctx *fasthttp.RequestCtx, name string) {
	c, cancel := reqContext(ctx)
	defer cancel()
	n, err := s.cfg.Store.Count(c, name)
	if err != nil {
		fail(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]int64{"count": n})
}

// loadRDD starts a bulk load and answers 202; GET /v1/rdds/{name} shows
// its progress (state "loading", "load": {percent, rows, rows_per_sec}).
func (s *Server) loadRDD(ctx *fasthttp.RequestCtx, name string) {
	var req kvstore.LoadRequest
	if !decodeBody(ctx, &req) {
		return
	}
	c, cancel := reqContext(ctx)
	defer cancel()
	st, err := s.cfg.Store.Load(c, name, req)
	if err != nil {
		failBulk(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusAccepted, st)
}

func (s *Server) saveRDD(ctx *fasthttp.RequestCtx, name string) {
	var req kvstore.SaveRequest
	if !decodeBody(ctx, &req) {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	res, err := s.cfg.Store.Save(c, name, req)
	if err != nil {
		failBulk(ctx, err)
		return
	}
	writeJSON(ctx, http.StatusOK, res)
}

// failBulk is fail plus 409 busy (a load is already running).
func failBulk(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, kvstore.ErrBusy) {
		writeError(ctx, http.StatusConflict, "busy", err.Error())
		return
	}
	fail(ctx, err)
}

// readOptions reads a read's options from its query (consistency=).
func readOptions(ctx *fasthttp.RequestCtx) kvstore.ReadOptions {
	return kvstore.ReadOptions{Consistency: string(ctx.QueryArgs().Peek("consistency"))}
}

// writeOptions reads a write's options from its headers.
func writeOptions(ctx *fasthttp.RequestCtx) kvstore.WriteOptions {
	return kvstore.WriteOptions{IdempotencyKey: string(ctx.Request.Header.Peek("Idempotency-Key"))}
}

// checkpointRDD writes a checkpoint of a durable RDD now.
func (s *Server) checkpointRDD(ctx *fasthttp.RequestCtx, name string) {
	c, cancel := reqContext(ctx)
	defer cancel()
	res, err := s.cfg.Store.Checkpoint(c, name)
	answer(ctx, res, err)
}
