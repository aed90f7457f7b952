package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/internal/testutil"
)

// The Redis port (issue 26), with go-redis as the client, on the fast
// tier's fake interpreter.

// redisNode starts a node with a Redis port, one idle session and a
// shared RDD "states" in it; tweak, if set, changes the config first.
func redisNode(t *testing.T, tweak func(*Config)) (*Node, string) {
	t.Helper()
	c := testConfig(t, t.TempDir())
	c.RedisAddr = "127.0.0.1:0"
	if tweak != nil {
		tweak(&c)
	}
	return startNode(t, c)
}

// newStates creates session and RDD states as a REST client with token
// (none: "").
func newStates(t *testing.T, base, token string) { newStatesVia(t, http.DefaultClient, base, token) }

func newStatesVia(t *testing.T, hc *http.Client, base, token string) {
	t.Helper()
	st, _, b := authDo2(hc, "POST", base+"/sessions", `{"kind":"pyspark"}`, token)
	if st != 201 {
		t.Fatalf("create session: %d %s", st, b)
	}
	var s struct {
		ID int64 `json:"id"`
	}
	_ = json.Unmarshal(b, &s)
	deadline := time.Now().Add(4 * time.Minute)
	for {
		_, _, b := authDo2(hc, "GET", fmt.Sprintf("%s/sessions/%d/state", base, s.ID), "", token)
		if strings.Contains(string(b), `"idle"`) {
			break
		}
		if strings.Contains(string(b), `"error"`) || strings.Contains(string(b), `"dead"`) || time.Now().After(deadline) {
			t.Fatalf("session did not start: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, _, b := authDo2(hc, "POST", base+"/v1/rdds", fmt.Sprintf(`{"name":"states","session":%d,"mode":"memory"}`, s.ID), token); st != 201 {
		t.Fatalf("create rdd: %d %s", st, b)
	}
}

func redisClient(t *testing.T, addr string, proto int, opts func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: addr, Protocol: proto, MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
	if opts != nil {
		opts(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// wantErr fails unless err's text starts with prefix.
func wantErr(t *testing.T, what string, err error, prefix string) {
	t.Helper()
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("%s: error %v, want one starting %q", what, err, prefix)
	}
}

func TestRedisCommands(t *testing.T) {
	n, base := redisNode(t, nil)
	newStates(t, base, "")
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			rc := redisClient(t, n.RedisAddr(), proto, nil)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(rc.Ping(ctx).Err())
			// The README's seed flow: the same data over REST and Redis.
			must(rc.Set(ctx, "states:ak", "Alaska", 0).Err())
			do(t, "PUT", base+"/v1/rdds/states/keys/hi", `"Hawaii"`, 204)
			if v, err := rc.Get(ctx, "states:hi").Result(); err != nil || v != "Hawaii" {
				t.Fatalf("GET states:hi = %q, %v", v, err)
			}
			jsonEq(t, do(t, "GET", base+"/v1/rdds/states/keys/ak", "", 200), `{"key":"ak","value":"Alaska"}`)
			if _, err := rc.Get(ctx, "states:nope").Result(); !errors.Is(err, redis.Nil) {
				t.Fatalf("GET of a missing key: %v", err)
			}
			wantErr(t, "GET of an unknown RDD", rc.Get(ctx, "nope:x").Err(), "ERR no such shared RDD 'nope'")
			wantErr(t, "a key without an RDD", rc.Get(ctx, "plain").Err(), "ERR key 'plain' names no shared RDD")

			// Other JSON values read as their JSON text; JSON.SET/GET keep them.
			do(t, "PUT", base+"/v1/rdds/states/keys/n", `{"pop": 733391}`, 204)
			if v, _ := rc.Get(ctx, "states:n").Result(); !strings.Contains(v, `"pop"`) {
				t.Fatalf("GET of a JSON object = %q", v)
			}
			if v, _ := rc.Type(ctx, "states:n").Result(); v != "ReJSON-RL" {
				t.Fatalf("TYPE of a JSON object = %q", v)
			}
			if v, _ := rc.Type(ctx, "states:ak").Result(); v != "string" {
				t.Fatalf("TYPE of a string = %q", v)
			}
			if v, _ := rc.Type(ctx, "states:nope").Result(); v != "none" {
				t.Fatalf("TYPE of a missing key = %q", v)
			}
			must(rc.Do(ctx, "JSON.SET", "states:obj", "$", `{"a":[1,2]}`).Err())
			jsonEq(t, do(t, "GET", base+"/v1/rdds/states/keys/obj", "", 200), `{"key":"obj","value":{"a":[1,2]}}`)
			if v, _ := rc.Do(ctx, "JSON.GET", "states:obj", "$").Text(); v != `[{"a":[1,2]}]` {
				t.Fatalf("JSON.GET $ = %q", v)
			}
			if v, _ := rc.Do(ctx, "JSON.GET", "states:obj").Text(); v != `{"a":[1,2]}` {
				t.Fatalf("JSON.GET = %q", v)
			}
			wantErr(t, "JSON.SET of bad JSON", rc.Do(ctx, "JSON.SET", "states:obj", "$", `{"a":`).Err(), "ERR the value is not valid JSON")
			wantErr(t, "JSON.SET below the root", rc.Do(ctx, "JSON.SET", "states:obj", "$.a", `1`).Err(), "ERR srdd's JSON.SET takes the root path only")
			wantErr(t, "SET of invalid UTF-8", rc.Set(ctx, "states:bin", "\xff\xfe", 0).Err(), "ERR srdd stores SET values as JSON strings")
			do(t, "GET", base+"/v1/rdds/states/keys/bin", "", 404)

			// MGET, MSET, EXISTS, DEL, UNLINK, STRLEN.
			must(rc.MSet(ctx, "states:ca", "California", "states:ny", "New York").Err())
			if v, err := rc.MGet(ctx, "states:ca", "states:nope", "states:ny", "states:ca").Result(); err != nil ||
				fmt.Sprint(v) != "[California <nil> New York California]" {
				t.Fatalf("MGET = %v, %v", v, err)
			}
			wantErr(t, "MSET across RDDs", rc.MSet(ctx, "states:a", "1", "other:b", "2").Err(), "ERR MSET writes keys of one shared RDD")
			do(t, "GET", base+"/v1/rdds/states/keys/a", "", 404) // none of it was written
			if v, _ := rc.Exists(ctx, "states:ca", "states:ca", "states:nope").Result(); v != 2 {
				t.Fatalf("EXISTS = %d", v)
			}
			if v, _ := rc.StrLen(ctx, "states:ny").Result(); v != 8 {
				t.Fatalf("STRLEN = %d", v)
			}
			if v, _ := rc.Del(ctx, "states:ca", "states:nope").Result(); v != 1 {
				t.Fatalf("DEL = %d", v)
			}
			if v, _ := rc.Unlink(ctx, "states:ny").Result(); v != 1 {
				t.Fatalf("UNLINK = %d", v)
			}
			do(t, "GET", base+"/v1/rdds/states/keys/ca", "", 404)

			// SET's conditions.
			if ok, _ := rc.SetNX(ctx, "states:ak", "x", 0).Result(); ok {
				t.Fatal("SET NX over an existing key wrote it")
			}
			if ok, _ := rc.SetXX(ctx, "states:zz", "x", 0).Result(); ok {
				t.Fatal("SET XX of a missing key wrote it")
			}
			if ok, _ := rc.SetNX(ctx, "states:zz", "z", 0).Result(); !ok {
				t.Fatal("SET NX of a missing key did not write it")
			}
			if old, err := rc.SetArgs(ctx, "states:zz", "zz", redis.SetArgs{Get: true}).Result(); err != nil || old != "z" {
				t.Fatalf("SET GET = %q, %v", old, err)
			}
			wantErr(t, "SET EX", rc.Set(ctx, "states:t", "x", time.Minute).Err(), "ERR srdd has no expiry yet")
			must(rc.Del(ctx, "states:zz").Err())

			// A pipeline: writes, then reads that run as batched lookups.
			pipe := rc.Pipeline()
			for i := range 50 {
				pipe.Set(ctx, fmt.Sprintf("states:p%02d", i), fmt.Sprint(i*i), 0)
			}
			gets := make([]*redis.StringCmd, 50)
			for i := range gets {
				gets[i] = pipe.Get(ctx, fmt.Sprintf("states:p%02d", i))
			}
			missing := pipe.Get(ctx, "states:p-none")
			bad := pipe.Get(ctx, "nope:p")
			if _, err := pipe.Exec(ctx); err == nil {
				t.Fatal("a pipeline with failing commands reported no error")
			}
			for i, g := range gets {
				if g.Val() != fmt.Sprint(i*i) {
					t.Fatalf("pipelined GET %d = %q, %v", i, g.Val(), g.Err())
				}
			}
			if !errors.Is(missing.Err(), redis.Nil) {
				t.Fatalf("pipelined GET of a missing key: %v", missing.Err())
			}
			wantErr(t, "pipelined GET of an unknown RDD", bad.Err(), "ERR no such shared RDD")
			// Pipelined SETs of one RDD are one batched write, all or none;
			// one it refuses makes each run alone: only that one fails.
			pipe = rc.Pipeline()
			a1 := pipe.Set(ctx, "states:q1", "one", 0)
			long := pipe.Set(ctx, "states:"+strings.Repeat("k", 2000), "x", 0)
			a2 := pipe.Set(ctx, "states:q2", "two", 0)
			binary := pipe.Set(ctx, "states:q3", "\xff", 0)
			a4 := pipe.Set(ctx, "states:q4", "four", 0)
			_, _ = pipe.Exec(ctx)
			if a1.Err() != nil || a2.Err() != nil || a4.Err() != nil || long.Err() == nil || binary.Err() == nil {
				t.Fatalf("pipelined SETs: %v %v %v %v %v", a1.Err(), long.Err(), a2.Err(), binary.Err(), a4.Err())
			}
			if v, _ := rc.MGet(ctx, "states:q1", "states:q2", "states:q3", "states:q4").Result(); fmt.Sprint(v) != "[one two <nil> four]" {
				t.Fatalf("after pipelined SETs: %v", v)
			}
			must(rc.Del(ctx, "states:q1", "states:q2", "states:q4").Err())

			// SCAN and KEYS over one RDD's key order.
			var scanned []string
			cursor := uint64(0)
			for pages := 0; ; pages++ {
				keys, next, err := rc.Scan(ctx, cursor, "states:p*", 7).Result()
				if err != nil || pages > 20 {
					t.Fatalf("SCAN: %v after %d pages", err, pages)
				}
				scanned = append(scanned, keys...)
				if cursor = next; cursor == 0 {
					break
				}
			}
			if len(scanned) != 50 || !slices.IsSorted(scanned) || scanned[0] != "states:p00" {
				t.Fatalf("SCAN gave %d keys: %v", len(scanned), scanned)
			}
			if keys, err := rc.Keys(ctx, "states:p4*").Result(); err != nil || len(keys) != 10 {
				t.Fatalf("KEYS = %v, %v", keys, err)
			}
			wantErr(t, "SCAN without MATCH", rc.Scan(ctx, 0, "", 10).Err(), "ERR srdd's SCAN needs MATCH")
			wantErr(t, "KEYS *", rc.Keys(ctx, "*").Err(), "ERR")
			wantErr(t, "KEYS with a wildcard inside", rc.Keys(ctx, "states:p*0*").Err(), "ERR srdd scans one shared RDD's keys by prefix")
			wantErr(t, "SCAN of a forged cursor", rc.Scan(ctx, 12345, "states:p*", 7).Err(), "ERR invalid cursor")
			must(rc.Del(ctx, strings.Fields(strings.Join(scanned, " "))...).Err())

			// The connection's commands.
			if v, _ := rc.Echo(ctx, "hi there").Result(); v != "hi there" {
				t.Fatalf("ECHO = %q", v)
			}
			must(rc.Do(ctx, "SELECT", "0").Err())
			wantErr(t, "SELECT 1", rc.Do(ctx, "SELECT", "1").Err(), "ERR DB index is out of range")
			must(rc.Do(ctx, "CLIENT", "SETNAME", "tester").Err())
			if v, _ := rc.Do(ctx, "CLIENT", "GETNAME").Text(); v != "tester" {
				t.Fatalf("CLIENT GETNAME = %q", v)
			}
			if v, _ := rc.Do(ctx, "CLIENT", "INFO").Text(); !strings.Contains(v, "name=tester") || !strings.Contains(v, fmt.Sprintf("resp=%d", proto)) {
				t.Fatalf("CLIENT INFO = %q", v)
			}
			if v, _ := rc.DBSize(ctx).Result(); v != 4 { // ak, hi, n, obj
				t.Fatalf("DBSIZE = %d", v)
			}
			if v, _ := rc.Info(ctx, "keyspace").Result(); !strings.Contains(v, "states:keys=4") {
				t.Fatalf("INFO keyspace = %q", v)
			}
			if v, err := rc.ConfigGet(ctx, "save").Result(); err != nil || len(v) != 0 {
				t.Fatalf("CONFIG GET = %v, %v", v, err)
			}
			wantErr(t, "CONFIG SET", rc.ConfigSet(ctx, "save", "").Err(), "ERR srdd is configured by its flags")
			if v, err := rc.Do(ctx, "COMMAND", "COUNT").Int(); err != nil || v < 20 {
				t.Fatalf("COMMAND COUNT = %d, %v", v, err)
			}
			wantErr(t, "an unknown command", rc.Do(ctx, "FLUSHALL").Err(), "ERR unknown command 'FLUSHALL'")
			// Per-command metrics, and the REST route each data command rides.
			m := string(do(t, "GET", base+"/metrics", "", 200))
			for _, want := range []string{`srdd_redis_command_duration_seconds_count{command="set",result="ok"}`,
				`srdd_redis_command_duration_seconds_count{command="get",result="error"}`,
				`route="POST /v1/rdds/{name}/get"`} {
				if !strings.Contains(m, want) {
					t.Fatalf("/metrics has no %s", want)
				}
			}
		})
	}
}

// TestRedisHostileKeys: keys REST clients must percent-encode round-trip
// through the Redis port, and are the same keys over REST.
func TestRedisHostileKeys(t *testing.T) {
	n, base := redisNode(t, nil)
	newStates(t, base, "")
	ctx := context.Background()
	rc := redisClient(t, n.RedisAddr(), 3, nil)
	for _, k := range []string{"a b", "a/b", "..", "%2F", "a:b:c", "\"quote'", "ключ", "x\r\ny", "?q=1&r", "#frag", `\`, "tab\there", ".", "./k", "a//b", "a/../../sessions", "%2e%2e"} {
		if err := rc.Set(ctx, "states:"+k, "v:"+k, 0).Err(); err != nil {
			t.Fatalf("SET %q: %v", k, err)
		}
		if v, err := rc.Get(ctx, "states:"+k).Result(); err != nil || v != "v:"+k {
			t.Fatalf("GET %q = %q, %v", k, v, err)
		}
		b := do(t, "GET", base+"/v1/rdds/states/keys/"+url.PathEscape(k), "", 200)
		var got struct{ Key, Value string }
		if err := json.Unmarshal(b, &got); err != nil || got.Key != k || got.Value != "v:"+k {
			t.Fatalf("REST GET %q = %s", k, b)
		}
	}
	// Hostile RDD names stay names: no path of another route is reached.
	for _, name := range []string{".", "..", "a/b", "%2e%2e", "x?y", "#", "..%2F..%2Fv1%2Fcluster", "sessions"} {
		wantErr(t, "SET of RDD "+name, rc.Set(ctx, name+":k", "v", 0).Err(), "ERR no such shared RDD '"+name+"'")
		wantErr(t, "GET of RDD "+name, rc.Get(ctx, name+":k").Err(), "ERR no such shared RDD '"+name+"'")
	}
	// The empty key has no path of its own: refused as the store refuses it.
	wantErr(t, "GET of the empty key", rc.Get(ctx, "states:").Err(), "ERR invalid request: key must not be empty")
}

// rawRedis sends raw bytes to the Redis port and returns what comes
// back until the node closes the connection.
func rawRedis(t *testing.T, addr, send string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, send); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the node did not close the connection: %v (read %q)", err, b)
	}
	return string(b)
}

// TestRedisMalformedFrames: a malformed frame closes that connection
// only, after the replies to the commands before it and an error.
func TestRedisMalformedFrames(t *testing.T) {
	n, base := redisNode(t, nil)
	newStates(t, base, "")
	ctx := context.Background()
	good := redisClient(t, n.RedisAddr(), 3, nil)
	if err := good.Set(ctx, "states:ak", "Alaska", 0).Err(); err != nil {
		t.Fatal(err)
	}
	f := func(send, want string) {
		t.Helper()
		got := rawRedis(t, n.RedisAddr(), send)
		if !strings.HasPrefix(got, want) || strings.Count(got, "\r\n") != strings.Count(want, "\r\n")+1 {
			t.Fatalf("%q: got %q, want %q and one error", send, got, want)
		}
		if v, err := good.Get(ctx, "states:ak").Result(); err != nil || v != "Alaska" {
			t.Fatalf("another connection after %q: %q, %v", send, v, err)
		}
	}
	f("*2\r\n$3\r\nGET\r\n$9\r\nstates:ak\r\n*1\r\n$x\r\n", "$6\r\nAlaska\r\n-ERR protocol error")
	f("*1\r\n$99999999999\r\n", "-ERR protocol error")
	// A bulk string over the value limit is refused from its header:
	// nothing of its body is sent.
	f("*3\r\n$3\r\nSET\r\n$9\r\nstates:ak\r\n$2000000\r\n", "-ERR protocol error: bulk length 2000000 over the limit")
	f("*99999999\r\n", "-ERR protocol error: array length")
	f("*1\r\n*1\r\n", "-ERR protocol error: expected '$'")
	f("PING\r\n\xff*\r\n*2\r\n$3\r\nGET\r\n$9\r\nstates:ak\r\n*2\r\n:1\r\n",
		"+PONG\r\n-ERR unknown command '\ufffd*', with args beginning with: \r\n$6\r\nAlaska\r\n-ERR protocol error: expected '$'")
	// An HTTP request to the Redis port is closed at once (a web page's
	// cross-protocol attack), as Redis does.
	if got := rawRedis(t, n.RedisAddr(), "POST / HTTP/1.1\r\nHost: localhost\r\n\r\n*1\r\n$4\r\nPING\r\n"); got != "" {
		t.Fatalf("HTTP to the Redis port answered %q", got)
	}
	// QUIT answers, then closes.
	if got := rawRedis(t, n.RedisAddr(), "PING\r\nQUIT\r\nPING\r\n"); got != "+PONG\r\n+OK\r\n" {
		t.Fatalf("QUIT: %q", got)
	}
	if v, err := good.Get(ctx, "states:ak").Result(); err != nil || v != "Alaska" {
		t.Fatalf("after the malformed frames: %q, %v", v, err)
	}
}

// TestRedisProtectedMode: without a users file the Redis port binds
// loopback only, and --redis-tls needs a certificate.
func TestRedisProtectedMode(t *testing.T) {
	c := testConfig(t, t.TempDir())
	c.RedisAddr = "0.0.0.0:0"
	if _, err := Start(c); !errors.Is(err, ErrProtectedMode) {
		t.Fatalf("a non-loopback Redis port without --auth-file: %v", err)
	}
	c.RedisAddr, c.RedisTLS = "127.0.0.1:0", true
	if _, err := Start(c); err == nil || !strings.Contains(err.Error(), "--redis-tls needs --tls-cert") {
		t.Fatalf("--redis-tls without a certificate: %v", err)
	}
}

// redisUsers writes a users file: ana reads and writes states*, bob only
// reads them, cody (a password) reads and writes everything.
func redisUsers(t *testing.T) (path string, tokens map[string]string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "users.json")
	tokens = testutil.WriteUsers(t, path, map[string][]string{
		"ana": {"code", "create:states*", "read:states*", "write:states*"},
		"bob": {"read:states*"},
	}, func(f *auth.File) {
		if err := f.AddUser("cody", []string{"read:*", "write:*"}, "", "cody-pw"); err != nil {
			t.Fatal(err)
		}
	})
	return path, tokens
}

// TestRedisAuth: AUTH with a token or a user and password, NOAUTH before
// it, WRONGPASS for bad credentials, NOPERM where the users file's rules
// refuse the command on the RDD.
func TestRedisAuth(t *testing.T) {
	users, tokens := redisUsers(t)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "node.log")) // safe for concurrent writes
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	n, base := redisNode(t, func(c *Config) {
		c.AuthFile = users
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "srdd", Level: hclog.Info, Output: logFile})
	})
	newStates(t, base, tokens["ana"])
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		anon := redisClient(t, n.RedisAddr(), proto, nil)
		wantErr(t, "GET before AUTH", anon.Get(ctx, "states:ak").Err(), "NOAUTH")
		wantErr(t, "PING before AUTH", anon.Ping(ctx).Err(), "NOAUTH")
		wrong := redisClient(t, n.RedisAddr(), proto, func(o *redis.Options) { o.Password = "not-a-token" })
		wantErr(t, "a wrong token", wrong.Ping(ctx).Err(), "WRONGPASS")
		wrongPw := redisClient(t, n.RedisAddr(), proto, func(o *redis.Options) { o.Username, o.Password = "cody", "nope" })
		wantErr(t, "a wrong password", wrongPw.Ping(ctx).Err(), "WRONGPASS")

		ana := redisClient(t, n.RedisAddr(), proto, func(o *redis.Options) { o.Password = tokens["ana"] })
		if err := ana.Set(ctx, "states:ak", "Alaska", 0).Err(); err != nil {
			t.Fatalf("ana's SET: %v", err)
		}
		bob := redisClient(t, n.RedisAddr(), proto, func(o *redis.Options) { o.Username, o.Password = "default", tokens["bob"] })
		if v, err := bob.Get(ctx, "states:ak").Result(); err != nil || v != "Alaska" {
			t.Fatalf("bob's GET: %q, %v", v, err)
		}
		wantErr(t, "bob's SET", bob.Set(ctx, "states:ak", "x", 0).Err(), "NOPERM")
		wantErr(t, "bob's DEL", bob.Del(ctx, "states:ak").Err(), "NOPERM")
		wantErr(t, "bob's MSET", bob.MSet(ctx, "states:a", "1").Err(), "NOPERM")
		pipe := bob.Pipeline()
		g1, g2 := pipe.Get(ctx, "states:ak"), pipe.Get(ctx, "states:ak")
		_, _ = pipe.Exec(ctx)
		if g1.Val() != "Alaska" || g2.Val() != "Alaska" {
			t.Fatalf("bob's pipelined GETs: %v %v", g1, g2)
		}
		cody := redisClient(t, n.RedisAddr(), proto, func(o *redis.Options) { o.Username, o.Password = "cody", "cody-pw" })
		if v, err := cody.Get(ctx, "states:ak").Result(); err != nil || v != "Alaska" {
			t.Fatalf("cody's GET: %q, %v", v, err)
		}
		// AUTH by hand; RESET logs out.
		c := redisClient(t, n.RedisAddr(), proto, nil)
		conn := c.Conn()
		wantErr(t, "AUTH with a bad token", conn.Do(ctx, "AUTH", "bad").Err(), "WRONGPASS")
		if err := conn.Do(ctx, "AUTH", tokens["bob"]).Err(); err != nil {
			t.Fatal(err)
		}
		if err := conn.Get(ctx, "states:ak").Err(); err != nil {
			t.Fatal(err)
		}
		if err := conn.Do(ctx, "RESET").Err(); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "GET after RESET", conn.Get(ctx, "states:ak").Err(), "NOAUTH")
		_ = conn.Close()
	}
	// Before AUTH, a big frame is refused from its header.
	if got := rawRedis(t, n.RedisAddr(), "*3\r\n$3\r\nSET\r\n$9\r\nstates:ak\r\n$100000\r\n"); !strings.HasPrefix(got, "-ERR protocol error: bulk length 100000 over") {
		t.Fatalf("a big frame before AUTH: %q", got)
	}
	// A reload of the users file (SIGHUP) applies to open connections:
	// bob, removed, is logged out before his next command.
	bob := redisClient(t, n.RedisAddr(), 3, func(o *redis.Options) { o.Password, o.PoolSize = tokens["bob"], 1 })
	if err := bob.Get(ctx, "states:ak").Err(); err != nil {
		t.Fatal(err)
	}
	f, err := auth.ReadFile(users)
	if err != nil {
		t.Fatal(err)
	}
	if !f.RemoveUser("bob") {
		t.Fatal("no bob in the users file")
	}
	if err := auth.WriteFile(users, f); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "bob's GET after his removal", bob.Get(ctx, "states:ak").Err(), "NOAUTH")
	// Mutating commands are in the audit log, with the caller, as the
	// REST call they are.
	audit, _ := os.ReadFile(logFile.Name())
	if got := string(audit); !strings.Contains(got, "principal=ana") || !strings.Contains(got, `route="POST /v1/rdds/{name}/set"`) {
		t.Fatalf("no audit line of ana's SET:\n%s", got)
	}
}

// TestRedisForwarded: any node's Redis port answers for any RDD: calls
// through the node that does not hold it are forwarded to the owner with
// the caller (vouched for over the peer channel), whose rules apply.
func TestRedisForwarded(t *testing.T) {
	users, tokens := redisUsers(t)
	a := &member{id: "n1", http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: t.TempDir()}
	b := &member{id: "n2", http: testutil.FreeAddr(t), raft: testutil.FreeAddr(t), dir: t.TempDir()}
	for _, m := range []*member{a, b} {
		var join []string
		if m == b {
			join = []string{a.http}
		}
		c := m.cfg(t, join)
		c.AuthFile, c.RedisAddr = users, "127.0.0.1:0"
		n, err := Start(c)
		if err != nil {
			t.Fatalf("start %s: %v", m.id, err)
		}
		m.n = n
		t.Cleanup(n.Close)
	}
	waitMembers(t, []*member{a, b}, 2)
	newStates(t, a.base(), tokens["ana"])
	_, _, body := authDo("GET", a.base()+"/v1/rdds/states", "", "Bearer "+tokens["ana"])
	var info struct{ Node string }
	if err := json.Unmarshal(body, &info); err != nil || info.Node == "" {
		t.Fatalf("describe states: %s", body)
	}
	other := a
	if info.Node == a.id {
		other = b
	}
	ctx := context.Background()
	ana := redisClient(t, other.n.RedisAddr(), 3, func(o *redis.Options) { o.Password = tokens["ana"] })
	if err := ana.Set(ctx, "states:ak", "Alaska", 0).Err(); err != nil {
		t.Fatalf("SET through %s: %v", other.id, err)
	}
	if err := ana.MSet(ctx, "states:hi", "Hawaii", "states:ca", "California").Err(); err != nil {
		t.Fatalf("MSET through %s: %v", other.id, err)
	}
	if v, err := ana.MGet(ctx, "states:ak", "states:hi", "states:ca").Result(); err != nil || fmt.Sprint(v) != "[Alaska Hawaii California]" {
		t.Fatalf("MGET through %s: %v, %v", other.id, v, err)
	}
	if keys, _, err := ana.Scan(ctx, 0, "states:*", 100).Result(); err != nil || len(keys) != 3 {
		t.Fatalf("SCAN through %s: %v, %v", other.id, keys, err)
	}
	if n := forwardedCalls(t, other.n); n < 4 {
		t.Fatalf("%s forwarded %d calls, want the 4 above", other.id, n)
	}
	// The owner's own port, and REST, see the same data.
	owner := redisClient(t, map[bool]*member{true: a, false: b}[other == b].n.RedisAddr(), 2, func(o *redis.Options) { o.Password = tokens["ana"] })
	if v, err := owner.Get(ctx, "states:ca").Result(); err != nil || v != "California" {
		t.Fatalf("GET on the owner: %q, %v", v, err)
	}
	if st, _, b := authDo("GET", other.base()+"/v1/rdds/states/keys/hi", "", "Bearer "+tokens["ana"]); st != 200 || !strings.Contains(string(b), "Hawaii") {
		t.Fatalf("REST GET: %d %s", st, b)
	}
	bob := redisClient(t, other.n.RedisAddr(), 3, func(o *redis.Options) { o.Password = tokens["bob"] })
	if v, err := bob.Get(ctx, "states:ak").Result(); err != nil || v != "Alaska" {
		t.Fatalf("bob's GET through %s: %q, %v", other.id, v, err)
	}
	wantErr(t, "bob's SET through "+other.id, bob.Set(ctx, "states:ak", "x", 0).Err(), "NOPERM")
	if v, err := bob.DBSize(ctx).Result(); err != nil || v != 3 {
		t.Fatalf("DBSIZE through %s: %d, %v", other.id, v, err)
	}
	t.Run("redis-cli", func(t *testing.T) { redisCLIFlow(t, other.n.RedisAddr(), tokens) })
}

// redisCLI finds Debian's redis-cli (make check-redis installs it).
func redisCLI(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("no redis-cli: `make check-redis` installs Debian's (apt-get install redis-tools)")
	}
	return p
}

// redisCLIFlow runs Debian's redis-cli, unchanged, against addr (a node
// that does not hold RDD states): the seed flow, a batch, INFO, SCAN,
// and auth failures.
func redisCLIFlow(t *testing.T, addr string, tokens map[string]string) {
	cli := redisCLI(t)
	host, port, _ := net.SplitHostPort(addr)
	run := func(token string, args ...string) string {
		t.Helper()
		a := []string{"-h", host, "-p", port}
		if token != "" {
			a = append(a, "--no-auth-warning", "-a", token)
		}
		out, err := exec.Command(cli, append(a, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	ana := tokens["ana"]
	f := func(token string, args []string, want string) {
		t.Helper()
		if got := run(token, args...); got != want {
			t.Fatalf("redis-cli %v = %q, want %q", args, got, want)
		}
	}
	f(ana, []string{"SET", "states:tx", "Texas"}, "OK")
	f(ana, []string{"GET", "states:tx"}, "Texas")
	f(ana, []string{"MSET", "states:wa", "Washington", "states:or", "Oregon"}, "OK")
	f(ana, []string{"MGET", "states:wa", "states:none", "states:or"}, "Washington\n\nOregon")
	f(ana, []string{"--scan", "--pattern", "states:*"}, "states:ak\nstates:ca\nstates:hi\nstates:or\nstates:tx\nstates:wa")
	if got := run(ana, "INFO", "keyspace"); !strings.Contains(got, "states:keys=6") {
		t.Fatalf("redis-cli INFO keyspace = %q", got)
	}
	f(ana, []string{"DBSIZE"}, "6")
	f(ana, []string{"GET", "states2:x"}, "ERR no such shared RDD 'states2'")
	f("", []string{"GET", "states:tx"}, "NOAUTH Authentication required.")
	f("wrong", []string{"GET", "states:tx"}, "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\nNOAUTH Authentication required.")
	if got := run(tokens["bob"], "SET", "states:tx", "x"); !strings.HasPrefix(got, "NOPERM") {
		t.Fatalf("bob's redis-cli SET = %q", got)
	}
}

// forwardedCalls is how many API calls n forwarded to another node.
func forwardedCalls(t *testing.T, n *Node) uint64 {
	t.Helper()
	mfs, err := n.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, mf := range mfs {
		if mf.GetName() != "srdd_http_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == "forwarded" {
					total += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return total
}

// TestRedisTLS: with --tls-cert the Redis port speaks TLS only; a token
// or a client certificate whose CN names a user logs in.
func TestRedisTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	caFile := writeFile(t, filepath.Join(dir, "ca.pem"), ca.pem)
	c1, k1 := ca.issue(t, "127.0.0.1", 10, true)
	certFile, keyFile := writeFile(t, filepath.Join(dir, "cert.pem"), c1), writeFile(t, filepath.Join(dir, "key.pem"), k1)
	users, tokens := redisUsers(t)
	n, _ := redisNode(t, func(c *Config) {
		c.AuthFile, c.TLSCert, c.TLSKey, c.TLSClientCA, c.TLSCA, c.RedisTLS = users, certFile, keyFile, caFile, caFile, true
	})
	base := "https://" + n.HTTPAddr()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	newStatesVia(t, hc, base, tokens["ana"])
	ctx := context.Background()

	plain := redisClient(t, n.RedisAddr(), 3, func(o *redis.Options) { o.Password = tokens["ana"] })
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Fatal("a plaintext client was answered on the TLS Redis port")
	}
	withTLS := func(certs ...tls.Certificate) func(*redis.Options) {
		return func(o *redis.Options) { o.TLSConfig = &tls.Config{RootCAs: pool, Certificates: certs} }
	}
	ana := redisClient(t, n.RedisAddr(), 3, func(o *redis.Options) { withTLS()(o); o.Password = tokens["ana"] })
	if err := ana.Set(ctx, "states:ak", "Alaska", 0).Err(); err != nil {
		t.Fatalf("SET over TLS: %v", err)
	}
	cp, kp := ca.issue(t, "bob", 11, false)
	bobCert, err := tls.X509KeyPair(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	bob := redisClient(t, n.RedisAddr(), 2, withTLS(bobCert))
	if v, err := bob.Get(ctx, "states:ak").Result(); err != nil || v != "Alaska" {
		t.Fatalf("GET with bob's client certificate: %q, %v", v, err)
	}
	wantErr(t, "bob's SET", bob.Set(ctx, "states:ak", "x", 0).Err(), "NOPERM")
	cp, kp = ca.issue(t, "nobody", 12, false)
	nobodyCert, _ := tls.X509KeyPair(cp, kp)
	nobody := redisClient(t, n.RedisAddr(), 2, withTLS(nobodyCert))
	wantErr(t, "a certificate of no user", nobody.Get(ctx, "states:ak").Err(), "NOAUTH")
}
