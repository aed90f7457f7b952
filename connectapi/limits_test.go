package connectapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/srdd/srdd/internal/rawgrpc"
	"github.com/srdd/srdd/sessions"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
)

// hold opens a stream of method with metadata md (key, value pairs),
// sends one message and reads its echo, and leaves the stream open; end
// ends it.
func (r *rig) hold(t *testing.T, method string, md ...string) (open grpc.ClientStream, end func()) {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs(md...)), 20*time.Second)
	end = func() { cancel(); _ = conn.Close() }
	f, got := rawgrpc.Frame("held"), rawgrpc.Frame(nil)
	open, err = conn.NewStream(ctx, anyStream, method, grpc.ForceCodec(rawgrpc.Codec{}))
	if err == nil {
		err = open.SendMsg(&f)
	}
	if err == nil {
		err = open.RecvMsg(&got)
	}
	if err != nil || string(got) != "held" {
		end()
		t.Fatalf("held stream: %q %v", got, err)
	}
	return open, end
}

// waitExecs waits until session id and principal who have no execution
// open.
func (r *rig) waitExecs(t *testing.T, id int64, who string) {
	t.Helper()
	want := r.srv.execs.open(id, who)
	want = want[:strings.Index(want, ":")] + ": 0, " + who + ": 0, entries 0/0"
	for deadline := time.Now().Add(10 * time.Second); r.srv.execs.open(id, who) != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("executions still open: %s", r.srv.execs.open(id, who))
		}
	}
}

// TestExecutionCaps: plans running at once are capped per session and
// per principal; other calls are not; the count goes back down when a
// stream ends.
func TestExecutionCaps(t *testing.T) {
	r := start(t, false, Config{MaxExecsPerSession: 2})
	reattach := "/spark.connect.SparkConnectService/ReattachExecute"
	_, end1 := r.hold(t, execute, SessionHeader, "1")
	_, end2 := r.hold(t, reattach, SessionHeader, "etl")
	wantCode(t, r.call(t, execute, []string{"m"}, SessionHeader, "1"), codes.ResourceExhausted, "session 1 has 2 Spark Connect executions running")
	if a := r.call(t, config, []string{"c"}, SessionHeader, "1"); a.err != nil {
		t.Fatalf("a Config call is no execution: %v", a.err)
	}
	end1()
	end2()
	r.waitExecs(t, 1, "")
	if a := r.call(t, execute, []string{"m"}, SessionHeader, "1"); a.err != nil {
		t.Fatalf("after the executions ended: %v", a.err)
	}

	// Per principal, with a users file: ana's second plan is refused,
	// root's runs in the same session.
	r = start(t, true, Config{MaxExecsPerPrincipal: 1})
	ana := []string{SessionHeader, "1", "authorization", "Bearer " + r.tokens["ana"]}
	_, end := r.hold(t, execute, ana...)
	wantCode(t, r.call(t, execute, []string{"m"}, ana...), codes.ResourceExhausted, "ana has 1 Spark Connect executions running")
	if a := r.call(t, execute, []string{"m"}, SessionHeader, "1", "authorization", "Bearer "+r.tokens["root"]); a.err != nil {
		t.Fatalf("root: %v", a.err)
	}
	end()
	r.waitExecs(t, 1, "ana")
	if a := r.call(t, execute, []string{"m"}, ana...); a.err != nil {
		t.Fatalf("ana after her plan ended: %v", a.err)
	}
}

// TestIdleClientIsReleased: a connection with no stream open is closed
// after the idle timeout (the client goes idle and reconnects when it
// next calls); one with a stream open is not.
func TestIdleClientIsReleased(t *testing.T) {
	r := start(t, false, Config{IdleTimeout: 300 * time.Millisecond})
	conn, err := grpc.NewClient("passthrough:///"+r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs(SessionHeader, "1")), 20*time.Second)
	defer cancel()
	if got := rawgrpc.Exchange(ctx, conn, config, []rawgrpc.Frame{rawgrpc.Frame("c")}, nil); got.Err != nil {
		t.Fatal(got.Err)
	}
	// The call made the connection (Ready); the node closes it once idle,
	// and the client's channel goes Idle. (Not asserted Ready first: on a
	// loaded machine the release may already have come.)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	for s := conn.GetState(); s != connectivity.Idle; s = conn.GetState() {
		if !conn.WaitForStateChange(wctx, s) {
			t.Fatalf("the idle connection was not released: %v", s)
		}
	}
	// A held stream keeps its connection past the timeout.
	_, end := r.hold(t, execute, SessionHeader, "1")
	defer end()
	time.Sleep(time.Second)
	if a := r.call(t, config, []string{"c"}, SessionHeader, "1"); a.err != nil {
		t.Fatal(a.err)
	}
	if !strings.HasPrefix(r.srv.execs.open(1, ""), "session 1: 1,") {
		t.Fatalf("the held execution ended: %s", r.srv.execs.open(1, ""))
	}
}

// pbField appends length-delimited field num with contents v to b.
func pbField(b []byte, num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

// executeResponse is an ExecutePlanResponse with session_id (1) and an
// Arrow batch (2) of rows rows (its row_count, 1) and some data (2).
func executeResponse(rows uint64) []byte {
	batch := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), rows)
	batch = pbField(batch, 2, []byte("arrow bytes"))
	return pbField(pbField(nil, 1, []byte("session-uuid")), 2, batch)
}

func TestArrowRows(t *testing.T) {
	full := executeResponse(42)
	for _, tc := range []struct {
		name string
		msg  []byte
		want int64
	}{
		{"a batch", full, 42},
		{"an empty batch", executeResponse(0), 0},
		{"an absurd count", executeResponse(1 << 62), maxBatchRows},
		{"no batch", full[:14], 0},
		{"truncated", full[:len(full)-3], 0},
		{"garbage", []byte{0xff, 0xff, 0xff}, 0},
		{"nothing", nil, 0},
	} {
		if got := arrowRows(tc.msg); got != tc.want {
			t.Errorf("%s: %d rows, want %d", tc.name, got, tc.want)
		}
	}
}

// TestStreamMetrics: each stream is counted by method and code, with its
// bytes each way and the rows of the Arrow batches sent back.
func TestStreamMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := start(t, false, Config{Registry: reg})
	msg := string(executeResponse(7)) // the echo sends it back: a result of 7 rows
	if a := r.call(t, execute, []string{msg, msg}, SessionHeader, "1"); a.err != nil {
		t.Fatal(a.err)
	}
	wantCode(t, r.call(t, execute, nil, SessionHeader, "nope"), codes.NotFound, "")
	if a := r.call(t, "/x.Y/Z", []string{msg}, SessionHeader, "1"); a.err != nil {
		t.Fatal(a.err)
	}
	r.waitIdle(t) // the handlers have returned and counted
	m := r.srv.m
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"ExecutePlan OK", promtest.ToFloat64(m.streams.WithLabelValues("ExecutePlan", "OK")), 1},
		{"ExecutePlan NotFound", promtest.ToFloat64(m.streams.WithLabelValues("ExecutePlan", "NotFound")), 1},
		{"other OK", promtest.ToFloat64(m.streams.WithLabelValues("other", "OK")), 1},
		{"rows", promtest.ToFloat64(m.rows), 14}, // the other method's answer is not a result
		{"bytes in", promtest.ToFloat64(m.bytesIn), float64(3 * len(msg))},
		{"bytes out", promtest.ToFloat64(m.bytesOut), float64(3 * len(msg))},
		{"open", promtest.ToFloat64(m.open), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if n, err := promtest.GatherAndCount(reg, "srdd_connect_streams_total"); err != nil || n < len(methodNames)+1 {
		t.Fatalf("srdd_connect_streams_total has %d series (%v): each method's is there before its first call", n, err)
	}
}

// configSet is a ConfigRequest (session_id 1, operation 3) whose
// operation is a set (1) of pairs (1: KeyValue, key 1, value 2).
func configSet(pairs ...string) []byte {
	var set []byte
	for i := 0; i+1 < len(pairs); i += 2 {
		set = pbField(set, 1, pbField(pbField(nil, 1, []byte(pairs[i])), 2, []byte(pairs[i+1])))
	}
	return pbField(pbField(nil, 1, []byte("session-uuid")), 3, pbField(nil, 1, set))
}

// TestConfigPolicy: each setting a Config call sets passes the node's
// policy before Spark sees it; gets and other calls pass; a request the
// port cannot read is refused, not passed unchecked.
func TestConfigPolicy(t *testing.T) {
	var checked []string
	r := start(t, false, Config{CheckConf: func(k, v string) error {
		checked = append(checked, k+"="+v)
		if k == "spark.executorEnv.X" {
			return fmt.Errorf("%w: cannot be set by a client", sessions.ErrConfNotAllowed)
		}
		if k == "spark.task.cpus" {
			return fmt.Errorf("%w: must be an integer", sessions.ErrInvalid)
		}
		return nil
	}})
	ok := string(configSet("spark.sql.shuffle.partitions", "3", "my.own", "x"))
	if a := r.call(t, config, []string{ok}, SessionHeader, "1"); a.err != nil || len(a.msgs) != 1 || a.msgs[0] != ok {
		t.Fatalf("allowed settings: %v %q", a.err, a.msgs)
	}
	if strings.Join(checked, " ") != "spark.sql.shuffle.partitions=3 my.own=x" {
		t.Fatalf("checked %q", checked)
	}
	wantCode(t, r.call(t, config, []string{string(configSet("spark.sql.x", "1", "spark.executorEnv.X", "y"))}, SessionHeader, "1"),
		codes.PermissionDenied, "cannot be set by a client")
	wantCode(t, r.call(t, config, []string{string(configSet("spark.task.cpus", "x"))}, SessionHeader, "1"), codes.InvalidArgument, "integer")
	// A get (operation field 2) has nothing to check.
	get := pbField(nil, 3, pbField(nil, 2, nil))
	if a := r.call(t, config, []string{string(get)}, SessionHeader, "1"); a.err != nil {
		t.Fatalf("a get: %v", a.err)
	}
	// Unreadable, or two operations (protobuf would merge them): refused.
	twice := string(configSet("spark.sql.x", "1")) + string(configSet("spark.executorEnv.X", "y"))[14:]
	for _, bad := range []string{"\xff\xff", twice} {
		wantCode(t, r.call(t, config, []string{bad}, SessionHeader, "1"), codes.InvalidArgument, "cannot read")
	}
	// Other methods are not Config calls.
	if a := r.call(t, execute, []string{string(configSet("spark.executorEnv.X", "y"))}, SessionHeader, "1"); a.err != nil {
		t.Fatalf("an ExecutePlan message: %v", a.err)
	}
}

// artifacts is an AddArtifactsRequest: a batch (3) of single-chunk
// artifacts (1: name 1, data 2: ArtifactChunk data 1) named names, or,
// with begin > 0, a begin_chunk (4: name 1, total_bytes 2) of that size.
func artifacts(begin uint64, names ...string) []byte {
	if begin > 0 {
		b := protowire.AppendVarint(protowire.AppendTag(pbField(nil, 1, []byte(names[0])), 2, protowire.VarintType), begin)
		return pbField(pbField(nil, 1, []byte("session-uuid")), 4, b)
	}
	var batch []byte
	for _, n := range names {
		batch = pbField(batch, 1, pbField(pbField(nil, 1, []byte(n)), 2, pbField(nil, 1, []byte("bytes"))))
	}
	return pbField(pbField(nil, 1, []byte("session-uuid")), 3, batch)
}

// TestArtifactRules: AddArtifacts names stay inside the session's
// artifact directory, and a call uploads at most MaxArtifactBytes; other
// uploads pass to Spark as they are.
func TestArtifactRules(t *testing.T) {
	r := start(t, false, Config{MaxArtifactBytes: 4 << 10})
	add := "/spark.connect.SparkConnectService/AddArtifacts"
	ok := string(artifacts(0, "jars/a.jar", "pyfiles/b.py", "files/c..d.txt"))
	if a := r.call(t, add, []string{ok, string(artifacts(100, "cache/x"))}, SessionHeader, "1"); a.err != nil || len(a.msgs) != 2 {
		t.Fatalf("plain artifacts: %q %v", a.msgs, a.err)
	}
	for _, name := range []string{"../etc/passwd", "jars/../../x", "/abs", "jars//a", "jars/./a", `jars\a`, "a\x00b"} {
		wantCode(t, r.call(t, add, []string{string(artifacts(0, "jars/ok.jar", name))}, SessionHeader, "1"), codes.InvalidArgument, "artifact name")
		wantCode(t, r.call(t, add, []string{string(artifacts(10, name))}, SessionHeader, "1"), codes.InvalidArgument, "artifact name")
	}
	// A second batch field (protobuf merges them) is read too.
	twice := ok + string(artifacts(0, "../x"))[14:]
	wantCode(t, r.call(t, add, []string{twice}, SessionHeader, "1"), codes.InvalidArgument, `"../x"`)
	wantCode(t, r.call(t, add, []string{"\xff\xff"}, SessionHeader, "1"), codes.InvalidArgument, "cannot read")
	// Size: a declared chunked artifact over the limit, or the bytes sent.
	wantCode(t, r.call(t, add, []string{string(artifacts(5<<10, "jars/big.jar"))}, SessionHeader, "1"), codes.ResourceExhausted, "over the node's limit")
	chunk := strings.Repeat("x", 1<<10)
	wantCode(t, r.call(t, add, []string{chunk, chunk, chunk, chunk, chunk}, SessionHeader, "1"), codes.ResourceExhausted, "--connect-max-artifact-bytes")
}
