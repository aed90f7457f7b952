package cluster

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"
)

// commandConstants parses command.go for every constant of type
// CommandType, so a constant without a registration fails the test.
func commandConstants(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "command.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "CommandType" {
				for _, n := range vs.Names {
					consts[n.Name] = true
				}
			}
		}
	}
	return consts
}

func TestCommandTable(t *testing.T) {
	consts := commandConstants(t)
	if len(consts) < 11 {
		t.Fatalf("found %d CommandType constants in command.go, want at least 11", len(consts))
	}
	registered, names := 0, map[string]bool{}
	for i := range commands {
		spec := commands[i]
		if spec == nil {
			continue
		}
		registered++
		if spec.typ != CommandType(i) {
			t.Errorf("row %q is stored under type %d, registered as %d", spec.name, i, spec.typ)
		}
		if names[spec.name] {
			t.Errorf("name %q is registered twice", spec.name)
		}
		names[spec.name] = true
		if got := CommandType(i).String(); got != spec.name {
			t.Errorf("type %d String() = %q, want %q", i, got, spec.name)
		}
	}
	// Each constant is one registered type; the types are distinct (a
	// duplicate value would leave fewer registrations than constants).
	if registered != len(consts) {
		t.Errorf("%d CommandType constants, %d registered types: every constant needs exactly one row in commands", len(consts), registered)
	}
	if got := CommandType(200).String(); got != "unknown(200)" {
		t.Errorf("unregistered type String() = %q", got)
	}
}

func TestCommandTableRefusesBadRows(t *testing.T) {
	ok := func() *commandSpec {
		return row(CmdDropRDD, rules[DropRDD]{name: "drop_rdd", validate: (*DropRDD).validate, apply: (*State).applyDropRDD})
	}
	f := func(what string, specs ...*commandSpec) {
		t.Helper()
		if _, err := newCommandTable(specs...); err == nil {
			t.Errorf("%s: table built, want an error", what)
		}
	}
	if _, err := newCommandTable(ok()); err != nil {
		t.Fatalf("one good row: %v", err)
	}
	f("type twice", ok(), row(CmdDropRDD, rules[RemoveNode]{name: "other", validate: (*RemoveNode).validate, apply: (*State).applyRemoveNode}))
	f("name twice", ok(), row(CmdRemoveNode, rules[RemoveNode]{name: "drop_rdd", validate: (*RemoveNode).validate, apply: (*State).applyRemoveNode}))
	f("body twice", ok(), row(CmdRemoveNode, rules[DropRDD]{name: "other", validate: (*DropRDD).validate, apply: (*State).applyDropRDD}))
	f("no validate", row(CmdDropRDD, rules[DropRDD]{name: "drop_rdd", apply: (*State).applyDropRDD}))
	f("no apply", row(CmdDropRDD, rules[DropRDD]{name: "drop_rdd", validate: (*DropRDD).validate}))
	f("no name", row(CmdDropRDD, rules[DropRDD]{validate: (*DropRDD).validate, apply: (*State).applyDropRDD}))
	f("type 0", row(0, rules[DropRDD]{name: "drop_rdd", validate: (*DropRDD).validate, apply: (*State).applyDropRDD}))
}

// TestEveryTypeRoundTrips checks that the golden entries cover every
// registered type, so TestEncodingIsStable round-trips each of them.
func TestEveryTypeRoundTrips(t *testing.T) {
	covered := map[CommandType]bool{}
	for _, g := range goldenCommands {
		covered[g.cmd.Type] = true
		if d := roundTrip(t, g.cmd); d.Type != g.cmd.Type {
			t.Errorf("%s decodes as %s", g.cmd.Type, d.Type)
		}
	}
	for i, spec := range commands {
		if spec != nil && !covered[CommandType(i)] {
			t.Errorf("%s has no entry in goldenCommands", spec.name)
		}
	}
}

func TestEncodeRefusesAMismatchedBody(t *testing.T) {
	for _, c := range []Command{
		{Type: CmdDropRDD, Body: &CreateRDD{Name: "x"}},
		{Type: CmdDropRDD, Body: DropRDD{Name: "x"}},
		{Type: CmdDropRDD, Body: (*DropRDD)(nil)},
		{Type: CmdDropRDD},
		{Type: 200, Body: &DropRDD{Name: "x"}},
	} {
		if _, err := Encode(c); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("Encode(%s, %T) err = %v, want ErrInvalidCommand", c.Type, c.Body, err)
		}
	}
}

// rawEntry encodes a body without any check, as a buggy or forged
// proposer could write it.
func rawEntry(t *testing.T, typ CommandType, body any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{EntryVersion, byte(typ)}, b...)
}

// TestApplyRefusesInvalidBodies feeds the FSM entries that fail
// validation: each is refused with ErrInvalidCommand, no panic, and the
// registry does not change.
func TestApplyRefusesInvalidBodies(t *testing.T) {
	f := newFSM()
	f.state = durableState(t)
	mustApply(t, f.state, CmdRegisterNode, &RegisterNode{ID: "n1"})
	index := uint64(100)
	check := func(typ CommandType, body any) {
		t.Helper()
		before, _ := canonical(f.state)
		index++
		var res any
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("%s %+v: apply panicked: %v", typ, body, p)
				}
			}()
			res = f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: rawEntry(t, typ, body)})
		}()
		r, ok := res.(applyResult)
		if !ok || !errors.Is(r.err, ErrInvalidCommand) {
			t.Errorf("%s %+v: result %+v, want ErrInvalidCommand", typ, body, res)
		}
		if after, _ := canonical(f.state); string(before) != string(after) {
			t.Errorf("%s %+v: a refused command changed the registry", typ, body)
		}
		if _, err := (Command{Type: typ, Body: body}).validate(); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%s %+v: validate before proposing = %v, want ErrInvalidCommand", typ, body, err)
		}
	}
	check(CmdRegisterNode, &RegisterNode{RaftAddr: "a:1"})
	check(CmdSetSessionStatus, &SetSessionStatus{ID: -1, Status: SessionDead})
	check(CmdSetSessionStatus, &SetSessionStatus{ID: 0, Status: "sleeping"})
	check(CmdDeleteSession, &DeleteSession{ID: -1})
	check(CmdCreateRDD, &CreateRDD{SessionID: 0, Mode: ModeDurable})
	check(CmdCreateRDD, &CreateRDD{Name: "x", SessionID: -2})
	check(CmdDropRDD, &DropRDD{})
	check(CmdSetNodeStatus, &SetNodeStatus{Status: NodeDown})
	check(CmdSetNodeStatus, &SetNodeStatus{ID: "n1", Status: NodeRemoved})
	check(CmdRemoveNode, &RemoveNode{})
	check(CmdWrite, &Write{Session: 0, Keys: []string{"a"}, Values: [][]byte{[]byte("1")}, Groups: []int{1}})
	check(CmdWrite, &Write{RDD: "d", Session: -1, Keys: []string{"a"}, Values: [][]byte{[]byte("1")}, Groups: []int{1}})
	check(CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"a"}, Values: [][]byte{[]byte("1")}, Groups: []int{-1, 2}})
	check(CmdWrite, &Write{RDD: "d", Session: 0, Keys: []string{"a"}, Groups: []int{1}})
	// Group sizes whose sum overflows to the number of keys once sliced
	// the keys out of range and panicked.
	check(CmdWrite, &Write{RDD: "d", Session: 0, Groups: []int{math.MaxInt, math.MaxInt, 2}})
	check(CmdCheckpoint, &Checkpoint{Session: 0, Index: 5, Path: "/c/d/5"})
	check(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Index: 5})
	check(CmdCheckpoint, &Checkpoint{RDD: "d", Session: 0, Index: 5, Path: "/c/d/5", Rows: -1})
	check(CmdMoveRDD, &MoveRDD{From: 0, To: 1})
	check(CmdMoveRDD, &MoveRDD{RDD: "d", From: 0, To: -1})
}
