package loadgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// newHostClient is the HTTP client every HTTP target uses: fasthttp, one
// keep-alive connection per client, so the load generator spends as little
// CPU as it can (it shares the machine with the server).
func newHostClient(addr string, conns int) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr: addr, MaxConns: conns, ReadTimeout: 10 * time.Minute, WriteTimeout: time.Minute,
		MaxIdleConnDuration: time.Minute, NoDefaultUserAgentHeader: true,
		// Keys may hold an escaped "/" (%2F): send paths exactly as built.
		DisablePathNormalizing: true,
	}
}

// SRDD drives srdd's REST key routes on one shared RDD.
type SRDD struct {
	RDD    string
	hc     *fasthttp.HostClient
	prefix string
}

// NewSRDD targets GET/PUT /v1/rdds/{rdd}/keys/{key} on addr (host:port).
func NewSRDD(addr, rdd string, conns int) *SRDD {
	return &SRDD{RDD: rdd, hc: newHostClient(addr, conns), prefix: "http://" + addr + "/v1/rdds/" + url.PathEscape(rdd) + "/keys/"}
}

func (s *SRDD) Name() string { return "srdd" }

func (s *SRDD) Get(_ int, key string) error {
	return s.do(fasthttp.MethodGet, key, nil, fasthttp.StatusOK)
}

func (s *SRDD) Set(_ int, key string, value []byte) error {
	return s.do(fasthttp.MethodPut, key, value, fasthttp.StatusNoContent)
}

func (s *SRDD) do(method, key string, body []byte, want int) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(s.prefix + url.PathEscape(key))
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if err := s.hc.Do(req, resp); err != nil {
		return err
	}
	if st := resp.StatusCode(); st != want {
		if st == fasthttp.StatusNotFound && method == fasthttp.MethodGet {
			return ErrMissing
		}
		return fmt.Errorf("status %d: %.200s", st, resp.Body())
	}
	return nil
}

// GetMany reads keys with one POST /v1/rdds/{rdd}/get.
func (s *SRDD) GetMany(_ int, keys []string) error {
	body, _ := json.Marshal(map[string][]string{"keys": keys})
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(strings.TrimSuffix(s.prefix, "keys/") + "get")
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(body)
	if err := s.hc.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode(), resp.Body())
	}
	if bytes.Contains(resp.Body(), []byte(`"missing":["`)) {
		return ErrMissing
	}
	return nil
}

func (s *SRDD) Close() error { s.hc.CloseIdleConnections(); return nil }

// HTTPGet sends GET path for every op (a set too): the no-op route.
type HTTPGet struct {
	name string
	url  string
	hc   *fasthttp.HostClient
}

// NewHTTPGet targets GET http://addr+path.
func NewHTTPGet(name, addr, path string, conns int) *HTTPGet {
	return &HTTPGet{name: name, url: "http://" + addr + path, hc: newHostClient(addr, conns)}
}

func (h *HTTPGet) Name() string { return h.name }

func (h *HTTPGet) Get(int, string) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(h.url)
	if err := h.hc.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode())
	}
	return nil
}

func (h *HTTPGet) Set(c int, k string, _ []byte) error { return h.Get(c, k) }

func (h *HTTPGet) Close() error { h.hc.CloseIdleConnections(); return nil }

// Redis speaks RESP over one connection per client.
type Redis struct {
	addr  string
	mu    sync.Mutex
	conns map[int]*respConn
}

type respConn struct {
	c  net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
	vb []byte
}

// NewRedis targets a redis-server at addr.
func NewRedis(addr string) *Redis { return &Redis{addr: addr, conns: map[int]*respConn{}} }

func (r *Redis) Name() string { return "redis" }

func (r *Redis) conn(client int) (*respConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.conns[client]; ok {
		return c, nil
	}
	nc, err := net.Dial("tcp", r.addr)
	if err != nil {
		return nil, err
	}
	c := &respConn{c: nc, r: bufio.NewReader(nc), w: bufio.NewWriter(nc)}
	r.conns[client] = c
	return c, nil
}

// writeCommand writes one RESP array of bulk strings.
func writeCommand(w *bufio.Writer, args ...[]byte) error {
	w.WriteByte('*')
	w.WriteString(strconv.Itoa(len(args)))
	w.WriteString("\r\n")
	for _, a := range args {
		w.WriteByte('$')
		w.WriteString(strconv.Itoa(len(a)))
		w.WriteString("\r\n")
		w.Write(a)
		w.WriteString("\r\n")
	}
	return w.Flush()
}

// readReply reads one reply: a simple string, an error, an integer or a
// bulk string (nil bulk: ErrMissing). Bulk data is returned in buf.
func readReply(r *bufio.Reader, buf []byte) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("malformed reply %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+', ':':
		return append(buf[:0], body...), nil
	case '-':
		return nil, fmt.Errorf("redis: %s", body)
	case '$':
		n, err := strconv.Atoi(string(body))
		if err != nil {
			return nil, fmt.Errorf("malformed bulk length %q", body)
		}
		if n < 0 {
			return nil, ErrMissing
		}
		if cap(buf) < n+2 {
			buf = make([]byte, n+2)
		}
		buf = buf[:n+2]
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, fmt.Errorf("unexpected reply type %q", line[0])
}

func (r *Redis) Get(client int, key string) error {
	c, err := r.conn(client)
	if err != nil {
		return err
	}
	if err := writeCommand(c.w, []byte("GET"), []byte(key)); err != nil {
		return err
	}
	c.vb, err = readReply(c.r, c.vb)
	return err
}

func (r *Redis) Set(client int, key string, value []byte) error {
	c, err := r.conn(client)
	if err != nil {
		return err
	}
	if err := writeCommand(c.w, []byte("SET"), []byte(key), value); err != nil {
		return err
	}
	c.vb, err = readReply(c.r, c.vb)
	if err == nil && !bytes.Equal(c.vb, []byte("OK")) {
		return fmt.Errorf("SET answered %q", c.vb)
	}
	return err
}

// Load writes keys 0..n-1 with values of size bytes, pipelined.
func (r *Redis) Load(prefix string, n, size int) error {
	c, err := r.conn(-1)
	if err != nil {
		return err
	}
	const window = 512
	for i := 0; i < n; i += window {
		end := min(i+window, n)
		for k := i; k < end; k++ {
			c.w.WriteString("*3\r\n$3\r\nSET\r\n")
			key := KeyName(prefix, k)
			val := Value(size, k%valueVariants)
			fmt.Fprintf(c.w, "$%d\r\n%s\r\n$%d\r\n", len(key), key, len(val))
			c.w.Write(val)
			c.w.WriteString("\r\n")
		}
		if err := c.w.Flush(); err != nil {
			return err
		}
		for k := i; k < end; k++ {
			if c.vb, err = readReply(c.r, c.vb); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Redis) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, c := range r.conns {
		c.c.Close()
		delete(r.conns, k)
	}
	return nil
}

// Seed drives the seed article's ShareableRdd exactly as its SharedRdd
// wrapper does: each get or set is a statement whose code has the key
// pasted in ('%(rdd)s.get("%(key)s")'), submitted with POST, then polled
// with GET, without pause, until it is no longer running. (The benchmark's
// keys are plain ASCII, so pasting them is safe here; srdd itself never
// does this — docs/ARCHITECTURE.md invariant 1.)
type Seed struct {
	Session int64
	Var     string // the ShareableRdd's variable name in the session
	hc      *fasthttp.HostClient
	base    string
}

// NewSeed targets session's statements on addr.
func NewSeed(addr string, session int64, variable string, conns int) *Seed {
	return &Seed{Session: session, Var: variable, hc: newHostClient(addr, conns),
		base: fmt.Sprintf("http://%s/sessions/%d/statements", addr, session)}
}

func (s *Seed) Name() string { return "seed" }

func (s *Seed) Get(_ int, key string) error {
	out, err := s.Run(fmt.Sprintf(`%s.get("%s")`, s.Var, key))
	if err != nil {
		return err
	}
	if bytes.Equal(out, []byte("[]")) {
		return ErrMissing
	}
	return nil
}

func (s *Seed) Set(_ int, key string, value []byte) error {
	// The wrapper pastes the value between double quotes: send the JSON
	// string's content (the benchmark's values are plain ASCII strings).
	var str string
	if err := json.Unmarshal(value, &str); err != nil {
		str = string(value)
	}
	_, err := s.Run(fmt.Sprintf(`%s.set("%s", "%s")`, s.Var, key, str))
	return err
}

type statement struct {
	ID     int64  `json:"id"`
	State  string `json:"state"`
	Output *struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Evalue string          `json:"evalue"`
	} `json:"output"`
}

// Run submits code and polls until the statement is done; it returns the
// text/plain output.
func (s *Seed) Run(code string) ([]byte, error) {
	body, _ := json.Marshal(map[string]string{"code": code})
	var st statement
	if err := s.call(fasthttp.MethodPost, s.base, body, &st); err != nil {
		return nil, err
	}
	url := s.base + "/" + strconv.FormatInt(st.ID, 10)
	// The wrapper loops "while state == running"; srdd (like Livy) also
	// reports "waiting" before a statement starts, so both mean: poll again.
	for st.State == "running" || st.State == "waiting" {
		if err := s.call(fasthttp.MethodGet, url, nil, &st); err != nil {
			return nil, err
		}
	}
	if st.State != "available" || st.Output == nil || st.Output.Status != "ok" {
		msg := st.State
		if st.Output != nil {
			msg += ": " + st.Output.Evalue
		}
		return nil, fmt.Errorf("statement %d: %s", st.ID, msg)
	}
	var data map[string]json.RawMessage
	_ = json.Unmarshal(st.Output.Data, &data)
	var text string
	_ = json.Unmarshal(data["text/plain"], &text)
	return []byte(text), nil
}

func (s *Seed) call(method, url string, body []byte, out any) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(url)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if err := s.hc.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() >= 300 {
		return fmt.Errorf("%s %s: status %d: %.200s", method, url, resp.StatusCode(), resp.Body())
	}
	return json.Unmarshal(resp.Body(), out)
}

func (s *Seed) Close() error { s.hc.CloseIdleConnections(); return nil }
