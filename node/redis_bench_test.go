package node

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkRedisGet is redis-benchmark's GET without pipelining, on the
// fake interpreter: 64 connections over real TCP, each sending one GET
// and reading its reply, beside the same read as a REST client's
// single-key GET (fasthttp, 64 connections). Profile it with
// -cpuprofile to see what the Redis port costs above REST's path.
func BenchmarkRedisGet(b *testing.B) {
	cfg := testConfig(b, b.TempDir())
	cfg.RedisAddr = "127.0.0.1:0"
	n, base := benchNode(b, cfg)
	if st, _, body := authDo("POST", base+"/v1/rdds", `{"name":"key","session":0,"mode":"memory"}`, ""); st != 201 {
		b.Fatalf("create: %d %s", st, body)
	}
	value := `"` + strings.Repeat("x", 3) + `"` // redis-benchmark's -d 3
	if st, _, body := authDo("PUT", base+"/v1/rdds/key/keys/k", value, ""); st != 204 {
		b.Fatalf("put: %d %s", st, body)
	}
	// 1,000 more keys for the pipelined run, as redis-benchmark's -r.
	var items strings.Builder
	items.WriteString(`{"items":{`)
	for i := range 1000 {
		if i > 0 {
			items.WriteByte(',')
		}
		fmt.Fprintf(&items, `"k%d":%s`, i, value)
	}
	items.WriteString(`}}`)
	if st, _, body := authDo("POST", base+"/v1/rdds/key/set", items.String(), ""); st != 200 {
		b.Fatalf("set: %d %s", st, body)
	}
	const clients = 64
	par := max(1, clients/runtime.GOMAXPROCS(0))

	b.Run("redis", func(b *testing.B) { getLoad(b, n.RedisAddr(), par, 1, 1) })
	b.Run("redis-P16", func(b *testing.B) { getLoad(b, n.RedisAddr(), par, 16, 1000) })
	b.Run("rest", func(b *testing.B) {
		c := &fasthttp.Client{MaxConnsPerHost: clients}
		b.SetParallelism(par)
		b.RunParallel(func(pb *testing.PB) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + n.HTTPAddr() + "/v1/rdds/key/keys/k")
			req.Header.SetHost("localhost")
			for pb.Next() {
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					panic(fmt.Sprintf("%v %d %s", err, resp.StatusCode(), resp.Body()))
				}
			}
		})
	})
}

// getLoad is redis-benchmark's GET at pipeline depth depth (-P) over
// keys keys of RDD key (key:k when 1, as redis-benchmark's default; else
// key:k0 ... and on): each connection sends depth GETs, then reads their
// replies; one op is one GET.
func getLoad(b *testing.B, addr string, par, depth, keys int) {
	b.SetParallelism(par)
	b.RunParallel(func(pb *testing.PB) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			panic(err)
		}
		defer nc.Close()
		r := bufio.NewReader(nc)
		var batch []byte
		for next, more := 0, true; more; {
			batch = batch[:0]
			sent := 0
			for ; sent < depth; sent++ {
				if more = pb.Next(); !more {
					break
				}
				k := "key:k"
				if keys > 1 {
					k += strconv.Itoa(next % keys)
					next += 7
				}
				batch = fmt.Appendf(batch, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(k), k)
			}
			if sent == 0 {
				break
			}
			if _, err := nc.Write(batch); err != nil {
				panic(err)
			}
			for range sent {
				if err := readBulk(r); err != nil {
					panic(err)
				}
			}
		}
	})
}

// readBulk reads one bulk string reply; an error reply is an error.
func readBulk(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if len(line) < 3 || line[0] != '$' {
		return fmt.Errorf("reply %q", line)
	}
	size, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || size < 0 {
		return fmt.Errorf("reply %q", line)
	}
	_, err = io.CopyN(io.Discard, r, int64(size)+2)
	return err
}

// benchNode starts a node with cfg (startNode) and its session 0, and
// waits until the session is idle. -> the node, its base URL.
func benchNode(b *testing.B, cfg Config) (*Node, string) {
	b.Helper()
	n, base := startNode(b, cfg)
	if err := createSessionAndWait(base, `{"kind":"pyspark"}`); err != nil {
		b.Fatal(err)
	}
	return n, base
}
