package cluster

import (
	"context"
	"testing"
	"time"
)

// A pause (the process did not run for half of DownAfter) makes the next
// read pass a read barrier first, which clears it; a pause counted after
// that barrier began is not cleared by it and gets a barrier of its own.
func TestFreshReadAfterAPause(t *testing.T) {
	n := openTestNode(t, t.TempDir(), true)
	defer n.Close()
	if err := n.WaitForLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n.lastTick.Store(monoNow() - int64(time.Minute)) // as if stopped for a minute
	if err := n.FreshRead(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.FreshRead(ctx); err != nil { // in case watchPause counted it too
		t.Fatal(err)
	}
	if p, c := n.pauses.Load(), n.cleared.Load(); p == 0 || c != p {
		t.Fatalf("after a pause and a read: pauses %d, cleared %d; want the pause counted and cleared", p, c)
	}
	n.pauses.Add(1) // watchPause counts another pause
	if n.pauses.Load() == n.cleared.Load() {
		t.Fatal("a new pause counts as cleared")
	}
	if err := n.FreshRead(ctx); err != nil {
		t.Fatal(err)
	}
	if p, c := n.pauses.Load(), n.cleared.Load(); c != p {
		t.Fatalf("after the second pause and a read: pauses %d, cleared %d", p, c)
	}
}
