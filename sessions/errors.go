package sessions

import (
	"errors"
	"fmt"
)

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
	ErrTooLarge    = errors.New("statement too large") // 413
	// ErrLimit: a count limit was reached (--max-sessions, ...): 429.
	ErrLimit = errors.New("limit reached")
	// ErrConfNotAllowed: a Spark setting the policy denies (400 conf_not_allowed).
	ErrConfNotAllowed = fmt.Errorf("%w: setting not allowed", ErrInvalid)
	// ErrConfTooLarge: a size over the node's cap (400 conf_too_large).
	ErrConfTooLarge = fmt.Errorf("%w: setting over the node's cap", ErrInvalid)
)
