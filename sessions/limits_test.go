package sessions

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// The statement history keeps at most MaxStatements statements and
// MaxBytes of code and output, in memory and on disk; trimmed ids answer
// a 404 that says so, and each statement is written once.
func TestStatementHistoryIsBounded(t *testing.T) {
	dir := t.TempDir()
	lim := HistoryLimits{MaxStatements: 3, MaxBytes: 10 << 10}
	h, err := openHistory(dir, 7, lim)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	s := &session{id: 7, hist: h, histLim: lim}
	run := func(code string, out string) int {
		s.mu.Lock()
		defer s.mu.Unlock()
		st := &Statement{ID: s.nextID(), Code: code, State: StmtWaiting, done: make(chan struct{})}
		s.add(st)
		s.finish(st, StmtAvailable, []byte(out))
		return st.ID
	}
	big := strings.Repeat("x", 4<<10)
	if id := run(big, `{}`); id != 0 {
		t.Fatalf("first id %d", id)
	}
	fi, _ := os.Stat(historyPath(dir, 7))
	if fi.Size() > 5<<10 {
		t.Fatalf("one statement of 4 KiB takes %d bytes on disk: written more than once", fi.Size())
	}
	for i := 1; i < 200; i++ {
		run(big, `{"i":1}`)
	}
	s.mu.Lock()
	kept, first, bytes := len(s.statements), s.first, s.stmtBytes
	_, errOld := s.stmt(0)
	_, errNew := s.stmt(199)
	_, errNone := s.stmt(200)
	s.mu.Unlock()
	if kept > 3 || bytes > lim.MaxBytes || first+kept != 200 {
		t.Fatalf("kept %d statements of %d bytes from id %d", kept, bytes, first)
	}
	if !errors.Is(errOld, ErrNoStatement) || !strings.Contains(errOld.Error(), "trimmed") {
		t.Fatalf("statement 0: %v", errOld)
	}
	if errNew != nil || !errors.Is(errNone, ErrNoStatement) || strings.Contains(errNone.Error(), "trimmed") {
		t.Fatalf("newest: %v; next: %v", errNew, errNone)
	}
	fi, _ = os.Stat(historyPath(dir, 7))
	if fi.Size() > 3*lim.MaxBytes {
		t.Fatalf("history file is %d bytes after 200 statements, limit %d", fi.Size(), lim.MaxBytes)
	}
	// a node restart reads the same kept statements back
	pf, past, err := loadHistory(dir, 7, lim)
	if err != nil || pf != first || len(past) != kept || past[len(past)-1].ID != 199 {
		t.Fatalf("loadHistory = %d, %d statements, %v; want from %d, %d", pf, len(past), err, first, kept)
	}
	if _, err := pick(7, 0, pf, len(past), func(i int) *Statement { return &past[i] }); err == nil || !strings.Contains(err.Error(), "trimmed") {
		t.Fatalf("past statement 0: %v", err)
	}
}

// The interpreter log keeps at most LogLines lines and LogBytes bytes.
func TestLogIsBounded(t *testing.T) {
	s := &session{}
	for i := 0; i < 100; i++ {
		s.appendLog(10, 100, strings.Repeat("y", 30))
	}
	s.appendLog(10, 100, strings.Repeat("z", 1000))
	kept, start := s.log.Kept()
	n := 0
	for _, l := range kept {
		n += len(l)
	}
	if len(kept) > 10 || n > 100 || start+len(kept) != 101 {
		t.Fatalf("log has %d lines, %d bytes, start %d", len(kept), n, start)
	}
}

// Sessions per node and per principal are capped; dead sessions and the
// node's own KV session do not count against a principal.
func TestSessionLimits(t *testing.T) {
	m := &Manager{cfg: Config{MaxSessions: 3, MaxSessionsPerPrincipal: 1}, live: map[int64]*session{},
		creatingByPrincipal: map[string]int{}}
	m.live[1] = &session{state: StateIdle, principal: "alice"}
	m.live[2] = &session{state: StateDead, principal: "bob"}
	m.live[3] = &session{state: StateBusy, internal: true}
	f := func(principal string, internal bool, want error) func() {
		t.Helper()
		release, err := m.reserve(principal, internal)
		if !errors.Is(err, want) {
			t.Fatalf("reserve(%q, %v) = %v, want %v", principal, internal, err, want)
		}
		return release
	}
	f("alice", false, ErrLimit) // her one session
	rb := f("bob", false, nil)  // his dead one does not count
	f("bob", false, ErrLimit)   // but his create under way does
	f("carol", false, ErrLimit) // 3 on the node: alice, the KV session, bob's
	rb()
	rc := f("", false, nil)
	f("", false, ErrLimit)
	rc()
	m.live[3].state = StateKilled
	f("", true, nil)()
}

// Log pages like Livy's /log: a negative from means the newest size lines.
func TestLogPaging(t *testing.T) {
	s := &session{state: StateIdle}
	for i := 0; i < 20; i++ {
		s.appendLog(10, 1000, fmt.Sprintf("line %d", i))
	}
	m := &Manager{live: map[int64]*session{1: s}}
	f := func(from, size, wantFrom int, want ...string) {
		t.Helper()
		lines, gotFrom, total, err := m.Log(1, from, size)
		if err != nil || gotFrom != wantFrom || total != 20 || fmt.Sprint(lines) != fmt.Sprint(want) {
			t.Fatalf("Log(from %d, size %d) = %q from %d total %d %v; want %q from %d total 20",
				from, size, lines, gotFrom, total, err, want, wantFrom)
		}
	}
	f(-1, 3, 17, "line 17", "line 18", "line 19")
	f(-1, 2, 18, "line 18", "line 19")
	f(0, 2, 10, "line 10", "line 11") // trimmed lines are gone: from starts at the oldest kept
	f(15, 2, 15, "line 15", "line 16")
	f(-1, 0, 20)
	lines, from, _, _ := m.Log(1, -1, 50)
	if from != 10 || len(lines) != 10 {
		t.Fatalf("Log(-1, 50) = %d lines from %d; want the 10 kept lines from 10", len(lines), from)
	}
}
