package sparkbridge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestParseHandshake(t *testing.T) {
	f := func(line string, ok bool, addr string) {
		t.Helper()
		h, err := ParseHandshake(line)
		if (err == nil) != ok {
			t.Fatalf("ParseHandshake(%q) err = %v, want ok=%v", line, err, ok)
		}
		if ok && h.Address != addr {
			t.Fatalf("ParseHandshake(%q) address = %q, want %q", line, h.Address, addr)
		}
	}
	f("srdd-interpreter|1|unix|/tmp/x.sock\n", true, "/tmp/x.sock")
	f("srdd-interpreter|1|tcp|127.0.0.1:5", true, "127.0.0.1:5")
	f("srdd-interpreter|2|unix|/tmp/x.sock", false, "")
	f("other|1|unix|/tmp/x.sock", false, "")
	f("srdd-interpreter|1|udp|x", false, "")
	f("srdd-interpreter|x|unix|/s", false, "")
	f("hello world", false, "")
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, p := range [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{7}, 70000)} {
		if err := writeFrame(&buf, p); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for _, want := range []int{1, 0, 70000} {
		got, err := readFrame(r, nil)
		if err != nil || len(got) != want {
			t.Fatalf("readFrame = %d bytes, %v; want %d", len(got), err, want)
		}
	}
	// A length beyond the limit is refused before allocating.
	huge := bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}))
	if _, err := readFrame(huge, nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized frame: err = %v", err)
	}
	if err := writeFrame(&buf, make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized write: err = %v", err)
	}
}

func TestMultiplexedCalls(t *testing.T) {
	it := runningFake(t, "", Config{})
	ctx := context.Background()
	info, err := it.WaitReady(ctx)
	if err != nil || info.AppID != "app-1" {
		t.Fatalf("WaitReady = %+v, %v", info, err)
	}

	// A slow call must not hold up fast ones behind it.
	slowDone := make(chan error, 1)
	go func() { slowDone <- it.Call(ctx, "sleep", map[string]any{"ms": 100}, nil) }()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var out struct {
				N int `msgpack:"n"`
			}
			if err := it.Call(ctx, "echo", map[string]any{"n": i}, &out); err != nil || out.N != i {
				t.Errorf("echo %d = %d, %v", i, out.N, err)
			}
		}(i)
	}
	wg.Wait()
	select {
	case err := <-slowDone:
		t.Fatalf("slow call finished before the fast ones were all answered: %v", err)
	default:
	}
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}

	err = it.Call(ctx, "nope", map[string]any{}, nil)
	if !IsCode(err, CodeInvalid) {
		t.Fatalf("unknown op: err = %v, want invalid", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := it.Call(short, "sleep", map[string]any{"ms": 100}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call past its deadline: err = %v", err)
	}
}

func TestCrashFailsCalls(t *testing.T) {
	it := runningFake(t, "", Config{})
	ctx := context.Background()
	if _, err := it.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	pending := make(chan error, 1)
	go func() { pending <- it.Call(ctx, "sleep", map[string]any{"ms": 100}, nil) }()
	time.Sleep(50 * time.Millisecond)
	_ = it.Call(ctx, "crash", map[string]any{}, nil)
	select {
	case err := <-pending:
		if !errors.Is(err, ErrConnClosed) {
			t.Fatalf("pending call after crash: err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending call hung after the interpreter crashed")
	}
	<-it.Done()
	if err := it.Call(ctx, "echo", map[string]any{}, nil); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("call after crash: err = %v", err)
	}
}

func TestStartFailures(t *testing.T) {
	f := func(mode, want string) {
		t.Helper()
		it, err := startFake(t, mode)
		if err == nil {
			it.Stop()
			t.Fatalf("mode %s: start succeeded", mode)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("mode %s: err = %v, want it to mention %q", mode, err, want)
		}
	}
	f("exit", "exited before handshake")
	f("silent", "no handshake")
	f("badversion", "protocol 99")
}

func TestSparkStartFailure(t *testing.T) {
	it := runningFake(t, "failspark", Config{})
	if _, err := it.WaitReady(context.Background()); !errors.Is(err, ErrStartFailed) || !strings.Contains(err.Error(), "no java") {
		t.Fatalf("WaitReady = %v, want ErrStartFailed with the reason", err)
	}
}

func TestStopKillsProcessGroup(t *testing.T) {
	it, err := startFake(t, "")
	if err != nil {
		t.Fatal(err)
	}
	pid := it.Pid()
	it.Stop()
	it.Stop() // idempotent
	select {
	case <-it.Done():
	default:
		t.Fatal("process still running after Stop")
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process group %d still has members after Stop: %v", pid, err)
	}
}

// The node hands the interpreter its data rules at start-up (kvstore,
// DESIGN.md "The data rules"); the interpreter keeps no limits of its own.
func TestStartHandsOverDataRules(t *testing.T) {
	const rules = `{"max_key_bytes":7,"reserved_names":["sc"]}`
	it := runningFake(t, "", Config{DataRules: rules})
	var res struct {
		Value string `msgpack:"value"`
	}
	if err := it.Call(context.Background(), "getenv", map[string]any{"name": DataRulesEnv}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Value != rules {
		t.Fatalf("%s in the interpreter = %q, want %q", DataRulesEnv, res.Value, rules)
	}
}

// Launch returns before the process has started; a call made at once
// waits for it. A launch that cannot start fails readiness and closes
// Done instead of returning an error, and Stop is safe on it.
func TestLaunch(t *testing.T) {
	launch := func(mode string) *Interpreter {
		return Launch(Config{Python: os.Args[0], PythonPath: t.TempDir(), SessionID: 8,
			StartTimeout: 3 * time.Second, StopTimeout: 500 * time.Millisecond, Env: helperEnv(mode)})
	}
	it := launch("")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := it.Call(ctx, "echo", map[string]any{}, nil); err != nil {
		t.Fatalf("a call right after Launch: %v", err)
	}
	if it.Pid() <= 0 {
		t.Fatalf("pid %d after the process started", it.Pid())
	}
	it.Stop()
	<-it.Done()

	bad := launch("exit")
	if _, err := bad.WaitReady(ctx); !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "exited before handshake") {
		t.Fatalf("WaitReady of a launch that cannot start = %v, want ErrExited with the reason", err)
	}
	select {
	case <-bad.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed for a launch that never ran")
	}
	if err := bad.Call(ctx, "echo", map[string]any{}, nil); !errors.Is(err, ErrExited) {
		t.Fatalf("Call on a launch that cannot start = %v, want ErrExited", err)
	}
	if bad.Pid() != 0 || bad.ExitErr() == nil {
		t.Fatalf("pid %d, exit error %v; want 0 and the start error", bad.Pid(), bad.ExitErr())
	}
	bad.Stop() // must not block or panic
}

// The interpreter's environment is the node's allowlisted part plus what
// the bridge sets: no secret of the node's passes (a cluster key, a
// client token), the session token arrives on a pipe, never in the
// environment or argv, and PATH still passes.
func TestInterpreterGetsNoNodeSecret(t *testing.T) {
	t.Setenv("SRDD_CLUSTER_KEY", "node-cluster-key-must-not-leak")
	t.Setenv("SRDD_TOKEN", "client-token-must-not-leak")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "cloud-secret-must-not-leak")
	t.Setenv("SPARK_AUTHENTICATE_SECRET", "spark-family-secret-must-not-leak")
	t.Setenv("SPARK_LOCAL_IP", "127.0.0.1")
	const token = "session-capability-0123456789"
	it := runningFake(t, "", Config{SessionToken: token, NodeURL: "http://127.0.0.1:1"})
	var res struct {
		Env   []string `msgpack:"env"`
		Args  []string `msgpack:"args"`
		Token string   `msgpack:"token"`
	}
	if err := it.Call(context.Background(), "environ", map[string]any{}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Token != token {
		t.Fatalf("token on the pipe = %q, want %q", res.Token, token)
	}
	all := strings.Join(res.Env, "\n") + "\n" + strings.Join(res.Args, " ")
	for _, secret := range []string{"node-cluster-key-must-not-leak", "client-token-must-not-leak", "cloud-secret-must-not-leak", "spark-family-secret-must-not-leak", token} {
		if strings.Contains(all, secret) {
			t.Fatalf("the interpreter's environment or argv holds %q:\n%s", secret, all)
		}
	}
	for _, want := range []string{"PATH=" + os.Getenv("PATH"), "SPARK_LOCAL_IP=127.0.0.1", "SRDD_NODE_URL=http://127.0.0.1:1", "PYTHONHASHSEED=0"} {
		if !slices.Contains(res.Env, want) {
			t.Fatalf("the interpreter's environment lacks %q:\n%s", want, strings.Join(res.Env, "\n"))
		}
	}
}

// PassEnv hands over exactly the named variables that are set.
func TestPassEnv(t *testing.T) {
	t.Setenv("SRDD_TEST_PASSED", "yes")
	t.Setenv("SRDD_TEST_KEPT", "no")
	got := PassEnv([]string{"SRDD_TEST_PASSED", "SRDD_TEST_UNSET_VARIABLE", "", "A=B"})
	if !slices.Equal(got, []string{"SRDD_TEST_PASSED=yes"}) {
		t.Fatalf("PassEnv = %q", got)
	}
}
