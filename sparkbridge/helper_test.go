package sparkbridge

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// TestMain turns the test binary into a fake interpreter when
// GO_WANT_HELPER_PROCESS=1, so the protocol layer is tested against a real
// child process without Spark. Everything touching Spark uses the real
// Python interpreter in the system tests.
func TestMain(m *testing.M) {
	if os.Getenv("GO_WANT_HELPER_PROCESS") == "1" {
		fakeInterpreter(os.Getenv("HELPER_MODE"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fakeInterpreter(mode string) {
	fs := flag.NewFlagSet("fake", flag.ContinueOnError)
	sock := fs.String("socket", "", "")
	fs.String("m", "", "")
	fs.String("session-id", "", "")
	fs.String("master", "", "")
	fs.String("app-name", "", "")
	tokenFD := fs.Int("token-fd", 0, "")
	_ = fs.Parse(os.Args[1:])
	var token string
	if *tokenFD > 0 {
		b, _ := io.ReadAll(os.NewFile(uintptr(*tokenFD), "token"))
		token = string(b)
	}
	switch mode {
	case "exit":
		fmt.Fprintln(os.Stderr, "fake: exiting before handshake")
		os.Exit(3)
	case "silent":
		time.Sleep(time.Minute)
		return
	case "badversion":
		fmt.Printf("%s|99|unix|%s\n", HandshakeName, *sock)
		time.Sleep(time.Minute)
		return
	}
	ln, err := net.Listen("unix", *sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake: listen:", err)
		os.Exit(2)
	}
	fmt.Printf("%s|%d|unix|%s\n", HandshakeName, ProtocolVersion, *sock)
	fmt.Fprintln(os.Stderr, "fake: handshake sent")
	c, err := ln.Accept()
	if err != nil {
		os.Exit(2)
	}
	var wmu sync.Mutex
	bw := bufio.NewWriter(c)
	send := func(v any) {
		b, _ := msgpack.Marshal(v)
		wmu.Lock()
		_ = writeFrame(bw, b)
		_ = bw.Flush()
		wmu.Unlock()
	}
	if mode == "failspark" {
		send(map[string]any{"id": 0, "event": "failed", "data": map[string]any{"message": "no java"}})
	} else {
		send(map[string]any{"id": 0, "event": "ready", "data": map[string]any{"spark_version": "fake", "app_id": "app-1", "master": "local"}})
	}
	br := bufio.NewReader(c)
	for {
		frame, err := readFrame(br, nil)
		if err != nil {
			os.Exit(0) // parent went away
		}
		var req struct {
			ID   uint64         `msgpack:"id"`
			Op   string         `msgpack:"op"`
			Args map[string]any `msgpack:"args"`
		}
		if err := msgpack.Unmarshal(frame, &req); err != nil {
			os.Exit(4)
		}
		go func() {
			switch req.Op {
			case "sleep":
				ms, _ := req.Args["ms"].(int8)
				time.Sleep(time.Duration(ms) * 10 * time.Millisecond)
				send(map[string]any{"id": req.ID, "ok": true, "result": map[string]any{"slept": true}})
			case "echo":
				send(map[string]any{"id": req.ID, "ok": true, "result": req.Args})
			case "getenv":
				name, _ := req.Args["name"].(string)
				send(map[string]any{"id": req.ID, "ok": true, "result": map[string]any{"value": os.Getenv(name)}})
			case "environ":
				send(map[string]any{"id": req.ID, "ok": true, "result": map[string]any{"env": os.Environ(), "args": os.Args, "token": token}})
			case "crash":
				os.Exit(5)
			case "shutdown":
				send(map[string]any{"id": req.ID, "ok": true, "result": map[string]any{}})
				os.Exit(0)
			case "hang_shutdown":
				// ignores everything
			default:
				send(map[string]any{"id": req.ID, "ok": false, "error": map[string]any{"code": CodeInvalid, "message": "unknown op " + req.Op}})
			}
		}()
	}
}

// helperEnv is what makes the child the fake interpreter (the node's own
// environment reaches it only through the allowlist).
func helperEnv(mode string) []string {
	return []string{"GO_WANT_HELPER_PROCESS=1", "HELPER_MODE=" + mode}
}

func startFake(t *testing.T, mode string) (*Interpreter, error) {
	t.Helper()
	return startFakeWith(t, mode, Config{})
}

// runningFake is startFakeWith that fails the test on an error and stops
// the interpreter when the test ends.
func runningFake(t *testing.T, mode string, cfg Config) *Interpreter {
	t.Helper()
	it, err := startFakeWith(t, mode, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(it.Stop)
	return it
}

// startFakeWith starts the fake with cfg's DataRules and NodeURL.
func startFakeWith(t *testing.T, mode string, cfg Config) (*Interpreter, error) {
	t.Helper()
	t.Setenv(DataRulesEnv, "") // only Config may set it
	return Start(Config{
		Python: os.Args[0], PythonPath: t.TempDir(), SessionID: 7,
		StartTimeout: 3 * time.Second, StopTimeout: 500 * time.Millisecond,
		Logger: nil, DataRules: cfg.DataRules, NodeURL: cfg.NodeURL,
		SessionToken: cfg.SessionToken, Env: helperEnv(mode),
	})
}
