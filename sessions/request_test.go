package sessions

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/fileroot"
)

// testPolicy is the default policy over one file root, with remote URIs
// allowed or not.
func testPolicy(t *testing.T, remote bool) (*Policy, string) {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files, err := fileroot.New([]string{root}, remote)
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Files: files}
	p.fill()
	return &p, root
}

func TestCreateRequestSpec(t *testing.T) {
	p, root := testPolicy(t, true)
	r := CreateRequest{
		Kind: "sql", Name: "team-a.sales_1", ProxyUser: "alice",
		Conf:         map[string]string{"spark.sql.shuffle.partitions": "8"},
		DriverMemory: "512m", ExecutorMemory: "2G", DriverCores: 1, ExecutorCores: 2, NumExecutors: 3,
		Jars: []string{root + "/x.jar", "hdfs:///libs/y.jar"}, PyFiles: []string{"s3a://b/dep.py"},
		Files: []string{"file://" + root + "/hosts"}, Archives: []string{"local:" + root + "/env.zip"}, Queue: "etl",
		TTL: "2h", IdleTimeout: "30m", HeartbeatTimeoutInSecond: 3600,
	}
	s, err := r.spec(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"spark.sql.shuffle.partitions": "8", "spark.driver.memory": "512m", "spark.executor.memory": "2G",
		"spark.driver.cores": "1", "spark.executor.cores": "2", "spark.executor.instances": "3",
		"spark.jars": root + "/x.jar,hdfs:///libs/y.jar", "spark.submit.pyFiles": "s3a://b/dep.py",
		"spark.files": "file:" + root + "/hosts", "spark.archives": "local:" + root + "/env.zip", "spark.yarn.queue": "etl",
	}
	for k, v := range want {
		if s.conf[k] != v {
			t.Fatalf("conf[%s] = %q, want %q (all: %v)", k, s.conf[k], v, s.conf)
		}
	}
	if len(s.conf) != len(want) || s.kind != "sql" || s.proxyUser != "alice" {
		t.Fatalf("spec = %+v", s)
	}
	// The smallest inactivity limit wins.
	if s.inactivity != 30*time.Minute || s.inactivityWhy != "idleTimeout" || s.heartbeat != time.Hour {
		t.Fatalf("inactivity = %s (%s), heartbeat %s", s.inactivity, s.inactivityWhy, s.heartbeat)
	}

	bad := func(r CreateRequest) {
		t.Helper()
		if _, err := r.spec(p); !errors.Is(err, ErrInvalid) {
			t.Fatalf("spec(%+v) = %v, want ErrInvalid", r, err)
		}
	}
	bad(CreateRequest{Kind: "sparkr"})
	bad(CreateRequest{Kind: "ruby"})
	for _, kind := range []string{"spark", "scala"} {
		if s, err := (&CreateRequest{Kind: kind}).spec(p); err != nil || s.kind != "spark" {
			t.Fatalf("spec(kind %q) = %q, %v; want kind spark", kind, s.kind, err)
		}
	}
	bad(CreateRequest{Name: "42"})
	bad(CreateRequest{Name: "-lead"})
	bad(CreateRequest{Name: "has space"})
	bad(CreateRequest{Conf: map[string]string{"hadoop.x": "1"}})
	bad(CreateRequest{Conf: map[string]string{"spark.driver.host": "0.0.0.0"}})
	bad(CreateRequest{Conf: map[string]string{"spark.driver.bindAddress": "10.0.0.1"}})
	bad(CreateRequest{Conf: map[string]string{"spark.pyspark.python": "/tmp/evil"}})
	bad(CreateRequest{DriverMemory: "lots"})
	bad(CreateRequest{ExecutorMemory: "1.5g"})
	bad(CreateRequest{NumExecutors: -1})
	bad(CreateRequest{TTL: "soon"})
	bad(CreateRequest{IdleTimeout: "-5m"})
	bad(CreateRequest{HeartbeatTimeoutInSecond: -1})
	bad(CreateRequest{HeartbeatTimeoutInSecond: 9300000000}) // would wrap negative
	bad(CreateRequest{TTL: "213504d"})                       // would wrap to minutes
	bad(CreateRequest{IdleTimeout: "9000000h"})
}

// One policy for conf and named fields (issue 13): denied keys, caps on
// sizes, file roots and URI schemes, whichever way a setting comes in.
func TestSparkConfPolicy(t *testing.T) {
	p, root := testPolicy(t, false)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	f := func(r CreateRequest, want error) {
		t.Helper()
		if _, err := r.spec(p); !errors.Is(err, want) {
			t.Fatalf("spec(%+v) = %v, want %v", r, err, want)
		}
	}
	conf := func(k, v string) CreateRequest { return CreateRequest{Conf: map[string]string{k: v}} }
	for _, k := range []string{"spark.master", "spark.submit.deployMode", "spark.driver.host",
		"spark.driver.bindAddress", "spark.driver.port", "spark.blockManager.port", "spark.jars.packages",
		"spark.jars.repositories", "spark.jars.ivy", "spark.jars.ivySettings", "spark.driver.extraJavaOptions",
		"spark.executor.extraJavaOptions", "spark.driver.extraClassPath", "spark.executor.extraClassPath",
		"spark.driver.extraLibraryPath", "spark.pyspark.python", "spark.pyspark.driver.python",
		"spark.executorEnv.LD_PRELOAD", "spark.kubernetes.container.image", "spark.kubernetes.driver.container.image",
		"spark.kubernetes.authenticate.driver.serviceAccountName", "spark.yarn.appMasterEnv.X",
		"spark.kubernetes.executor.podTemplateFile", "spark.srdd.kv.cacheMiB",
		"spark.repl.class.outputDir", "spark.repl.class.uri"} {
		f(conf(k, "x"), ErrConfNotAllowed)
	}
	f(conf("spark.jars", "http://example.com/evil.jar"), fileroot.ErrRemote)
	f(conf("spark.jars", root+"/ok.jar,hdfs:///x.jar"), fileroot.ErrRemote)
	f(conf("spark.submit.pyFiles", "s3a://b/x.py"), fileroot.ErrRemote)
	f(conf("spark.files", "/etc/passwd"), fileroot.ErrForbidden)
	f(conf("spark.archives", root+"/../x.zip"), fileroot.ErrForbidden)
	f(conf("spark.jars", root+"/out/x.jar"), fileroot.ErrForbidden)
	f(conf("spark.eventLog.dir", "/var/tmp"), fileroot.ErrForbidden)
	f(conf("spark.sql.warehouse.dir", "/"), fileroot.ErrForbidden)
	f(conf("spark.local.dir", root+"/scratch,/tmp"), fileroot.ErrForbidden)
	f(CreateRequest{Jars: []string{"http://example.com/x.jar"}}, fileroot.ErrRemote)
	f(CreateRequest{PyFiles: []string{"/opt/dep.py"}}, fileroot.ErrForbidden)
	f(CreateRequest{Files: []string{"ftp://host/f"}}, fileroot.ErrRemote)
	f(CreateRequest{Archives: []string{"file:///etc/x.zip"}}, fileroot.ErrForbidden)
	f(CreateRequest{DriverMemory: "9g"}, ErrConfTooLarge)
	f(CreateRequest{ExecutorMemory: "8193m"}, ErrConfTooLarge)
	f(conf("spark.driver.memory", "1t"), ErrConfTooLarge)
	f(conf("spark.executor.memory", "9000"), ErrConfTooLarge) // MiB, as Spark reads it
	f(CreateRequest{DriverCores: 9}, ErrConfTooLarge)
	f(conf("spark.executor.cores", "64"), ErrConfTooLarge)
	f(CreateRequest{NumExecutors: 17}, ErrConfTooLarge)
	f(conf("spark.dynamicAllocation.maxExecutors", "1000"), ErrConfTooLarge)
	f(conf("spark.executor.instances", "many"), ErrInvalid)
	f(conf("spark.driver.memory", "lots"), ErrInvalid)
	// a named field is checked even when conf sets the same key
	f(CreateRequest{Conf: map[string]string{"spark.driver.memory": "1g"}, DriverMemory: "64g"}, ErrConfTooLarge)
	// Keys are canonical: with white space, '=' or control characters they
	// would reach Spark as a key the policy never saw (issue 25).
	for _, k := range []string{"spark.driver.memory ", " spark.master", "spark.driver.extraJavaOptions ",
		"spark.jars\t", "spark.driver.extraClassPath=/outside/x", "spark.driver.memory\n", "spark.x\x00y", "spark.é"} {
		f(conf(k, "64g"), ErrConfNotAllowed)
	}
	// Overheads, off-heap and task cpus are capped; more paths are rooted.
	f(conf("spark.driver.memoryOverhead", "9g"), ErrConfTooLarge)
	f(conf("spark.executor.memoryOverhead", "10000"), ErrConfTooLarge) // MiB
	f(conf("spark.memory.offHeap.size", "9g"), ErrConfTooLarge)
	f(conf("spark.task.cpus", "9"), ErrConfTooLarge)
	for _, k := range []string{"spark.driver.log.localDir", "spark.checkpoint.dir", "spark.sql.streaming.checkpointLocation",
		"spark.kerberos.keytab", "spark.ssl.keyStore", "spark.ssl.ui.trustStore"} {
		f(conf(k, "/etc/x"), fileroot.ErrForbidden)
	}
	offHeap := conf("spark.memory.offHeap.size", "1073741824")
	if _, err := offHeap.spec(p); err != nil { // bytes, as Spark reads it
		t.Fatalf("1 GiB of off-heap in bytes: %v", err)
	}
	for _, r := range confRules {
		if r.why == "" {
			t.Errorf("the policy's rule for %s does not say why it is there", r.key)
		}
	}

	ok := CreateRequest{DriverMemory: "8g", NumExecutors: 16, Jars: []string{"lib/x.jar"},
		Conf: map[string]string{"spark.executor.memory": "8192", "spark.sql.shuffle.partitions": "4"}}
	s, err := ok.spec(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.conf["spark.jars"] != root+"/lib/x.jar" || s.conf["spark.driver.memory"] != "8g" {
		t.Fatalf("conf = %v", s.conf)
	}
	var none Policy
	none.fill()
	jar := CreateRequest{Jars: []string{root + "/x.jar"}}
	if _, err := jar.spec(&none); !errors.Is(err, fileroot.ErrForbidden) {
		t.Fatalf("no file roots: %v", err)
	}
}

func TestParseLivyDuration(t *testing.T) {
	f := func(in string, want time.Duration) {
		t.Helper()
		got, err := parseLivyDuration(in)
		if err != nil || got != want {
			t.Fatalf("parseLivyDuration(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	f("90s", 90*time.Second)
	f("10m", 10*time.Minute)
	f("1h30m", 90*time.Minute)
	f("2d", 48*time.Hour)
}

// TestCheckConf: a running session's client (a Spark Connect Config
// call) gets the same policy as POST /sessions; a path the policy would
// rewrite is refused with the value to give; keys outside spark.* pass.
func TestCheckConf(t *testing.T) {
	p, root := testPolicy(t, false)
	m := &Manager{cfg: Config{Policy: *p}}
	for _, c := range []struct {
		key, val string
		want     error
		msg      string
	}{
		{"spark.sql.shuffle.partitions", "3", nil, ""},
		{"my.own.key", "anything", nil, ""},
		{"spark.executorEnv.SECRET", "x", ErrConfNotAllowed, "cannot be set by a client"},
		{"spark.executor.memory", "999g", ErrConfTooLarge, "--max-executor-memory"},
		{"spark.task.cpus", "many", ErrInvalid, "non-negative integer"},
		{"spark.x y", "1", ErrConfNotAllowed, "not a Spark key"},
		{"spark.sql.warehouse.dir", "/etc", fileroot.ErrForbidden, "outside the file roots"},
		{"spark.sql.warehouse.dir", root + "/w/../w", ErrConfNotAllowed, "give the value as the node resolves it"},
		{"spark.sql.warehouse.dir", "file:" + root + "/w", nil, ""},
	} {
		err := m.CheckConf(c.key, c.val)
		if (c.want == nil) != (err == nil) || (c.want != nil && (!errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg))) {
			t.Errorf("CheckConf(%s, %s) = %v, want %v %q", c.key, c.val, err, c.want, c.msg)
		}
	}
}
