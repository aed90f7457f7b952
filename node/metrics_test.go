package node

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// metricValue returns the value of the series named exactly by series in
// a /metrics text, and whether it is there.
func metricValue(all, series string) (float64, bool) {
	line := metricLine(all, series)
	if line == "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
	return v, err == nil
}

// TestMetricsCoverEveryLayer checks, on a real node with a real
// interpreter, one series of each family the dashboard and alerts use.
func TestMetricsCoverEveryLayer(t *testing.T) {
	spark(t)
	_, base := sharedNode(t)
	do(t, "POST", base+"/v1/rdds", `{"name":"metrics_probe","session":0}`, 201)
	for i := 0; i < 5; i++ {
		do(t, "PUT", fmt.Sprintf("%s/v1/rdds/metrics_probe/keys/k%d", base, i), strconv.Itoa(i), 204)
	}
	do(t, "GET", base+"/v1/rdds/metrics_probe/keys/k1", "", 200)
	do(t, "GET", base+"/v1/rdds/metrics_probe/keys/absent", "", 404)
	do(t, "GET", base+"/v1/rdds/no_such_rdd/keys/k", "", 404)
	m := string(do(t, "GET", base+"/metrics", "", 200))

	f := func(series string, ok func(float64) bool, what string) {
		t.Helper()
		v, found := metricValue(m, series)
		if !found {
			t.Errorf("%s missing", series)
			return
		}
		if !ok(v) {
			t.Errorf("%s = %v, want %s", series, v, what)
		}
	}
	eq := func(want float64) (func(float64) bool, string) {
		return func(v float64) bool { return v == want }, fmt.Sprint(want)
	}
	pos := func(v float64) bool { return v > 0 }
	any := func(float64) bool { return true }

	// HTTP and per-RDD (the 404 for a missing key is an error of an existing RDD)
	f(`srdd_rdd_requests_total{op="put",rdd="metrics_probe",result="ok"}`, func(v float64) bool { return v == 5 }, "5")
	fn, w := eq(1)
	f(`srdd_rdd_requests_total{op="get",rdd="metrics_probe",result="ok"}`, fn, w)
	f(`srdd_rdd_requests_total{op="get",rdd="metrics_probe",result="error"}`, fn, w)
	f(`srdd_rdd_request_duration_seconds_count{kind="write",rdd="metrics_probe"}`, pos, "> 0")
	if strings.Contains(m, `rdd="no_such_rdd"`) {
		t.Error("a request for an RDD that does not exist got its own label")
	}
	f(`srdd_http_requests_in_flight{api="ops"}`, pos, "> 0 (this scrape)")
	// the engine, from the interpreter's stats
	fn, w = eq(5)
	f(`srdd_rdd_keys{rdd="metrics_probe"}`, fn, w)
	f(`srdd_rdd_delta_entries{rdd="metrics_probe"}`, fn, w)
	f(`srdd_engine_lookup_job_duration_seconds_count{rdd="metrics_probe"}`, any, "present")
	f(`srdd_engine_compactions_total{rdd="metrics_probe"}`, any, "present")
	f(`srdd_engine_cache_max_bytes{session="0"}`, pos, "> 0")
	f(`srdd_interpreter_rss_bytes{session="0"}`, pos, "> 0")
	f(`srdd_interpreter_jvm_heap_used_bytes{session="0"}`, pos, "> 0")
	f(`srdd_interpreter_jvm_rss_bytes{session="0"}`, pos, "> 0")
	f(`srdd_interpreter_stats_age_seconds{session="0"}`, func(v float64) bool { return v < 60 }, "< 60")
	f(`srdd_sessions{state="idle"}`, func(v float64) bool { return v >= 1 }, ">= 1")
	f(`srdd_kv_queue_depth{op="get"}`, any, "present")
	f(`srdd_bridge_calls_in_flight`, any, "present")
	f(`srdd_interpreter_exits_total{cause="crashed"}`, any, "present")
	// cluster, Raft through go-metrics, build, durability hooks
	fn, w = eq(1)
	f(`srdd_raft_is_leader`, fn, w)
	f(`srdd_raft_has_leader`, fn, w)
	f(`srdd_cluster_node_up{node="n1"}`, fn, w)
	f(`srdd_raft_log_bytes`, pos, "> 0")
	f(`srdd_raft_commitTime_count`, pos, "> 0")
	f(`srdd_raft_fsm_apply_count`, pos, "> 0")
	f(`srdd_checkpoints_total{result="ok"}`, any, "present")
	f(`srdd_interpreter_restarts_total`, any, "present")
	if !strings.Contains(m, `srdd_build_info{goversion="go`) || !strings.Contains(m, `pyspark="4.`) {
		t.Error("srdd_build_info missing or without its labels")
	}
	if !strings.Contains(m, `srdd_spark_info{master="local[2]",version="4.`) {
		t.Error("srdd_spark_info missing")
	}
}
