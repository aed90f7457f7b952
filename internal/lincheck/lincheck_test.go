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
