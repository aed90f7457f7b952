package kvstore

import (
	"context"
	"fmt"

	"github.com/srdd/srdd/cluster"
	"github.com/vmihailenco/msgpack/v5"
)

// backend is where one shared RDD's writes go and what its calls wait
// for. backendFor chooses it from the RDD's mode: memory (writes straight
// to the owner's interpreter) or durable (writes through the Raft log,
// durable.go). Its methods are safe for concurrent use.
type backend interface {
	// flushSets and flushDeletes perform one coalesced batch of client
	// writes and complete every request of it.
	flushSets(name string, batch []*setReq)
	flushDeletes(name string, batch []*delReq)
	// readGate waits until a read of r at consistency (already checked)
	// may be served here.
	readGate(ctx context.Context, r cluster.RDD, consistency string) error
	// admit says whether a call on r may be routed to its owner now.
	admit(r cluster.RDD) error
	// gone explains a call on r whose session died (err says how).
	gone(name string, sid int64, err error) error
	// loading marks a bulk load as started (on) or failed to start.
	loading(name string, on bool)
}

var (
	_ backend = memory{}
	_ backend = (*durable)(nil)
)

// backendFor returns the back end of a shared RDD.
func (s *Store) backendFor(r cluster.RDD) backend {
	if r.Mode == cluster.ModeDurable {
		return s.dur
	}
	return memory{s}
}

// writer returns the back end that performs writes on the named RDD. Its
// mode is looked up for every batch, not kept: on another node an RDD can
// be dropped and created again in the other mode under the same name.
func (s *Store) writer(name string) backend {
	r, _ := s.reg.RDD(name)
	return s.backendFor(r)
}

// memory is the back end of memory-mode RDDs (opt-in; docs/ARCHITECTURE.md
// invariant 4): the owner's interpreter holds the only copy.
type memory struct{ s *Store }

func (memory) readGate(context.Context, cluster.RDD, string) error { return nil }
func (memory) admit(cluster.RDD) error                             { return nil }
func (memory) loading(string, bool)                                {}

func (memory) gone(name string, sid int64, err error) error {
	return fmt.Errorf("%w: %q was held in memory by session %d, which is gone (%v); drop and recreate it", ErrLost, name, sid, err)
}

// wireItems encodes items as [[key, value-bin], ...] without boxing each
// pair in interfaces.
type wireItems [][]Item

var _ msgpack.CustomEncoder = wireItems(nil)

func (w wireItems) EncodeMsgpack(enc *msgpack.Encoder) error {
	n := 0
	for _, items := range w {
		n += len(items)
	}
	if err := enc.EncodeArrayLen(n); err != nil {
		return err
	}
	for _, items := range w {
		for _, it := range items {
			if err := enc.EncodeArrayLen(2); err != nil {
				return err
			}
			if err := enc.EncodeString(it.Key); err != nil {
				return err
			}
			if err := enc.EncodeBytes(it.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

type setArgs struct {
	RDD    string    `msgpack:"name"`
	Items  wireItems `msgpack:"items"`
	Groups []int     `msgpack:"groups"`
}

// flushSets sends several clients' batches as one kv.set; the interpreter
// validates and applies each batch whole or not at all.
func (m memory) flushSets(name string, batch []*setReq) {
	// Bridge frames are limited (64 MiB): many large values go in several calls.
	splitSets(batch, setCallBytes, func(part []*setReq) { m.setCall(name, part) })
}

// splitSets hands batch to fn in consecutive parts of at most limit bytes
// of keys and values (a request larger than limit is a part of its own).
func splitSets(batch []*setReq, limit int, fn func([]*setReq)) {
	start, size := 0, 0
	for i, r := range batch {
		n := 0
		for _, it := range r.items {
			n += len(it.Key) + len(it.Value)
		}
		if i > start && size+n > limit {
			fn(batch[start:i])
			start, size = i, 0
		}
		size += n
	}
	fn(batch[start:])
}

func (m memory) setCall(name string, batch []*setReq) {
	args := &setArgs{RDD: name, Items: make(wireItems, len(batch)), Groups: make([]int, len(batch))}
	for i, r := range batch {
		args.Items[i] = r.items
		args.Groups[i] = len(r.items)
	}
	var res struct {
		Written int       `msgpack:"written"`
		Errors  []*string `msgpack:"errors"`
	}
	err := m.s.call(context.Background(), name, "kv.set", args, &res)
	if err == nil && len(res.Errors) != len(batch) {
		err = fmt.Errorf("kv.set answered %d results for %d batches", len(res.Errors), len(batch))
	}
	for i, r := range batch {
		switch {
		case err != nil:
			r.err = err
		case res.Errors[i] != nil:
			r.err = fmt.Errorf("%w: %s", ErrInvalid, *res.Errors[i])
		default:
			r.written = len(r.items)
		}
		close(r.done)
	}
}

type delArgs struct {
	RDD    string   `msgpack:"name"`
	Keys   []string `msgpack:"keys"`
	Groups []int    `msgpack:"groups"`
}

// flushDeletes sends several clients' batches as one kv.delete.
func (m memory) flushDeletes(name string, batch []*delReq) {
	args := &delArgs{RDD: name, Groups: make([]int, len(batch))}
	for i, r := range batch {
		args.Keys = append(args.Keys, r.keys...)
		args.Groups[i] = len(r.keys)
	}
	var res struct {
		Counts []int `msgpack:"counts"`
	}
	err := m.s.call(context.Background(), name, "kv.delete", args, &res)
	if err == nil && len(res.Counts) != len(batch) {
		err = fmt.Errorf("kv.delete answered %d results for %d batches", len(res.Counts), len(batch))
	}
	for i, r := range batch {
		if err != nil {
			r.err = err
		} else {
			r.deleted = res.Counts[i]
		}
		close(r.done)
	}
}
