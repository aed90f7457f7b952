package redisapi

import (
	"crypto/rand"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
)

// SCAN and KEYS walk one shared RDD's keys in key order, through the
// REST scan route. A Redis cursor is a number; the REST cursor it stands
// for is kept in a table of this node's (bounded: the oldest cursors are
// forgotten first, and a forgotten one is an error, not a restart).

// maxCursors bounds the table of open SCAN cursors of a node.
const maxCursors = 4096

// maxKeysReply bounds what one KEYS answers; more is an error (use SCAN).
// KEYS reads keysPage keys at a time (a scan page carries the values too).
const (
	maxKeysReply = 100_000
	keysPage     = 1000
)

type cursorState struct {
	rdd, prefix string
	after       string // the REST cursor
}

type cursorTable struct {
	mu    sync.Mutex
	m     map[uint64]cursorState
	order []uint64 // ring of ids, oldest at next
	next  int
}

func (t *cursorTable) init() {
	t.m = make(map[uint64]cursorState)
	t.order = make([]uint64, maxCursors)
}

// put stores st and returns its cursor: a random number > 0 that fits
// an int64, so every client's integer parsing takes it.
func (t *cursorTable) put(st cursorState) uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := binary.LittleEndian.Uint64(b[:])>>1 | 1
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.order[t.next]; old != 0 {
		delete(t.m, old)
	}
	t.order[t.next] = id
	t.next = (t.next + 1) % len(t.order)
	t.m[id] = st
	return id
}

func (t *cursorTable) get(id uint64) (cursorState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.m[id]
	return st, ok
}

// pattern reads a MATCH pattern: rdd:prefix*, a literal prefix of one
// shared RDD's keys.
func pattern(p []byte) (rdd, prefix string, r reply) {
	rdd, rest, r := splitKey(p)
	if r.err == "" && strings.HasSuffix(rest, "*") && !strings.ContainsAny(rest[:len(rest)-1], `*?[]\`) {
		return rdd, rest[:len(rest)-1], done
	}
	return "", "", errReply("ERR srdd scans one shared RDD's keys by prefix: the pattern must be rdd:prefix* (no other wildcards)")
}

// scan is SCAN cursor MATCH rdd:prefix* [COUNT n].
func (c *conn) scan(args [][]byte) reply {
	var pat []byte
	count := int64(10)
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return errReply("ERR syntax error")
		}
		switch strings.ToUpper(string(args[i])) {
		case "MATCH":
			pat = args[i+1]
		case "COUNT":
			n, isNum := integer(args[i+1])
			if !isNum || n < 1 {
				return errReply("ERR value is not an integer or out of range")
			}
			count = min(n, int64(c.s.cfg.Limits.MaxBatch))
		case "TYPE":
			if !strings.EqualFold(string(args[i+1]), "string") {
				return errReply("ERR srdd's SCAN takes TYPE string only")
			}
		default:
			return errReply("ERR syntax error")
		}
	}
	if pat == nil {
		return errReply("ERR srdd's SCAN needs MATCH rdd:prefix*: it scans one shared RDD's keys")
	}
	rdd, prefix, r := pattern(pat)
	if r.err != "" {
		return r
	}
	id, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		return errReply("ERR invalid cursor")
	}
	var after string
	if id != 0 {
		st, found := c.s.cursors.get(id)
		if !found || st.rdd != rdd || st.prefix != prefix {
			return errReply("ERR invalid cursor (unknown, expired, or of another MATCH)")
		}
		after = st.after
	}
	keys, next, err := c.scanPage(rdd, prefix, after, int(count))
	if err != nil {
		return fail(err)
	}
	cursor := "0"
	if next != "" {
		cursor = strconv.FormatUint(c.s.cursors.put(cursorState{rdd: rdd, prefix: prefix, after: next}), 10)
	}
	c.w.Array(2)
	c.w.BulkString(cursor)
	c.writeKeys(rdd, keys)
	return done
}

func (c *conn) writeKeys(rdd string, keys []string) {
	c.w.Array(len(keys))
	for _, k := range keys {
		c.w.BulkString(rdd + ":" + k)
	}
}

// keys is KEYS rdd:prefix*: every key with the prefix, up to
// maxKeysReply.
func (c *conn) keys(args [][]byte) reply {
	rdd, prefix, r := pattern(args[1])
	if r.err != "" {
		return r
	}
	var all []string
	after := ""
	for {
		keys, next, err := c.scanPage(rdd, prefix, after, min(keysPage, c.s.cfg.Limits.MaxBatch))
		if err != nil {
			return fail(err)
		}
		all = append(all, keys...)
		if len(all) > maxKeysReply {
			return errReply("ERR more than %d keys match: use SCAN", maxKeysReply)
		}
		if next == "" {
			break
		}
		after = next
	}
	c.writeKeys(rdd, all)
	return done
}
