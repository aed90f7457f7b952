package sessions

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/srdd/srdd/internal/defaults"
	"github.com/srdd/srdd/internal/fileroot"
)

// Policy is the node's one rule for the Spark settings a client asks for,
// whether in conf or in a named Livy field (driverMemory, jars, ...): the
// named fields are turned into their settings first, and every setting
// then goes through confRules. The operator's own --spark-conf is not
// checked. Zero sizes mean DefaultPolicy's.
type Policy struct {
	// Files confines jars, pyFiles, files and archives; nil refuses them.
	Files             *fileroot.Roots
	MaxDriverMemory   int64 // bytes
	MaxExecutorMemory int64 // bytes
	MaxCores          int   // per driver and per executor
	MaxExecutors      int
}

// DefaultPolicy returns the caps of --max-driver-memory and friends.
func DefaultPolicy() Policy {
	return Policy{MaxDriverMemory: 8 << 30, MaxExecutorMemory: 8 << 30, MaxCores: 8, MaxExecutors: 16}
}

func (p *Policy) fill() {
	defaults.Fields(p, DefaultPolicy())
}

type ruleKind int

const (
	deny        ruleKind = iota
	memory               // a JVM size (no unit: MiB), capped
	memoryBytes          // a size whose bare number is bytes, capped
	count                // a positive integer, capped
	fileList             // comma-separated paths or URIs, in the file roots
)

// confRule applies to a key equal to key, or, with prefix, starting with
// it. why says why the key is in the table (for a deny, the reason a
// client hears).
type confRule struct {
	key    string
	prefix bool
	kind   ruleKind
	why    string
	flag   string // memory, count: the cap's flag
	cap    func(*Policy) int64
}

var (
	driverMemCap   = func(p *Policy) int64 { return p.MaxDriverMemory }
	executorMemCap = func(p *Policy) int64 { return p.MaxExecutorMemory }
	coresCap       = func(p *Policy) int64 { return int64(p.MaxCores) }
	executorsCap   = func(p *Policy) int64 { return int64(p.MaxExecutors) }
)

const (
	whyNode     = "the node decides where and how sessions run"
	whyBind     = "the driver binds to the node's own addresses"
	whyFetch    = "the node does not fetch packages for clients; put jars in a --file-root and name them in jars"
	whyJVM      = "JVM options and class paths run code outside Spark's checks"
	whyPython   = "sessions run the node's interpreter Python"
	whyEnv      = "environment variables of the driver and executors are the node's"
	whyCluster  = "images, service accounts and pod templates are the operator's"
	whyInternal = "spark.srdd.* settings are srdd's own"
	whyREPL     = "the node places the Scala REPL's classes (Spark serves that directory to executors)"
	whySize     = "a client's share of the node's memory and cores is capped"
	whyReads    = "Spark reads these files on the node: they must be in a --file-root"
	whyWrites   = "Spark writes here on the node: it must be in a --file-root"
)

// confKeyRE is a canonical Spark key. Anything else (white space, '=',
// control characters, ...) is refused: the interpreter strips keys and
// spark-submit splits "--conf k=v" on its first '=', so such a key would
// reach Spark as another key than the one the policy saw.
var confKeyRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// confRules is the whole policy. A key no rule matches passes as it is.
var confRules = []confRule{
	{key: "spark.master", why: whyNode},
	{key: "spark.submit.deployMode", why: whyNode},
	{key: "spark.driver.host", why: whyBind},
	{key: "spark.driver.bindAddress", why: whyBind},
	{key: "spark.driver.port", why: whyBind},
	{key: "spark.blockManager.port", why: whyBind},
	{key: "spark.driver.blockManager.port", why: whyBind},
	{key: "spark.jars.packages", why: whyFetch},
	{key: "spark.jars.excludes", why: whyFetch},
	{key: "spark.jars.repositories", why: whyFetch},
	{key: "spark.jars.ivy", prefix: true, why: whyFetch},
	{key: "spark.driver.extraJavaOptions", why: whyJVM},
	{key: "spark.executor.extraJavaOptions", why: whyJVM},
	{key: "spark.driver.defaultJavaOptions", why: whyJVM},
	{key: "spark.executor.defaultJavaOptions", why: whyJVM},
	{key: "spark.driver.extraClassPath", why: whyJVM},
	{key: "spark.executor.extraClassPath", why: whyJVM},
	{key: "spark.driver.extraLibraryPath", why: whyJVM},
	{key: "spark.executor.extraLibraryPath", why: whyJVM},
	{key: "spark.pyspark.python", why: whyPython},
	{key: "spark.pyspark.driver.python", why: whyPython},
	{key: "spark.executorEnv.", prefix: true, why: whyEnv},
	{key: "spark.yarn.appMasterEnv.", prefix: true, why: whyEnv},
	{key: "spark.kubernetes.driverEnv.", prefix: true, why: whyEnv},
	{key: "spark.srdd.", prefix: true, why: whyInternal},
	{key: "spark.repl.", prefix: true, why: whyREPL},
	{key: "spark.driver.memory", kind: memory, flag: "--max-driver-memory", cap: driverMemCap, why: whySize},
	{key: "spark.driver.memoryOverhead", kind: memory, flag: "--max-driver-memory", cap: driverMemCap, why: whySize},
	{key: "spark.executor.memory", kind: memory, flag: "--max-executor-memory", cap: executorMemCap, why: whySize},
	{key: "spark.executor.memoryOverhead", kind: memory, flag: "--max-executor-memory", cap: executorMemCap, why: whySize},
	{key: "spark.executor.pyspark.memory", kind: memory, flag: "--max-executor-memory", cap: executorMemCap, why: whySize},
	{key: "spark.memory.offHeap.size", kind: memoryBytes, flag: "--max-executor-memory", cap: executorMemCap, why: whySize},
	{key: "spark.driver.cores", kind: count, flag: "--max-cores", cap: coresCap, why: whySize},
	{key: "spark.executor.cores", kind: count, flag: "--max-cores", cap: coresCap, why: whySize},
	{key: "spark.task.cpus", kind: count, flag: "--max-cores", cap: coresCap, why: whySize},
	{key: "spark.executor.instances", kind: count, flag: "--max-executors", cap: executorsCap, why: whySize},
	{key: "spark.dynamicAllocation.maxExecutors", kind: count, flag: "--max-executors", cap: executorsCap, why: whySize},
	{key: "spark.dynamicAllocation.initialExecutors", kind: count, flag: "--max-executors", cap: executorsCap, why: whySize},
	{key: "spark.dynamicAllocation.minExecutors", kind: count, flag: "--max-executors", cap: executorsCap, why: whySize},
	{key: "spark.jars", kind: fileList, why: whyReads},
	{key: "spark.submit.pyFiles", kind: fileList, why: whyReads},
	{key: "spark.files", kind: fileList, why: whyReads},
	{key: "spark.archives", kind: fileList, why: whyReads},
	{key: "spark.yarn.dist.jars", kind: fileList, why: whyReads},
	{key: "spark.yarn.dist.files", kind: fileList, why: whyReads},
	{key: "spark.yarn.dist.archives", kind: fileList, why: whyReads},
	{key: "spark.yarn.dist.pyFiles", kind: fileList, why: whyReads},
	{key: "spark.kerberos.keytab", kind: fileList, why: whyReads},
	{key: "spark.local.dir", kind: fileList, why: whyWrites},
	{key: "spark.eventLog.dir", kind: fileList, why: whyWrites},
	{key: "spark.sql.warehouse.dir", kind: fileList, why: whyWrites},
	{key: "spark.driver.log.dfsDir", kind: fileList, why: whyWrites},
	{key: "spark.driver.log.localDir", kind: fileList, why: whyWrites},
	{key: "spark.checkpoint.dir", kind: fileList, why: whyWrites},
	{key: "spark.sql.streaming.checkpointLocation", kind: fileList, why: whyWrites},
}

// sslPathRE matches the spark.ssl.* settings that name key and trust
// stores (spark.ssl.keyStore, spark.ssl.ui.trustStore, ...): files Spark
// reads on the node, so in a --file-root.
var sslPathRE = regexp.MustCompile(`(?i)^spark\.ssl\.([a-z0-9]+\.)?(keystore|truststore)$`)

// clusterImageRE matches YARN and Kubernetes settings that pick images,
// service accounts, pod templates or credentials.
var clusterImageRE = regexp.MustCompile(`(?i)^spark\.(yarn|kubernetes)\..*(image|serviceaccount|podtemplate|authenticate|credential|keytab|principal|token|secret)`)

func ruleFor(key string) (confRule, bool) {
	for _, r := range confRules {
		if key == r.key || (r.prefix && strings.HasPrefix(key, r.key)) {
			return r, true
		}
	}
	if clusterImageRE.MatchString(key) {
		return confRule{key: key, why: whyCluster}, true
	}
	if sslPathRE.MatchString(key) {
		return confRule{key: key, kind: fileList, why: whyReads}, true
	}
	return confRule{}, false
}

// check applies the policy to one setting, named as the client wrote it
// (a Livy field or conf.KEY), and returns the value to use.
func (p *Policy) check(from, key, val string) (string, error) {
	if !confKeyRE.MatchString(key) {
		return "", fmt.Errorf("%w: %s: %q is not a Spark key: keys are letters, digits, '.', '_' and '-' only (no spaces, '=' or control characters)",
			ErrConfNotAllowed, from, key)
	}
	if !strings.HasPrefix(key, "spark.") {
		return "", invalid("%s: %q is not a Spark setting (must start with \"spark.\")", from, key)
	}
	r, ok := ruleFor(key)
	if !ok {
		return val, nil
	}
	switch r.kind {
	case deny:
		return "", fmt.Errorf("%w: %s (%s) cannot be set by a client: %s", ErrConfNotAllowed, from, key, r.why)
	case memory, memoryBytes:
		n, err := parseJVMSize(val)
		if r.kind == memoryBytes {
			n, err = ParseSize(val)
		}
		if err != nil {
			return "", invalid("%s %q must be a JVM memory size such as 512m or 2g", from, val)
		}
		if c := r.cap(p); n > c {
			return "", fmt.Errorf("%w: %s %s is over the node's cap %s %s", ErrConfTooLarge, from, val, r.flag, FormatSize(c))
		}
	case count:
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil || n < 0 {
			return "", invalid("%s must be a non-negative integer, got %q", from, val)
		}
		if c := r.cap(p); n > c {
			return "", fmt.Errorf("%w: %s %d is over the node's cap %s %d", ErrConfTooLarge, from, n, r.flag, c)
		}
	case fileList:
		files := p.Files
		if files == nil {
			files = &fileroot.Roots{}
		}
		var out []string
		for _, u := range strings.Split(val, ",") {
			if u = strings.TrimSpace(u); u == "" {
				continue
			}
			c, err := files.URI(u)
			if err != nil {
				return "", fmt.Errorf("cannot use %s entry: %w", from, err)
			}
			out = append(out, c)
		}
		return strings.Join(out, ","), nil
	}
	return val, nil
}

var jvmSizeRE = regexp.MustCompile(`(?i)^([0-9]+)([kmgtp]?)b?$`)

// parseJVMSize reads a size as Spark does for spark.*.memory: a number
// with an optional k/m/g/t/p unit; no unit means MiB.
func parseJVMSize(s string) (int64, error) {
	m := jvmSizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("not a JVM size")
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, err
	}
	shift := map[string]uint{"": 20, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50}[strings.ToLower(m[2])]
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("too large")
	}
	return n << shift, nil
}

// ParseSize reads a flag's size (512m, 8g); a bare number is bytes.
func ParseSize(s string) (int64, error) {
	if m := jvmSizeRE.FindStringSubmatch(strings.TrimSpace(s)); m != nil && m[2] == "" {
		return strconv.ParseInt(m[1], 10, 64)
	}
	return parseJVMSize(s)
}

// FormatSize writes n bytes as ParseSize reads them, in the largest unit
// that divides it (8589934592 -> "8g").
func FormatSize(n int64) string {
	for _, u := range []struct {
		s     string
		shift uint
	}{{"t", 40}, {"g", 30}, {"m", 20}, {"k", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// CheckConf applies the policy to one setting that a client of a running
// session asks for (a Spark Connect Config call: spark.conf.set). A key
// the policy refuses or caps is refused as at POST /sessions; a value it
// would have to rewrite (a path it would canonicalise into a file root)
// is refused with the value to give instead, since the call cannot be
// changed on its way. Keys outside spark.* are not Spark's settings and
// pass.
func (m *Manager) CheckConf(key, val string) error {
	if !strings.HasPrefix(key, "spark.") {
		return nil
	}
	got, err := m.cfg.Policy.check("spark.conf.set("+key+")", key, val)
	if err != nil {
		return err
	}
	if got != val {
		return fmt.Errorf("%w: spark.conf.set(%s, %q): give the value as the node resolves it: %q", ErrConfNotAllowed, key, val, got)
	}
	return nil
}
