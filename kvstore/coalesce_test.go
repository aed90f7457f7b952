package kvstore

import (
	"fmt"
	"sync"
	"testing"
)

type item struct {
	n    int
	done chan struct{}
}

// gate is a flush that records batches and blocks until released.
type gate struct {
	mu      sync.Mutex
	batches [][]int
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (g *gate) flush(batch []*item) {
	ns := make([]int, len(batch))
	for i, it := range batch {
		ns[i] = it.n
	}
	g.mu.Lock()
	g.batches = append(g.batches, ns)
	g.mu.Unlock()
	g.entered <- struct{}{}
	<-g.release
	for _, it := range batch {
		close(it.done)
	}
}

func TestCoalescerBatchesWhileACallIsInFlight(t *testing.T) {
	g := newGate()
	c := newCoalescer(1, 1000, func(*item) int { return 1 }, g.flush)
	first := &item{n: 0, done: make(chan struct{})}
	c.add(first)
	<-g.entered // the first call is in flight, alone
	var rest []*item
	for i := 1; i <= 50; i++ {
		it := &item{n: i, done: make(chan struct{})}
		rest = append(rest, it)
		c.add(it)
	}
	close(g.release)
	<-first.done
	for _, it := range rest {
		<-it.done
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.batches) != 2 || len(g.batches[0]) != 1 || len(g.batches[1]) != 50 {
		t.Fatalf("batches = %v, want [0] then the 50 that queued behind it", g.batches)
	}
	for i, n := range g.batches[1] {
		if n != i+1 {
			t.Fatalf("second batch out of order: %v", g.batches[1])
		}
	}
}

func TestCoalescerRespectsBatchSizeAndCallLimit(t *testing.T) {
	g := newGate()
	c := newCoalescer(2, 10, func(it *item) int { return it.n }, g.flush)
	items := []*item{{n: 4}, {n: 4}, {n: 4}, {n: 4}, {n: 25}, {n: 1}}
	for _, it := range items {
		it.done = make(chan struct{})
	}
	c.add(items[0]) // call 1: [4]
	c.add(items[1]) // call 2: [4]
	<-g.entered
	<-g.entered
	for _, it := range items[2:] {
		c.add(it) // both calls busy: all queue
	}
	c.mu.Lock()
	running, queued := c.running, len(c.queue)
	c.mu.Unlock()
	if running != 2 || queued != 4 {
		t.Fatalf("running %d queued %d, want 2 and 4", running, queued)
	}
	close(g.release)
	for _, it := range items {
		<-it.done
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	total := 0
	for _, b := range g.batches {
		size := 0
		for _, n := range b {
			size += n
		}
		if size > 10 && len(b) > 1 {
			t.Fatalf("batch %v exceeds the size limit with more than one item", b)
		}
		total += len(b)
	}
	if total != len(items) {
		t.Fatalf("flushed %d items, want %d (batches %v)", total, len(items), g.batches)
	}
}

func TestUniqueKeys(t *testing.T) {
	a := &getReq{keys: []string{"x", "y", "x"}}
	b := &getReq{keys: []string{"y", "z"}, cold: []int{1}}
	keys, pos := uniqueKeys([]*getReq{a, b}, allKeys)
	if len(keys) != 3 || keys[0] != "x" || keys[1] != "y" || keys[2] != "z" {
		t.Fatalf("keys = %v", keys)
	}
	if len(pos) != 2 || pos[0][0] != 0 || pos[0][1] != 1 || pos[0][2] != 0 || pos[1][0] != 1 || pos[1][1] != 2 {
		t.Fatalf("pos = %v", pos)
	}
	keys, pos = uniqueKeys([]*getReq{b}, coldKeys)
	if len(keys) != 1 || keys[0] != "z" || len(pos) != 1 || pos[0] != nil {
		t.Fatalf("cold of one request: keys %v pos %v", keys, pos)
	}
	keys, pos = uniqueKeys([]*getReq{a}, allKeys)
	if len(keys) != 3 || pos != nil {
		t.Fatalf("one request: keys %v pos %v", keys, pos)
	}
}

func TestConcatKeys(t *testing.T) {
	a := &getReq{keys: []string{"x", "y"}}
	b := &getReq{keys: []string{"y"}}
	keys, pos := concatKeys([]*getReq{a, b})
	if len(keys) != 3 || keys[2] != "y" || len(pos) != 2 || pos[0][1] != 1 || pos[1][0] != 2 {
		t.Fatalf("keys %v pos %v", keys, pos)
	}
	keys, pos = concatKeys([]*getReq{a})
	if len(keys) != 2 || pos != nil {
		t.Fatalf("one request: keys %v pos %v", keys, pos)
	}
}

func TestCoalescerDepth(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	c := newCoalescer(1, 100, func(int) int { return 1 }, func([]int) {
		started <- struct{}{}
		<-release
	})
	c.add(1) // runs at once and blocks in flush
	<-started
	c.add(2)
	c.add(3)
	if d := c.depth(); d != 2 {
		t.Fatalf("depth = %d, want 2 queued behind the running call", d)
	}
	close(release)
	<-started // the queued two went out as one batch
	if d := c.depth(); d != 0 {
		t.Fatalf("depth = %d after the queue was taken", d)
	}
}

func TestSplitSetsBoundsBytes(t *testing.T) {
	req := func(n int) *setReq { return &setReq{items: []Item{{Key: "k", Value: make([]byte, n-1)}}} }
	batch := []*setReq{req(40), req(40), req(40), req(200), req(10)}
	var parts []int
	splitSets(batch, 100, func(p []*setReq) { parts = append(parts, len(p)) })
	// 40+40 fit, a third 40 starts a part; 200 is a part of its own; 10 follows it.
	if fmt.Sprint(parts) != "[2 1 1 1]" {
		t.Fatalf("parts = %v", parts)
	}
}
