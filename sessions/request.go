package sessions

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/srdd/srdd/cluster"
)

// CreateRequest is Livy's POST /sessions body. Fields Spark can take are
// turned into Spark settings; proxyUser is stored and shown but not
// applied (srdd does not impersonate users).
type CreateRequest struct {
	Kind                     string            `json:"kind"`
	Name                     string            `json:"name"`
	Conf                     map[string]string `json:"conf"`
	ProxyUser                string            `json:"proxyUser"`
	HeartbeatTimeoutInSecond int               `json:"heartbeatTimeoutInSecond"`
	TTL                      string            `json:"ttl"`
	IdleTimeout              string            `json:"idleTimeout"`
	DriverMemory             string            `json:"driverMemory"`
	DriverCores              int               `json:"driverCores"`
	ExecutorMemory           string            `json:"executorMemory"`
	ExecutorCores            int               `json:"executorCores"`
	NumExecutors             int               `json:"numExecutors"`
	Jars                     []string          `json:"jars"`
	PyFiles                  []string          `json:"pyFiles"`
	Files                    []string          `json:"files"`
	Archives                 []string          `json:"archives"`
	Queue                    string            `json:"queue"`
	// Livy's session ACLs (srdd's extension of the request body): who
	// besides its principal may read the session, and who may run code in it
	// or delete it.
	ViewUsers   []string `json:"viewUsers"`
	ModifyUsers []string `json:"modifyUsers"`
	// Principal is the authenticated principal creating the session (set by
	// the HTTP layer, never from the body); "" is the anonymous one. It
	// counts against Config.MaxSessionsPerPrincipal.
	Principal string `json:"-"`
}

// Session kinds srdd runs. Every kind runs the same interpreter: PySpark,
// with a Scala REPL in the same driver JVM started on the first Scala
// statement; the kind picks the default statement kind.
var sessionKinds = map[string]bool{"pyspark": true, "sql": true, "shared": true, "spark": true}

// Statement kinds srdd runs ("python" is an alias of pyspark, "scala" of spark).
var statementKinds = map[string]string{"pyspark": "pyspark", "python": "pyspark", "sql": "sql", "spark": "spark", "scala": "spark"}

// noR is the answer to Livy's R kind.
const noR = "there is no R here: srdd runs pyspark, spark (Scala) and sql"

// defaultStatementKind is the statement kind a session of this kind runs
// when a statement names none (Livy's rule: the session's kind).
func defaultStatementKind(sessionKind string) string {
	switch sessionKind {
	case "sql", "spark":
		return sessionKind
	}
	return "pyspark"
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// sessionSpec is a validated CreateRequest.
type sessionSpec struct {
	name, kind, proxyUser string
	principal             string
	viewUsers, modUsers   []string
	conf                  map[string]string // requested Spark settings, sizing included
	inactivity            time.Duration     // ttl/idleTimeout; 0: none
	inactivityWhy         string
	heartbeat             time.Duration // heartbeatTimeoutInSecond; 0: none
}

func (r *CreateRequest) spec(p *Policy) (sessionSpec, error) {
	s := sessionSpec{name: r.Name, kind: r.Kind, proxyUser: r.ProxyUser, conf: map[string]string{},
		principal: r.Principal, viewUsers: r.ViewUsers, modUsers: r.ModifyUsers}
	for _, u := range append(append([]string{}, r.ViewUsers...), r.ModifyUsers...) {
		if u == "" || len(u) > 128 {
			return s, invalid("viewUsers and modifyUsers must be user names of 1 to 128 characters")
		}
	}
	if len(r.ViewUsers)+len(r.ModifyUsers) > 256 {
		return s, invalid("viewUsers and modifyUsers may name at most 256 users together")
	}
	if s.kind == "" {
		s.kind = "pyspark"
	}
	if s.kind == "scala" {
		s.kind = "spark" // Livy's alias
	}
	if s.kind == "sparkr" {
		return s, invalid("session kind %q is not supported: %s", s.kind, noR)
	}
	if !sessionKinds[s.kind] {
		return s, invalid("session kind %q is not supported; srdd runs pyspark, spark (Scala), sql and shared sessions", s.kind)
	}
	if s.name != "" {
		if err := cluster.ValidSessionName(s.name); err != nil {
			return s, invalid("%v", err)
		}
	}
	// Named fields become their settings and override conf, as in Livy;
	// every setting then goes through the one policy (sparkconf.go).
	type setting struct{ from, val string }
	all := map[string]setting{}
	for k, v := range r.Conf {
		all[k] = setting{"conf." + k, v}
	}
	for _, m := range []struct{ field, key, val string }{
		{"driverMemory", "spark.driver.memory", r.DriverMemory},
		{"executorMemory", "spark.executor.memory", r.ExecutorMemory},
		{"queue", "spark.yarn.queue", r.Queue},
	} {
		if m.val != "" {
			all[m.key] = setting{m.field, m.val}
		}
	}
	for _, c := range []struct {
		field, key string
		val        int
	}{
		{"driverCores", "spark.driver.cores", r.DriverCores},
		{"executorCores", "spark.executor.cores", r.ExecutorCores},
		{"numExecutors", "spark.executor.instances", r.NumExecutors},
	} {
		if c.val < 0 {
			return s, invalid("%s must be positive, got %d", c.field, c.val)
		}
		if c.val > 0 {
			all[c.key] = setting{c.field, strconv.Itoa(c.val)}
		}
	}
	for _, l := range []struct {
		field, key string
		urls       []string
	}{
		{"jars", "spark.jars", r.Jars}, {"pyFiles", "spark.submit.pyFiles", r.PyFiles},
		{"files", "spark.files", r.Files}, {"archives", "spark.archives", r.Archives},
	} {
		if len(l.urls) > 0 {
			all[l.key] = setting{l.field, strings.Join(l.urls, ",")}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(all)) {
		v := all[k]
		val, err := p.check(v.from, k, v.val)
		if err != nil {
			return s, err
		}
		s.conf[k] = val
	}
	if r.HeartbeatTimeoutInSecond < 0 {
		return s, invalid("heartbeatTimeoutInSecond must not be negative")
	}
	if r.HeartbeatTimeoutInSecond > maxTimeoutSeconds {
		return s, invalid("heartbeatTimeoutInSecond must be at most %d (a year)", maxTimeoutSeconds)
	}
	s.heartbeat = time.Duration(r.HeartbeatTimeoutInSecond) * time.Second
	for _, d := range []struct{ field, val string }{{"ttl", r.TTL}, {"idleTimeout", r.IdleTimeout}} {
		if d.val == "" {
			continue
		}
		dur, err := parseLivyDuration(d.val)
		if err != nil {
			return s, invalid("%s %q: %v", d.field, d.val, err)
		}
		if s.inactivity == 0 || dur < s.inactivity {
			s.inactivity, s.inactivityWhy = dur, d.field
		}
	}
	return s, nil
}

// parseLivyDuration reads durations as Livy writes them ("10m", "2h",
// "1d", "90s") and Go's forms ("1h30m").
func parseLivyDuration(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if strings.HasSuffix(s, "d") {
		var n int
		if n, err = strconv.Atoi(strings.TrimSuffix(s, "d")); err == nil {
			if n > maxTimeoutSeconds/86400 || n < 0 {
				return 0, fmt.Errorf("must be at most 365d")
			}
			d = time.Duration(n) * 24 * time.Hour
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil {
		return 0, fmt.Errorf("not a duration (use forms like 90s, 10m, 2h, 1d)")
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive")
	}
	if d > maxTimeoutSeconds*time.Second {
		return 0, fmt.Errorf("must be at most 365d")
	}
	return d, nil
}

// maxTimeoutSeconds bounds ttl, idleTimeout and heartbeatTimeoutInSecond.
const maxTimeoutSeconds = 365 * 86400
