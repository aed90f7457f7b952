// Package fileroot confines the files clients name (bulk load and save
// paths, session jars, pyFiles, files and archives) to the directories an
// operator allows, as Livy's livy.file.local-dir-whitelist does.
//
// A path is made canonical before it is checked: made absolute, cleaned,
// and the deepest ancestor that exists has its symlinks resolved, so ".."
// and a symlink inside a root that points outside both land outside.
// Hadoop glob characters are refused in local paths, because a pattern is
// expanded by Spark after the check and could match such a symlink.
// This is the "file paths stay inside the configured roots" part of
// invariant 9 (docs/ARCHITECTURE.md).
package fileroot

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Sentinel errors; httpapi maps them to status codes.
var (
	// ErrForbidden: a local path outside every root, or one that would
	// touch a protected directory (403 forbidden_path).
	ErrForbidden = errors.New("path is outside the file roots")
	// ErrRemote: a non-local URI while remote URIs are off (400).
	ErrRemote = errors.New("remote URIs are not allowed")
)

// Roots is an immutable set of canonical directories. The zero value has
// no roots and refuses every path.
type Roots struct {
	dirs        []string
	protected   []string
	allowRemote bool
}

// New returns Roots over dirs (each must exist), refusing remote URIs
// unless allowRemote. A path that is, contains or lies in a protected
// directory (the data dir, the checkpoint dir) is refused even inside a
// root, unless it lies in a root that is itself strictly inside that
// directory (the default root, DATA-DIR/files).
func New(dirs []string, allowRemote bool, protected ...string) (*Roots, error) {
	r := &Roots{allowRemote: allowRemote}
	for _, p := range protected {
		c, err := Canonical(p)
		if err != nil {
			return nil, fmt.Errorf("cannot resolve %s: %w", p, err)
		}
		r.protected = append(r.protected, c)
	}
	for _, d := range dirs {
		c, err := Canonical(d)
		if err != nil {
			return nil, fmt.Errorf("cannot resolve file root %s: %w", d, err)
		}
		fi, err := os.Stat(c)
		if err != nil {
			return nil, fmt.Errorf("cannot use file root %s: %w", d, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("cannot use file root %s: not a directory", d)
		}
		r.dirs = append(r.dirs, c)
	}
	return r, nil
}

// Canonical returns p absolute and clean, with the symlinks of its
// deepest existing ancestor resolved.
func Canonical(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	abs = filepath.Clean(abs)
	rest := ""
	for cur := abs; ; {
		real, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !os.IsNotExist(err) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether p is dir or inside it (both canonical).
func within(p, dir string) bool {
	if p == dir {
		return true
	}
	return strings.HasPrefix(p, strings.TrimSuffix(dir, string(filepath.Separator))+string(filepath.Separator))
}

// Dirs returns the canonical roots, first the default for relative paths.
func (r *Roots) Dirs() []string { return append([]string(nil), r.dirs...) }

// Local checks a local path (relative paths are taken from the first
// root) and returns it canonical.
func (r *Roots) Local(p string) (string, error) {
	if strings.ContainsAny(p, "*?[]{}\\,") {
		// Spark reads "a,b" as two paths, and expands globs after this check
		return "", fmt.Errorf("%w: %q: commas and glob patterns are not allowed in local paths", ErrForbidden, p)
	}
	if !filepath.IsAbs(p) {
		if len(r.dirs) == 0 {
			return "", fmt.Errorf("%w: %q: no file roots are configured", ErrForbidden, p)
		}
		p = filepath.Join(r.dirs[0], p)
	}
	c, err := Canonical(p)
	if err != nil {
		return "", fmt.Errorf("%w: %q cannot be resolved", ErrForbidden, p)
	}
	root := ""
	for _, d := range r.dirs {
		if within(c, d) {
			root = d
			break
		}
	}
	if root == "" {
		return "", fmt.Errorf("%w: %q is outside the file roots (--file-root)", ErrForbidden, p)
	}
	for _, pr := range r.protected {
		if within(pr, c) || (within(c, pr) && (root == pr || !within(root, pr))) {
			return "", fmt.Errorf("%w: %q is reserved for srdd's own data", ErrForbidden, p)
		}
	}
	return c, nil
}

// Replaceable checks a path that may be deleted and rewritten (save with
// overwrite): inside a root, and never a root itself.
func (r *Roots) Replaceable(p string) (string, error) {
	c, err := r.Local(p)
	if err != nil {
		return "", err
	}
	for _, d := range r.dirs {
		if c == d {
			return "", fmt.Errorf("%w: %q is a file root and cannot be replaced", ErrForbidden, p)
		}
	}
	return c, nil
}

// URI checks a path or URI. Local ones (a path, file:, local:) must be in
// a root and come back canonical, in the form they came in; others pass
// unchanged only when remote URIs are allowed.
func (r *Roots) URI(raw string) (string, error) {
	scheme, rest, local := Split(raw)
	if !local {
		if !r.allowRemote {
			return "", fmt.Errorf("%w: %q (scheme %s:); the node allows local paths only (--allow-remote-uris)", ErrRemote, raw, scheme)
		}
		return raw, nil
	}
	c, err := r.Local(rest)
	if err != nil {
		return "", err
	}
	if scheme == "" {
		return c, nil
	}
	return scheme + ":" + c, nil
}

// Split parses raw into its scheme and, for a local URI (a path, file:,
// local:), its path. A string with no scheme (nothing before a ':' that
// comes ahead of any '/') is a path, taken as it is; an unparsable URI or
// a Windows-style path counts as remote.
func Split(raw string) (scheme, path string, local bool) {
	if i := strings.IndexAny(raw, ":/"); i < 0 || raw[i] == '/' {
		return "", raw, true
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw[:strings.IndexByte(raw, ':')], "", false
	}
	switch s := strings.ToLower(u.Scheme); s {
	case "":
		return "", raw, true
	case "file", "local":
		if u.Host != "" && u.Host != "localhost" {
			return s, "", false
		}
		if u.Opaque != "" {
			return s, u.Opaque, true
		}
		return s, u.Path, true
	default:
		return s, "", false
	}
}
