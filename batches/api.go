package batches

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/livyapp"
)

// View is a batch as Livy's REST API shows it (BatchSessionView), plus
// the node that runs it and, once it ended, why.
type View struct {
	ID        int64           `json:"id"`
	Name      *string         `json:"name"`
	Principal *string         `json:"owner"` // Livy's name for the principal that created it
	ProxyUser *string         `json:"proxyUser"`
	State     string          `json:"state"`
	AppID     *string         `json:"appId"`
	AppInfo   livyapp.AppInfo `json:"appInfo"`
	Log       []string        `json:"log"`
	Node      string          `json:"node"`
	Reason    string          `json:"reason,omitempty"`
}

func (m *Manager) view(b cluster.Batch) View {
	v := View{ID: b.ID, Name: livyapp.OrNil(b.Name), Principal: livyapp.OrNil(b.Principal), ProxyUser: livyapp.OrNil(b.ProxyUser),
		State: b.State, AppID: livyapp.OrNil(b.AppID), Node: b.Node, Reason: b.Reason, Log: []string{}}
	v.AppInfo.SparkUIURL = livyapp.OrNil(b.SparkUIURL)
	if mem, ok := m.reg.Member(b.Node); ok && mem.HTTPAddr != "" {
		v.AppInfo.DriverLogURL = livyapp.OrNil(m.cfg.Scheme + "://" + mem.HTTPAddr + "/batches/" + strconv.FormatInt(b.ID, 10) + "/log")
	}
	if b.Node == m.reg.ID() {
		if lines, _, err := m.lines(b.ID); err == nil {
			v.Log = append(v.Log, lines[max(0, len(lines)-livyapp.ViewLogLines):]...)
		}
	} else if b.Reason != "" {
		v.Log = []string{b.Reason}
	}
	return v
}

// Get describes one batch from the registry, with this node's log.
func (m *Manager) Get(id int64) (View, error) {
	b, ok := m.reg.Batch(id)
	if !ok {
		return View{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return m.view(b), nil
}

// List describes the batches [from, from+size) in id order, and says how
// many there are. Only those read their logs (from disk once finished).
func (m *Manager) List(from, size int) ([]View, int) {
	all := m.reg.Batches()
	lo := min(from, len(all))
	hi := lo + min(size, len(all)-lo)
	out := make([]View, 0, hi-lo)
	for _, b := range all[lo:hi] {
		out = append(out, m.view(b))
	}
	return out, len(all)
}

// lines returns the kept log of a batch run here (live or on disk) and
// the number of lines dropped before it.
func (m *Manager) lines(id int64) ([]string, int, error) {
	m.mu.Lock()
	r, ok := m.live[id]
	m.mu.Unlock()
	if ok {
		l, start := r.lines()
		return l, start, nil
	}
	return m.readLogFile(id)
}

// Log returns lines [from, from+size) of a batch's driver log, counted
// from its first line (Livy's /batches/{id}/log). Without from, the last
// size lines, as Livy does. The log lives on the batch's node.
func (m *Manager) Log(id int64, from *int, size int) (lines []string, start, total int, err error) {
	b, ok := m.reg.Batch(id)
	if !ok {
		return nil, 0, 0, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if b.Node != m.reg.ID() {
		return nil, 0, 0, fmt.Errorf("%w: batch %d ran on node %s, which keeps its log", ErrNotLocal, id, b.Node)
	}
	kept, dropped, err := m.lines(id)
	if err != nil {
		return nil, 0, 0, err
	}
	lines, start, total = livyapp.Page(kept, dropped, from, size)
	return lines, start, total, nil
}

// Kill ends a batch run here: its whole process group, then the record
// says killed. A batch that has ended is left as it is.
func (m *Manager) Kill(id int64) error {
	b, ok := m.reg.Batch(id)
	if !ok {
		return fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if b.Final() {
		return nil
	}
	if b.Node != m.reg.ID() {
		return fmt.Errorf("%w: batch %d runs on node %s", ErrNotLocal, id, b.Node)
	}
	m.mu.Lock()
	r, live := m.live[id]
	m.mu.Unlock()
	if live {
		r.appendLog("srdd: killed by a client (DELETE /batches/" + strconv.FormatInt(id, 10) + ")")
		r.kill(m.cfg.KillGrace)
		select {
		case <-r.done:
		case <-time.After(m.cfg.KillGrace + 5*time.Second):
		}
	}
	m.setState(id, cluster.BatchKilled, "killed by a client", "", "")
	return nil
}

// sparkSubmit finds the spark-submit bundled with the pyspark package of
// the node's Python (once).
func (m *Manager) sparkSubmit() (string, error) {
	m.submitOnce.Do(func() {
		if m.cfg.SparkSubmit != "" {
			m.submit = m.cfg.SparkSubmit
			return
		}
		out, err := exec.Command(m.cfg.Python, "-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))").Output()
		if err != nil {
			m.submitErr = fmt.Errorf("cannot find pyspark with %s: %w", m.cfg.Python, err)
			return
		}
		path := filepath.Join(strings.TrimSpace(string(out)), "bin", "spark-submit")
		if _, err := os.Stat(path); err != nil {
			m.submitErr = fmt.Errorf("pyspark has no bin/spark-submit: %w", err)
			return
		}
		m.submit = path
	})
	return m.submit, m.submitErr
}
