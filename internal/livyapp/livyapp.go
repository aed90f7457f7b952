// Package livyapp is what Livy's two kinds of application, interactive
// sessions (package sessions) and batches (package batches), share: the
// appInfo object of their views, the bounded log every application
// keeps, the page of it Livy's /log routes return, and the reconcile a
// node runs at start for the applications its previous run left behind.
// The two packages keep what differs (statements and interpreters;
// spark-submit and drivers).
package livyapp

// AppInfo is Livy's appInfo object.
type AppInfo struct {
	DriverLogURL *string `json:"driverLogUrl"`
	SparkUIURL   *string `json:"sparkUiUrl"`
}

// OrNil is s, or nil when it is empty (Livy's null).
func OrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ViewLogLines is how much of its log an application's view carries, as
// in Livy's session and batch views.
const ViewLogLines = 10

// Log is an application's recent output: at most a number of lines and
// of bytes (a longer line is cut), oldest dropped first, counting what
// was dropped so line numbers stay absolute. Not safe for concurrent
// use: the manager holding it locks.
type Log struct {
	lines []string
	start int // absolute number of lines[0]: lines dropped before it
	bytes int
}

// Append adds a line and drops the oldest past maxLines or maxBytes.
func (l *Log) Append(line string, maxLines, maxBytes int) {
	if len(line) > maxBytes {
		line = line[:maxBytes]
	}
	l.lines = append(l.lines, line)
	l.bytes += len(line)
	over := 0
	for len(l.lines)-over > maxLines || l.bytes > maxBytes {
		l.bytes -= len(l.lines[over])
		over++
	}
	if over > 0 {
		l.lines = append(l.lines[:0], l.lines[over:]...)
		l.start += over
	}
}

// Restore replaces the log with lines kept elsewhere (a batch's log file),
// the first of which is line number start.
func (l *Log) Restore(lines []string, start int) {
	l.lines, l.start, l.bytes = append([]string(nil), lines...), start, 0
	for _, s := range l.lines {
		l.bytes += len(s)
	}
}

// Kept returns a copy of the kept lines and the number of the first.
func (l *Log) Kept() ([]string, int) { return append([]string(nil), l.lines...), l.start }

// Len is the number of kept lines.
func (l *Log) Len() int { return len(l.lines) }

// Tail returns a copy of the last n kept lines (never nil).
func (l *Log) Tail(n int) []string {
	return append([]string{}, l.lines[max(0, len(l.lines)-n):]...)
}

// Page is Livy's GET .../log: from the line numbered from (nil: the last
// size lines), at most size lines (a negative size: no limit), within
// what is kept. It returns the lines, the number of the first and the
// total ever logged.
func Page(kept []string, dropped int, from *int, size int) (lines []string, start, total int) {
	total = dropped + len(kept)
	lo := total - size
	if size < 0 {
		lo = dropped
	}
	if from != nil {
		lo = *from
	}
	lo = min(max(lo, dropped, 0), total)
	hi := total
	if size >= 0 {
		hi = min(lo+size, total)
	}
	return append([]string{}, kept[lo-dropped:hi-dropped]...), lo, total
}

// Reconcile ends, through end, every record that leftover says a
// previous run of this node left behind and that running says this
// process does not run (the node restarted: its interpreters or drivers
// went with it). It stops at the first error.
func Reconcile[R any](records []R, leftover func(R) bool, running func(R) bool, end func(R) error) error {
	for _, r := range records {
		if !leftover(r) || running(r) {
			continue
		}
		if err := end(r); err != nil {
			return err
		}
	}
	return nil
}
