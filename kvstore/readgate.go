package kvstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/srdd/srdd/cluster"
)

// Read consistency levels (query parameter consistency=).
const (
	ConsistencyDefault      = "default"      // every write the owner acknowledged
	ConsistencyLinearizable = "linearizable" // every write committed before the read began
	ConsistencyStale        = "stale"        // whatever the owner holds now, even while it rebuilds
)

// ReadGate waits until a read of a shared RDD at the given consistency
// may be served here: at once for memory-mode RDDs; for durable ones
// once the owner's pusher holds what the level promises. Safe for
// concurrent use.
func (s *Store) ReadGate(ctx context.Context, name, consistency string) error {
	switch consistency {
	case "", ConsistencyDefault, ConsistencyLinearizable, ConsistencyStale:
	default:
		return fmt.Errorf("%w: consistency must be %q, %q or %q", ErrInvalid, ConsistencyDefault, ConsistencyLinearizable, ConsistencyStale)
	}
	r, ok := s.reg.RDD(name)
	if !ok {
		return fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
	}
	return s.backendFor(r).readGate(ctx, r, consistency)
}

// freshReadWait bounds how long a read waits to hear from the leader
// (an election takes a second or two).
const freshReadWait = 10 * time.Second

// freshReader is the registry's FreshRead (cluster.Node.FreshRead): it
// returns once this node is sure it has not been replaced as an owner.
type freshReader interface {
	FreshRead(ctx context.Context) error
}

// readGate is ReadGate for a durable RDD r.
func (d *durable) readGate(ctx context.Context, r cluster.RDD, consistency string) error {
	s, name := d.s, r.Name
	if _, ok := d.localCopy(r); ok && (consistency == ConsistencyStale || consistency == ConsistencyLinearizable) {
		// A copy serves stale and linearizable reads; default ones are
		// the owner's (httpapi.copyMayServe says why).
		if o, ok := d.lookup(name); ok && o.sid != r.SessionID {
			return d.copyGate(ctx, o, name, consistency)
		}
	}
	if fr, ok := s.reg.(freshReader); ok && consistency != ConsistencyStale && consistency != ConsistencyLinearizable {
		// A node that was paused (SIGSTOP) may have been marked down and
		// replaced meanwhile: it first hears from the leader and applies
		// that, so it never serves a stale owner's data.
		wait, cancel := context.WithTimeout(ctx, freshReadWait)
		err := fr.FreshRead(wait)
		cancel()
		if err != nil {
			return err
		}
		var ok bool
		if r, ok = s.reg.RDD(name); !ok {
			return fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
		}
	}
	if consistency == ConsistencyLinearizable {
		// The leader's commit index when the read began, then the RDD's
		// last write as of that index.
		if err := s.reg.ReadBarrier(); err != nil {
			return err
		}
		var ok bool
		if r, ok = s.reg.RDD(name); !ok {
			return fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
		}
	}
	if sess, ok := s.reg.Session(r.SessionID); !ok || sess.Status != cluster.SessionActive {
		return fmt.Errorf("%w: %q: its session %d is gone; it is being moved to a live session", ErrRecovering, name, r.SessionID)
	}
	o, err := d.ownedHere(ctx, name, r.SessionID)
	if err != nil {
		return err
	}
	var fence uint64
	if consistency != ConsistencyStale && consistency != ConsistencyLinearizable {
		if fence, err = o.promotionFence(); err != nil {
			return err
		}
	}
	var cond func() bool
	switch consistency {
	case ConsistencyStale:
		cond = func() bool { return o.created }
	case ConsistencyLinearizable:
		cond = func() bool { return o.ready && o.applied >= r.LastWrite }
	default:
		cond = func() bool { return o.ready && o.applied >= fence }
	}
	return o.gate(ctx, s.recoveryWait, cond, strconv.Quote(name))
}

// gate waits, up to within, until cond holds on o (under o.mu), and
// otherwise answers ErrRecovering saying why what is not ready.
func (o *owned) gate(ctx context.Context, within time.Duration, cond func() bool, what string) error {
	wait, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if err := o.await(wait, cond); err != nil {
		if ctx.Err() != nil {
			return err
		}
		o.mu.Lock()
		status := o.statusLocked()
		o.mu.Unlock()
		return fmt.Errorf("%w: %s: %s", ErrRecovering, what, status)
	}
	return nil
}
