package redisapi

import (
	"encoding/json"
	"strings"
	"sync"
	"time"
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

// condWait bounds how long a conditional write waits for another
// conditional write of the same key through this node (a variable for
// tests). The one it waits for may be a call forwarded to a slow owner,
// which can take minutes; past condWait the waiting one answers an
// error, having done nothing.
var condWait = 5 * time.Second

// keyLocks are this node's conditional writes in progress: one lock per
// key (rdd:key), in the map only while someone holds or waits for it.
// A slow call on one key holds up the conditional writes of that key
// only (a fixed set of stripes made it hold up every key of its stripe).
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	held chan struct{} // a token in it while the key is locked
	refs int           // holders and waiters, under keyLocks.mu
}

// lock takes k's lock, waiting at most condWait, and returns its unlock
// (ok false: not taken, nothing to unlock).
func (l *keyLocks) lock(k string) (unlock func(), ok bool) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*keyLock{}
	}
	kl := l.m[k]
	if kl == nil {
		kl = &keyLock{held: make(chan struct{}, 1)}
		l.m[k] = kl
	}
	kl.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if kl.refs--; kl.refs == 0 {
			delete(l.m, k)
		}
		l.mu.Unlock()
	}
	unlock = func() { <-kl.held; release() }
	select {
	case kl.held <- struct{}{}:
		return unlock, true
	default:
	}
	t := time.NewTimer(condWait)
	defer t.Stop()
	select {
	case kl.held <- struct{}{}:
		return unlock, true
	case <-t.C:
		release()
		return nil, false
	}
}

// write stores v at rdd:key under o's conditions and writes the reply:
// OK, or a null when a condition fails; with GET, the old value.
//
// NX, XX and GET read the key first, then write it. The two calls hold
// a lock of this node's on the key, so conditional writes of one key
// through this node's Redis port do not interleave; a write through
// another node or the REST API between the two calls is not seen (srdd
// has no compare-and-set yet).
func (c *conn) write(rdd, key string, v json.RawMessage, o setOpts) reply {
	if o.conditional() {
		unlock, ok := c.s.keyLocks.lock(rdd + ":" + key)
		if !ok {
			return errReply("ERR another conditional write (NX, XX or GET) of this key through this node is still running after %v: nothing was written, try again", condWait)
		}
		defer unlock()
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
