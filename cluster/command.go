package cluster

import (
	"errors"
	"fmt"

	"github.com/srdd/srdd/internal/peerid"
	"github.com/vmihailenco/msgpack/v5"
)

// EntryVersion is the version byte of every Raft log entry this code writes.
// A node that reads an entry with another version refuses it (the FSM panics),
// so replicas never silently diverge (docs/ARCHITECTURE.md invariant 3).
const EntryVersion byte = 1

// CommandType names one kind of registry change. Values are part of the
// on-disk format: never renumber, only append. Each type is registered
// once, in commands (commands.go).
type CommandType byte

const (
	CmdRegisterNode     CommandType = 1
	CmdCreateSession    CommandType = 2
	CmdSetSessionStatus CommandType = 3
	CmdDeleteSession    CommandType = 4
	CmdCreateRDD        CommandType = 5
	CmdDropRDD          CommandType = 6
	CmdSetNodeStatus    CommandType = 7
	CmdRemoveNode       CommandType = 8
	CmdWrite            CommandType = 9
	CmdCheckpoint       CommandType = 10
	CmdMoveRDD          CommandType = 11
	CmdCreateBatch      CommandType = 12
	CmdSetBatchState    CommandType = 13
	CmdAdmitNode        CommandType = 14
	CmdAddCopy          CommandType = 15
)

// String returns the registered name of the type, or "unknown(N)".
func (t CommandType) String() string {
	if spec := commands.lookup(t); spec != nil {
		return spec.name
	}
	return fmt.Sprintf("unknown(%d)", byte(t))
}

// Command is one registry change: a type and its body, a pointer to the
// body type registered for it (for example CmdDropRDD and *DropRDD).
type Command struct {
	Type CommandType
	Body any
}

// validate checks that c is registered, that its body has the registered
// type, and that the body passes the command's own checks. The error wraps
// ErrInvalidCommand.
func (c Command) validate() (*commandSpec, error) {
	spec, err := commands.spec(c)
	if err != nil {
		return nil, err
	}
	if err := spec.validate(c.Body); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidCommand, spec.name, err)
	}
	return spec, nil
}

// ErrUndecodable marks a log entry this node cannot read.
var ErrUndecodable = errors.New("undecodable registry entry")

// Encode turns a command into a log entry: version byte, type byte, msgpack
// body. It refuses a type that is not registered or a body of another
// type, but does not validate the body: Node.Apply does, before proposing.
func Encode(c Command) ([]byte, error) {
	if _, err := commands.spec(c); err != nil {
		return nil, fmt.Errorf("cannot encode %s: %w", c.Type, err)
	}
	body, err := msgpack.Marshal(c.Body)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %s: %w", c.Type, err)
	}
	out := make([]byte, 0, len(body)+2)
	out = append(out, EntryVersion, byte(c.Type))
	return append(out, body...), nil
}

// Decode parses a log entry written by Encode into the registered body of
// its type. An unknown version or type, or a body that does not decode,
// is ErrUndecodable: the node must stop rather than skip it.
func Decode(b []byte) (Command, error) {
	if len(b) < 2 {
		return Command{}, fmt.Errorf("%w: entry of %d bytes", ErrUndecodable, len(b))
	}
	if b[0] != EntryVersion {
		return Command{}, fmt.Errorf("%w: entry version %d, this node reads %d", ErrUndecodable, b[0], EntryVersion)
	}
	t := CommandType(b[1])
	spec := commands.lookup(t)
	if spec == nil {
		return Command{}, fmt.Errorf("%w: command type %s", ErrUndecodable, t)
	}
	body := spec.newBody()
	if err := msgpack.Unmarshal(b[2:], body); err != nil {
		return Command{}, fmt.Errorf("%w: %s body: %v", ErrUndecodable, t, err)
	}
	return Command{Type: t, Body: body}, nil
}

// RegisterNode records a node and its addresses.
type RegisterNode struct {
	ID       string `msgpack:"id"`
	RaftAddr string `msgpack:"raft_addr"`
	HTTPAddr string `msgpack:"http_addr"`
	// Readmit lets a removed node back in; the leader sets it only for a
	// node that joins with its Raft state wiped.
	Readmit bool `msgpack:"readmit,omitempty"`
}

func (b *RegisterNode) validate() error { return nonEmpty("node id", b.ID) }

// CreateSession allocates the next session id. The FSM answers the id.
type CreateSession struct {
	Name      string            `msgpack:"name"`
	Kind      string            `msgpack:"kind"`
	Node      string            `msgpack:"node"`
	CreatedAt int64             `msgpack:"created_at"` // unix ms, chosen by the proposer
	Conf      map[string]string `msgpack:"conf"`
	// Access (Livy's session ACLs): the authenticated principal that
	// created it, and who else may read it or run code in it. Empty
	// without auth; omitted then, so old entries encode as before. The
	// principal is encoded as "owner", Livy's name for it, as before.
	Principal   string   `msgpack:"owner,omitempty"`
	ViewUsers   []string `msgpack:"view_users,omitempty"`
	ModifyUsers []string `msgpack:"modify_users,omitempty"`
}

// validate checks the name, if any, by the API's rule (ValidSessionName);
// records without a node or kind exist in tests and old logs.
func (b *CreateSession) validate() error {
	if b.Name == "" {
		return nil
	}
	return ValidSessionName(b.Name)
}

// SetSessionStatus changes the lifecycle status of a session.
type SetSessionStatus struct {
	ID     int64  `msgpack:"id"`
	Status string `msgpack:"status"`
	Reason string `msgpack:"reason"`
}

func (b *SetSessionStatus) validate() error {
	return first(sessionID("session id", b.ID),
		oneOf("session status", b.Status, SessionActive, SessionDead, SessionKilled))
}

// DeleteSession removes a session and every shared RDD it owns.
type DeleteSession struct {
	ID int64 `msgpack:"id"`
}

func (b *DeleteSession) validate() error { return sessionID("session id", b.ID) }

// CreateRDD registers a named shared RDD owned by a session.
type CreateRDD struct {
	Name      string `msgpack:"name"`
	SessionID int64  `msgpack:"session_id"`
	Mode      string `msgpack:"mode"`
	CreatedAt int64  `msgpack:"created_at"`
	// Replicas is the number of copies wanted (issue 24; RDD.Replicas).
	// 0, and absent in entries from before it, means 1; omitted then, so
	// such entries encode as before.
	Replicas int `msgpack:"replicas,omitempty"`
}

// validate checks the name by the API's rule (ValidRDDName: it becomes a
// directory of the checkpoint root, so ".." must never get in), the
// mode ("" in tests and the oldest records) and the copies wanted.
func (b *CreateRDD) validate() error {
	return first(ValidRDDName(b.Name), sessionID("session id", b.SessionID),
		oneOf("rdd mode", b.Mode, ModeDurable, ModeMemory, ""), replicas(b.Replicas))
}

// replicas checks a wanted copy count: 0 (absent: 1) up to MaxReplicas.
// The API's own bound, the cluster's node count, is kvstore's: it
// changes with membership, so a record never breaks it after the fact.
func replicas(n int) error {
	if n < 0 || n > MaxReplicas {
		return fmt.Errorf("replicas %d is not between 0 and %d", n, MaxReplicas)
	}
	return nil
}

// DropRDD removes a named shared RDD from the registry.
type DropRDD struct {
	Name string `msgpack:"name"`
}

func (b *DropRDD) validate() error { return nonEmpty("rdd name", b.Name) }

// SetNodeStatus records the leader's view of a node's health.
type SetNodeStatus struct {
	ID     string `msgpack:"id"`
	Status string `msgpack:"status"` // NodeUp or NodeDown
	At     int64  `msgpack:"at"`     // unix ms, chosen by the proposer
}

func (b *SetNodeStatus) validate() error {
	return first(nonEmpty("node id", b.ID), oneOf("node status", b.Status, NodeUp, NodeDown))
}

// AdmitNode lets node ID join once (docs/ARCHITECTURE.md, "Peer trust":
// admission). Voter says whether it may join as a voter. By is who
// admitted it (an admin's name, or "--admit" at bootstrap); At is unix
// ms, chosen by the proposer.
type AdmitNode struct {
	ID    string `msgpack:"id"`
	Voter bool   `msgpack:"voter"`
	By    string `msgpack:"by,omitempty"`
	At    int64  `msgpack:"at"`
}

func (b *AdmitNode) validate() error { return peerid.Valid(b.ID) }

// RemoveNode records that a node left or was removed from the cluster. It
// may not come back with its old Raft state.
type RemoveNode struct {
	ID string `msgpack:"id"`
}

func (b *RemoveNode) validate() error { return nonEmpty("node id", b.ID) }

// The checks below are the building blocks of the validate methods. Each
// returns nil or one error naming the field; first picks the first error.

func nonEmpty(field, v string) error {
	if v == "" {
		return fmt.Errorf("empty %s", field)
	}
	return nil
}

func sessionID(field string, id int64) error {
	if id < 0 {
		return fmt.Errorf("negative %s %d", field, id)
	}
	return nil
}

func nonNegative(field string, n int64) error {
	if n < 0 {
		return fmt.Errorf("negative %s %d", field, n)
	}
	return nil
}

func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s %q is not one of %q", field, v, allowed)
}

// first returns the first non-nil error, so a body with several faults is
// always refused with the same message.
func first(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// FutureEntryType is the command type that stands for "an entry of a
// newer release" in tests: no release registers it (the srdd_futureentry
// build tag does; cluster/futureentry.go).
const FutureEntryType = 250
