package sessions

import (
	"testing"
	"time"
)

func TestStartDelayDoublesWithJitterUpToFiveMinutes(t *testing.T) {
	for n, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 9: 256 * time.Second, 10: 5 * time.Minute, 60: 5 * time.Minute} {
		for range 50 {
			d := startDelay(n)
			if lo, hi := base*8/10, base*12/10; d < lo || d > hi {
				t.Fatalf("startDelay(%d) = %s, want %s..%s", n, d, lo, hi)
			}
		}
	}
}

func TestDefaultName(t *testing.T) {
	for name, want := range map[string]int{"srdd-default-n1": 0, "srdd-default-n1-3": 3} {
		if k, ok := defaultName("srdd-default-n1", name); !ok || k != want {
			t.Fatalf("defaultName(%q) = %d, %v", name, k, ok)
		}
	}
	for _, name := range []string{"srdd-default-n10", "srdd-default-n1-x", "srdd-default-n1-0", "other"} {
		if _, ok := defaultName("srdd-default-n1", name); ok {
			t.Fatalf("defaultName(%q) matched", name)
		}
	}
}
