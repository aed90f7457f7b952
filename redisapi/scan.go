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
// for is kept in a table of this node's, per caller, so that one caller's
// scans never push out another's cursors. The table is bounded per caller
// and in total: a caller's oldest cursors are forgotten first, and past
// the total the caller holding the most loses its oldest. A forgotten
// cursor is an error, not a restart.

// maxCursors bounds the open SCAN cursors of a node, and
// maxCursorsPerCaller those of one caller (a user, a token's user, a
// session's capability; everyone, on a node without auth).
const (
	maxCursors          = 4096
	maxCursorsPerCaller = 1024
)

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

// cursorTable is the open cursors of a node, by caller.
type cursorTable struct {
	mu    sync.Mutex
	by    map[string]*callerCursors
	total int
	// Bounds (maxCursors, maxCursorsPerCaller; smaller in tests).
	max, perCaller int
}

// callerCursors is one caller's open cursors, oldest first.
type callerCursors struct {
	m     map[uint64]cursorState
	order []uint64 // FIFO of ids, oldest at order[0]
}

func (t *cursorTable) init() {
	t.by = make(map[string]*callerCursors)
	t.max, t.perCaller = maxCursors, maxCursorsPerCaller
}

// put stores st as one of caller's cursors and returns its cursor: a
// random number > 0 that fits an int64, so every client's integer
// parsing takes it.
func (t *cursorTable) put(caller string, st cursorState) uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := binary.LittleEndian.Uint64(b[:])>>1 | 1
	t.mu.Lock()
	defer t.mu.Unlock()
	cc := t.by[caller]
	if cc == nil {
		cc = &callerCursors{m: make(map[uint64]cursorState)}
		t.by[caller] = cc
	}
	if len(cc.order) >= t.perCaller {
		t.dropOldest(caller, cc)
	}
	if t.total >= t.max {
		t.dropOldest(t.largest())
	}
	if cc = t.by[caller]; cc == nil { // emptied by the line above
		cc = &callerCursors{m: make(map[uint64]cursorState)}
		t.by[caller] = cc
	}
	cc.order = append(cc.order, id)
	cc.m[id] = st
	t.total++
	return id
}

// largest finds the caller holding the most cursors.
func (t *cursorTable) largest() (string, *callerCursors) {
	var name string
	var most *callerCursors
	for n, cc := range t.by {
		if most == nil || len(cc.order) > len(most.order) {
			name, most = n, cc
		}
	}
	return name, most
}

// dropOldest forgets caller's oldest cursor.
func (t *cursorTable) dropOldest(caller string, cc *callerCursors) {
	if cc == nil || len(cc.order) == 0 {
		return
	}
	delete(cc.m, cc.order[0])
	cc.order[0] = 0
	cc.order = cc.order[1:]
	t.total--
	if len(cc.order) == 0 {
		delete(t.by, caller)
	}
}

// get finds one of caller's cursors: another caller's is unknown.
func (t *cursorTable) get(caller string, id uint64) (cursorState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cc := t.by[caller]
	if cc == nil {
		return cursorState{}, false
	}
	st, ok := cc.m[id]
	return st, ok
}

// caller names the connection's caller in the cursor table.
func (c *conn) caller() string {
	switch p := c.principal; {
	case p == nil:
		return ""
	case p.Capability:
		return "session:" + strconv.FormatInt(p.Session, 10)
	default:
		return "user:" + p.Name
	}
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
		st, found := c.s.cursors.get(c.caller(), id)
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
		cursor = strconv.FormatUint(c.s.cursors.put(c.caller(), cursorState{rdd: rdd, prefix: prefix, after: next}), 10)
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
