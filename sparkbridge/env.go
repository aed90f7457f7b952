package sparkbridge

import (
	"os"
	"strings"
)

// The interpreter's environment is built from an allowlist, never from
// the node's whole environment: the node may hold secrets there (a
// cluster key, a client token), and session code can read everything its
// process was given (docs/ARCHITECTURE.md invariant 9, "Sessions hold no
// secret").
var (
	// envAllowed are variables copied from the node when set.
	envAllowed = map[string]bool{
		"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true,
		"LANG": true, "LANGUAGE": true, "TZ": true, "TMPDIR": true,
		"JAVA_HOME": true, "JAVA_TOOL_OPTIONS": true,
		"YARN_CONF_DIR": true, "KUBECONFIG": true,
		"VIRTUAL_ENV": true, "PYTHONHOME": true,
	}
	// envAllowedPrefixes are families copied from the node: locale,
	// Spark's own settings and Hadoop's (spark-submit reads them).
	envAllowedPrefixes = []string{"LC_", "SPARK_", "PYSPARK_", "HADOOP_"}
	// secretWords in a name keep it out of the families above.
	secretWords = []string{"SECRET", "PASSWORD", "PASSWD", "TOKEN", "CREDENTIAL", "CREDSTORE", "KEY"}
)

// envAllowedName reports whether the node's variable name may pass to an
// interpreter.
func envAllowedName(name string) bool {
	if envAllowed[name] {
		return true
	}
	// A family's member that names a secret (SPARK_AUTHENTICATE_SECRET,
	// HADOOP_CREDSTORE_PASSWORD...) passes only by name, on purpose
	// (--interpreter-env).
	up := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(up, w) {
			return false
		}
	}
	for _, p := range envAllowedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// childEnv returns the allowed part of the node's environment followed
// by extra (which wins: later entries override earlier ones in exec).
// home, if set, replaces HOME.
func childEnv(home string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || !envAllowedName(name) {
			continue
		}
		if home != "" && name == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	if home != "" {
		env = append(env, "HOME="+home)
	}
	return append(env, extra...)
}

// PassEnv returns the node's values of the named variables (those that
// are set), for Config.Env: an operator's explicit choice to hand them to
// session code (--interpreter-env).
func PassEnv(names []string) []string {
	var out []string
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok && n != "" && !strings.Contains(n, "=") {
			out = append(out, n+"="+v)
		}
	}
	return out
}

// ChildEnv is the environment for any process that runs user code on the
// node's behalf (a Livy batch's spark-submit): the allowlisted part of the
// node's environment, then extra (docs/ARCHITECTURE.md, "Sessions hold no
// secret").
func ChildEnv(extra ...string) []string { return childEnv("", extra...) }
