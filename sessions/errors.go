package sessions

import "errors"

// Sentinel errors, mapped to HTTP status codes by httpapi.
var (
	ErrNotFound    = errors.New("session not found")
	ErrNotReady    = errors.New("session is not ready") // still starting: 503 + Retry-After
	ErrDead        = errors.New("session is dead")      // interpreter gone
	ErrNotLocal    = errors.New("session lives on another node")
	ErrQueueFull   = errors.New("statement queue is full")
	ErrNoStatement = errors.New("statement not found")
	ErrClosed      = errors.New("session manager closed")
	ErrInvalid     = errors.New("invalid session request")
)
