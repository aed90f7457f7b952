package kvstore

import "sync"

// coalescer turns many concurrent requests into few calls ("smart
// batching", no timers): a request that finds fewer than max calls in
// flight is sent at once, alone or with whatever queued before it; the
// others queue, and each call that returns takes everything queued as its
// next batch. Under light load nothing waits; under heavy load batches
// grow to what arrives during one call's round trip.
//
// The zero value is not usable; see newCoalescer. Safe for concurrent use.
type coalescer[T any] struct {
	max     int                // calls in flight at most
	maxSize int                // batch size (sum of item sizes) at most, unless one item is larger
	size    func(T) int        // size of one item (keys in it)
	flush   func(batch []T)    // performs one call; must complete every item
	mu      sync.Mutex         // guards the fields below
	queue   []T                // waiting items, oldest first
	running int                // calls in flight
	spare   [][]T              // batch slices to reuse
	onBatch func(items, n int) // observes each batch (requests, size); may be nil
}

func newCoalescer[T any](max, maxSize int, size func(T) int, flush func([]T)) *coalescer[T] {
	return &coalescer[T]{max: max, maxSize: maxSize, size: size, flush: flush}
}

// add queues x and starts a call if one may run. x is completed by flush.
func (c *coalescer[T]) add(x T) {
	c.mu.Lock()
	c.queue = append(c.queue, x)
	if c.running >= c.max {
		c.mu.Unlock()
		return
	}
	c.running++
	batch := c.takeLocked()
	c.mu.Unlock()
	go c.run(batch)
}

// run performs calls until the queue is empty.
func (c *coalescer[T]) run(batch []T) {
	for {
		if c.onBatch != nil {
			n := 0
			for _, x := range batch {
				n += c.size(x)
			}
			c.onBatch(len(batch), n)
		}
		c.flush(batch)
		c.mu.Lock()
		clear(batch)
		c.spare = append(c.spare, batch[:0])
		if len(c.queue) == 0 {
			c.running--
			c.mu.Unlock()
			return
		}
		batch = c.takeLocked()
		c.mu.Unlock()
	}
}

// takeLocked removes the oldest items, up to maxSize (at least one item).
func (c *coalescer[T]) takeLocked() []T {
	var batch []T
	if n := len(c.spare); n > 0 {
		batch, c.spare = c.spare[n-1], c.spare[:n-1]
	}
	total, i := 0, 0
	for ; i < len(c.queue); i++ {
		s := c.size(c.queue[i])
		if i > 0 && total+s > c.maxSize {
			break
		}
		total += s
	}
	batch = append(batch, c.queue[:i]...)
	rest := copy(c.queue, c.queue[i:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	return batch
}
