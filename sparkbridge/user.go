package sparkbridge

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// User is the unprivileged account interpreters run as
// (--interpreter-user), so session code cannot read what only the node
// may: the Raft dir, the users file, keys and certificates
// (docs/ARCHITECTURE.md, "Sessions hold no secret").
type User struct {
	Name     string
	UID, GID uint32
	// pooled: a uid of --interpreter-uids, one per session.
	pooled bool
}

// Env is what a process running as u needs besides its allowlisted
// environment: for a uid of --interpreter-uids, its own name, and the
// JVM's home and temp dir (and Spark's local dirs) in home, the process's
// own 0700 dir, so nothing of it lands in a shared /tmp or home.
func (u *User) Env(home string) []string {
	if u == nil || !u.pooled || home == "" {
		return nil
	}
	opts := strings.TrimSpace(os.Getenv("JAVA_TOOL_OPTIONS") + " -Duser.home=" + home + " -Djava.io.tmpdir=" + home)
	return []string{"USER=" + u.Name, "LOGNAME=" + u.Name, "SPARK_USER=" + u.Name,
		"TMPDIR=" + home, "SPARK_LOCAL_DIRS=" + home, "JAVA_TOOL_OPTIONS=" + opts}
}

// LookupUser finds the account name (or numeric uid). Running
// interpreters as another user needs the node to run as root.
func LookupUser(name string) (*User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, numErr := strconv.Atoi(name); numErr != nil {
			return nil, fmt.Errorf("cannot find interpreter user %q: %w", name, err)
		}
		if u, err = user.LookupId(name); err != nil {
			return nil, fmt.Errorf("cannot find interpreter user %q: %w", name, err)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("interpreter user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("interpreter user %q: gid %q: %w", name, u.Gid, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("interpreter user %q is root: it must be an unprivileged account", name)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("interpreter user %q: the node must run as root to start processes as another user", name)
	}
	return &User{Name: u.Username, UID: uint32(uid), GID: uint32(gid)}, nil
}

// credential is the process credential for u (no supplementary groups:
// the node's are not handed down).
func (u *User) credential() *syscall.Credential {
	if u == nil {
		return nil
	}
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}
}

// Credential is the process credential for u, for other processes that
// run user code (a Livy batch's driver); nil for a nil u.
func (u *User) Credential() *syscall.Credential { return u.credential() }

// Own makes path owned by u (a no-op for a nil u).
func (u *User) Own(path string) error {
	if u == nil {
		return nil
	}
	if err := os.Lchown(path, int(u.UID), int(u.GID)); err != nil {
		return fmt.Errorf("cannot give %s to interpreter user %s: %w", path, u.Name, err)
	}
	return nil
}

// ShareGroup makes path group-owned by u's group with mode, so u may
// traverse or read it without owning it (a nil u leaves it alone).
func (u *User) ShareGroup(path string, mode os.FileMode) error {
	if u == nil {
		return nil
	}
	if err := os.Lchown(path, 0, int(u.GID)); err != nil {
		return fmt.Errorf("cannot share %s with interpreter user %s: %w", path, u.Name, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("cannot share %s with interpreter user %s: %w", path, u.Name, err)
	}
	return nil
}
