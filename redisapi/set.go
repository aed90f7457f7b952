package redisapi

import (
	"encoding/json"
	"hash/maphash"
	"strings"
)

// setOpts are SET's and JSON.SET's conditions.
type setOpts struct {
	nx, xx, get bool
}

// conditional reports whether the write depends on the current value.
func (o setOpts) conditional() bool { return o.nx || o.xx || o.get }

// parseSetOpts reads SET's options (JSON.SET takes NX and XX only).
func parseSetOpts(args [][]byte, withGet bool) (setOpts, reply) {
	var o setOpts
	for _, a := range args {
		switch strings.ToUpper(string(a)) {
		case "NX":
			o.nx = true
		case "XX":
			o.xx = true
		case "GET":
			if !withGet {
				return o, errReply("ERR syntax error")
			}
			o.get = true
		case "EX", "PX", "EXAT", "PXAT", "KEEPTTL":
			return o, errReply("ERR srdd has no expiry yet: SET takes no EX, PX, EXAT, PXAT or KEEPTTL")
		default:
			return o, errReply("ERR syntax error")
		}
	}
	if o.nx && o.xx {
		return o, errReply("ERR syntax error")
	}
	return o, done
}

var stripeSeed = maphash.MakeSeed()

// write stores v at rdd:key under o's conditions and writes the reply:
// OK, or a null when a condition fails; with GET, the old value.
//
// NX, XX and GET read the key first, then write it. The two calls hold
// a lock of this node's, so conditional writes through this node's
// Redis port do not interleave; a write through another node or the
// REST API between the two calls is not seen (srdd has no
// compare-and-set yet).
func (c *conn) write(rdd, key string, v json.RawMessage, o setOpts) reply {
	if o.conditional() {
		mu := &c.s.stripes[maphash.String(stripeSeed, rdd+":"+key)%uint64(len(c.s.stripes))]
		mu.Lock()
		defer mu.Unlock()
	}
	var old json.RawMessage
	if o.conditional() {
		var err error
		if old, err = c.getKey(rdd, key); err != nil {
			return fail(err)
		}
	}
	if (o.nx && old != nil) || (o.xx && old == nil) {
		if o.get {
			c.writeValue(old)
		} else {
			c.w.Null()
		}
		return done
	}
	if err := c.setMany(rdd, map[string]json.RawMessage{key: v}); err != nil {
		return fail(err)
	}
	if o.get {
		c.writeValue(old)
	} else {
		c.w.Simple("OK")
	}
	return done
}

// set is SET key value [NX|XX] [GET]: the value is stored as a JSON
// string.
func (c *conn) set(args [][]byte) reply {
	rdd, key, r := splitKey(args[1])
	if r.err != "" {
		return r
	}
	o, r := parseSetOpts(args[3:], true)
	if r.err != "" {
		return r
	}
	v, r := jsonString(args[2])
	if r.err != "" {
		return r
	}
	return c.write(rdd, key, v, o)
}

// rootPath reports whether p is RedisJSON's root path ($ or .).
func rootPath(p []byte) bool { return string(p) == "$" || string(p) == "." }

// jsonSet is JSON.SET key $ json [NX|XX]: the value is stored as it is.
func (c *conn) jsonSet(args [][]byte) reply {
	rdd, key, r := splitKey(args[1])
	if r.err != "" {
		return r
	}
	if !rootPath(args[2]) {
		return errReply("ERR srdd's JSON.SET takes the root path only ($)")
	}
	o, r := parseSetOpts(args[4:], false)
	if r.err != "" {
		return r
	}
	if !json.Valid(args[3]) {
		return errReply("ERR the value is not valid JSON")
	}
	return c.write(rdd, key, json.RawMessage(args[3]), o)
}

// jsonGet is JSON.GET key [path]: the value's JSON text; with path $,
// in an array, as RedisJSON's JSONPath answers.
func (c *conn) jsonGet(args [][]byte) reply {
	if len(args) > 3 || (len(args) == 3 && !rootPath(args[2])) {
		return errReply("ERR srdd's JSON.GET takes the root path only ($ or .)")
	}
	v, r := c.getOne(args[1])
	switch {
	case r.err != "":
		return r
	case v == nil:
		c.w.Null()
	case len(args) == 3 && string(args[2]) == "$":
		c.w.Bulk(append(append([]byte("["), v...), ']'))
	default:
		c.w.Bulk(v)
	}
	return done
}
