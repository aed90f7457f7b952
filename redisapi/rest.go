package redisapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/srdd/srdd/auth"
)

// The data commands are calls to the node's own REST routes, made in
// process (httpapi.Server.Local) as the connection's caller: the route
// table's permission rule for the RDD, forwarding to the RDD's owner,
// the store's validation and limits, per-route metrics and the audit
// log all apply as they do on the API port.

// restErr is a REST call's refusal, as a Redis error line.
type restErr string

// rest makes one call and returns the answer's status and body (valid
// until the next call). body, if set, is sent as JSON.
func (c *conn) rest(method, uri string, body []byte) (int, []byte) {
	ctx := &c.rc
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.ResetUserValues()
	req := &ctx.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("localhost")
	req.Header.Set("X-Requested-By", "srdd-redis")
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	// Forwarded to the owner, the call carries the caller as a REST
	// client's would: vouched for between members (httpapi's vouch),
	// and these credentials otherwise.
	switch cr := c.cred; {
	case cr.token != "":
		req.Header.Set("Authorization", "Bearer "+cr.token)
	case cr.user != "":
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cr.user+":"+cr.password)))
	}
	c.s.cfg.API.Local(ctx, c.principal)
	return ctx.Response.StatusCode(), ctx.Response.Body()
}

// restJSON makes a call and decodes a 2xx answer into out (if set); any
// other answer is a restErr about rdd.
func (c *conn) restJSON(method, uri string, in, out any, rdd string) error {
	_, err := c.restJSONStatus(method, uri, in, out, rdd)
	return err
}

// restJSONStatus is restJSON that also returns the answer's status (0 if
// the call was not made).
func (c *conn) restJSONStatus(method, uri string, in, out any, rdd string) (int, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, restErr("ERR " + err.Error())
		}
	}
	status, resp := c.rest(method, uri, body)
	if status/100 != 2 {
		return status, errorOf(status, resp, rdd)
	}
	if out != nil && len(resp) > 0 {
		if err := json.Unmarshal(resp, out); err != nil {
			return status, restErr("ERR cannot read the node's answer: " + err.Error())
		}
	}
	return status, nil
}

func (e restErr) Error() string { return string(e) }

// errorOf maps a REST error answer to a Redis error line.
func errorOf(status int, body []byte, rdd string) restErr {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	msg := e.Error.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	switch {
	case status == http.StatusUnauthorized:
		return restErr("NOAUTH " + msg)
	case status == http.StatusForbidden:
		return restErr("NOPERM " + msg)
	case e.Error.Code == "rdd_not_found":
		return restErr("ERR no such shared RDD '" + rdd + "'")
	case status == http.StatusServiceUnavailable && e.Error.Code != "outcome_unknown":
		// The RDD's session is starting or recovering, or its node is
		// down a moment: Redis's LOADING, which clients retry after a
		// pause (go-redis does by itself). A write whose outcome is
		// unknown is not retried for the caller: it is an ERR.
		return restErr("LOADING " + msg)
	}
	return restErr("ERR " + msg)
}

func rddPath(rdd, op string) string {
	return "/v1/rdds/" + url.PathEscape(rdd) + "/" + op
}

func keyPath(rdd, key string) string {
	return "/v1/rdds/" + url.PathEscape(rdd) + "/keys/" + url.PathEscape(key)
}

// getKey reads one key of rdd: nil if it does not exist. It takes the
// single-key route, GET /v1/rdds/{rdd}/keys/{key}, which answers the
// value's bytes in a small envelope: no JSON body to encode, no map to
// decode, no per-request timer (httpapi's keyContext), where a batch of
// one costs all three (benchmarks/REDIS.md, "Profile"). The value is the
// caller's (a copy, not the call's buffer).
func (c *conn) getKey(rdd, key string) (json.RawMessage, error) {
	if key == "" {
		// "rdd:" names the empty key, which has no path of its own: the
		// batch route refuses it as the store does.
		vals, err := c.getMany(rdd, []string{key})
		return vals[key], err
	}
	status, body := c.rest("GET", keyPath(rdd, key), nil)
	switch {
	case status == http.StatusOK:
		v, ok := keyValue(body)
		if !ok {
			var out struct {
				Value json.RawMessage `json:"value"`
			}
			if err := json.Unmarshal(body, &out); err != nil || out.Value == nil {
				return nil, restErr("ERR cannot read the node's answer: " + printable(body, 64))
			}
			return out.Value, nil
		}
		return bytes.Clone(v), nil
	case status == http.StatusNotFound && errorCode(body) == "key_not_found":
		return nil, nil
	}
	return nil, errorOf(status, body, rdd)
}

// keyValue reads the single-key route's answer, {"key":<string>,"value":
// <json>} as httpapi's getKey writes it, without decoding it: it returns
// the value's bytes, or false if the answer is shaped otherwise (the
// caller then decodes it whole).
func keyValue(body []byte) ([]byte, bool) {
	const head, mid = `{"key":"`, `,"value":`
	if !bytes.HasPrefix(body, []byte(head)) || len(body) < len(head)+len(mid)+2 || body[len(body)-1] != '}' {
		return nil, false
	}
	i := len(head)
	for ; i < len(body); i++ {
		if body[i] == '\\' {
			i++
		} else if body[i] == '"' {
			break
		}
	}
	rest := body[min(i+1, len(body)):]
	if !bytes.HasPrefix(rest, []byte(mid)) {
		return nil, false
	}
	v := rest[len(mid) : len(rest)-1]
	if len(v) == 0 {
		return nil, false
	}
	return v, true
}

// errorCode is the code of a REST error answer ("" if none).
func errorCode(body []byte) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

// getMany reads keys of rdd in one batched lookup; a missing key has no
// entry.
func (c *conn) getMany(rdd string, keys []string) (map[string]json.RawMessage, error) {
	status, body := c.rest("POST", rddPath(rdd, "get"), keysBody(keys))
	if status/100 != 2 {
		return nil, errorOf(status, body, rdd)
	}
	if vals, ok := readValues(body, len(keys)); ok {
		return vals, nil
	}
	var out struct {
		Values map[string]json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, restErr("ERR cannot read the node's answer: " + err.Error())
	}
	return out.Values, nil
}

// keysBody is {"keys":[...]}, the batch routes' body, built without an
// encoder (a pipelined run of GETs makes one a run).
func keysBody(keys []string) []byte {
	b := make([]byte, 0, 16+8*len(keys))
	b = append(b, `{"keys":[`...)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
	}
	return append(b, "]}"...)
}

// appendJSONString appends s as a JSON string: plain ASCII as it is,
// anything else as encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// readValues reads the "values" member of a batch get's answer as
// httpapi writes it ({"values":{key:value,...},"missing":[...]}, no
// white space between members) without a decoder: one copy of the
// values' bytes, no map of a map. It returns false if the answer is
// shaped otherwise; the caller then decodes it whole.
func readValues(body []byte, n int) (map[string]json.RawMessage, bool) {
	const head = `{"values":{`
	if !bytes.HasPrefix(body, []byte(head)) || !bytes.HasSuffix(body, []byte("]}")) {
		return nil, false
	}
	b := bytes.Clone(body) // the call's buffer is reused; the values outlive it
	out := make(map[string]json.RawMessage, n)
	i := len(head)
	if i < len(b) && b[i] == '}' {
		return out, true
	}
	for i < len(b) {
		end, ok := skipString(b, i)
		if !ok || end >= len(b) || b[end] != ':' {
			return nil, false
		}
		var key string
		if tok := b[i:end]; bytes.IndexByte(tok, '\\') < 0 {
			key = string(tok[1 : len(tok)-1])
		} else if json.Unmarshal(tok, &key) != nil {
			return nil, false
		}
		start := end + 1
		if end, ok = skipValue(b, start); !ok || end == start || end >= len(b) || space(b[start]) || space(b[end-1]) {
			return nil, false
		}
		out[key] = json.RawMessage(b[start:end:end])
		switch b[end] {
		case ',':
			i = end + 1
		case '}':
			return out, true
		default:
			return nil, false
		}
	}
	return nil, false
}

func space(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipString returns the index just past the JSON string that starts at
// b[i].
func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index just past the JSON value that starts at
// b[i] (valid JSON, as the store holds only valid values): where a ','
// or a closing bracket of the enclosing object ends it, or past its own
// closing bracket.
func skipValue(b []byte, i int) (int, bool) {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			end, ok := skipString(b, i)
			if !ok {
				return 0, false
			}
			if depth == 0 {
				return end, true
			}
			i = end
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i, true
			}
			if depth--; depth == 0 {
				return i + 1, true
			}
		case ',':
			if depth == 0 {
				return i, true
			}
		}
		i++
	}
	return 0, false
}

// setMany writes items to rdd, all or none.
func (c *conn) setMany(rdd string, items map[string]json.RawMessage) error {
	_, err := c.setManyStatus(rdd, items)
	return err
}

// setManyStatus is setMany that also returns the REST answer's status.
func (c *conn) setManyStatus(rdd string, items map[string]json.RawMessage) (int, error) {
	return c.restJSONStatus("POST", rddPath(rdd, "set"), map[string]any{"items": items}, nil, rdd)
}

// deleteMany deletes keys of rdd and returns how many there were.
func (c *conn) deleteMany(rdd string, keys []string) (int64, error) {
	var out struct {
		Deleted int64 `json:"deleted"`
	}
	err := c.restJSON("POST", rddPath(rdd, "delete"), map[string][]string{"keys": keys}, &out, rdd)
	return out.Deleted, err
}

// scanPage reads a page of rdd's keys with prefix after the REST cursor
// after ("": the first page); next is "" on the last page.
func (c *conn) scanPage(rdd, prefix, after string, limit int) (keys []string, next string, err error) {
	q := url.Values{}
	q.Set("prefix", prefix)
	q.Set("limit", strconv.Itoa(limit))
	if after != "" {
		q.Set("cursor", after)
	}
	var out struct {
		Items []struct {
			Key string `json:"key"`
		} `json:"items"`
		Cursor string `json:"cursor"`
	}
	if err := c.restJSON("GET", rddPath(rdd, "scan")+"?"+q.Encode(), nil, &out, rdd); err != nil {
		return nil, "", err
	}
	keys = make([]string, len(out.Items))
	for i, it := range out.Items {
		keys[i] = it.Key
	}
	return keys, out.Cursor, nil
}

// rddSummary is a shared RDD as the listing shows it.
type rddSummary struct {
	Name string `json:"name"`
	Keys *int64 `json:"keys"`
	Mode string `json:"mode"`
}

// listRDDs lists the shared RDDs of the cluster this caller may read.
func (c *conn) listRDDs() ([]rddSummary, error) {
	var out struct {
		RDDs []rddSummary `json:"rdds"`
	}
	if err := c.restJSON("GET", "/v1/rdds", nil, &out, ""); err != nil {
		return nil, err
	}
	mine := out.RDDs[:0]
	for _, r := range out.RDDs {
		if c.principal == nil || c.principal.Can(auth.PermRead, r.Name) {
			mine = append(mine, r)
		}
	}
	return mine, nil
}
