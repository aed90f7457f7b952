package kvstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/srdd/srdd/cluster"
)

// Unit tests of the durable back end over fakes (fakes_test.go): the
// registry's log and the interpreter are in memory, so these run in
// milliseconds; node/ tests the same paths with Raft and PySpark.

func setEntry(index uint64, kv ...string) *cluster.TailEntry {
	e := &cluster.TailEntry{Index: index, Groups: []int{len(kv) / 2}}
	for i := 0; i < len(kv); i += 2 {
		e.Keys = append(e.Keys, kv[i])
		e.Values = append(e.Values, []byte(kv[i+1]))
	}
	return e
}

func deleteEntry(index uint64, keys ...string) *cluster.TailEntry {
	return &cluster.TailEntry{Index: index, Delete: true, Keys: keys, Groups: []int{len(keys)}}
}

// A write is acknowledged only once the interpreter applied it, and the
// interpreter applies the log in log order, each entry once.
func TestDurableAppliesInLogOrder(t *testing.T) {
	h := newDurableHarness(t, DurableConfig{}, func(reg *fakeReg, _ *fakeInterp) { reg.addDurable("d", 1, nil, nil) })
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8*25)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				if err := h.s.Set(ctx, "d", key, []byte(fmt.Sprint(i))); err != nil {
					errs <- err
					return
				}
				if v, ok := h.it.get("d", key); !ok || v != fmt.Sprint(i) {
					errs <- fmt.Errorf("%s acknowledged but the interpreter holds %q, %v", key, v, ok)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	h.it.mu.Lock()
	order := slices.Clone(h.it.order)
	n := len(h.it.data["d"])
	h.it.mu.Unlock()
	if n != 200 {
		t.Fatalf("interpreter holds %d keys, want 200", n)
	}
	r, _ := h.reg.RDD("d")
	var logged []uint64
	for _, e := range r.Tail {
		logged = append(logged, e.Index)
	}
	if !slices.Equal(order, logged) {
		t.Fatalf("applied %v, logged %v", order, logged)
	}
	if !slices.IsSorted(order) || len(slices.Compact(slices.Clone(order))) != len(order) {
		t.Fatalf("applied out of order or twice: %v", order)
	}
}

// A kv.apply that fails, before or after the interpreter applied the
// entries, is retried until it succeeds; every entry applies once and the
// writer gets its answer.
func TestDurableRetriesFailedPush(t *testing.T) {
	h := newDurableHarness(t, DurableConfig{}, func(reg *fakeReg, it *fakeInterp) {
		reg.addDurable("d", 1, nil, nil)
	})
	ctx := context.Background()
	if err := h.s.Set(ctx, "d", "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	h.it.mu.Lock()
	h.it.failApply, h.it.failAfterApply = 2, 1
	before := h.it.calls["kv.apply"]
	h.it.mu.Unlock()
	n, err := h.s.DeleteMany(ctx, "d", []string{"a", "zz"})
	if err != nil {
		t.Fatal(err)
	}
	h.it.mu.Lock()
	calls := h.it.calls["kv.apply"] - before
	order := slices.Clone(h.it.order)
	h.it.mu.Unlock()
	if calls != 4 {
		t.Fatalf("kv.apply called %d times for the delete, want 4 (2 failed, 1 answer lost, 1 ok)", calls)
	}
	if len(order) != 2 || order[0] >= order[1] {
		t.Fatalf("applied entries %v, want two in order", order)
	}
	// The answer of the call that applied it was lost: the retry's answer
	// (the entry is skipped) does not know the count.
	if n != 2 {
		t.Fatalf("deleted %d, want 2 (the keys asked for: the count was lost with the answer)", n)
	}
	if _, ok := h.it.get("d", "a"); ok {
		t.Fatal("a still exists")
	}
}

// A new owner rebuilds the RDD from its checkpoint plus the tail after
// it, and rebuilds again when a checkpoint it did not write trims entries
// it has not applied.
func TestDurableRebuildsFromCheckpointAndTail(t *testing.T) {
	restored := make(chan string, 4)
	h := newDurableHarness(t, DurableConfig{}, func(reg *fakeReg, it *fakeInterp) {
		it.files["ck/5"] = map[string]string{"a": "1", "b": "1"}
		it.restored = restored
		reg.addDurable("d", 1, &cluster.CheckpointRef{Index: 5, Path: "ck/5"},
			[]*cluster.TailEntry{setEntry(6, "a", "2"), deleteEntry(7, "b"), setEntry(8, "c", "3")})
	})
	if got := <-restored; got != "ck/5" {
		t.Fatalf("restored %s, want ck/5", got)
	}
	ctx := context.Background()
	if err := h.s.ReadGate(ctx, "d", ConsistencyLinearizable); err != nil {
		t.Fatal(err)
	}
	h.it.mu.Lock()
	data, order := fmt.Sprint(h.it.data["d"]), slices.Clone(h.it.order)
	h.it.mu.Unlock()
	if data != "map[a:2 c:3]" || !slices.Equal(order, []uint64{6, 7, 8}) {
		t.Fatalf("after rebuild: data %s, applied %v; want map[a:2 c:3], [6 7 8]", data, order)
	}

	// Another owner's checkpoint at 20 covers writes this pusher never saw.
	h.it.mu.Lock()
	h.it.files["/ck/d/20"] = map[string]string{"x": "20"}
	h.it.mu.Unlock()
	h.reg.checkpointBehind(t, "d", cluster.CheckpointRef{Index: 20, Path: "/ck/d/20"})
	if err := h.s.Set(ctx, "d", "y", []byte("21")); err != nil {
		t.Fatal(err)
	}
	if got := <-restored; got != "/ck/d/20" {
		t.Fatalf("restored %s, want ck/20", got)
	}
	h.it.mu.Lock()
	data = fmt.Sprint(h.it.data["d"])
	h.it.mu.Unlock()
	if data != "map[x:20 y:21]" {
		t.Fatalf("after the second rebuild: %s, want map[x:20 y:21]", data)
	}
}

// A checkpoint is recorded in the registry, which trims the tail it
// covers; the pusher keeps the newest two checkpoints. The policy starts
// one by itself after CheckpointEvery keys.
func TestDurableCheckpointTrimsTail(t *testing.T) {
	h := newDurableHarness(t, DurableConfig{}, func(reg *fakeReg, _ *fakeInterp) { reg.addDurable("d", 1, nil, nil) })
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := h.s.Set(ctx, "d", fmt.Sprint("k", i), []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	first, err := h.s.Checkpoint(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := h.reg.RDD("d")
	if first.Index != r.LastWrite || len(r.Tail) != 0 || r.TailOps != 0 || r.Checkpoint == nil || r.Checkpoint.Path != first.Path {
		t.Fatalf("checkpoint %+v; registry: last write %d, tail %d entries (%d ops), checkpoint %+v",
			first, r.LastWrite, len(r.Tail), r.TailOps, r.Checkpoint)
	}
	if !strings.HasPrefix(first.Path, h.s.CheckpointURI()+"/d/") || first.Rows != 3 {
		t.Fatalf("checkpoint %+v: want 3 rows under %s/d/", first, h.s.CheckpointURI())
	}
	if err := h.s.Set(ctx, "d", "k3", []byte("1")); err != nil {
		t.Fatal(err)
	}
	second, err := h.s.Checkpoint(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	h.it.mu.Lock()
	keep := h.it.gcKeep[len(h.it.gcKeep)-1]
	h.it.mu.Unlock()
	if !slices.Equal(keep, []string{second.Path, first.Path}) {
		t.Fatalf("path.gc kept %v, want [%s %s]", keep, second.Path, first.Path)
	}

	// By policy: every 2 keys.
	p := newDurableHarness(t, DurableConfig{CheckpointEvery: 2}, func(reg *fakeReg, _ *fakeInterp) { reg.addDurable("p", 1, nil, nil) })
	if _, err := p.s.SetMany(ctx, "p", []Item{{"a", []byte("1")}, {"b", []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a checkpoint by policy", func() bool {
		r, _ := p.reg.RDD("p")
		return r.Checkpoint != nil && r.Checkpoint.Index == r.LastWrite && len(r.Tail) == 0
	})
}

// An idempotency key makes a retried write answer its first outcome
// (whatever the order of its items) and refuses it for another request;
// once the pusher no longer remembers the entry's result, a retried
// delete answers the number of keys asked for.
func TestDurableIdempotencyKeys(t *testing.T) {
	h := newDurableHarness(t, DurableConfig{}, func(reg *fakeReg, _ *fakeInterp) { reg.addDurable("d", 1, nil, nil) })
	ctx := context.Background()
	with := WriteOptions{IdempotencyKey: "k1"}
	if _, err := h.s.SetManyWith(ctx, "d", []Item{{"a", []byte("1")}, {"b", []byte("2")}}, with); err != nil {
		t.Fatal(err)
	}
	r, _ := h.reg.RDD("d")
	if n, err := h.s.SetManyWith(ctx, "d", []Item{{"b", []byte("2")}, {"a", []byte("1")}}, with); err != nil || n != 2 {
		t.Fatalf("retry: %d, %v; want 2, nil", n, err)
	}
	if again, _ := h.reg.RDD("d"); again.LastWrite != r.LastWrite {
		t.Fatalf("the retry was logged again (last write %d, was %d)", again.LastWrite, r.LastWrite)
	}
	if _, err := h.s.SetManyWith(ctx, "d", []Item{{"a", []byte("9")}}, with); !errors.Is(err, cluster.ErrIdempotencyMismatch) {
		t.Fatalf("same key, other request: %v; want ErrIdempotencyMismatch", err)
	}
	// A delete key is not a set key's request.
	if _, err := h.s.DeleteManyWith(ctx, "d", []string{"a", "b"}, with); !errors.Is(err, cluster.ErrIdempotencyMismatch) {
		t.Fatalf("delete under a set's key: %v; want ErrIdempotencyMismatch", err)
	}
	del := WriteOptions{IdempotencyKey: "d1"}
	for try := 0; try < 2; try++ {
		if n, err := h.s.DeleteManyWith(ctx, "d", []string{"a", "zz"}, del); err != nil || n != 1 {
			t.Fatalf("delete try %d: %d, %v; want 1 (the first outcome), nil", try, n, err)
		}
	}

	// The pusher remembers about resultsKept entries' results. An old
	// delete (entry 1, of keys that did not exist) followed by more
	// entries than that: its retry no longer knows the count.
	tail := []*cluster.TailEntry{deleteEntry(1, "x", "y")}
	for i := uint64(2); i < resultsKept+resultsKept/8+100; i++ {
		tail = append(tail, setEntry(i, fmt.Sprint("f", i), "1"))
	}
	w := newDurableHarness(t, DurableConfig{}, func(reg *fakeReg, _ *fakeInterp) {
		reg.addDurable("w", 1, nil, tail)
		r, _ := reg.RDD("w")
		reg.Update(func(s *cluster.State, _ *uint64) {
			s.Idem["w\x00old"] = &cluster.IdemRecord{Index: 1, Group: 0, Hash: requestHash([]string{"x", "y"}, nil), Incarnation: r.Incarnation}
			s.IdemOrder = append(s.IdemOrder, "w\x00old")
		})
	})
	w.s.recoveryWait = time.Minute // ~74,000 entries to replay, under -race
	if err := w.s.ReadGate(ctx, "w", ""); err != nil {
		t.Fatal(err)
	}
	if n, err := w.s.DeleteManyWith(ctx, "w", []string{"y", "x"}, WriteOptions{IdempotencyKey: "old"}); err != nil || n != 2 {
		t.Fatalf("retry past the window: %d, %v; want 2 (the keys asked for), nil", n, err)
	}
}

// The interpreter refuses one group of an entry (a number that does not
// fit a float passes Go's checks): that writer gets ErrInvalid, the rest
// of the log goes on.
func TestDurableRefusedGroup(t *testing.T) {
	h := newDurableHarness(t, DurableConfig{}, func(reg *fakeReg, _ *fakeInterp) { reg.addDurable("d", 1, nil, nil) })
	ctx := context.Background()
	if err := h.s.Set(ctx, "d", "big", []byte("1e400")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("set 1e400: %v; want ErrInvalid", err)
	}
	if err := h.s.Set(ctx, "d", "ok", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.it.get("d", "big"); ok {
		t.Fatal("the refused value was stored")
	}
}

// addGroup packs client batches with one hash per idempotent batch; the
// hash ignores item order and tells sets from deletes.
func TestAddGroup(t *testing.T) {
	w := &cluster.Write{Keys: []string{}, Values: [][]byte{}}
	add := func(idem string, kv ...string) {
		start := len(w.Keys)
		for i := 0; i < len(kv); i += 2 {
			w.Keys = append(w.Keys, kv[i])
			w.Values = append(w.Values, []byte(kv[i+1]))
		}
		addGroup(w, 3, start, idem)
	}
	add("", "a", "1")
	add("k", "b", "2", "c", "3")
	add("j", "c", "3", "b", "2")
	if !slices.Equal(w.Groups, []int{1, 2, 2}) || !slices.Equal(w.Idem, []string{"", "k", "j"}) {
		t.Fatalf("groups %v, idem %v", w.Groups, w.Idem)
	}
	if w.Hashes[0] != 0 || w.Hashes[1] != w.Hashes[2] || w.Hashes[1] == 0 {
		t.Fatalf("hashes %v: want 0 for no key, equal for the same items in any order", w.Hashes)
	}
	d := &cluster.Write{Delete: true}
	d.Keys = append(d.Keys, "b", "c")
	addGroup(d, 1, 0, "k")
	if d.Hashes[0] == w.Hashes[1] || d.Values != nil {
		t.Fatalf("a delete of the same keys hashes as the set (%x) or carries values", d.Hashes[0])
	}
}

// The registry takes only absolute checkpoint paths without "..", so a
// plain --checkpoint-uri is made absolute and clean; URIs are kept.
func TestCheckpointURIIsAbsolute(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	f := func(uri, want string) {
		t.Helper()
		c := DurableConfig{CheckpointURI: uri}
		c.fill("/data")
		if c.CheckpointURI != want {
			t.Errorf("CheckpointURI %q -> %q, want %q", uri, c.CheckpointURI, want)
		}
	}
	f("", "/data/checkpoints")
	f("ck/", filepath.Join(wd, "ck"))
	f("/srv/ck/", "/srv/ck")
	f("/srv/x/../ck", "/srv/ck")
	f("hdfs://nn:8020/ck", "hdfs://nn:8020/ck")
	f("file:///srv/ck/", "file:///srv/ck")
}

// TestCheckpointWithNothingNew: a checkpoint asked for when nothing was
// written since the recorded one answers that one (the registry refuses a
// second checkpoint at the same index as stale; this was a 500, found by
// the web console's browser test after a load).
func TestCheckpointWithNothingNew(t *testing.T) {
	h := newDurableHarness(t, DurableConfig{}, func(reg *fakeReg, _ *fakeInterp) { reg.addDurable("d", 1, nil, nil) })
	ctx := context.Background()
	if err := h.s.Set(ctx, "d", "k", []byte("1")); err != nil {
		t.Fatal(err)
	}
	first, err := h.s.Checkpoint(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.s.Checkpoint(ctx, "d")
	if err != nil {
		t.Fatalf("second checkpoint with nothing new: %v", err)
	}
	if again.Index != first.Index || again.Path != first.Path || again.Rows != first.Rows {
		t.Fatalf("second checkpoint %+v, want the recorded %+v", again, first)
	}
	if err := h.s.Set(ctx, "d", "k2", []byte("2")); err != nil {
		t.Fatal(err)
	}
	third, err := h.s.Checkpoint(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if third.Index <= first.Index || third.Path == first.Path {
		t.Fatalf("checkpoint after a write %+v is not newer than %+v", third, first)
	}
}
