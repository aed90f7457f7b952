package sessions

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
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
	// besides the owner may read the session, and who may run code in it
	// or delete it.
	ViewUsers   []string `json:"viewUsers"`
	ModifyUsers []string `json:"modifyUsers"`
	// Owner is the authenticated principal creating the session, set by
	// the HTTP layer, never by the body ("" without auth).
	Owner string `json:"-"`
}

// Session kinds srdd runs. "sql" and "shared" sessions run the same
// PySpark interpreter; the kind picks the default statement kind.
var sessionKinds = map[string]bool{"pyspark": true, "sql": true, "shared": true}

// Statement kinds srdd runs ("python" is an alias of pyspark).
var statementKinds = map[string]string{"pyspark": "pyspark", "python": "pyspark", "sql": "sql"}

// unsafeConf are settings a client may not change: they would rebind the
// driver's network endpoints on the srdd host or swap the interpreter.
var unsafeConf = map[string]string{
	"spark.driver.host":           "the driver binds to the node's loopback address",
	"spark.driver.bindAddress":    "the driver binds to the node's loopback address",
	"spark.pyspark.python":        "sessions run the node's interpreter Python",
	"spark.pyspark.driver.python": "sessions run the node's interpreter Python",
}

// File URLs may point at the node's files or at cluster storage, never at
// an arbitrary network location the node would fetch from.
var allowedSchemes = map[string]bool{"": true, "file": true, "local": true, "hdfs": true,
	"s3a": true, "s3": true, "gs": true, "abfs": true, "abfss": true, "wasb": true, "wasbs": true}

var memoryRE = regexp.MustCompile(`(?i)^[0-9]+[kmgtp]?b?$`)
var sessionNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// sessionSpec is a validated CreateRequest.
type sessionSpec struct {
	name, kind, proxyUser string
	owner                 string
	viewUsers, modUsers   []string
	conf                  map[string]string // requested Spark settings, sizing included
	inactivity            time.Duration     // ttl/idleTimeout; 0: none
	inactivityWhy         string
	heartbeat             time.Duration // heartbeatTimeoutInSecond; 0: none
}

func (r *CreateRequest) spec() (sessionSpec, error) {
	s := sessionSpec{name: r.Name, kind: r.Kind, proxyUser: r.ProxyUser, conf: map[string]string{},
		owner: r.Owner, viewUsers: r.ViewUsers, modUsers: r.ModifyUsers}
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
	if !sessionKinds[s.kind] {
		return s, invalid("session kind %q is not supported; srdd runs pyspark, sql and shared sessions (PySpark)", s.kind)
	}
	if s.name != "" {
		if !sessionNameRE.MatchString(s.name) {
			return s, invalid("session name %q must be 1-128 characters of letters, digits, '_', '.', '-', starting with a letter or digit", s.name)
		}
		if _, err := strconv.ParseInt(s.name, 10, 64); err == nil {
			return s, invalid("session name %q must not be a number (numbers address sessions by id)", s.name)
		}
	}
	for k, v := range r.Conf {
		if !strings.HasPrefix(k, "spark.") {
			return s, invalid("conf key %q is not a Spark setting (must start with \"spark.\")", k)
		}
		if why, bad := unsafeConf[k]; bad {
			return s, invalid("conf key %q cannot be set: %s", k, why)
		}
		s.conf[k] = v
	}
	set := func(key, val string) { s.conf[key] = val }
	for _, m := range []struct{ field, key, val string }{
		{"driverMemory", "spark.driver.memory", r.DriverMemory},
		{"executorMemory", "spark.executor.memory", r.ExecutorMemory},
	} {
		if m.val == "" {
			continue
		}
		if !memoryRE.MatchString(m.val) {
			return s, invalid("%s %q must be a JVM memory size such as 512m or 2g", m.field, m.val)
		}
		set(m.key, m.val)
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
			set(c.key, strconv.Itoa(c.val))
		}
	}
	for _, l := range []struct {
		field, key string
		urls       []string
	}{
		{"jars", "spark.jars", r.Jars}, {"pyFiles", "spark.submit.pyFiles", r.PyFiles},
		{"files", "spark.files", r.Files}, {"archives", "spark.archives", r.Archives},
	} {
		if len(l.urls) == 0 {
			continue
		}
		for _, u := range l.urls {
			if err := checkFileURL(u); err != nil {
				return s, invalid("%s entry %q: %v", l.field, u, err)
			}
		}
		set(l.key, strings.Join(l.urls, ","))
	}
	if r.Queue != "" {
		set("spark.yarn.queue", r.Queue)
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

func checkFileURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if !allowedSchemes[strings.ToLower(u.Scheme)] {
		return fmt.Errorf("scheme %q is not allowed (use a path, file:, local:, or cluster storage such as hdfs: or s3a:)", u.Scheme)
	}
	if u.Scheme == "" && !filepath.IsAbs(raw) {
		return fmt.Errorf("a path must be absolute")
	}
	return nil
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
