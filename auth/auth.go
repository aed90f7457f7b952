package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/bcrypt"
)

// CacheSize bounds the verified-password cache.
const CacheSize = 4096

// Authenticator checks credentials against the users file. It is safe for
// concurrent use; Reload swaps the whole table at once.
type Authenticator struct {
	path   string
	logger hclog.Logger
	table  atomic.Pointer[table]

	// caps are the session capabilities this node minted (capability.go;
	// not in the users file, so they survive reloads).
	caps capabilities
}

// table is one loaded users file; it is never modified after load except
// for its verified cache.
type table struct {
	byName  map[string]*Principal
	byToken map[[sha256.Size]byte]*Principal
	bcrypts map[string][]string // name -> bcrypt hashes

	mu       sync.Mutex
	verified map[[sha256.Size]byte]*Principal // sha256(name:password) -> principal
}

// New loads the users file at path.
func New(path string, logger hclog.Logger) (*Authenticator, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	a := &Authenticator{path: path, logger: logger}
	t, err := load(path)
	if err != nil {
		return nil, err
	}
	a.table.Store(t)
	return a, nil
}

// Reload reads the users file again and swaps it in. A file that cannot
// be read or is invalid leaves the loaded one in place; the error says
// why. The verified-password cache starts empty.
func (a *Authenticator) Reload() error {
	t, err := load(a.path)
	if err != nil {
		a.logger.Error("cannot reload users file; keeping the loaded one", "file", a.path, "error", err)
		return err
	}
	a.table.Store(t)
	a.logger.Info("users file reloaded", "file", a.path, "users", len(t.byName))
	return nil
}

// load reads the users file for serving. One that its group or others
// may read or write is refused (hashes of tokens and passwords are
// secrets worth guessing at; a writable one is anyone's admin).
func load(path string) (*table, error) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: users file %s is open to its group or others (mode %04o): chmod 600 %s",
			ErrInvalid, path, fi.Mode().Perm(), path)
	}
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	t := &table{byName: map[string]*Principal{}, byToken: map[[sha256.Size]byte]*Principal{},
		bcrypts: map[string][]string{}, verified: map[[sha256.Size]byte]*Principal{}}
	for _, u := range f.Users {
		p := &Principal{Name: u.Name}
		for _, r := range u.Roles {
			role, err := ParseRole(r)
			if err != nil {
				return nil, fmt.Errorf("cannot load users file: %w", err)
			}
			p.Roles = append(p.Roles, role)
		}
		t.byName[u.Name] = p
		for _, h := range u.Tokens {
			var k [sha256.Size]byte
			if _, err := hex.Decode(k[:], []byte(h)); err != nil {
				return nil, fmt.Errorf("cannot load users file: %w", err)
			}
			t.byToken[k] = p
		}
		t.bcrypts[u.Name] = u.Passwords
	}
	return t, nil
}

// Token returns the principal holding token. The table is keyed by the
// token's SHA-256, so a lookup's timing depends on the hash of what the
// caller sent, which tells the caller nothing about any stored token (the
// usual stand-in for a constant-time compare over many tokens).
func (a *Authenticator) Token(token string) (*Principal, bool) {
	if token == "" {
		return nil, false
	}
	h := sha256.Sum256([]byte(token))
	t := a.table.Load()
	if p, ok := t.byToken[h]; ok {
		return p, true
	}
	return a.caps.lookup(h)
}

// Basic returns the principal whose name and password these are. A pair
// verified once is cached (bounded, emptied by Reload), so the hot path
// does not run bcrypt.
func (a *Authenticator) Basic(name, password string) (*Principal, bool) {
	t := a.table.Load()
	p, ok := t.byName[name]
	if !ok || password == "" {
		return nil, false
	}
	key := sha256.Sum256([]byte(name + ":" + password))
	t.mu.Lock()
	cached := t.verified[key]
	t.mu.Unlock()
	if cached != nil {
		return cached, true
	}
	for _, h := range t.bcrypts[name] {
		if bcrypt.CompareHashAndPassword([]byte(h), []byte(password)) == nil {
			t.mu.Lock()
			if len(t.verified) >= CacheSize {
				for k := range t.verified { // evict an arbitrary entry
					delete(t.verified, k)
					break
				}
			}
			t.verified[key] = p
			t.mu.Unlock()
			return p, true
		}
	}
	return nil, false
}

// ByName returns the user named name in the users file: a verified
// client certificate's CN, or the caller a peer vouches for. A session
// capability is never found by name: it is good only on the node that
// minted it.
func (a *Authenticator) ByName(name string) (*Principal, bool) {
	p, ok := a.table.Load().byName[name]
	return p, ok
}
