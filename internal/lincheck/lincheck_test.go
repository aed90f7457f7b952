package lincheck

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// The checker must be able to fail: a read of a value overwritten before
// the read began is not linearizable; the same read overlapping the
// overwrite is.
func TestModelAcceptsAndRefuses(t *testing.T) {
	stale := &History{ops: []porcupine.Operation{
		{ClientId: 0, Input: Input{Put: true, Key: "k", Value: `1`}, Call: 0, Output: Output{}, Return: 10},
		{ClientId: 0, Input: Input{Put: true, Key: "k", Value: `2`}, Call: 20, Output: Output{}, Return: 30},
		{ClientId: 1, Input: Input{Key: "k"}, Call: 40, Output: Output{Value: `1`}, Return: 50},
	}}
	if res := stale.Check(0); res != porcupine.Illegal {
		t.Fatalf("stale read: %v, want illegal", res)
	}
	overlapping := &History{ops: []porcupine.Operation{
		{ClientId: 0, Input: Input{Put: true, Key: "k", Value: `{"a":1}`}, Call: 0, Output: Output{}, Return: 10},
		{ClientId: 0, Input: Input{Put: true, Key: "k", Value: `2`}, Call: 20, Output: Output{}, Return: 50},
		{ClientId: 1, Input: Input{Key: "k"}, Call: 30, Output: Output{Value: `{ "a": 1 }`}, Return: 40},
		{ClientId: 1, Input: Input{Key: "other"}, Call: 30, Output: Output{}, Return: 40},
	}}
	if res := overlapping.Check(0); res != porcupine.Ok {
		t.Fatalf("overlapping read: %v, want ok", res)
	}
}

// Puts of unknown outcome: one whose value a read returned still counts
// (the read is then legal), and dropping the unobserved ones changes no
// verdict (a stale read stays illegal) while it keeps the check fast.
func TestUnknownPuts(t *testing.T) {
	const never = int64(1<<63 - 1)
	observed := &History{ops: []porcupine.Operation{
		{ClientId: 0, Input: Input{Put: true, Key: "k", Value: `1`}, Call: 0, Output: Output{}, Return: 10},
		{ClientId: 1, Input: Input{Put: true, Key: "k", Value: `{"x":2}`}, Call: 20, Output: Output{}, Return: never},
		{ClientId: 2, Input: Input{Key: "k"}, Call: 40, Output: Output{Value: `{ "x": 2 }`}, Return: 50},
	}}
	if res := observed.Check(0); res != porcupine.Ok {
		t.Fatalf("a read of a put of unknown outcome: %v, want ok", res)
	}
	stale := &History{ops: []porcupine.Operation{
		{ClientId: 0, Input: Input{Put: true, Key: "k", Value: `1`}, Call: 0, Output: Output{}, Return: 10},
		{ClientId: 0, Input: Input{Put: true, Key: "k", Value: `2`}, Call: 20, Output: Output{}, Return: 30},
		{ClientId: 1, Input: Input{Key: "k"}, Call: 40, Output: Output{Value: `1`}, Return: 50},
	}}
	// Many unobserved puts of unknown outcome, each concurrent with all
	// that follows: the verdict stays illegal, found at once.
	for i := 0; i < 200; i++ {
		stale.ops = append(stale.ops, porcupine.Operation{ClientId: 3 + i, Input: Input{Put: true, Key: "k", Value: `"lost"`},
			Call: 5, Output: Output{}, Return: never})
	}
	if got := len(dropUnobserved(stale.ops)); got != 3 {
		t.Fatalf("dropUnobserved left %d operations, want 3", got)
	}
	if res := stale.Check(0); res != porcupine.Illegal {
		t.Fatalf("stale read among unknown puts: %v, want illegal", res)
	}
}
