package cluster

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The naming rules live here, in the registry, because the registry
// checks them when it applies an entry (docs/ARCHITECTURE.md invariant
// 10), and cluster imports neither kvstore nor sessions. Those packages
// call these functions: there is one copy of each rule.

// RDDNamePattern: a shared RDD is bound in its session under its own
// name, so a name must be a Python identifier: ASCII letter first, then
// letters, digits or '_', at most 64 characters. The whole name must
// match. Such a name is also a safe path element (its checkpoint dir).
const RDDNamePattern = `[A-Za-z][A-Za-z0-9_]{0,63}`

var rddNameRE = regexp.MustCompile(`^(?:` + RDDNamePattern + `)$`)

// reservedRDDNames are Python keywords and names the session namespace
// already binds; an RDD under one of them could not be reached from code.
var reservedRDDNames = []string{
	"False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
	"def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in",
	"is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
	"sc", "spark", "sqlContext", "shared_rdds",
}

var reservedRDD = func() map[string]bool {
	m := make(map[string]bool, len(reservedRDDNames))
	for _, n := range reservedRDDNames {
		m[n] = true
	}
	return m
}()

// ReservedRDDNames returns a copy of the names no shared RDD may take.
func ReservedRDDNames() []string { return append([]string(nil), reservedRDDNames...) }

// ValidRDDName checks a shared RDD name: RDDNamePattern, and not reserved.
func ValidRDDName(name string) error {
	if !rddNameRE.MatchString(name) {
		return fmt.Errorf("rdd name %q must be 1-64 characters: an ASCII letter, then letters, digits or '_'", name)
	}
	if reservedRDD[name] {
		return fmt.Errorf("rdd name %q is reserved (Python keyword or a name sessions already bind)", name)
	}
	return nil
}

var sessionNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// ValidSessionName checks a session name (a session may have none, ""
// is not checked here): 1-128 letters, digits, '_', '.', '-', starting
// with a letter or digit, and not a number (numbers address sessions by
// id).
func ValidSessionName(name string) error {
	if !sessionNameRE.MatchString(name) {
		return fmt.Errorf("session name %q must be 1-128 characters of letters, digits, '_', '.', '-', starting with a letter or digit", name)
	}
	if _, err := strconv.ParseInt(name, 10, 64); err == nil {
		return fmt.Errorf("session name %q must not be a number (numbers address sessions by id)", name)
	}
	return nil
}

// uriScheme matches the "scheme:" that starts a URI (hdfs:, s3a:, file:).
var uriScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// checkpointPath checks that path can be a checkpoint of the shared RDD
// rdd, as kvstore writes them: CHECKPOINT-URI/RDD/FILE, where
// CHECKPOINT-URI is an absolute directory or a URI with an absolute path
// (file:///d, hdfs://nn/d, s3a://bucket/d). The registry cannot know each
// node's CHECKPOINT-URI, so it checks what it can without one: no NUL, an
// absolute path, no ".." element (also not percent-encoded), and the
// RDD's own name as the element before the last, so a checkpoint always
// lies inside its RDD's own directory.
func checkpointPath(rdd, path string) error {
	if strings.IndexByte(path, 0) >= 0 {
		return fmt.Errorf("checkpoint path %q holds a NUL", path)
	}
	rest := path
	if m := uriScheme.FindString(rest); m != "" {
		rest = rest[len(m):]
		if strings.HasPrefix(rest, "//") { // an authority: host, bucket
			rest = rest[2:]
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				rest = rest[i:]
			} else {
				rest = ""
			}
		}
	}
	if !strings.HasPrefix(rest, "/") {
		return fmt.Errorf("checkpoint path %q is not absolute", path)
	}
	elems := strings.Split(rest[1:], "/")
	n := len(elems)
	for i, e := range elems {
		switch strings.ReplaceAll(strings.ToLower(e), "%2e", ".") {
		case "..":
			return fmt.Errorf("checkpoint path %q holds a '..' element", path)
		case ".", "":
			if i == n-1 { // the RDD's directory itself
				return fmt.Errorf("checkpoint path %q names a directory, not a file in it", path)
			}
		}
	}
	if n < 2 || elems[n-2] != rdd {
		return fmt.Errorf("checkpoint path %q is not a file in the directory of rdd %q", path, rdd)
	}
	return nil
}
