package kvstore

import (
	"context"
	"fmt"
)

// Item is one key and its value as JSON text.
type Item struct {
	Key   string
	Value []byte
}

// Calls in flight per RDD. Hot gets and sets are answered from the
// interpreter's memory in well under a millisecond, so two calls keep the
// pipe busy while the next batch gathers; cold gets each wait for a Spark
// job, and the interpreter runs at most two lookup jobs per RDD.
const (
	hotCalls    = 2
	coldCalls   = 16
	setCalls    = 2
	deleteCalls = 1
)

// batchers coalesces one RDD's concurrent calls (see coalescer).
type batchers struct {
	hot  *coalescer[*getReq] // kv.get of what the driver holds (delta, cache)
	cold *coalescer[*getReq] // kv.get of keys that need a Spark lookup
	sets *coalescer[*setReq]
	dels *coalescer[*delReq]
}

func (s *Store) batchers(name string) *batchers {
	if b, ok := s.batch.Load(name); ok {
		return b.(*batchers)
	}
	b := &batchers{}
	b.hot = newCoalescer(hotCalls, s.limits.MaxBatch, (*getReq).size, func(batch []*getReq) { s.flushHot(name, b, batch) })
	b.cold = newCoalescer(coldCalls, s.limits.MaxBatch, (*getReq).coldSize, func(batch []*getReq) { s.flushCold(name, batch) })
	b.sets = newCoalescer(setCalls, s.limits.MaxBatch, func(r *setReq) int { return len(r.items) }, func(batch []*setReq) { s.writer(name).flushSets(name, batch) })
	b.dels = newCoalescer(deleteCalls, s.limits.MaxBatch, func(r *delReq) int { return len(r.keys) }, func(batch []*delReq) { s.writer(name).flushDeletes(name, batch) })
	s.metrics.bind(b)
	actual, _ := s.batch.LoadOrStore(name, b)
	return actual.(*batchers)
}

// wait returns when done is closed or ctx ends. A request that gives up
// stays queued and is completed (and dropped) by its batch later: it owns
// its data, so nothing it shares with the caller is touched after return.
func wait(ctx context.Context, done chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ---------------------------------------------------------------- get

type getReq struct {
	keys []string
	vals [][]byte
	cold []int // positions of keys that need a Spark lookup
	err  error
	done chan struct{}
}

func (r *getReq) size() int     { return len(r.keys) }
func (r *getReq) coldSize() int { return len(r.cold) }

func (r *getReq) finish(err error) {
	r.err = err
	close(r.done)
}

// GetMany returns the JSON value of each key, nil where a key is absent.
func (s *Store) GetMany(ctx context.Context, name string, keys []string) ([][]byte, error) {
	return s.GetManyWith(ctx, name, keys, ReadOptions{})
}

// ReadOptions are per-request options of a read.
type ReadOptions struct {
	// Consistency is the read consistency level of a durable RDD
	// (ConsistencyDefault when empty; see ReadGate). Memory-mode RDDs
	// ignore it.
	Consistency string
}

// GetManyWith is GetMany with per-request options.
func (s *Store) GetManyWith(ctx context.Context, name string, keys []string, opts ReadOptions) ([][]byte, error) {
	if err := s.limits.validateBatch(len(keys)); err != nil {
		return nil, err
	}
	if err := s.ReadGate(ctx, name, opts.Consistency); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := s.limits.ValidateKey(k); err != nil {
			return nil, err
		}
	}
	r := &getReq{keys: keys, vals: make([][]byte, len(keys)), done: make(chan struct{})}
	s.batchers(name).hot.add(r)
	if err := wait(ctx, r.done); err != nil {
		return nil, err
	}
	return r.vals, r.err
}

// Get returns the JSON value of one key and whether it exists.
func (s *Store) Get(ctx context.Context, name, key string) ([]byte, bool, error) {
	vals, err := s.GetMany(ctx, name, []string{key})
	if err != nil || len(vals) != 1 {
		return nil, false, err
	}
	return vals[0], vals[0] != nil, nil
}

type getArgs struct {
	RDD   string   `msgpack:"name"`
	Keys  []string `msgpack:"keys"`
	Local bool     `msgpack:"local,omitempty"`
}

// uniqueKeys lists the distinct keys of a batch and where each request's
// keys are in that list (pos), for requests whose positions are picked by
// pick (all keys, or the cold ones).
func uniqueKeys(batch []*getReq, pick func(*getReq) []int) (keys []string, pos [][]int) {
	if len(batch) == 1 {
		r := batch[0]
		idx := pick(r)
		if idx == nil {
			return r.keys, nil
		}
		keys = make([]string, len(idx))
		for j, i := range idx {
			keys[j] = r.keys[i]
		}
		return keys, [][]int{nil}
	}
	at := make(map[string]int)
	pos = make([][]int, len(batch))
	for b, r := range batch {
		idx := pick(r)
		n := len(r.keys)
		if idx != nil {
			n = len(idx)
		}
		p := make([]int, n)
		for j := 0; j < n; j++ {
			k := r.keys[j]
			if idx != nil {
				k = r.keys[idx[j]]
			}
			i, ok := at[k]
			if !ok {
				i = len(keys)
				at[k] = i
				keys = append(keys, k)
			}
			p[j] = i
		}
		pos[b] = p
	}
	return keys, pos
}

// concatKeys lists every key of a batch in order; pos maps each request's
// keys into that list (nil for a batch of one).
func concatKeys(batch []*getReq) (keys []string, pos [][]int) {
	if len(batch) == 1 {
		return batch[0].keys, nil
	}
	n := 0
	for _, r := range batch {
		n += len(r.keys)
	}
	keys = make([]string, 0, n)
	pos = make([][]int, len(batch))
	idx := make([]int, n)
	for b, r := range batch {
		start := len(keys)
		keys = append(keys, r.keys...)
		p := idx[start:len(keys):len(keys)]
		for j := range p {
			p[j] = start + j
		}
		pos[b] = p
	}
	return keys, pos
}

func allKeys(*getReq) []int    { return nil }
func coldKeys(r *getReq) []int { return r.cold }

// flushHot asks the interpreter for what it holds without Spark; keys it
// reports cold go on to the cold coalescer, the rest are answered.
func (s *Store) flushHot(name string, b *batchers, batch []*getReq) {
	// Keys are sent as they come (duplicates too): building a set costs
	// more here than the interpreter spends on a repeated key.
	keys, pos := concatKeys(batch)
	var res struct {
		Values [][]byte `msgpack:"values"`
		Cold   []int    `msgpack:"cold"`
	}
	err := s.call(context.Background(), name, "kv.get", &getArgs{RDD: name, Keys: keys, Local: true}, &res)
	if err == nil && len(res.Values) != len(keys) {
		err = fmt.Errorf("kv.get answered %d values for %d keys", len(res.Values), len(keys))
	}
	if err != nil {
		for _, r := range batch {
			r.finish(err)
		}
		return
	}
	var isCold []bool
	if len(res.Cold) > 0 {
		isCold = make([]bool, len(keys))
		for _, i := range res.Cold {
			if i >= 0 && i < len(keys) {
				isCold[i] = true
			}
		}
	}
	for bi, r := range batch {
		for j := range r.keys {
			i := j
			if pos != nil {
				i = pos[bi][j]
			}
			r.vals[j] = res.Values[i]
			if isCold != nil && isCold[i] {
				r.cold = append(r.cold, j)
			}
		}
		if len(r.cold) > 0 {
			b.cold.add(r)
		} else {
			r.finish(nil)
		}
	}
}

// flushCold fetches keys that need a Spark job: one call, at most one job.
func (s *Store) flushCold(name string, batch []*getReq) {
	keys, pos := uniqueKeys(batch, coldKeys)
	var res struct {
		Values [][]byte `msgpack:"values"`
	}
	err := s.call(context.Background(), name, "kv.get", &getArgs{RDD: name, Keys: keys}, &res)
	if err == nil && len(res.Values) != len(keys) {
		err = fmt.Errorf("kv.get answered %d values for %d keys", len(res.Values), len(keys))
	}
	for bi, r := range batch {
		if err == nil {
			for j, i := range r.cold {
				at := j
				if pos != nil && pos[bi] != nil {
					at = pos[bi][j]
				}
				r.vals[i] = res.Values[at]
			}
		}
		r.finish(err)
	}
}

// ---------------------------------------------------------------- set

type setReq struct {
	items   []Item
	idem    string
	written int
	err     error
	done    chan struct{}
}

// WriteOptions are per-request options of a write.
type WriteOptions struct {
	// IdempotencyKey makes a retried write of a durable RDD apply once:
	// the same key with the same request answers the first outcome; with
	// another request, an error. Ignored for memory-mode RDDs.
	IdempotencyKey string
}

// MaxIdempotencyKey bounds the length of an idempotency key.
const MaxIdempotencyKey = 256

func (o WriteOptions) validate() error {
	if len(o.IdempotencyKey) > MaxIdempotencyKey {
		return fmt.Errorf("%w: Idempotency-Key is %d bytes; the limit is %d", ErrInvalid, len(o.IdempotencyKey), MaxIdempotencyKey)
	}
	return nil
}

// validateWrite checks what every batched write checks first: the batch
// size (n keys) and the options.
func (s *Store) validateWrite(n int, opts WriteOptions) error {
	if err := s.limits.validateBatch(n); err != nil {
		return err
	}
	return opts.validate()
}

// SetMany writes every item or, if any is invalid, none. The values are
// copied before SetMany hands them on, so the caller may reuse them (a
// fasthttp body) as soon as it returns.
func (s *Store) SetMany(ctx context.Context, name string, items []Item) (int, error) {
	return s.SetManyWith(ctx, name, items, WriteOptions{})
}

// SetManyWith is SetMany with per-request options.
func (s *Store) SetManyWith(ctx context.Context, name string, items []Item, opts WriteOptions) (int, error) {
	if err := s.validateWrite(len(items), opts); err != nil {
		return 0, err
	}
	total := 0
	for _, it := range items {
		if err := s.limits.ValidateKey(it.Key); err != nil {
			return 0, err
		}
		if err := s.limits.ValidateValue(it.Value); err != nil {
			return 0, err
		}
		total += len(it.Value)
	}
	// One allocation holds every value the batch will read after we return.
	own := make([]Item, len(items))
	buf := make([]byte, 0, total)
	for i, it := range items {
		start := len(buf)
		buf = append(buf, it.Value...)
		own[i] = Item{Key: it.Key, Value: buf[start:len(buf):len(buf)]}
	}
	r := &setReq{items: own, idem: opts.IdempotencyKey, done: make(chan struct{})}
	s.batchers(name).sets.add(r)
	if err := wait(ctx, r.done); err != nil {
		return 0, err
	}
	return r.written, r.err
}

// Set writes one key.
func (s *Store) Set(ctx context.Context, name, key string, value []byte) error {
	_, err := s.SetMany(ctx, name, []Item{{Key: key, Value: value}})
	return err
}

// ---------------------------------------------------------------- delete

type delReq struct {
	keys    []string
	idem    string
	deleted int
	err     error
	done    chan struct{}
}

// DeleteMany deletes keys and returns how many existed.
func (s *Store) DeleteMany(ctx context.Context, name string, keys []string) (int, error) {
	return s.DeleteManyWith(ctx, name, keys, WriteOptions{})
}

// DeleteManyWith is DeleteMany with per-request options. For a retried
// idempotent delete of a durable RDD whose first outcome is no longer
// known, the count is the number of keys asked for.
func (s *Store) DeleteManyWith(ctx context.Context, name string, keys []string, opts WriteOptions) (int, error) {
	if err := s.validateWrite(len(keys), opts); err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := s.limits.ValidateKey(k); err != nil {
			return 0, err
		}
	}
	r := &delReq{keys: keys, idem: opts.IdempotencyKey, done: make(chan struct{})}
	s.batchers(name).dels.add(r)
	if err := wait(ctx, r.done); err != nil {
		return 0, err
	}
	return r.deleted, r.err
}

// forget drops an RDD's batchers (it was dropped); calls in flight finish.
func (s *Store) forget(name string) { s.batch.Delete(name) }
