package sparkbridge

import (
	"reflect"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestTracebackWholeOrNothing: a traceback reaches the log whole, or not
// at all when the node killed the process while it was printing one
// (issue 22: a clean Ctrl-C logged a bare "Traceback" line).
func TestTracebackWholeOrNothing(t *testing.T) {
	tb := []string{
		"Traceback (most recent call last):",
		`  File "<frozen runpy>", line 189, in _run_module_as_main`,
		"    import pyspark",
		"ModuleNotFoundError: No module named 'pyspark'",
	}
	run := func(lines []string, killed bool) []string {
		var got []string
		emit := func(l string) { got = append(got, l) }
		var h tracebackHold
		for _, l := range lines {
			h.line(l, emit)
		}
		h.end(killed, emit, hclog.NewNullLogger())
		return got
	}
	whole := append(append([]string{"before"}, tb...), "after")
	if got := run(whole, true); !reflect.DeepEqual(got, whole) {
		t.Fatalf("a whole traceback: got %q", got)
	}
	for n := 1; n < len(tb); n++ {
		cut := append([]string{"before"}, tb[:n]...)
		if got := run(cut, true); !reflect.DeepEqual(got, []string{"before"}) {
			t.Fatalf("killed after %d traceback lines: got %q, want only the line before it", n, got)
		}
		got := run(cut, false)
		if len(got) != n+2 || got[n+1] != "(traceback cut short: the process exited while printing it)" {
			t.Fatalf("died on its own after %d traceback lines: got %q, want them with a note", n, got)
		}
	}
}
