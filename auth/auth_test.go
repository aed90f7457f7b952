package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func init() { bcryptCost = bcrypt.MinCost }

func writeUsers(t *testing.T, path string, f *File) {
	t.Helper()
	if err := WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
}

// oneUser is a users file with one user (File.AddUser's arguments).
func oneUser(t *testing.T, name string, roles []string, token, password string) *File {
	t.Helper()
	var f File
	if err := f.AddUser(name, roles, token, password); err != nil {
		t.Fatal(err)
	}
	return &f
}

// newAuth writes f to a fresh users file and loads it: the Authenticator
// and the file's path.
func newAuth(t *testing.T, f *File) (*Authenticator, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.json")
	writeUsers(t, path, f)
	a, err := New(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a, path
}

func TestTokenAndBasic(t *testing.T) {
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	a, path := newAuth(t, oneUser(t, "alice", []string{"read:states*", "code"}, tok, "s3cret"))
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode: %v %v", st.Mode(), err)
	}
	raw, _ := os.ReadFile(path)
	for _, secret := range []string{tok, "s3cret"} {
		if strings.Contains(string(raw), secret) || len(raw) == 0 {
			t.Fatal("users file holds a secret in clear")
		}
	}
	if p, ok := a.Token(tok); !ok || p.Name != "alice" {
		t.Fatalf("token: %v %v", p, ok)
	}
	if _, ok := a.Token(tok + "x"); ok {
		t.Fatal("a wrong token authenticates")
	}
	if _, ok := a.Token(""); ok {
		t.Fatal("an empty token authenticates")
	}
	for i := 0; i < 2; i++ { // the second time from the cache
		if p, ok := a.Basic("alice", "s3cret"); !ok || p.Name != "alice" {
			t.Fatalf("basic %d: %v %v", i, p, ok)
		}
	}
	if _, ok := a.Basic("alice", "wrong"); ok {
		t.Fatal("a wrong password authenticates")
	}
	if _, ok := a.Basic("bob", "s3cret"); ok {
		t.Fatal("an unknown user authenticates")
	}
}

func TestReloadSwapsAndKeepsOldOnBadFile(t *testing.T) {
	f := oneUser(t, "alice", []string{"admin"}, "", "pw-one")
	a, path := newAuth(t, f)
	if _, ok := a.Basic("alice", "pw-one"); !ok {
		t.Fatal("cannot authenticate")
	}
	// A new password replaces the old one: the cached pair must go too.
	f.Users[0].Passwords = nil
	if err := f.AddUser("alice", nil, "", "pw-two"); err != nil {
		t.Fatal(err)
	}
	writeUsers(t, path, f)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Basic("alice", "pw-one"); ok {
		t.Fatal("the old password still works after reload (stale cache)")
	}
	if _, ok := a.Basic("alice", "pw-two"); !ok {
		t.Fatal("the new password does not work after reload")
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil {
		t.Fatal("a bad file reloads")
	}
	if _, ok := a.Basic("alice", "pw-two"); !ok {
		t.Fatal("a bad file on reload dropped the loaded users")
	}
}

func TestCacheIsBounded(t *testing.T) {
	a, _ := newAuth(t, oneUser(t, "alice", []string{"code"}, "", "pw"))
	tb := a.table.Load()
	for i := 0; i < CacheSize+10; i++ {
		tb.verified[[32]byte{byte(i), byte(i >> 8), 1}] = tb.byName["alice"]
	}
	if _, ok := a.Basic("alice", "pw"); !ok {
		t.Fatal("cannot authenticate")
	}
	if n := len(tb.verified); n > CacheSize+10 {
		t.Fatalf("cache grew to %d", n)
	}
}

func TestRoles(t *testing.T) {
	f := func(roles []string, perm Perm, rdd string, want bool) {
		t.Helper()
		p := &Principal{Name: "p"}
		for _, r := range roles {
			role, err := ParseRole(r)
			if err != nil {
				t.Fatal(err)
			}
			p.Roles = append(p.Roles, role)
		}
		if got := p.Can(perm, rdd); got != want {
			t.Errorf("%v can %v on %q: %v, want %v", roles, perm, rdd, got, want)
		}
	}
	f([]string{"admin"}, PermWrite, "x", true)
	f([]string{"admin"}, PermMetrics, "", true)
	f([]string{"read:states*"}, PermRead, "states", true)
	f([]string{"read:states*"}, PermRead, "statesX", true)
	f([]string{"read:states*"}, PermRead, "other", false)
	f([]string{"read:states*"}, PermWrite, "states", false)
	f([]string{"read:*"}, PermCode, "", false)
	f([]string{"write:a?"}, PermWrite, "ab", true)
	f([]string{"write:a?"}, PermWrite, "abc", false)
	f([]string{"create:t-*"}, PermCreate, "t-1", true)
	f([]string{"code"}, PermCode, "", true)
	f([]string{"code"}, PermAdmin, "", false)
	f([]string{"metrics"}, PermMetrics, "", true)
	f(nil, PermRead, "x", false)
	var nobody *Principal
	if nobody.Can(PermRead, "x") {
		t.Error("a nil principal can read")
	}
	for _, bad := range []string{"", "root", "read", "read:", "read:[", "write:[a-"} {
		if _, err := ParseRole(bad); err == nil {
			t.Errorf("role %q parses", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	f := func(file File, ok bool) {
		t.Helper()
		if err := file.Validate(); (err == nil) != ok {
			t.Errorf("%+v: %v", file, err)
		}
	}
	f(File{Users: []User{{Name: "a", Roles: []string{"code"}}}}, true)
	f(File{Users: []User{{Name: "a"}, {Name: "a"}}}, false)
	f(File{Users: []User{{Name: "a:b"}}}, false)
	f(File{Users: []User{{Name: ""}}}, false)
	f(File{Users: []User{{Name: "a", Roles: []string{"root"}}}}, false)
	f(File{Users: []User{{Name: "a", Tokens: []string{"abc"}}}}, false)
	f(File{Users: []User{{Name: "a", Passwords: []string{"plain"}}}}, false)
	h := HashToken("0123456789abcdefghijklmn")
	f(File{Users: []User{{Name: "a", Tokens: []string{h}}, {Name: "b", Tokens: []string{h}}}}, false)
	var short File
	if err := short.AddUser("a", nil, "short", ""); err == nil {
		t.Error("a short token is accepted")
	}
}

func TestNewTokenIsRandom(t *testing.T) {
	a, _ := NewToken()
	b, _ := NewToken()
	if a == b || len(a) != 43 {
		t.Fatalf("tokens %q %q", a, b)
	}
}

// A session capability authenticates as its session with no role, is not
// found by name (it never travels between nodes), survives a reload of
// the users file, and stops working once revoked.
func TestSessionCapability(t *testing.T) {
	a, _ := newAuth(t, &File{Users: []User{{Name: "session-7", Roles: []string{"admin"}}}})
	tok, revoke, err := a.MintSession(7)
	if err != nil {
		t.Fatal(err)
	}
	other, revokeOther, err := a.MintSession(8)
	if err != nil {
		t.Fatal(err)
	}
	defer revokeOther()
	if tok == other {
		t.Fatal("two sessions got the same capability")
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	p, ok := a.Token(tok)
	if !ok || !p.Capability || p.Session != 7 {
		t.Fatalf("capability after reload: %+v %v", p, ok)
	}
	for _, perm := range []Perm{PermAdmin, PermCode, PermRead, PermWrite, PermCreate, PermMetrics} {
		if p.Can(perm, "anything") {
			t.Fatalf("a capability holds perm %d", perm)
		}
	}
	// The users file's "session-7" is a user, not the capability.
	if byName, ok := a.ByName("session-7"); !ok || byName.Capability || !byName.IsAdmin() {
		t.Fatalf("ByName(session-7) = %+v %v, want the file's user", byName, ok)
	}
	if n := a.LiveCapabilities(); n != 2 {
		t.Fatalf("%d live capabilities, want 2", n)
	}
	revoke()
	revoke() // idempotent
	if p, ok := a.Token(tok); ok {
		t.Fatalf("revoked capability still authenticates as %+v", p)
	}
	if p, ok := a.Token(other); !ok || !p.Capability || p.Session != 8 {
		t.Fatalf("revoking one capability touched another: %+v %v", p, ok)
	}
	if _, _, err := a.MintSession(-1); err == nil {
		t.Fatal("MintSession(-1) succeeded")
	}
}

// The table of capabilities is bounded.
func TestSessionCapabilityBound(t *testing.T) {
	a, _ := newAuth(t, &File{})
	var revokes []func()
	for i := 0; i < MaxCapabilities; i++ {
		_, r, err := a.MintSession(int64(i))
		if err != nil {
			t.Fatalf("mint %d: %v", i, err)
		}
		revokes = append(revokes, r)
	}
	if _, _, err := a.MintSession(MaxCapabilities + 1); !errors.Is(err, ErrTooManyCapabilities) {
		t.Fatalf("mint past the bound = %v, want ErrTooManyCapabilities", err)
	}
	revokes[0]()
	if _, _, err := a.MintSession(MaxCapabilities + 1); err != nil {
		t.Fatalf("mint after a revoke: %v", err)
	}
}

// A users file its group or others may read is refused at start and on
// reload (which keeps the loaded users), naming the fix (issue 25).
func TestUsersFileMustBePrivate(t *testing.T) {
	a, path := newAuth(t, oneUser(t, "ana", []string{"admin"}, "tok-ana-0123456789-abcdef", ""))
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := New(path, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o at start: %v, want a refusal naming chmod 600", mode, err)
		}
		if err := a.Reload(); err == nil {
			t.Errorf("mode %04o on reload: accepted", mode)
		}
		if _, ok := a.Token("tok-ana-0123456789-abcdef"); !ok {
			t.Errorf("mode %04o: the refused reload dropped the loaded users", mode)
		}
	}
}
