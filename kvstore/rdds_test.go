package kvstore

import (
	"context"
	"fmt"
	"testing"
)

// The store makes every rdd.create and rdd.drop: Hydrate creates a
// starting session's RDDs (keeping one that exists), created replaces a
// memory RDD left over from a failed drop but keeps a durable one its
// pusher created first, and dropped forgets a missing one quietly.
func TestRDDCallsInInterpreter(t *testing.T) {
	reg, it := newFakeReg(), newFakeInterp()
	reg.addSession(1)
	reg.addDurable("d", 1, nil, nil)
	reg.addMemory("m", 1)
	reg.addMemory("elsewhere", 2)
	s := New(reg, &fakeSessions{its: map[int64]*fakeInterp{1: it}, def: 1}, DefaultLimits())
	ctx := context.Background()
	data := func() string {
		it.mu.Lock()
		defer it.mu.Unlock()
		return fmt.Sprint(it.data)
	}

	it.data["d"] = map[string]string{"k": "pushed"} // the pusher was first
	if err := s.Hydrate(ctx, 1, it); err != nil {
		t.Fatal(err)
	}
	if got := data(); got != "map[d:map[k:pushed] m:map[]]" {
		t.Fatalf("after Hydrate: %s", got)
	}
	if !it.durable["d"] || it.durable["m"] {
		t.Fatalf("durable flags sent: %v; want d only", it.durable)
	}

	it.data["m"]["stale"] = `"old"`
	if err := s.created(1, "m"); err != nil {
		t.Fatal(err)
	}
	if err := s.created(1, "d"); err != nil {
		t.Fatal(err)
	}
	if got := data(); got != "map[d:map[k:pushed] m:map[]]" {
		t.Fatalf("after created: %s; want the stale memory rdd replaced, the durable one kept", got)
	}

	for try := 0; try < 2; try++ {
		if err := s.dropped(1, "m"); err != nil {
			t.Fatalf("drop try %d: %v", try, err)
		}
	}
	if err := s.created(2, "elsewhere"); err != nil { // not a session of this node
		t.Fatal(err)
	}
	if got := data(); got != "map[d:map[k:pushed]]" {
		t.Fatalf("after dropped: %s", got)
	}
}
