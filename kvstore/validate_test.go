package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/kvstore/datarules"
)

// dataRules is testdata/data_rules.json: the accept/reject cases that the
// interpreter's tests (sparkbridge/python/tests/test_rules.py) run too.
type dataRules struct {
	Rules  Rules            `json:"rules"`
	Names  []datarules.Case `json:"names"`
	Keys   []datarules.Case `json:"keys"`
	Values []datarules.Case `json:"values"`
	Batch  []batchCase      `json:"batches"`
	Groups []interface{}    `json:"groups"` // the interpreter's; Go's copy is cluster's
}

type batchCase struct {
	N    int    `json:"n"`
	Want string `json:"want"`
}

func loadDataRules(t *testing.T) dataRules {
	t.Helper()
	b, err := os.ReadFile("testdata/data_rules.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dataRules
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("cannot decode testdata/data_rules.json: %v", err)
	}
	if len(d.Names) == 0 || len(d.Keys) == 0 || len(d.Values) == 0 || len(d.Batch) == 0 {
		t.Fatal("testdata/data_rules.json has an empty section")
	}
	return d
}

func wantErr(t *testing.T, want string) error {
	t.Helper()
	switch want {
	case "ok":
		return nil
	case "invalid":
		return ErrInvalid
	case "too_large":
		return ErrTooLarge
	}
	t.Fatalf("unknown want %q in testdata/data_rules.json", want)
	return nil
}

func check(t *testing.T, what string, in datarules.Input, want string, got error) {
	t.Helper()
	w := wantErr(t, want)
	if (w == nil) != (got == nil) || (w != nil && !errors.Is(got, w)) {
		t.Errorf("%s %.60q = %v, want %s", what, string(in), got, want)
	}
}

// The node hands the interpreter DefaultLimits().Rules(); the vectors
// file must describe the same rules.
func TestDataRulesAreTheDefaults(t *testing.T) {
	d := loadDataRules(t)
	if got := DefaultLimits().Rules(); !reflect.DeepEqual(got, d.Rules) {
		t.Fatalf("DefaultLimits().Rules() = %+v,\ntestdata/data_rules.json has %+v", got, d.Rules)
	}
	var back Rules
	if err := json.Unmarshal([]byte(DefaultLimits().RulesJSON()), &back); err != nil || !reflect.DeepEqual(back, d.Rules) {
		t.Fatalf("RulesJSON() does not round-trip: %v %+v", err, back)
	}
	if got := (Limits{}).Rules(); !reflect.DeepEqual(got, d.Rules) {
		t.Fatalf("zero Limits must mean the defaults, got %+v", got)
	}
}

func TestDataRuleVectors(t *testing.T) {
	d := loadDataRules(t)
	l := DefaultLimits()
	for _, c := range d.Names {
		check(t, "ValidateName", c.In, c.Want, ValidateName(string(c.In)))
	}
	for _, c := range d.Keys {
		check(t, "ValidateKey", c.In, c.Want, l.ValidateKey(string(c.In)))
	}
	for _, c := range d.Values {
		check(t, "ValidateValue", c.In, c.Want, l.ValidateValue([]byte(c.In)))
	}
	for _, c := range d.Batch {
		check(t, "validateBatch", datarules.Input(fmt.Sprint(c.N)), c.Want, l.validateBatch(c.N))
	}
}

// logSpy is a registry holding one durable RDD that counts log writes.
type logSpy struct {
	Registry // nil: any other call panics
	applied  int
}

func (r *logSpy) RDD(name string) (cluster.RDD, bool) {
	return cluster.RDD{Name: name, Mode: cluster.ModeDurable, SessionID: 1}, true
}

func (r *logSpy) Apply(cluster.Command) (any, error) {
	r.applied++
	return nil, errors.New("no raft in this test")
}

// noInterpreter is a session manager whose sessions never come up.
type noInterpreter struct{ Sessions }

func (noInterpreter) Interpreter(context.Context, int64) (Interpreter, error) {
	return nil, errors.New("no interpreter in this test")
}

// Issue 12: a durable value such as 1e400 passed the node's checks, was
// committed to the log, and kv.apply refused it on every rebuild. The node
// is the gate: such a value is refused before anything is logged.
func TestDurableSetRefusesUnrepresentableValuesBeforeTheLog(t *testing.T) {
	for _, v := range []string{`1e400`, `{"a":[-1E+309]}`, "\"\xff\""} {
		reg := &logSpy{}
		s := New(reg, noInterpreter{}, DefaultLimits())
		_, err := s.SetMany(context.Background(), "states", []Item{{Key: "k", Value: []byte(v)}})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("SetMany(%q) = %v, want %v", v, err, ErrInvalid)
		}
		if reg.applied != 0 {
			t.Errorf("SetMany(%q) reached the log %d times", v, reg.applied)
		}
	}
}
