package cluster

import "errors"

// Sentinel errors. Callers match them with errors.Is; the HTTP layer maps
// them to status codes. Wrapped errors carry the details.
var (
	ErrNotLeader       = errors.New("not the raft leader")
	ErrSessionNotFound = errors.New("session not found")
	ErrSessionExists   = errors.New("session name already in use")
	ErrSessionInactive = errors.New("session is not active")
	ErrRDDNotFound     = errors.New("shared rdd not found")
	ErrRDDExists       = errors.New("shared rdd already exists")
	ErrClosed          = errors.New("registry closed")
	ErrNodeNotFound    = errors.New("node not found")
	ErrNodeRemoved     = errors.New("node was removed from the cluster")
	// ErrAddressInUse refuses a join that would push out another member
	// (docs/ARCHITECTURE.md, "Peer trust").
	ErrAddressInUse = errors.New("another member has that raft address")
	ErrNoLeader     = errors.New("no raft leader")
	// ErrOutcomeUnknown: the write reached the leader (or was appended)
	// but its result was lost; it may or may not have been applied, so it
	// is never retried automatically.
	ErrOutcomeUnknown = errors.New("outcome unknown: the write may or may not have been applied")
	// ErrNotOwner: a durable write named an owner session the RDD no
	// longer has (it moved); route to the new owner and try again.
	ErrNotOwner = errors.New("the shared rdd has moved to another session")
	// ErrNotDurable: a log write or checkpoint for a memory-mode RDD.
	ErrNotDurable = errors.New("the shared rdd is not durable")
	// ErrIdempotencyMismatch: an Idempotency-Key reused for another request.
	ErrIdempotencyMismatch = errors.New("idempotency key already used for a different request")
	// ErrStaleCheckpoint: a checkpoint older than the one recorded.
	ErrStaleCheckpoint = errors.New("a newer checkpoint is already recorded")
	// ErrCopyExists: a copy for an RDD that has the copies it wants, or
	// one on that node already (copies.go).
	ErrCopyExists = errors.New("the shared rdd has that copy already")
	// ErrInvalidCommand: a command whose type is not registered, whose
	// body has the wrong type, or whose body fails its validation. It is
	// refused when proposed and, should one reach the log, when applied.
	ErrInvalidCommand = errors.New("invalid registry command")
	// ErrHalted: this node met a committed entry it cannot decode and
	// applies nothing until it runs a binary that knows it (fsm.Apply).
	ErrHalted = errors.New("registry halted at an entry this binary cannot decode")
	// ErrNotAdmitted: a join for a node ID no admin admitted (Admit).
	ErrNotAdmitted = errors.New("node not admitted")
	// ErrMemberExists: an admission for a node that is a member already.
	ErrMemberExists = errors.New("node is already a member")
	// ErrAdmitLimit: too many admissions waiting for their node.
	ErrAdmitLimit = errors.New("too many admitted nodes have not joined yet")
	// ErrPlaintextCluster: a join without peer TLS on a node that was not
	// started with --insecure.
	ErrPlaintextCluster = errors.New("no plaintext cluster without --insecure")
	// Batches (batches.go).
	ErrBatchNotFound = errors.New("batch not found")
	ErrBatchExists   = errors.New("batch name already in use")
	ErrBatchFinished = errors.New("batch has finished")
	ErrBatchLimit    = errors.New("too many live batches in the registry")
	// ErrInsufficientStorage: the data dir (or the checkpoint dir) is full;
	// the write was refused before it was appended (diskspace.go).
	ErrInsufficientStorage = errors.New("insufficient storage")
)

// errorKinds names each sentinel on the wire, so an error the leader's FSM
// returns to a forwarded write is the same sentinel on the follower.
var errorKinds = map[string]error{
	"not_leader": ErrNotLeader, "session_not_found": ErrSessionNotFound,
	"session_exists": ErrSessionExists, "session_inactive": ErrSessionInactive,
	"rdd_not_found": ErrRDDNotFound, "rdd_exists": ErrRDDExists, "closed": ErrClosed,
	"node_not_found": ErrNodeNotFound, "node_removed": ErrNodeRemoved, "address_in_use": ErrAddressInUse, "no_leader": ErrNoLeader,
	"outcome_unknown": ErrOutcomeUnknown, "not_owner": ErrNotOwner, "not_durable": ErrNotDurable,
	"idempotency_mismatch": ErrIdempotencyMismatch, "stale_checkpoint": ErrStaleCheckpoint,
	"invalid_command": ErrInvalidCommand, "halted": ErrHalted, "not_admitted": ErrNotAdmitted,
	"plaintext_cluster": ErrPlaintextCluster, "member_exists": ErrMemberExists, "admit_limit": ErrAdmitLimit,
	"batch_not_found": ErrBatchNotFound, "batch_exists": ErrBatchExists, "batch_finished": ErrBatchFinished,
	"batch_limit": ErrBatchLimit, "insufficient_storage": ErrInsufficientStorage, "copy_exists": ErrCopyExists,
}

// errorKind returns the wire name of err's sentinel, or "" for others.
func errorKind(err error) string {
	for k, s := range errorKinds {
		if errors.Is(err, s) {
			return k
		}
	}
	return ""
}
