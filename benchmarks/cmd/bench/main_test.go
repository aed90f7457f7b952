package main

import "testing"

func TestParseRedisBenchmark(t *testing.T) {
	out := "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n" +
		"\"GET\",\"86206.90\",\"0.600\",\"0.100\",\"0.503\",\"1.000\",\"1.607\",\"6.400\"\n"
	rb, err := parseRedisBenchmark(out)
	if err != nil || rb.Test != "GET" || rb.RPS != 86206.90 || rb.P50Ms != 0.503 || rb.P99Ms != 1.607 {
		t.Fatalf("parsed %+v, %v", rb, err)
	}
	if _, err := parseRedisBenchmark("garbage"); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestMachineInfo(t *testing.T) {
	m := machineInfo()
	if m.Cores < 1 || m.GoVersion == "" {
		t.Fatalf("machine = %+v", m)
	}
}
