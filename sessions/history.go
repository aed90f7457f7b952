package sessions

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// history keeps a session's finished statements on disk as JSON Lines,
// one record per statement, written once when it becomes final, so
// results outlive the interpreter and a node restart. Livy keeps only the
// last 100, in the driver's memory.
//
// The file is bounded: the session trims its oldest statements past
// HistoryLimits, and once the file holds twice what is kept (by count or
// bytes) it is rewritten with the kept statements only, after a
// {"trimmed":N} line saying that ids below N were trimmed.
type history struct {
	mu    sync.Mutex
	path  string
	f     *os.File
	lim   HistoryLimits
	lines int   // statement records in the file
	size  int64 // bytes of the file
}

// HistoryLimits bound a session's statement history, in memory and on
// disk (--max-statements, --max-statement-bytes).
type HistoryLimits struct {
	MaxStatements int   // default 1000
	MaxBytes      int64 // code and output of the kept statements; default 64 MiB
}

// DefaultHistoryLimits are --max-statements and --max-statement-bytes'
// defaults.
func DefaultHistoryLimits() HistoryLimits {
	return HistoryLimits{MaxStatements: 1000, MaxBytes: 64 << 20}
}

func (l *HistoryLimits) fill() {
	d := DefaultHistoryLimits()
	if l.MaxStatements <= 0 {
		l.MaxStatements = d.MaxStatements
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
}

// stmtSize is what a statement counts against MaxBytes.
func stmtSize(st *Statement) int64 { return int64(len(st.Code) + len(st.Output)) }

func historyPath(dataDir string, id int64) string {
	return filepath.Join(dataDir, "sessions", strconv.FormatInt(id, 10), "statements.jsonl")
}

func openHistory(dataDir string, id int64, lim HistoryLimits) (*history, error) {
	p := historyPath(dataDir, id)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return nil, fmt.Errorf("cannot create session dir: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("cannot open statement history: %w", err)
	}
	return &history{path: p, f: f, lim: lim}, nil
}

// record appends a final statement. Once the file holds twice the limits
// it is rewritten from kept (the session's statements, ids from first;
// only final ones are written). A nil history records nothing.
func (h *history) record(st *Statement, first int, kept []*Statement) error {
	if h == nil {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("cannot record statement: %w", err)
	}
	h.lines++
	h.size += int64(len(b) + 1)
	if h.lines > 2*h.lim.MaxStatements || h.size > 2*h.lim.MaxBytes {
		return h.rewrite(first, kept)
	}
	return nil
}

// rewrite replaces the file with the kept final statements. Callers hold h.mu.
func (h *history) rewrite(first int, kept []*Statement) error {
	tmp := h.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("cannot rewrite statement history: %w", err)
	}
	w := bufio.NewWriter(f)
	hdr, _ := json.Marshal(map[string]int{"trimmed": first})
	n, size := 0, int64(len(hdr)+1)
	w.Write(append(hdr, '\n'))
	for _, st := range kept {
		if !isFinal(st.State) {
			continue
		}
		b, err := json.Marshal(st)
		if err != nil {
			continue
		}
		w.Write(append(b, '\n'))
		n, size = n+1, size+int64(len(b)+1)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("cannot rewrite statement history: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("cannot rewrite statement history: %w", err)
	}
	f.Close()
	if err := os.Rename(tmp, h.path); err != nil {
		return fmt.Errorf("cannot rewrite statement history: %w", err)
	}
	nf, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("cannot reopen statement history: %w", err)
	}
	_ = h.f.Close()
	h.f, h.lines, h.size = nf, n, size
	return nil
}

func (h *history) close() {
	if h != nil {
		h.mu.Lock()
		_ = h.f.Close()
		h.mu.Unlock()
	}
}

// historyRecord is a line of the file: a statement, or a trimmed marker.
type historyRecord struct {
	Statement
	Trimmed *int `json:"trimmed"`
}

// loadHistory reads a session's statements back, trimmed to lim: first
// is the id of out[0] (lower ids were trimmed). A statement with no
// record never finished (the session ended first) and reads as an error.
func loadHistory(dataDir string, id int64, lim HistoryLimits) (first int, out []Statement, err error) {
	f, err := os.Open(historyPath(dataDir, id))
	if os.IsNotExist(err) {
		return 0, []Statement{}, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("cannot read statement history: %w", err)
	}
	defer f.Close()
	byID := map[int]Statement{}
	last := -1
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		var rec historyRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			break // a torn last line after a crash
		}
		if rec.Trimmed != nil {
			first = max(first, *rec.Trimmed)
			continue
		}
		byID[rec.ID] = rec.Statement
		last = max(last, rec.ID)
	}
	for i := first; i <= last; i++ {
		st, ok := byID[i]
		if !ok || !isFinal(st.State) {
			st = Statement{ID: i, State: StmtError,
				Output: errorOutput(fmt.Errorf("the session ended before this statement finished"))}
		}
		out = append(out, st)
	}
	// the same trimming as a live session's
	var size int64
	for i := range out {
		size += stmtSize(&out[i])
	}
	n := 0
	for n < len(out)-1 && (len(out)-n > lim.MaxStatements || size > lim.MaxBytes) {
		size -= stmtSize(&out[n])
		n++
	}
	if out == nil {
		out = []Statement{}
	}
	return first + n, out[n:], nil
}
