package cluster

import (
	"fmt"
	"reflect"
)

// commands is the one table of Raft commands. A row registers a command
// type once: its name (CommandType.String, metric and log labels), its
// body (what Decode decodes into), its validation and its apply rule, and
// which shared RDD it changes (for Node.WatchRDDs).
//
// Adding a command: append a CommandType constant (command.go), define its
// body with a validate method, write its apply rule on *State, and add
// one row here. Tests fail if a constant has no row (TestCommandTable).
//
// validate runs when a command is proposed (Node.Apply) and again, on every
// replica, when it is applied (State.apply): an entry that a buggy or
// forged proposer put in the log is refused with ErrInvalidCommand, never
// applied and never a panic (docs/ARCHITECTURE.md invariant 10). A new
// check must refuse only bodies no correct proposer has ever written, or
// replicas of different versions would disagree on an old entry.
//
// The table is built at package initialisation and only read afterwards,
// so any goroutine may use it.
var commands = mustCommandTable(
	row(CmdRegisterNode, rules[RegisterNode]{name: "register_node",
		validate: (*RegisterNode).validate, apply: (*State).applyRegisterNode}),
	row(CmdCreateSession, rules[CreateSession]{name: "create_session",
		validate: (*CreateSession).validate, apply: (*State).applyCreateSession}),
	row(CmdSetSessionStatus, rules[SetSessionStatus]{name: "set_session_status",
		validate: (*SetSessionStatus).validate, apply: (*State).applySetSessionStatus}),
	row(CmdDeleteSession, rules[DeleteSession]{name: "delete_session",
		validate: (*DeleteSession).validate, apply: (*State).applyDeleteSession}),
	row(CmdCreateRDD, rules[CreateRDD]{name: "create_rdd",
		validate: (*CreateRDD).validate, apply: (*State).applyCreateRDD,
		rdd: func(b *CreateRDD) string { return b.Name }}),
	row(CmdDropRDD, rules[DropRDD]{name: "drop_rdd",
		validate: (*DropRDD).validate, apply: (*State).applyDropRDD,
		rdd: func(b *DropRDD) string { return b.Name }}),
	row(CmdSetNodeStatus, rules[SetNodeStatus]{name: "set_node_status",
		validate: (*SetNodeStatus).validate, apply: (*State).applySetNodeStatus}),
	row(CmdRemoveNode, rules[RemoveNode]{name: "remove_node",
		validate: (*RemoveNode).validate, apply: (*State).applyRemoveNode}),
	row(CmdWrite, rules[Write]{name: "write",
		validate: (*Write).validate, apply: (*State).applyWrite,
		rdd: func(b *Write) string { return b.RDD }, logsWrite: true}),
	row(CmdCheckpoint, rules[Checkpoint]{name: "checkpoint",
		validate: (*Checkpoint).validate, apply: (*State).applyCheckpoint,
		rdd: func(b *Checkpoint) string { return b.RDD }}),
	row(CmdMoveRDD, rules[MoveRDD]{name: "move_rdd",
		validate: (*MoveRDD).validate, apply: (*State).applyMove,
		rdd: func(b *MoveRDD) string { return b.RDD }}),
	row(CmdCreateBatch, rules[CreateBatch]{name: "create_batch",
		validate: (*CreateBatch).validate, apply: (*State).applyCreateBatch}),
	row(CmdSetBatchState, rules[SetBatchState]{name: "set_batch_state",
		validate: (*SetBatchState).validate, apply: (*State).applySetBatchState}),
	row(CmdAdmitNode, rules[AdmitNode]{name: "admit_node",
		validate: (*AdmitNode).validate, apply: (*State).applyAdmitNode}),
	row(CmdAddCopy, rules[AddCopy]{name: "add_copy",
		validate: (*AddCopy).validate, apply: (*State).applyAddCopy,
		rdd: func(b *AddCopy) string { return b.RDD }}),
)

// rules is what a row says about a command whose body type is B.
type rules[B any] struct {
	name     string
	validate func(*B) error
	// apply changes the state, or returns an error and leaves it unchanged.
	// index is the entry's log index.
	apply func(s *State, b *B, index uint64) (any, error)
	// rdd names the shared RDD the command changes; nil for commands on
	// nodes and sessions, which may change the owner of any RDD.
	rdd func(*B) string
	// logsWrite marks a logged durable write, which changes no ownership.
	logsWrite bool
}

// commandSpec is one registered command with its body type erased, as
// Encode, Decode, State.apply and the FSM use it.
type commandSpec struct {
	typ       CommandType
	name      string
	body      reflect.Type // *B
	newBody   func() any
	validate  func(body any) error
	apply     func(s *State, body any, index uint64) (any, error)
	rdd       func(body any) string // nil: not about one RDD
	logsWrite bool
}

// row erases the body type of one registration. The closures assert *B:
// callers check the body's type with commandTable.spec first.
func row[B any](t CommandType, r rules[B]) *commandSpec {
	spec := &commandSpec{
		typ:       t,
		name:      r.name,
		body:      reflect.TypeFor[*B](),
		newBody:   func() any { return new(B) },
		logsWrite: r.logsWrite,
	}
	if r.validate != nil {
		spec.validate = func(b any) error { return r.validate(b.(*B)) }
	}
	if r.apply != nil {
		spec.apply = func(s *State, b any, index uint64) (any, error) { return r.apply(s, b.(*B), index) }
	}
	if r.rdd != nil {
		spec.rdd = func(b any) string { return r.rdd(b.(*B)) }
	}
	return spec
}

// commandTable maps a type byte to its registration.
type commandTable [256]*commandSpec

// newCommandTable builds a table, refusing a type registered twice, a
// name used twice, a body type used twice, or a row without a name,
// validation or apply rule.
func newCommandTable(specs ...*commandSpec) (*commandTable, error) {
	var t commandTable
	names := map[string]CommandType{}
	bodies := map[reflect.Type]CommandType{}
	for _, s := range specs {
		switch {
		case s.typ == 0:
			return nil, fmt.Errorf("cannot register %q: command type 0 is reserved", s.name)
		case t[s.typ] != nil:
			return nil, fmt.Errorf("cannot register %q: type %d is already %q", s.name, byte(s.typ), t[s.typ].name)
		case s.name == "" || s.validate == nil || s.apply == nil:
			return nil, fmt.Errorf("cannot register type %d: it needs a name, a validate and an apply rule", byte(s.typ))
		}
		if o, dup := names[s.name]; dup {
			return nil, fmt.Errorf("cannot register type %d: name %q is already type %d", byte(s.typ), s.name, byte(o))
		}
		if o, dup := bodies[s.body]; dup {
			return nil, fmt.Errorf("cannot register %q: body %s is already type %d", s.name, s.body, byte(o))
		}
		t[s.typ], names[s.name], bodies[s.body] = s, s.typ, s.typ
	}
	return &t, nil
}

func mustCommandTable(specs ...*commandSpec) *commandTable {
	t, err := newCommandTable(specs...)
	if err != nil {
		panic(err)
	}
	return t
}

// lookup returns the registration of t, or nil.
func (t *commandTable) lookup(typ CommandType) *commandSpec { return t[typ] }

// spec returns the registration of c's type after checking that c's body
// is a non-nil pointer of the registered body type. The error wraps
// ErrInvalidCommand.
func (t *commandTable) spec(c Command) (*commandSpec, error) {
	s := t.lookup(c.Type)
	if s == nil {
		return nil, fmt.Errorf("%w: command type %s is not registered", ErrInvalidCommand, c.Type)
	}
	v := reflect.ValueOf(c.Body)
	if !v.IsValid() || v.Type() != s.body || v.IsNil() {
		return nil, fmt.Errorf("%w: %s takes a non-nil %s, not %T", ErrInvalidCommand, s.name, s.body, c.Body)
	}
	return s, nil
}
