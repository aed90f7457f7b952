package loadgen

import (
	"bufio"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

func TestKeysAndValuesAreFixed(t *testing.T) {
	if k := KeyName("", 42); k != "key:00000042" {
		t.Fatalf("KeyName = %q", k)
	}
	for _, size := range []int{2, 3, 10, 100, 1000} {
		v := Value(size, 7)
		if len(v) != size || v[0] != '"' || v[len(v)-1] != '"' {
			t.Fatalf("Value(%d) = %q (len %d)", size, v, len(v))
		}
		if string(Value(size, 7)) != string(v) {
			t.Fatal("Value is not deterministic")
		}
	}
}

func TestZipfianIsSkewedAndSeeded(t *testing.T) {
	z := NewZipfian(10_000, 0.99)
	counts := map[int]int{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100_000; i++ {
		rank := z.Rank(r)
		if rank < 0 || rank >= 10_000 {
			t.Fatalf("rank %d out of range", rank)
		}
		counts[rank]++
	}
	if counts[0] < counts[100] || counts[0] < 5000 {
		t.Fatalf("rank 0 drawn %d times, rank 100 %d: not zipfian", counts[0], counts[100])
	}
	a := rand.New(rand.NewPCG(9, 9))
	b := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 1000; i++ {
		if x, y := z.Next(a), z.Next(b); x != y {
			t.Fatal("same seed, different keys")
		}
	}
}

func TestSequenceVisitsEveryKeyOnce(t *testing.T) {
	for _, n := range []int{1, 7, 1000, 1_000_003 * 2} {
		s := NewSequence(n, 0)
		if n > 10_000 {
			continue // only check the step is coprime
		}
		seen := make([]bool, n)
		for i := 0; i < n; i++ {
			k := s.Next(nil)
			if seen[k] {
				t.Fatalf("n=%d: key %d twice", n, k)
			}
			seen[k] = true
		}
	}
	s := NewSequence(2*1_000_003, 0)
	if gcd(s.step, s.n) != 1 {
		t.Fatalf("step %d not coprime with %d", s.step, s.n)
	}
}

func TestPercentilesAndCDF(t *testing.T) {
	var l Latencies
	for i := 1; i <= 1000; i++ {
		l = append(l, time.Duration(1001-i)*time.Millisecond)
	}
	s := l.Summarize()
	if s.P50 != 500 || s.P99 != 990 || s.P999 != 999 || s.Max != 1000 || s.Mean != 500.5 {
		t.Fatalf("summary = %+v", s)
	}
	cdf := l.CDF(50)
	if len(cdf) < 10 || cdf[len(cdf)-1].Fraction != 1 || cdf[len(cdf)-1].LatencyMs != 1000 {
		t.Fatalf("cdf = %v", cdf)
	}
	for i := 1; i < len(cdf); i++ {
		if cdf[i].Fraction < cdf[i-1].Fraction || cdf[i].LatencyMs < cdf[i-1].LatencyMs {
			t.Fatalf("cdf not monotonic at %d: %v", i, cdf)
		}
	}
	if (Latencies{}).Summarize() != (Summary{}) {
		t.Fatal("empty summary")
	}
}

// fakeTarget counts calls; every 10th get fails.
type fakeTarget struct {
	mu         sync.Mutex
	gets, sets int
	keys       map[string]bool
}

func (f *fakeTarget) Name() string { return "fake" }
func (f *fakeTarget) Get(_ int, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	f.keys[key] = true
	if f.gets%10 == 0 {
		return errors.New("boom")
	}
	return nil
}
func (f *fakeTarget) Set(_ int, key string, v []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets++
	if len(v) != 100 {
		return errors.New("bad value size")
	}
	return nil
}
func (f *fakeTarget) Close() error { return nil }

func TestRunCountsOpsAndErrors(t *testing.T) {
	f := &fakeTarget{keys: map[string]bool{}}
	res, err := Run(context.Background(), "x", Config{Keys: 500, Concurrency: 4, ReadRatio: 0.5, Ops: 2000, Seed: 3, Dist: "sequential"}, f)
	if err != nil {
		t.Fatal(err)
	}
	if f.gets+f.sets != 2000 || res.Ops+res.Errors != 2000 || res.Errors != int64(f.gets/10) {
		t.Fatalf("gets %d sets %d; result ops %d errors %d", f.gets, f.sets, res.Ops, res.Errors)
	}
	if res.Gets == 0 || res.Sets == 0 || res.FirstError == "" || res.OpsPerSec <= 0 || res.KeysUsed != 2000 {
		t.Fatalf("result = %+v", res)
	}
	if _, err := Run(context.Background(), "x", Config{Keys: 0, Concurrency: 1, Ops: 1}, f); err == nil {
		t.Fatal("zero keys accepted")
	}
	if _, err := Run(context.Background(), "x", Config{Keys: 5, Concurrency: 1, Ops: 1, Batch: 4}, f); err == nil {
		t.Fatal("batch on a target without GetMany accepted")
	}
}

// The HTTP targets against an in-memory fasthttp server.
func TestHTTPTargets(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	var mu sync.Mutex
	var paths []string
	go fasthttp.Serve(ln, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		paths = append(paths, string(ctx.Method())+" "+string(ctx.RequestURI()))
		mu.Unlock()
		switch {
		case string(ctx.Method()) == "PUT":
			ctx.SetStatusCode(204)
		case strings.HasSuffix(string(ctx.Path()), "/missing"):
			ctx.SetStatusCode(404)
		case strings.HasSuffix(string(ctx.Path()), "/get"):
			ctx.SetBodyString(`{"values":{},"missing":[]}`)
		}
	})
	s := NewSRDD("mem", "bench", 1)
	s.hc.Dial = func(string) (net.Conn, error) { return ln.Dial() }
	if err := s.Get(0, "a/b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(0, "k", []byte(`"v"`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(0, "missing"); !errors.Is(err, ErrMissing) {
		t.Fatalf("missing key: %v", err)
	}
	if err := s.GetMany(0, []string{"x", "y"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"GET /v1/rdds/bench/keys/a%2Fb", "PUT /v1/rdds/bench/keys/k", "GET /v1/rdds/bench/keys/missing", "POST /v1/rdds/bench/get"}
	if strings.Join(paths, "|") != strings.Join(want, "|") {
		t.Fatalf("requests = %q", paths)
	}
}

// The RESP client against a scripted fake server.
func TestRedisProtocol(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 10)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for _, reply := range []string{"+OK\r\n", "$5\r\nhello\r\n", "$-1\r\n", "-ERR nope\r\n"} {
			var cmd strings.Builder
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd.WriteString(line)
			var n int
			for i := 0; i < int(line[1]-'0')*2; i++ {
				l, _ := r.ReadString('\n')
				cmd.WriteString(l)
				n++
			}
			got <- cmd.String()
			c.Write([]byte(reply))
		}
	}()
	rd := NewRedis(ln.Addr().String())
	defer rd.Close()
	if err := rd.Set(0, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if first := <-got; first != "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n" {
		t.Fatalf("SET sent %q", first)
	}
	if err := rd.Get(0, "k"); err != nil {
		t.Fatal(err)
	}
	<-got
	if err := rd.Get(0, "k"); !errors.Is(err, ErrMissing) {
		t.Fatalf("nil bulk: %v", err)
	}
	<-got
	if err := rd.Get(0, "k"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("error reply: %v", err)
	}
}
