package redisapi

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/srdd/srdd/auth"
	"github.com/valyala/fasthttp"
)

// slowKeyAPI stands for a node whose owner of key "a" is slow: a read
// of r:a waits until release is closed. Every other key is missing, and
// every write succeeds.
type slowKeyAPI struct {
	reading chan struct{} // closed when the read of r:a has begun
	release chan struct{}
	once    sync.Once
}

func newSlowKeyAPI() *slowKeyAPI {
	return &slowKeyAPI{reading: make(chan struct{}), release: make(chan struct{})}
}

func (f *slowKeyAPI) Local(ctx *fasthttp.RequestCtx, _ *auth.Principal) {
	uri := string(ctx.RequestURI())
	switch {
	case ctx.IsGet() && strings.HasSuffix(uri, "/keys/a"):
		f.once.Do(func() { close(f.reading) })
		<-f.release
		fallthrough
	case ctx.IsGet():
		ctx.SetStatusCode(404)
		ctx.SetBodyString(`{"error":{"code":"key_not_found","message":"no such key"}}`)
	default:
		ctx.SetStatusCode(200)
		ctx.SetBodyString(`{}`)
	}
}

// conditionalSet sends SET key v NX on c and returns the reply's line, or
// "" if none came within wait.
func conditionalSet(t *testing.T, addr, key string, wait time.Duration) string {
	t.Helper()
	c, r := dial(t, addr)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, _ = io.WriteString(c, "SET "+key+" v NX\r\n")
	line, _ := r.ReadString('\n')
	return line
}

// slowSet sends SET r:a v NX, whose read of r:a api holds, and returns
// where its reply will come once api is released.
func slowSet(t *testing.T, addr string, api *slowKeyAPI) <-chan string {
	t.Helper()
	c, r := dial(t, addr)
	_, _ = io.WriteString(c, "SET r:a v NX\r\n")
	slow := make(chan string, 1)
	go func() {
		line, _ := r.ReadString('\n')
		slow <- line
	}()
	<-api.reading
	return slow
}

// TestConditionalSetLocksItsKeyOnly: a conditional SET whose call is
// slow (an owner that does not answer) does not hold up conditional
// SETs of other keys. With a fixed set of lock stripes, some key of a
// thousand shares the slow key's stripe and waits.
func TestConditionalSetLocksItsKeyOnly(t *testing.T) {
	api := newSlowKeyAPI()
	_, addr := serve(t, Config{API: api})
	slow := slowSet(t, addr, api)
	c, r := dial(t, addr)
	for i := range 1000 {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = fmt.Fprintf(c, "SET r:b%d v NX\r\n", i)
		if line, err := r.ReadString('\n'); line != "+OK\r\n" {
			t.Fatalf("SET r:b%d NX while a conditional SET of r:a waits for its owner: %q, %v", i, line, err)
		}
	}
	close(api.release)
	if line := <-slow; line != "+OK\r\n" {
		t.Fatalf("the slow SET r:a NX: %q", line)
	}
}

// TestConditionalSetWaitIsBounded: a conditional SET of a key another
// one holds waits condWait at most, then answers an error, having
// written nothing; once the first is done the key is free again.
func TestConditionalSetWaitIsBounded(t *testing.T) {
	t.Cleanup(func(d time.Duration) func() { return func() { condWait = d } }(condWait))
	condWait = 200 * time.Millisecond
	api := newSlowKeyAPI()
	s, addr := serve(t, Config{API: api})
	slow := slowSet(t, addr, api)
	began := time.Now()
	if line := conditionalSet(t, addr, "r:a", 5*time.Second); !strings.HasPrefix(line, "-ERR another conditional write") {
		t.Fatalf("a second SET r:a NX: %q", line)
	}
	if d := time.Since(began); d < condWait || d > 3*time.Second {
		t.Fatalf("the second SET r:a NX answered after %v, want about %v", d, condWait)
	}
	close(api.release)
	if line := <-slow; line != "+OK\r\n" {
		t.Fatalf("the slow SET r:a NX: %q", line)
	}
	s.keyLocks.mu.Lock()
	n := len(s.keyLocks.m)
	s.keyLocks.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d key locks left after every conditional write ended", n)
	}
}
