package livyapp

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestLogKeepsTheNewestWithinBothBounds(t *testing.T) {
	var l Log
	for i := 0; i < 7; i++ {
		l.Append(strings.Repeat(string(rune('a'+i)), 3), 5, 12)
	}
	kept, start := l.Kept()
	// 5 lines would be 15 bytes: the byte bound keeps 4.
	if !slices.Equal(kept, []string{"ddd", "eee", "fff", "ggg"}) || start != 3 {
		t.Fatalf("kept %v from %d", kept, start)
	}
	l.Append(strings.Repeat("x", 20), 5, 12) // cut to the byte bound, and alone
	if kept, start = l.Kept(); !slices.Equal(kept, []string{strings.Repeat("x", 12)}) || start != 7 {
		t.Fatalf("after a long line: %v from %d", kept, start)
	}
	if got := l.Tail(10); len(got) != 1 {
		t.Fatalf("tail %v", got)
	}
	var r Log
	r.Restore([]string{"a", "bb"}, 40)
	r.Append("ccc", 2, 100)
	if kept, start = r.Kept(); !slices.Equal(kept, []string{"bb", "ccc"}) || start != 41 {
		t.Fatalf("restored: %v from %d", kept, start)
	}
}

func TestPage(t *testing.T) {
	kept := []string{"l3", "l4", "l5", "l6"} // lines 3..6; 0..2 dropped
	f := func(from *int, size int, want []string, wantStart, wantTotal int) {
		t.Helper()
		got, start, total := Page(kept, 3, from, size)
		if !slices.Equal(got, want) || start != wantStart || total != wantTotal {
			t.Errorf("Page(%v, %d) = %v, %d, %d; want %v, %d, %d", from, size, got, start, total, want, wantStart, wantTotal)
		}
	}
	at := func(n int) *int { return &n }
	f(nil, 2, []string{"l5", "l6"}, 5, 7)
	f(at(0), 2, []string{"l3", "l4"}, 3, 7) // dropped lines are gone
	f(at(6), 10, []string{"l6"}, 6, 7)
	f(at(9), 1, []string{}, 7, 7)
	f(nil, 100, []string{"l3", "l4", "l5", "l6"}, 3, 7)
	f(nil, -1, []string{"l3", "l4", "l5", "l6"}, 3, 7)
	f(at(5), -1, []string{"l5", "l6"}, 5, 7)
}

func TestReconcile(t *testing.T) {
	var ended []int
	err := Reconcile([]int{1, 2, 3, 4}, func(r int) bool { return r != 1 }, func(r int) bool { return r == 2 },
		func(r int) error { ended = append(ended, r); return nil })
	if err != nil || !slices.Equal(ended, []int{3, 4}) {
		t.Fatalf("ended %v, %v", ended, err)
	}
	boom := errors.New("boom")
	if err := Reconcile([]int{1}, func(int) bool { return true }, func(int) bool { return false },
		func(int) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
}
