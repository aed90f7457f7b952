package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
)

// MaxCapabilities bounds the live session capabilities of one node. A
// capability lives as long as its session's interpreter, and sessions per
// node are bounded far below this (--max-sessions).
const MaxCapabilities = 4096

// ErrTooManyCapabilities means the capability table is full.
var ErrTooManyCapabilities = errors.New("too many live session capabilities")

// capabilities are the tokens this node mints for its own sessions
// (docs/ARCHITECTURE.md, "Sessions hold no secret"). Each one names one
// session; it is kept only in this node's memory, by SHA-256, and never
// written anywhere, so it is good on this node only and dies with the
// session (or the process).
type capabilities struct {
	mu     sync.RWMutex
	byHash map[[sha256.Size]byte]*Principal
}

// MintSession returns a fresh capability for session id on this node,
// and the function that revokes it (idempotent). The principal it
// authenticates as holds no role: the HTTP layer lets it read and write
// the RDDs that session owns and nothing else.
func (a *Authenticator) MintSession(id int64) (token string, revoke func(), err error) {
	if id < 0 {
		return "", nil, fmt.Errorf("cannot mint a capability for session %d", id)
	}
	token, err = NewToken()
	if err != nil {
		return "", nil, err
	}
	h := sha256.Sum256([]byte(token))
	c := &a.caps
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byHash) >= MaxCapabilities {
		return "", nil, fmt.Errorf("%w (%d)", ErrTooManyCapabilities, MaxCapabilities)
	}
	if c.byHash == nil {
		c.byHash = map[[sha256.Size]byte]*Principal{}
	}
	c.byHash[h] = &Principal{Name: fmt.Sprintf("session-%d", id), Capability: true, Session: id}
	var once sync.Once
	return token, func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.byHash, h)
			c.mu.Unlock()
		})
	}, nil
}

// LiveCapabilities is the number of capabilities not yet revoked.
func (a *Authenticator) LiveCapabilities() int {
	a.caps.mu.RLock()
	defer a.caps.mu.RUnlock()
	return len(a.caps.byHash)
}

func (c *capabilities) lookup(h [sha256.Size]byte) (*Principal, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p, ok := c.byHash[h]
	return p, ok
}
