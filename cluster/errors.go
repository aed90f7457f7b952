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
)
