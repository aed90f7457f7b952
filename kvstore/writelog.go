package kvstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/sessions"
)

// The write log of durable RDDs: the coalescers' batches of client sets
// and deletes become cluster.Write entries (one client batch is one
// group), and each client waits until the owner's pusher has applied the
// entry that holds its group (docs/ARCHITECTURE.md invariant 4).

// groupOutcome is one client batch's result after its entry was applied.
type groupOutcome struct {
	count int // deletes: keys that existed (-1: not known, a retried write)
	err   error
}

// flushSets logs several clients' set batches, as few entries as the
// size bound allows.
func (d *durable) flushSets(name string, batch []*setReq) {
	splitSets(batch, entryBytes, func(part []*setReq) { d.logSets(name, part) })
}

func (d *durable) logSets(name string, batch []*setReq) {
	n := 0
	for _, r := range batch {
		n += len(r.items)
	}
	w := &cluster.Write{RDD: name, Keys: make([]string, 0, n), Values: make([][]byte, 0, n), Groups: make([]int, 0, len(batch))}
	for _, r := range batch {
		start := len(w.Keys)
		for _, it := range r.items {
			w.Keys = append(w.Keys, it.Key)
			w.Values = append(w.Values, it.Value)
		}
		addGroup(w, len(batch), start, r.idem)
	}
	d.logGroups(w, func(i int, _ groupOutcome, err error) {
		r := batch[i]
		if r.err = err; err == nil {
			r.written = len(r.items)
		}
		close(r.done)
	})
}

// flushDeletes logs several clients' delete batches as one entry.
func (d *durable) flushDeletes(name string, batch []*delReq) {
	w := &cluster.Write{RDD: name, Delete: true, Groups: make([]int, 0, len(batch))}
	for _, r := range batch {
		start := len(w.Keys)
		w.Keys = append(w.Keys, r.keys...)
		addGroup(w, len(batch), start, r.idem)
	}
	d.logGroups(w, func(i int, o groupOutcome, err error) {
		r := batch[i]
		switch r.err = err; {
		case err != nil:
		case o.count < 0:
			r.deleted = len(r.keys)
		default:
			r.deleted = o.count
		}
		close(r.done)
	})
}

// logGroups logs w, which holds one group per client batch, and calls
// done for each group in order with its outcome and the error to report
// to that client: the call's own, else the group's.
func (d *durable) logGroups(w *cluster.Write, done func(i int, o groupOutcome, err error)) {
	ctx, cancel := context.WithTimeout(context.Background(), d.s.callTimeout)
	defer cancel()
	out, err := d.logWrite(ctx, w)
	for i := range w.Groups {
		if err != nil {
			done(i, groupOutcome{}, err)
			continue
		}
		done(i, out[i], out[i].err)
	}
}

// addGroup ends the client batch whose keys (and, for sets, values) were
// appended to w from position start: it records the batch's size and,
// if the client gave an idempotency key, the key and the hash of the
// request it names. groups is how many batches w will hold.
func addGroup(w *cluster.Write, groups, start int, idem string) {
	gi := len(w.Groups)
	w.Groups = append(w.Groups, len(w.Keys)-start)
	if idem == "" {
		return
	}
	if w.Idem == nil {
		w.Idem, w.Hashes = make([]string, groups), make([]uint64, groups)
	}
	var vals [][]byte // nil: a delete
	if !w.Delete {
		vals = w.Values[start:]
	}
	w.Idem[gi], w.Hashes[gi] = idem, requestHash(w.Keys[start:], vals)
}

// requestHash identifies a write request for its idempotency key: its
// kind (vals nil: a delete) and its items in key order (a JSON object's
// members arrive in any order).
func requestHash(keys []string, vals [][]byte) uint64 {
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return keys[order[a]] < keys[order[b]] })
	h := fnv.New64a()
	if vals == nil {
		h.Write([]byte{1})
	}
	for _, i := range order {
		h.Write([]byte(keys[i]))
		h.Write([]byte{0})
		if vals != nil {
			h.Write(vals[i])
			h.Write([]byte{0})
		}
	}
	return h.Sum64()
}

// logWrite logs one coalesced batch on a durable RDD (w.Session is filled
// in with its owner) and waits until the owner's interpreter applied it.
func (d *durable) logWrite(ctx context.Context, w *cluster.Write) ([]groupOutcome, error) {
	s, name := d.s, w.RDD
	r, ok := s.reg.RDD(name)
	if !ok {
		return nil, fmt.Errorf("%w: shared rdd %q", ErrNotFound, name)
	}
	// A session still starting answers 503 within --ready-timeout, as for
	// memory-mode RDDs, instead of logging writes it cannot apply soon.
	if _, err := s.sess.Interpreter(ctx, r.SessionID); err != nil {
		if errors.Is(err, sessions.ErrDead) {
			return nil, fmt.Errorf("%w: %q: %v; it is being moved to a live session", ErrRecovering, name, err)
		}
		return nil, err
	}
	o, err := d.ownedHere(ctx, name, r.SessionID)
	if err != nil {
		return nil, err
	}
	// A full checkpoint dir refuses writes: the tail could not be
	// trimmed, so the log would grow without bound (507).
	if err := d.disk.Check(); err != nil {
		return nil, err
	}
	w.Session = r.SessionID
	v, err := s.reg.Apply(cluster.Command{Type: cluster.CmdWrite, Body: w})
	if err != nil {
		return nil, err
	}
	wr, ok := v.(*cluster.WriteResult)
	if !ok || len(wr.Groups) != len(w.Groups) {
		return nil, fmt.Errorf("%w: the registry answered %T to a write", cluster.ErrOutcomeUnknown, v)
	}
	out := make([]groupOutcome, len(w.Groups))
	for i, g := range wr.Groups {
		if g.Err != "" {
			out[i].err = fmt.Errorf("%w: the Idempotency-Key was used for a different request to %q", cluster.ErrIdempotencyMismatch, name)
			continue
		}
		var res *entryResult
		err := o.await(ctx, func() bool {
			if o.applied < g.Index {
				return false
			}
			res = o.results[g.Index]
			return true
		})
		if err != nil {
			return nil, fmt.Errorf("%w: logged at index %d, not yet applied by the owner: %v", cluster.ErrOutcomeUnknown, g.Index, err)
		}
		out[i].count = -1
		if res != nil && g.Group < len(res.Errors) {
			if e := res.Errors[g.Group]; e != nil {
				out[i].err = fmt.Errorf("%w: %s", ErrInvalid, *e)
			}
			if g.Group < len(res.Counts) {
				out[i].count = res.Counts[g.Group]
			}
		}
	}
	return out, nil
}
