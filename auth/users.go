// Package auth holds srdd's principals: who may call the API (bearer
// tokens, HTTP Basic passwords, client certificates) and what each may do
// (roles). The users file is the one source; it is loaded at start and
// swapped atomically by Reload (SIGHUP). See docs/ARCHITECTURE.md
// invariant 9.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// ErrInvalid marks a users file or user entry that cannot be used.
var ErrInvalid = errors.New("invalid users file")

// File is the users file as stored (JSON, mode 0600). Secrets are stored
// only as hashes: tokens as hex SHA-256, passwords as bcrypt.
type File struct {
	Users []User `json:"users"`
}

// User is one principal in the users file.
type User struct {
	Name      string   `json:"name"`
	Roles     []string `json:"roles"`
	Tokens    []string `json:"tokens,omitempty"`    // hex SHA-256 of each token
	Passwords []string `json:"passwords,omitempty"` // bcrypt hashes
}

// ReadFile reads and validates a users file.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read users file: %w", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("cannot parse users file %s: %w: %v", path, ErrInvalid, err)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("cannot use users file %s: %w", path, err)
	}
	return &f, nil
}

// Validate checks names, roles and hashes.
func (f *File) Validate() error {
	seen := map[string]bool{}
	tokens := map[string]string{}
	for _, u := range f.Users {
		if err := validName(u.Name); err != nil {
			return err
		}
		if seen[u.Name] {
			return fmt.Errorf("%w: user %q appears twice", ErrInvalid, u.Name)
		}
		seen[u.Name] = true
		for _, r := range u.Roles {
			if _, err := ParseRole(r); err != nil {
				return fmt.Errorf("user %q: %w", u.Name, err)
			}
		}
		for _, t := range u.Tokens {
			if b, err := hex.DecodeString(t); err != nil || len(b) != sha256.Size {
				return fmt.Errorf("%w: user %q: a token hash is not hex SHA-256", ErrInvalid, u.Name)
			}
			if other, ok := tokens[t]; ok {
				return fmt.Errorf("%w: users %q and %q share a token", ErrInvalid, other, u.Name)
			}
			tokens[t] = u.Name
		}
		for _, p := range u.Passwords {
			if _, err := bcrypt.Cost([]byte(p)); err != nil {
				return fmt.Errorf("%w: user %q: a password hash is not bcrypt", ErrInvalid, u.Name)
			}
		}
	}
	return nil
}

func validName(n string) error {
	if n == "" || len(n) > 128 || strings.ContainsAny(n, ":\x00\r\n") || strings.TrimSpace(n) != n {
		return fmt.Errorf("%w: user name %q must be 1 to 128 characters without ':', line breaks or surrounding spaces", ErrInvalid, n)
	}
	return nil
}

// WriteFile writes f atomically (temporary file, then rename) with mode
// 0600.
func WriteFile(path string, f *File) error {
	if err := f.Validate(); err != nil {
		return err
	}
	sort.Slice(f.Users, func(i, j int) bool { return f.Users[i].Name < f.Users[j].Name })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode users file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".users-*")
	if err != nil {
		return fmt.Errorf("cannot write users file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write users file: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write users file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write users file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write users file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot write users file: %w", err)
	}
	return nil
}

// NewToken returns a fresh high-entropy token: 32 random bytes, base64url.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cannot generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken returns the stored form of a token: hex SHA-256.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// bcryptCost is bcrypt's default; tests lower it.
var bcryptCost = bcrypt.DefaultCost

// HashPassword returns the stored form of a password: bcrypt.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("cannot hash password: %w", err)
	}
	return string(h), nil
}

// MinTokenLen is the shortest token accepted by AddUser: a token is a
// bearer secret and must not be guessable.
const MinTokenLen = 20

// AddUser adds name with roles, or adds the secrets and roles to an
// existing user. token and password may be empty.
func (f *File) AddUser(name string, roles []string, token, password string) error {
	if err := validName(name); err != nil {
		return err
	}
	for _, r := range roles {
		if _, err := ParseRole(r); err != nil {
			return err
		}
	}
	if token != "" && len(token) < MinTokenLen {
		return fmt.Errorf("%w: a token must be at least %d characters (let srdd generate one)", ErrInvalid, MinTokenLen)
	}
	i := f.index(name)
	if i < 0 {
		f.Users = append(f.Users, User{Name: name})
		i = len(f.Users) - 1
	}
	u := &f.Users[i]
	for _, r := range roles {
		if !contains(u.Roles, r) {
			u.Roles = append(u.Roles, r)
		}
	}
	if token != "" {
		u.Tokens = append(u.Tokens, HashToken(token))
	}
	if password != "" {
		h, err := HashPassword(password)
		if err != nil {
			return err
		}
		u.Passwords = append(u.Passwords, h)
	}
	return nil
}

// RemoveUser removes name; it reports whether name was there.
func (f *File) RemoveUser(name string) bool {
	i := f.index(name)
	if i < 0 {
		return false
	}
	f.Users = append(f.Users[:i], f.Users[i+1:]...)
	return true
}

func (f *File) index(name string) int {
	for i, u := range f.Users {
		if u.Name == name {
			return i
		}
	}
	return -1
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
