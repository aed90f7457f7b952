//go:build srdd_futureentry

package cluster

// A binary built with -tags srdd_futureentry knows one more entry type,
// CmdFuture, which changes nothing. It stands for "a newer release" in
// the test of docs/ARCHITECTURE.md invariant 10 (cmd/srdd, an entry no
// binary of this release decodes halts every replica, and a binary that
// knows it resumes them). Release builds never carry it.

// CmdFuture is the entry type only the srdd_futureentry build knows.
const CmdFuture CommandType = FutureEntryType

// Future is CmdFuture's body.
type Future struct {
	Note string `msgpack:"note,omitempty"`
}

func (b *Future) validate() error { return nil }

func (s *State) applyFuture(*Future, uint64) (any, error) { return nil, nil }

func init() {
	commands[CmdFuture] = row(CmdFuture, rules[Future]{name: "future", validate: (*Future).validate, apply: (*State).applyFuture})
}
