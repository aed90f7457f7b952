// Package lincheck records histories of key/value operations against srdd
// and checks them for linearizability with porcupine (a register per
// key). It is used by tests only.
package lincheck

import (
	"encoding/json"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Input is one operation: a put of Value, or a get.
type Input struct {
	Put   bool
	Key   string
	Value string // JSON text
}

// Output is what a get returned: JSON text, "" when the key was absent.
type Output struct{ Value string }

// Model is a register per key whose values are JSON documents.
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(Input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(Input)
		if in.Put {
			return true, in.Value
		}
		got, st := output.(Output).Value, state.(string)
		return got == st || (got != "" && st != "" && JSONEqual(got, st)), state
	},
	Equal: func(a, b any) bool { return a == b },
}

// History is a concurrent-safe record of operations.
type History struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
}

// NewHistory starts a history now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Put records a put called at call; ok false means its outcome is
// unknown (it may take effect at any time after call).
func (h *History) Put(client int, key, value string, call int64, ok bool) {
	ret := h.Now()
	if !ok {
		ret = math.MaxInt64
	}
	h.add(porcupine.Operation{ClientId: client, Input: Input{Put: true, Key: key, Value: value}, Call: call, Output: Output{}, Return: ret})
}

// Get records a get that returned value ("" for absent). Failed gets
// returned nothing and are not recorded.
func (h *History) Get(client int, key, value string, call int64) {
	h.add(porcupine.Operation{ClientId: client, Input: Input{Key: key}, Call: call, Output: Output{Value: value}, Return: h.Now()})
}

func (h *History) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Len is the number of recorded operations.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}

// Operations returns a copy of the recorded operations.
func (h *History) Operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// Check reports whether the history is linearizable (porcupine.Unknown
// if the check ran out of time).
func (h *History) Check(timeout time.Duration) porcupine.CheckResult {
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	res, _ := porcupine.CheckOperationsVerbose(Model, dropUnobserved(ops), timeout)
	return res
}

// dropUnobserved leaves out each put of unknown outcome whose value no
// get of its key returned. That changes no verdict: such a put can be
// linearized as never having happened if the rest can be linearized, and
// dropping it from a linearization of the whole leaves one of the rest
// (no read depended on it). It does shrink the search a great deal: a
// put of unknown outcome is concurrent with everything after its call,
// and a loaded machine leaves dozens of them.
func dropUnobserved(ops []porcupine.Operation) []porcupine.Operation {
	seen := map[string]map[string]bool{} // key -> canonical values read
	for _, op := range ops {
		in := op.Input.(Input)
		if in.Put {
			continue
		}
		if seen[in.Key] == nil {
			seen[in.Key] = map[string]bool{}
		}
		seen[in.Key][canonical(op.Output.(Output).Value)] = true
	}
	out := ops[:0:0]
	for _, op := range ops {
		if in := op.Input.(Input); in.Put && op.Return == math.MaxInt64 && !seen[in.Key][canonical(in.Value)] {
			continue
		}
		out = append(out, op)
	}
	return out
}

// canonical is JSON text re-encoded (so equal values compare equal as
// strings), or the text itself when it is not JSON.
func canonical(s string) string {
	var x any
	if s == "" || json.Unmarshal([]byte(s), &x) != nil {
		return s
	}
	b, _ := json.Marshal(x)
	return string(b)
}

// JSONEqual compares two JSON texts as values.
func JSONEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
