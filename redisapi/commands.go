package redisapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// cmd is one command of the table.
type cmd struct {
	// arity as Redis gives it: n exactly n arguments (the name
	// included), -n at least n.
	arity int
	// preAuth: allowed before AUTH on a node with auth.
	preAuth bool
	// write: the command changes data (COMMAND's flags).
	write bool
	run   func(c *conn, args [][]byte) (quit bool, r reply)
}

func (s cmd) arityOK(n int) bool {
	if s.arity < 0 {
		return n >= -s.arity
	}
	return n == s.arity
}

// commands is the command table, keyed by upper-case name. It is
// filled by init: COMMAND lists it.
var commands map[string]cmd

// answer adapts a command that never closes the connection.
func answer(f func(c *conn, args [][]byte) reply) func(*conn, [][]byte) (bool, reply) {
	return func(c *conn, args [][]byte) (bool, reply) { return false, f(c, args) }
}

func init() {
	commands = map[string]cmd{
		"PING":   {arity: -1, run: answer((*conn).ping)},
		"ECHO":   {arity: 2, run: answer(func(c *conn, a [][]byte) reply { c.w.Bulk(a[1]); return done })},
		"HELLO":  {arity: -1, preAuth: true, run: answer((*conn).hello)},
		"AUTH":   {arity: -2, preAuth: true, run: answer((*conn).auth)},
		"SELECT": {arity: 2, run: answer((*conn).selectDB)},
		"QUIT": {arity: -1, preAuth: true, run: func(c *conn, _ [][]byte) (bool, reply) {
			c.w.Simple("OK")
			return true, done
		}},
		"RESET": {arity: 1, preAuth: true, run: answer(func(c *conn, _ [][]byte) reply {
			c.logout()
			c.w.Proto, c.name = 2, ""
			c.w.Simple("RESET")
			return done
		})},
		"CLIENT":  {arity: -2, run: answer((*conn).client)},
		"COMMAND": {arity: -1, run: answer((*conn).commandCmd)},
		"INFO":    {arity: -1, run: answer((*conn).info)},
		"DBSIZE":  {arity: 1, run: answer((*conn).dbsize)},
		// CONFIG GET answers nothing (srdd is configured by its flags), so
		// tools that read a setting first (redis-benchmark) carry on.
		"CONFIG": {arity: -2, run: answer(func(c *conn, a [][]byte) reply {
			if !strings.EqualFold(string(a[1]), "GET") {
				return errReply("ERR srdd is configured by its flags: CONFIG takes GET only, and answers nothing")
			}
			c.w.Map(0)
			return done
		})},

		"GET":      {arity: 2, run: answer((*conn).get)},
		"SET":      {arity: -3, write: true, run: answer((*conn).set)},
		"MGET":     {arity: -2, run: answer((*conn).mget)},
		"MSET":     {arity: -3, write: true, run: answer((*conn).mset)},
		"DEL":      {arity: -2, write: true, run: answer((*conn).del)},
		"UNLINK":   {arity: -2, write: true, run: answer((*conn).del)},
		"EXISTS":   {arity: -2, run: answer((*conn).exists)},
		"STRLEN":   {arity: 2, run: answer((*conn).strlen)},
		"TYPE":     {arity: 2, run: answer((*conn).typ)},
		"SCAN":     {arity: -2, run: answer((*conn).scan)},
		"KEYS":     {arity: 2, run: answer((*conn).keys)},
		"JSON.SET": {arity: -4, write: true, run: answer((*conn).jsonSet)},
		"JSON.GET": {arity: -2, run: answer((*conn).jsonGet)},
	}
}

// splitKey maps "rdd:key" to shared RDD rdd and its key key: the first
// ':' splits, since an RDD's name cannot hold one and a key can.
func splitKey(b []byte) (rdd, key string, r reply) {
	i := bytes.IndexByte(b, ':')
	if i <= 0 {
		return "", "", errReply("ERR key '%s' names no shared RDD: srdd's keys are rdd:key", printable(b, 64))
	}
	return string(b[:i]), string(b[i+1:]), done
}

// fail turns an error of a REST call into a reply.
func fail(err error) reply {
	var re restErr
	if errors.As(err, &re) {
		return reply{err: string(re)}
	}
	return reply{err: "ERR " + err.Error()}
}

// text is what GET answers for a stored JSON value: a JSON string's
// text, any other value's JSON text.
func text(v json.RawMessage) []byte {
	v = bytes.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && !bytes.ContainsAny(v[1:len(v)-1], "\\\"") {
		// No escape: the bytes between the quotes are the text (the
		// store holds valid JSON only), without a decode.
		return v[1 : len(v)-1]
	}
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return []byte(s)
		}
	}
	return v
}

// isString reports whether a stored JSON value is a string.
func isString(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '"'
}

// jsonString is b as the JSON string SET stores: b must be UTF-8.
func jsonString(b []byte) (json.RawMessage, reply) {
	if !utf8.Valid(b) {
		return nil, errReply("ERR srdd stores SET values as JSON strings: the value is not valid UTF-8 (store binary data base64-encoded)")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(string(b))
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), done
}

// plainRun finds a run of plain commands name (nargs arguments each, the
// name included) on keys of one RDD at the head of batch, at most one
// batch call long, of which ok accepts every one. It returns the RDD and
// the keys; a run shorter than two is no run (the ordinary path serves
// it).
func (c *conn) plainRun(batch [][][]byte, name string, nargs int, ok func(args [][]byte) bool) (rdd string, keys []string) {
	if !c.authed {
		return "", nil
	}
	for _, args := range batch {
		if len(args) != nargs || !strings.EqualFold(string(args[0]), name) || len(keys) >= c.s.cfg.Limits.MaxBatch || !ok(args) {
			break
		}
		r, k, rep := splitKey(args[1])
		if rep.err != "" || (len(keys) > 0 && r != rdd) {
			break
		}
		rdd, keys = r, append(keys, k)
	}
	if len(keys) < 2 {
		return "", nil
	}
	return rdd, keys
}

func anyArgs([][]byte) bool { return true }

// getRun serves a run of GETs of one RDD at the head of batch as one
// batched lookup and returns how many it served (0: none).
func (c *conn) getRun(batch [][][]byte) int {
	rdd, keys := c.plainRun(batch, "GET", 2, anyArgs)
	if keys == nil {
		return 0
	}
	began := time.Now()
	vals, err := c.getMany(rdd, dedupe(keys))
	if err != nil {
		line := fail(err).err
		for range keys {
			c.w.Error(line)
		}
		c.s.metrics.observeN("GET", len(keys), "error", time.Since(began))
		return len(keys)
	}
	for _, k := range keys {
		c.writeValue(vals[k])
	}
	c.s.metrics.observeN("GET", len(keys), "ok", time.Since(began))
	return len(keys)
}

// setRun serves a run of plain SETs (no options) of one RDD at the head
// of batch as one batched write and returns how many it served (0:
// none). The batch is all or none: if it is refused, nothing was
// written, and each SET runs again alone for its own answer.
func (c *conn) setRun(batch [][][]byte) int {
	rdd, keys := c.plainRun(batch, "SET", 3, func(args [][]byte) bool { return utf8.Valid(args[2]) })
	if keys == nil {
		return 0
	}
	items := make(map[string]json.RawMessage, len(keys))
	for i, k := range keys {
		items[k], _ = jsonString(batch[i][2]) // a key set twice: the last value, as in order
	}
	began := time.Now()
	if status, err := c.setManyStatus(rdd, items); err != nil {
		if status/100 == 4 {
			// Refused whole: nothing was written, and each SET runs
			// alone for its own answer.
			for _, args := range batch[:len(keys)] {
				c.command(args)
			}
		} else {
			// Not refused (e.g. the outcome is unknown, or the node is
			// busy): the batch may have been applied, so no SET is sent
			// again; each gets the batch's error.
			for range keys {
				c.w.Error(err.Error())
			}
			c.s.metrics.observeN("SET", len(keys), "error", time.Since(began))
		}
		return len(keys)
	}
	for range keys {
		c.w.Simple("OK")
	}
	c.s.metrics.observeN("SET", len(keys), "ok", time.Since(began))
	return len(keys)
}

// dedupe returns keys without repeats, in order.
func dedupe(keys []string) []string {
	out := make([]string, 0, len(keys))
	if len(keys) <= 32 { // a pipelined run: searched, no map to build
		for _, k := range keys {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
		return out
	}
	seen := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		if _, dup := seen[k]; !dup {
			seen[k] = struct{}{}
			out = append(out, k)
		}
	}
	return out
}

func (c *conn) writeValue(v json.RawMessage) {
	if v == nil {
		c.w.Null()
		return
	}
	c.w.Bulk(text(v))
}

// getOne reads one key: nil if it does not exist.
func (c *conn) getOne(k []byte) (json.RawMessage, reply) {
	rdd, key, r := splitKey(k)
	if r.err != "" {
		return nil, r
	}
	v, err := c.getKey(rdd, key)
	if err != nil {
		return nil, fail(err)
	}
	return v, done
}

func (c *conn) get(args [][]byte) reply {
	v, r := c.getOne(args[1])
	if r.err == "" {
		c.writeValue(v)
	}
	return r
}

func (c *conn) strlen(args [][]byte) reply {
	v, r := c.getOne(args[1])
	if r.err == "" {
		c.w.Int(int64(len(text(v))))
	}
	return r
}

// typ answers TYPE: a JSON string is a Redis string, any other JSON
// value is RedisJSON's type.
func (c *conn) typ(args [][]byte) reply {
	v, r := c.getOne(args[1])
	switch {
	case r.err != "":
	case v == nil:
		c.w.Simple("none")
	case isString(v):
		c.w.Simple("string")
	default:
		c.w.Simple("ReJSON-RL")
	}
	return r
}

// group splits keys by RDD, in order of first appearance.
type group struct {
	rdd  string
	keys []string
}

func groupKeys(raw [][]byte) ([]group, reply) {
	var gs []group
	at := map[string]int{}
	for _, k := range raw {
		rdd, key, r := splitKey(k)
		if r.err != "" {
			return nil, r
		}
		i, found := at[rdd]
		if !found {
			i = len(gs)
			at[rdd] = i
			gs = append(gs, group{rdd: rdd})
		}
		gs[i].keys = append(gs[i].keys, key)
	}
	return gs, done
}

// lookup reads the keys of every group: values by RDD, then key.
func (c *conn) lookup(gs []group) (map[string]map[string]json.RawMessage, reply) {
	out := make(map[string]map[string]json.RawMessage, len(gs))
	for _, g := range gs {
		vals, err := c.getMany(g.rdd, dedupe(g.keys))
		if err != nil {
			return nil, fail(err)
		}
		out[g.rdd] = vals
	}
	return out, done
}

// lookupArgs reads the keys args name (rdd:key each), RDD by RDD, and
// returns each one's value (nil: missing), in args' order.
func (c *conn) lookupArgs(args [][]byte) ([]json.RawMessage, reply) {
	gs, r := groupKeys(args)
	if r.err != "" {
		return nil, r
	}
	vals, r := c.lookup(gs)
	if r.err != "" {
		return nil, r
	}
	out := make([]json.RawMessage, len(args))
	for i, k := range args {
		rdd, key, _ := splitKey(k)
		out[i] = vals[rdd][key]
	}
	return out, done
}

func (c *conn) mget(args [][]byte) reply {
	vals, r := c.lookupArgs(args[1:])
	if r.err != "" {
		return r
	}
	c.w.Array(len(vals))
	for _, v := range vals {
		c.writeValue(v)
	}
	return done
}

func (c *conn) exists(args [][]byte) reply {
	vals, r := c.lookupArgs(args[1:])
	if r.err != "" {
		return r
	}
	n := 0
	for _, v := range vals { // a key named twice counts twice, as in Redis
		if v != nil {
			n++
		}
	}
	c.w.Int(int64(n))
	return done
}

// del deletes keys, RDD by RDD (DEL and UNLINK).
func (c *conn) del(args [][]byte) reply {
	gs, r := groupKeys(args[1:])
	if r.err != "" {
		return r
	}
	var n int64
	for i, g := range gs {
		d, err := c.deleteMany(g.rdd, dedupe(g.keys))
		if err != nil {
			if i == 0 {
				return fail(err) // nothing deleted
			}
			return partialDel(fail(err), n, gs[:i])
		}
		n += d
	}
	c.w.Int(n)
	return done
}

// partialDel is the error of a DEL whose RDDs before the failed one were
// done: the failure's own error (its NOPERM, LOADING or ERR prefix kept,
// so a client still tells what went wrong), with what was deleted, since
// there is no count to answer and no transaction across RDDs.
func partialDel(r reply, n int64, done []group) reply {
	names := make([]string, len(done))
	for i, g := range done {
		names[i] = "'" + g.rdd + "'"
	}
	return errReply("%s (DEL stopped there: %d keys of RDD %s were deleted before it)", r.err, n, strings.Join(names, ", "))
}

// mset writes keys of one RDD, all or none.
func (c *conn) mset(args [][]byte) reply {
	if len(args)%2 != 1 {
		return errReply("ERR wrong number of arguments for 'mset' command")
	}
	items := make(map[string]json.RawMessage, len(args)/2)
	var rdd string
	for i := 1; i < len(args); i += 2 {
		r, key, rep := splitKey(args[i])
		if rep.err != "" {
			return rep
		}
		if i == 1 {
			rdd = r
		} else if r != rdd {
			return errReply("ERR MSET writes keys of one shared RDD, all or none: '%s' and '%s' differ", printable([]byte(rdd), 64), printable([]byte(r), 64))
		}
		v, rep := jsonString(args[i+1])
		if rep.err != "" {
			return rep
		}
		items[key] = v // a key given twice: the last value, as in Redis
	}
	if err := c.setMany(rdd, items); err != nil {
		return fail(err)
	}
	c.w.Simple("OK")
	return done
}

func (c *conn) ping(args [][]byte) reply {
	switch len(args) {
	case 1:
		c.w.Simple("PONG")
	case 2:
		c.w.Bulk(args[1])
	default:
		return errReply("ERR wrong number of arguments for 'ping' command")
	}
	return done
}

func (c *conn) selectDB(args [][]byte) reply {
	if string(args[1]) != "0" {
		return errReply("ERR DB index is out of range (srdd has database 0 only; its RDDs are the key's prefix)")
	}
	c.w.Simple("OK")
	return done
}

// integer parses an integer argument.
func integer(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}
