package cluster

import (
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// EntryVersion is the version byte of every Raft log entry this code writes.
// A node that reads an entry with another version refuses it (the FSM panics),
// so replicas never silently diverge (ARCHITECTURE.md invariant 3).
const EntryVersion byte = 1

// CommandType names one kind of registry change. Values are part of the
// on-disk format: never renumber, only append.
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
)

func (t CommandType) String() string {
	switch t {
	case CmdRegisterNode:
		return "register_node"
	case CmdCreateSession:
		return "create_session"
	case CmdSetSessionStatus:
		return "set_session_status"
	case CmdDeleteSession:
		return "delete_session"
	case CmdCreateRDD:
		return "create_rdd"
	case CmdDropRDD:
		return "drop_rdd"
	case CmdSetNodeStatus:
		return "set_node_status"
	case CmdRemoveNode:
		return "remove_node"
	case CmdWrite:
		return "write"
	case CmdCheckpoint:
		return "checkpoint"
	case CmdMoveRDD:
		return "move_rdd"
	}
	return fmt.Sprintf("unknown(%d)", byte(t))
}

// Command is one registry change: a type and its msgpack-encodable body.
type Command struct {
	Type CommandType
	Body any
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

// CreateSession allocates the next session id. The FSM answers the id.
type CreateSession struct {
	Name      string            `msgpack:"name"`
	Kind      string            `msgpack:"kind"`
	Node      string            `msgpack:"node"`
	CreatedAt int64             `msgpack:"created_at"` // unix ms, chosen by the proposer
	Conf      map[string]string `msgpack:"conf"`
}

// SetSessionStatus changes the lifecycle status of a session.
type SetSessionStatus struct {
	ID     int64  `msgpack:"id"`
	Status string `msgpack:"status"`
	Reason string `msgpack:"reason"`
}

// DeleteSession removes a session and every shared RDD it owns.
type DeleteSession struct {
	ID int64 `msgpack:"id"`
}

// CreateRDD registers a named shared RDD owned by a session.
type CreateRDD struct {
	Name      string `msgpack:"name"`
	SessionID int64  `msgpack:"session_id"`
	Mode      string `msgpack:"mode"`
	CreatedAt int64  `msgpack:"created_at"`
}

// DropRDD removes a named shared RDD from the registry.
type DropRDD struct {
	Name string `msgpack:"name"`
}

// SetNodeStatus records the leader's view of a node's health.
type SetNodeStatus struct {
	ID     string `msgpack:"id"`
	Status string `msgpack:"status"` // NodeUp or NodeDown
	At     int64  `msgpack:"at"`     // unix ms, chosen by the proposer
}

// RemoveNode records that a node left or was removed from the cluster. It
// may not come back with its old Raft state.
type RemoveNode struct {
	ID string `msgpack:"id"`
}

// ErrUndecodable marks a log entry this node cannot read.
var ErrUndecodable = errors.New("undecodable registry entry")

// Encode turns a command into a log entry: version byte, type byte, msgpack body.
func Encode(c Command) ([]byte, error) {
	body, err := msgpack.Marshal(c.Body)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %s: %w", c.Type, err)
	}
	out := make([]byte, 0, len(body)+2)
	out = append(out, EntryVersion, byte(c.Type))
	return append(out, body...), nil
}

// Decode parses a log entry written by Encode into a typed command body.
func Decode(b []byte) (Command, error) {
	if len(b) < 2 {
		return Command{}, fmt.Errorf("%w: entry of %d bytes", ErrUndecodable, len(b))
	}
	if b[0] != EntryVersion {
		return Command{}, fmt.Errorf("%w: entry version %d, this node reads %d", ErrUndecodable, b[0], EntryVersion)
	}
	t := CommandType(b[1])
	var body any
	switch t {
	case CmdRegisterNode:
		body = &RegisterNode{}
	case CmdCreateSession:
		body = &CreateSession{}
	case CmdSetSessionStatus:
		body = &SetSessionStatus{}
	case CmdDeleteSession:
		body = &DeleteSession{}
	case CmdCreateRDD:
		body = &CreateRDD{}
	case CmdDropRDD:
		body = &DropRDD{}
	case CmdSetNodeStatus:
		body = &SetNodeStatus{}
	case CmdRemoveNode:
		body = &RemoveNode{}
	case CmdWrite:
		body = &Write{}
	case CmdCheckpoint:
		body = &Checkpoint{}
	case CmdMoveRDD:
		body = &MoveRDD{}
	default:
		return Command{}, fmt.Errorf("%w: command type %s", ErrUndecodable, t)
	}
	if err := msgpack.Unmarshal(b[2:], body); err != nil {
		return Command{}, fmt.Errorf("%w: %s body: %v", ErrUndecodable, t, err)
	}
	return Command{Type: t, Body: body}, nil
}
