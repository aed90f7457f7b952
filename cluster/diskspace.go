package cluster

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// A full disk (docs/ARCHITECTURE.md, "Full disk"). Raft appends every
// registry write to DATA-DIR/raft; on a full filesystem that append fails,
// the leader steps down, and a node that cannot persist its term panics
// inside hashicorp/raft. So writes are refused before they are proposed
// while the filesystem holds less than a reserve, with
// ErrInsufficientStorage (HTTP 507), and a write that meets ENOSPC anyway
// answers the same: it was not appended, so it is never acknowledged.
// Reads go on; writes pass again as soon as space returns.

// DefaultDiskReserve is the free space a node keeps on its data dir and
// local checkpoint dir before it refuses writes (--disk-reserve).
const DefaultDiskReserve = 16 << 20

// diskCheckEvery is how long one look at a filesystem's free space holds.
const diskCheckEvery = 250 * time.Millisecond

// DiskGuard refuses writes while a directory's filesystem has less than a
// reserve of free space. A nil *DiskGuard allows everything.
type DiskGuard struct {
	reserve uint64
	dirs    []string
	mu      sync.Mutex
	at      time.Time
	err     error
}

// NewDiskGuard watches dirs (one not made yet counts as its nearest
// existing parent) for reserve bytes of free space; reserve <= 0 returns
// nil.
func NewDiskGuard(reserve int64, dirs ...string) *DiskGuard {
	if reserve <= 0 || len(dirs) == 0 {
		return nil
	}
	return &DiskGuard{reserve: uint64(reserve), dirs: dirs}
}

// Check returns nil when every directory's filesystem has the reserve
// free, else ErrInsufficientStorage naming the directory.
func (g *DiskGuard) Check() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.at) < diskCheckEvery {
		return g.err
	}
	g.at, g.err = time.Now(), nil
	for _, d := range g.dirs {
		var st syscall.Statfs_t
		// A directory not made yet (the first checkpoint makes its own)
		// is on its nearest existing parent's filesystem.
		p := d
		for syscall.Statfs(p, &st) != nil {
			if q := filepath.Dir(p); q != p {
				p = q
				continue
			}
			break
		}
		if st.Bsize == 0 {
			continue
		}
		if free := st.Bavail * uint64(st.Bsize); free < g.reserve {
			g.err = fmt.Errorf("%w: %s has %d KiB free, under the %d KiB reserve (--disk-reserve); writes resume once space is freed",
				ErrInsufficientStorage, d, free>>10, g.reserve>>10)
			break
		}
	}
	return g.err
}

// Forget drops the cached answer, so the next Check looks again.
func (g *DiskGuard) Forget() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.at = time.Time{}
	g.mu.Unlock()
}

// noSpace wraps an error that is a full filesystem (ENOSPC, EDQUOT) in
// ErrInsufficientStorage; other errors are returned as they are.
func noSpace(err error) error {
	if err != nil && !errors.Is(err, ErrInsufficientStorage) &&
		(errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		return fmt.Errorf("%w: %v", ErrInsufficientStorage, err)
	}
	return err
}
