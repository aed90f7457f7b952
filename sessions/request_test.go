package sessions

import (
	"errors"
	"testing"
	"time"
)

func TestCreateRequestSpec(t *testing.T) {
	r := CreateRequest{
		Kind: "sql", Name: "team-a.sales_1", ProxyUser: "alice",
		Conf:         map[string]string{"spark.sql.shuffle.partitions": "8"},
		DriverMemory: "512m", ExecutorMemory: "2G", DriverCores: 1, ExecutorCores: 2, NumExecutors: 3,
		Jars: []string{"/opt/x.jar", "hdfs:///libs/y.jar"}, PyFiles: []string{"s3a://b/dep.py"},
		Files: []string{"file:///etc/hosts"}, Archives: []string{"local:/opt/env.zip"}, Queue: "etl",
		TTL: "2h", IdleTimeout: "30m", HeartbeatTimeoutInSecond: 3600,
	}
	s, err := r.spec()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"spark.sql.shuffle.partitions": "8", "spark.driver.memory": "512m", "spark.executor.memory": "2G",
		"spark.driver.cores": "1", "spark.executor.cores": "2", "spark.executor.instances": "3",
		"spark.jars": "/opt/x.jar,hdfs:///libs/y.jar", "spark.submit.pyFiles": "s3a://b/dep.py",
		"spark.files": "file:///etc/hosts", "spark.archives": "local:/opt/env.zip", "spark.yarn.queue": "etl",
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
		if _, err := r.spec(); !errors.Is(err, ErrInvalid) {
			t.Fatalf("spec(%+v) = %v, want ErrInvalid", r, err)
		}
	}
	bad(CreateRequest{Kind: "spark"})
	bad(CreateRequest{Kind: "sparkr"})
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
	bad(CreateRequest{Jars: []string{"http://example.com/x.jar"}})
	bad(CreateRequest{PyFiles: []string{"relative/dep.py"}})
	bad(CreateRequest{Files: []string{"ftp://host/f"}})
	bad(CreateRequest{TTL: "soon"})
	bad(CreateRequest{IdleTimeout: "-5m"})
	bad(CreateRequest{HeartbeatTimeoutInSecond: -1})
	bad(CreateRequest{HeartbeatTimeoutInSecond: 9300000000}) // would wrap negative
	bad(CreateRequest{TTL: "213504d"})                       // would wrap to minutes
	bad(CreateRequest{IdleTimeout: "9000000h"})
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
