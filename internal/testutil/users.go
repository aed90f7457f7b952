package testutil

import (
	"testing"

	"github.com/srdd/srdd/auth"
)

// WriteUsers writes a users file (as `srdd auth add` does) at path with a
// token user for each entry of roles (name: roles); extra, if not nil,
// adds to the file before it is written. It returns each user's token.
func WriteUsers(t testing.TB, path string, roles map[string][]string, extra func(*auth.File)) map[string]string {
	t.Helper()
	var f auth.File
	tokens := map[string]string{}
	for name, r := range roles {
		tok, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = tok
		if err := f.AddUser(name, r, tok, ""); err != nil {
			t.Fatal(err)
		}
	}
	if extra != nil {
		extra(&f)
	}
	if err := auth.WriteFile(path, &f); err != nil {
		t.Fatal(err)
	}
	return tokens
}
