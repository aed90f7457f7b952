package sparkbridge

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNoUID means every uid of --interpreter-uids is taken by a live
// session or batch driver (or still being handed back).
var ErrNoUID = errors.New("no free interpreter uid")

// UIDPool hands out the uids of --interpreter-uids FIRST-LAST: each live
// session and batch driver runs as a uid of its own, so the kernel keeps
// them out of each other's processes (/proc/PID/mem, environ, signals)
// and 0700 files (docs/ARCHITECTURE.md, "Sessions hold no secret"). All
// of them have the pool's group, which is for read-only shared things
// (the interpreter package, traversal of the data dir) and never for a
// session's own data. A uid goes back to the pool only once no process
// runs as it and its files under the reclaim dirs are root's again.
type UIDPool struct {
	First, Last uint32
	GID         uint32

	mu      sync.Mutex
	taken   map[uint32]bool
	next    uint32
	reclaim []string
	names   map[uint32]string // account names, by uid
	// running reports whether a process runs as uid (a /proc scan).
	running func(uid uint32) bool
}

const maxPoolUIDs = 4096

// ParseUIDRange parses FIRST-LAST.
func ParseUIDRange(s string) (first, last uint32, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	f, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
	l, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("--interpreter-uids %q: want FIRST-LAST, e.g. 100000-100999", s)
	}
	// A node runs tens of sessions and batches at once; each uid's account
	// is looked up at start.
	if f == 0 || l < f || l-f >= maxPoolUIDs {
		return 0, 0, fmt.Errorf("--interpreter-uids %q: want 0 < FIRST <= LAST, at most %d uids", s, maxPoolUIDs)
	}
	return uint32(f), uint32(l), nil
}

// NewUIDPool makes a pool of the uids first..last, all with group gid
// (0: gid first). The node must run as root, and each uid must have an
// account (Spark's JVM cannot log in as a uid without one). No uid in the range may be
// in use by a process already: the range must belong to srdd alone.
func NewUIDPool(first, last, gid uint32) (*UIDPool, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("--interpreter-uids: the node must run as root to start processes as other uids")
	}
	if gid == 0 {
		gid = first
	}
	p := &UIDPool{First: first, Last: last, GID: gid, next: first, taken: map[uint32]bool{}, running: uidRunning,
		names: map[uint32]string{}}
	// Spark's JVM (Hadoop's login) fails for a uid with no account: each
	// must have one (and may log in nowhere).
	var missing []uint32
	for uid := first; ; uid++ {
		if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
			p.names[uid] = u.Username
		} else {
			missing = append(missing, uid)
		}
		if uid == last {
			break
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("--interpreter-uids %d-%d: %d uids have no account (first: %d); Spark cannot run as a uid without one. Create them, e.g.: groupadd --system --gid %d srdd-uids; for i in $(seq %d %d); do useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --uid $i --gid %d srdd-$i; done",
			first, last, len(missing), missing[0], gid, first, last, gid)
	}
	return p, nil
}

// SetReclaim names the directories where a returned uid's files are
// given back to root (recursively), and gives back whatever files of the
// range's uids are there now: a previous run's sessions are gone, and
// their uids must not find their files when handed to someone else.
func (p *UIDPool) SetReclaim(dirs ...string) error {
	p.mu.Lock()
	p.reclaim = append([]string(nil), dirs...)
	p.mu.Unlock()
	return p.giveBack(func(uid uint32) bool { return uid >= p.First && uid <= p.Last })
}

// Acquire takes a free uid: none that is taken or that any process runs
// as.
func (p *UIDPool) Acquire() (*User, error) {
	if p == nil {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := uint64(p.Last-p.First) + 1
	for i := uint64(0); i < n; i++ {
		uid := p.next
		if p.next == p.Last {
			p.next = p.First
		} else {
			p.next++
		}
		if p.taken[uid] || p.running(uid) {
			continue
		}
		p.taken[uid] = true
		name := p.names[uid]
		if name == "" {
			name = "uid " + strconv.FormatUint(uint64(uid), 10)
		}
		return &User{Name: name, UID: uid, GID: p.GID, pooled: true}, nil
	}
	return nil, fmt.Errorf("%w: all %d uids of --interpreter-uids %d-%d are in use", ErrNoUID, n, p.First, p.Last)
}

// Release gives u back once its processes are gone (any left, such as a
// daemon the session started, are killed: everything running as u is
// the session's) and its files under the reclaim dirs are root's. It
// returns at once; the uid stays taken until then.
func (p *UIDPool) Release(u *User) {
	if p == nil || u == nil {
		return
	}
	go func() {
		for delay := 50 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
			killUID(u.UID)
			if !p.running(u.UID) {
				break
			}
			time.Sleep(delay)
		}
		_ = p.giveBack(func(uid uint32) bool { return uid == u.UID })
		p.mu.Lock()
		delete(p.taken, u.UID)
		p.mu.Unlock()
	}()
}

// Held reports whether uid is handed out (for tests).
func (p *UIDPool) Held(uid uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.taken[uid]
}

// giveBack chowns to root every file under the reclaim dirs whose owner
// matches.
func (p *UIDPool) giveBack(match func(uid uint32) bool) error {
	p.mu.Lock()
	dirs := p.reclaim
	p.mu.Unlock()
	var first error
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			info, err := e.Info()
			if err != nil {
				return nil
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && match(st.Uid) {
				if err := os.Lchown(path, 0, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			return nil
		})
		if err != nil && first == nil {
			first = fmt.Errorf("cannot give back files of interpreter uids under %s: %w", d, err)
		}
	}
	return first
}

// uidPids lists the processes whose real or effective uid is uid.
func uidPids(uid uint32) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	want := strconv.FormatUint(uint64(uid), 10)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
				f := strings.Fields(rest)
				if len(f) >= 2 && (f[0] == want || f[1] == want) {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	return pids
}

func uidRunning(uid uint32) bool { return len(uidPids(uid)) > 0 }

func killUID(uid uint32) {
	for _, pid := range uidPids(uid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
