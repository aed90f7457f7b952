package auth

import (
	"fmt"
	"path"
	"strings"
)

// Perm is a kind of permission a route needs.
type Perm int

// The permissions. Admin holds all of them.
const (
	PermAdmin   Perm = iota // cluster membership, proxyUser, any session
	PermCode                // create sessions, run statements and completion: code execution as the node user
	PermRead                // key reads, scans, counts, describe (per RDD)
	PermWrite               // writes, deletes, loads, saves, checkpoints, drops (per RDD)
	PermCreate              // create RDDs (per RDD name)
	PermMetrics             // scrape /metrics
)

// Role is one parsed role: a permission, and for per-RDD permissions a
// glob (path.Match syntax) over RDD names.
type Role struct {
	Perm Perm
	Glob string
}

// ParseRole parses admin, code, metrics, read:GLOB, write:GLOB or
// create:GLOB.
func ParseRole(s string) (Role, error) {
	switch s {
	case "admin":
		return Role{Perm: PermAdmin}, nil
	case "code":
		return Role{Perm: PermCode}, nil
	case "metrics":
		return Role{Perm: PermMetrics}, nil
	}
	kind, glob, ok := strings.Cut(s, ":")
	perms := map[string]Perm{"read": PermRead, "write": PermWrite, "create": PermCreate}
	p, known := perms[kind]
	if !ok || !known || glob == "" {
		return Role{}, fmt.Errorf("%w: role %q: want admin, code, metrics, read:GLOB, write:GLOB or create:GLOB", ErrInvalid, s)
	}
	if _, err := path.Match(glob, ""); err != nil {
		return Role{}, fmt.Errorf("%w: role %q: bad glob: %v", ErrInvalid, s, err)
	}
	return Role{Perm: p, Glob: glob}, nil
}

// Principal is an authenticated caller.
type Principal struct {
	Name  string
	Roles []Role
	// Capability marks a session capability (capability.go) for session
	// Session: it holds no role, and the HTTP layer allows it only the
	// reads and writes of that session's own RDDs.
	Capability bool
	Session    int64
}

// Can reports whether p holds perm; for per-RDD permissions rdd is the
// RDD's name, matched against each role's glob.
func (p *Principal) Can(perm Perm, rdd string) bool {
	if p == nil {
		return false
	}
	for _, r := range p.Roles {
		if r.Perm == PermAdmin {
			return true
		}
		if r.Perm != perm {
			continue
		}
		if r.Glob == "" {
			return true
		}
		if ok, _ := path.Match(r.Glob, rdd); ok {
			return true
		}
	}
	return false
}

// IsAdmin reports whether p holds the admin role.
func (p *Principal) IsAdmin() bool { return p.Can(PermAdmin, "") }
