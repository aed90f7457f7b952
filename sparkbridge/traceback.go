package sparkbridge

import (
	"strings"

	"github.com/hashicorp/go-hclog"
)

// A Python traceback is many lines: "Traceback (most recent call last):",
// indented frames, then the exception's line. A process killed while it
// prints one (a node stopping with Ctrl-C while an interpreter fails to
// start) used to leave a bare first line in the node's log. tracebackHold
// holds a traceback's lines until its exception line arrives and then
// emits them all; at the end of the output, a traceback cut short is
// dropped when the node killed the process on purpose, and emitted as it
// is (with a note) when the process died on its own. So the log has the
// whole traceback or nothing.
type tracebackHold struct {
	held []string
}

// tracebackMaxLines bounds what is held: past it the lines go out as they
// come (a traceback that long is not one Python prints).
const tracebackMaxLines = 500

func isTracebackStart(line string) bool {
	return strings.HasSuffix(strings.TrimSpace(line), "Traceback (most recent call last):")
}

// line passes one output line on to emit, holding a traceback's.
func (h *tracebackHold) line(line string, emit func(string)) {
	if len(h.held) == 0 {
		if isTracebackStart(line) {
			h.held = append(h.held, line)
			return
		}
		emit(line)
		return
	}
	h.held = append(h.held, line)
	indented := strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")
	if !indented || len(h.held) >= tracebackMaxLines {
		h.flush(emit) // the exception's line ends it
	}
}

func (h *tracebackHold) flush(emit func(string)) {
	for _, l := range h.held {
		emit(l)
	}
	h.held = nil
}

// end is called at the end of the output: a traceback cut short is
// dropped if the process was killed on purpose, else emitted with a note.
func (h *tracebackHold) end(killed bool, emit func(string), log hclog.Logger) {
	if len(h.held) == 0 {
		return
	}
	if killed {
		log.Debug("dropped a traceback cut short by stopping the process", "lines", len(h.held))
		h.held = nil
		return
	}
	h.held = append(h.held, "(traceback cut short: the process exited while printing it)")
	h.flush(emit)
}
