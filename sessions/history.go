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

// history keeps a session's statements on disk as JSON Lines, one record
// per state change that matters (submitted, finished), so results outlive
// the interpreter and a node restart. Livy keeps only the last 100, in the
// driver's memory.
type history struct {
	mu sync.Mutex
	f  *os.File
}

func historyPath(dataDir string, id int64) string {
	return filepath.Join(dataDir, "sessions", strconv.FormatInt(id, 10), "statements.jsonl")
}

func openHistory(dataDir string, id int64) (*history, error) {
	p := historyPath(dataDir, id)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return nil, fmt.Errorf("cannot create session dir: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("cannot open statement history: %w", err)
	}
	return &history{f: f}, nil
}

// record appends one statement snapshot. A nil history records nothing.
func (h *history) record(st Statement) error {
	if h == nil {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err = h.f.Write(append(b, '\n'))
	return err
}

func (h *history) close() {
	if h != nil {
		h.mu.Lock()
		_ = h.f.Close()
		h.mu.Unlock()
	}
}

// loadHistory reads a session's statements back: the last record of each
// id wins, and a statement that never finished is reported as an error.
func loadHistory(dataDir string, id int64) ([]Statement, error) {
	f, err := os.Open(historyPath(dataDir, id))
	if os.IsNotExist(err) {
		return []Statement{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read statement history: %w", err)
	}
	defer f.Close()
	var out []Statement
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		var st Statement
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			break // a torn last line after a crash
		}
		for len(out) <= st.ID {
			out = append(out, Statement{ID: len(out)})
		}
		out[st.ID] = st
	}
	for i := range out {
		switch out[i].State {
		case StmtWaiting, StmtRunning, StmtCancelling:
			out[i].State = StmtError
			out[i].Output = errorOutput(fmt.Errorf("the session ended before this statement finished"))
		}
	}
	return out, nil
}
