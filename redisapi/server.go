package redisapi

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/internal/defaults"
	"github.com/srdd/srdd/kvstore"
	"github.com/valyala/fasthttp"
)

// API is what the Redis port needs of the node's REST front end
// (httpapi.Server): it serves a request built in process, as made by p.
type API interface {
	Local(ctx *fasthttp.RequestCtx, p *auth.Principal)
}

// Config wires the Redis port to the node. Zero values mean "default".
type Config struct {
	API API
	// Auth, if set, is the users file: a connection must AUTH (or HELLO
	// AUTH, or present a client certificate) before any other command.
	// Nil: every command is allowed (the node then binds loopback only).
	Auth *auth.Authenticator
	// TLS, if set, serves TLS (the node's certificate and client CA).
	TLS *tls.Config
	// Limits are the node's data limits: a bulk string over
	// MaxValueBytes, or a command of more than 2*MaxBatch arguments, is
	// refused from its header.
	Limits kvstore.Limits
	// IdleTimeout closes a connection that sends nothing for this long.
	IdleTimeout time.Duration
	// MaxConns caps open connections; one over it is refused.
	MaxConns int
	// MaxCommandBytes bounds the arguments of one command (the REST
	// body limit, which the command becomes).
	MaxCommandBytes int
	NodeID, Version string
	Registry        *prometheus.Registry // nil: metrics are not exported
	Logger          hclog.Logger
}

// Defaults.
const (
	DefaultIdleTimeout     = 5 * time.Minute
	DefaultMaxConns        = 4096
	DefaultMaxCommandBytes = 4 << 20
	// maxPipeline bounds the commands (and pipelineBytes their bytes)
	// read from one burst of a pipelining client before they run.
	maxPipeline   = 1024
	pipelineBytes = 4 << 20
	// argOverhead is what an argument costs beyond its bytes (its slice
	// header and allocation), counted against pipelineBytes so a burst of
	// empty arguments is bounded too.
	argOverhead = 32
	// Before AUTH, on a node with auth, a command is small (as Redis
	// bounds unauthenticated clients).
	preAuthArgs  = 16
	preAuthBytes = 16 << 10
)

// Server is the Redis port of one node.
type Server struct {
	cfg      Config
	limits   Limits // of an authenticated connection
	audit    hclog.Logger
	metrics  *redisMetrics
	cursors  cursorTable
	keyLocks keyLocks // conditional SETs of this node (set.go)

	mu     sync.Mutex
	ln     net.Listener
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
	nextID atomic.Int64
	nconns atomic.Int64
}

// New builds the server and registers its metrics.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	dl := kvstore.DefaultLimits()
	defaults.Set(&cfg.Limits.MaxValueBytes, dl.MaxValueBytes)
	defaults.Set(&cfg.Limits.MaxBatch, dl.MaxBatch)
	defaults.Set(&cfg.Limits.MaxKeyBytes, dl.MaxKeyBytes)
	defaults.Set(&cfg.IdleTimeout, DefaultIdleTimeout)
	defaults.Set(&cfg.MaxConns, DefaultMaxConns)
	defaults.Set(&cfg.MaxCommandBytes, DefaultMaxCommandBytes)
	s := &Server{
		cfg: cfg,
		limits: Limits{
			// A value's bytes become a JSON string at most a few bytes
			// longer (quotes, escapes): the store refuses what is over.
			MaxBulk:         cfg.Limits.MaxValueBytes,
			MaxArray:        2*cfg.Limits.MaxBatch + 8,
			MaxDepth:        1,
			MaxInline:       64 << 10,
			MaxCommandBytes: cfg.MaxCommandBytes,
		},
		audit:   cfg.Logger.Named("audit"),
		metrics: newRedisMetrics(cfg.Registry),
		conns:   map[*conn]struct{}{},
	}
	s.cursors.init()
	return s
}

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ln.Close()
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		if s.nconns.Add(1) > int64(s.cfg.MaxConns) {
			s.nconns.Add(-1)
			// Off the accept loop and under a deadline both ways: on a
			// TLS connection the write first runs the handshake, which
			// reads, and a silent client would hold the loop.
			go func() {
				_ = nc.SetDeadline(time.Now().Add(time.Second))
				_, _ = io.WriteString(nc, "-ERR max number of clients reached\r\n")
				_ = nc.Close()
			}()
			continue
		}
		c := s.newConn(nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			s.nconns.Add(-1)
			_ = nc.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// writeTimeout bounds each write of replies to a connection (a
// variable for tests).
var writeTimeout = time.Minute

// closeWait bounds how long Close waits for connections to end: one
// blocked in a call to another node ends when that call does.
const closeWait = 10 * time.Second

// Close stops accepting, closes every connection and waits for their
// goroutines (up to closeWait). Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeWait):
		s.cfg.Logger.Warn("redis port closed with commands still running", "after", closeWait)
	}
	return err
}

// conn is one client connection; its goroutine alone touches it.
type conn struct {
	s    *Server
	nc   net.Conn
	id   int64
	r    *Reader
	w    *Writer
	name string
	lib  [2]string // CLIENT SETINFO LIB-NAME, LIB-VER

	// The caller: with auth, nil until AUTH (or a client certificate).
	authed    bool
	principal *auth.Principal
	cred      credential

	rc fasthttp.RequestCtx // the in-process REST call (rest.go), reused
}

// credential is what a connection authenticated with, kept so that a
// reload of the users file applies to open connections too.
type credential struct {
	token, user, password, certName string
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, id: s.nextID.Add(1)}
	c.r = NewReader(bufio.NewReaderSize(nc, s.limits.MaxInline+2), s.limits)
	c.w = NewWriter(bufio.NewWriterSize(deadlineWriter{nc}, 32<<10))
	c.rc.Init(&fasthttp.Request{}, nc.RemoteAddr(), nil)
	c.authed = s.cfg.Auth == nil
	if !c.authed {
		c.r.SetLimits(s.preAuthLimits())
	}
	return c
}

func (s *Server) preAuthLimits() Limits {
	l := s.limits
	l.MaxArray, l.MaxBulk, l.MaxCommandBytes, l.MaxInline = preAuthArgs, preAuthBytes, preAuthBytes, preAuthBytes
	return l
}

func (s *Server) serveConn(c *conn) {
	s.metrics.conns.Inc()
	defer func() {
		if r := recover(); r != nil { // a bug must not take the node down
			s.cfg.Logger.Error("redis connection panic", "panic", r, "stack", string(debug.Stack()))
		}
		_ = c.nc.Close()
		s.metrics.conns.Dec()
		s.nconns.Add(-1)
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	if tc, ok := c.nc.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			s.cfg.Logger.Debug("redis TLS handshake failed", "remote", c.nc.RemoteAddr().String(), "error", err)
			return
		}
		_ = tc.SetDeadline(time.Time{})
		c.certLogin(tc.ConnectionState())
	}
	batch := make([][][]byte, 0, 16)
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		batch = batch[:0]
		var readErr error
		size := 0
		for {
			args, err := c.r.ReadCommand()
			if err != nil {
				readErr = err
				break
			}
			batch = append(batch, args)
			for _, a := range args {
				size += len(a) + argOverhead // an empty argument is not free
			}
			// Before AUTH each command runs alone: what follows it is
			// read under the limits its outcome sets.
			if !c.authed || c.r.Buffered() == 0 || len(batch) >= maxPipeline || size >= pipelineBytes {
				break
			}
		}
		quit := c.run(batch)
		if readErr != nil && errors.Is(readErr, ErrProtocol) {
			// The stream cannot be resynchronised: say why, then close.
			c.w.Error("ERR " + readErr.Error())
			quit = true
		}
		if err := c.w.Flush(); err != nil || quit || readErr != nil {
			return
		}
	}
}

// deadlineWriter gives each write to the connection writeTimeout: the
// buffer flushes by itself while a batch's replies are written, long
// after the batch began.
type deadlineWriter struct{ nc net.Conn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	return d.nc.Write(p)
}

// certLogin makes a verified client certificate's CN the caller, as
// on the API port.
func (c *conn) certLogin(st tls.ConnectionState) {
	if c.s.cfg.Auth == nil || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return
	}
	cred := credential{certName: st.VerifiedChains[0][0].Subject.CommonName}
	if p, ok := c.s.resolve(cred); ok {
		c.login(p, cred)
	}
}

// resolve finds the principal of a credential in the users file as it
// is now.
func (s *Server) resolve(cr credential) (*auth.Principal, bool) {
	a := s.cfg.Auth
	switch {
	case cr.certName != "":
		return a.ByName(cr.certName)
	case cr.token != "":
		return a.Token(cr.token)
	case cr.user != "":
		if p, ok := a.Basic(cr.user, cr.password); ok {
			return p, true
		}
		// A client given a password only sends it as user "default"
		// (go-redis's HELLO AUTH): a token, if no such user exists.
		if cr.user == "default" {
			if _, exists := a.ByName("default"); !exists {
				return a.Token(cr.password)
			}
		}
	}
	return nil, false
}

func (c *conn) login(p *auth.Principal, cr credential) {
	c.authed, c.principal, c.cred = true, p, cr
	c.r.SetLimits(c.s.limits)
}

func (c *conn) logout() {
	if c.s.cfg.Auth == nil {
		return
	}
	c.authed, c.principal, c.cred = false, nil, credential{}
	c.r.SetLimits(c.s.preAuthLimits())
}

// refresh applies the users file as it is now (a SIGHUP reload) to an
// authenticated connection: a removed user or token is logged out.
func (c *conn) refresh() {
	if c.s.cfg.Auth == nil || !c.authed {
		return
	}
	if p, ok := c.s.resolve(c.cred); ok {
		c.principal = p
		return
	}
	c.logout()
}

// run executes a batch of commands, writing each reply in order, and
// reports whether the connection should close (QUIT, an attack).
// Consecutive GETs of one RDD run as one batched lookup, consecutive
// plain SETs of one RDD as one batched write.
func (c *conn) run(batch [][][]byte) (quit bool) {
	c.refresh()
	for i := 0; i < len(batch); {
		if n := c.getRun(batch[i:]); n > 0 {
			i += n
			continue
		}
		if n := c.setRun(batch[i:]); n > 0 {
			i += n
			continue
		}
		if c.command(batch[i]) {
			return true
		}
		i++
	}
	return false
}

// command runs one command and writes its reply.
func (c *conn) command(args [][]byte) (quit bool) {
	began := time.Now()
	name := strings.ToUpper(string(args[0]))
	spec, known := commands[name]
	res := "ok"
	defer func() {
		if r := recover(); r != nil {
			c.s.cfg.Logger.Error("redis command panic", "command", name, "panic", r, "stack", string(debug.Stack()))
			c.w.Error("ERR internal error (logged on node " + c.s.cfg.NodeID + ")")
			res = "error"
		}
		c.s.metrics.observe(name, known, res, time.Since(began))
	}()
	switch {
	case name == "POST" || name == "HOST:":
		// An HTTP request sent to this port (a web page's cross-protocol
		// attack): Redis closes such a connection too.
		c.s.cfg.Logger.Warn("redis port: an HTTP request was sent to it; connection closed", "remote", c.nc.RemoteAddr().String())
		return true
	case !known:
		c.w.Error(unknownCommand(args))
		res = "error"
		return false
	case !c.authed && !spec.preAuth:
		c.w.Error("NOAUTH Authentication required.")
		res = "error"
		return false
	case !spec.arityOK(len(args)):
		c.w.Error("ERR wrong number of arguments for '" + strings.ToLower(name) + "' command")
		res = "error"
		return false
	}
	var r reply
	quit, r = spec.run(c, args)
	if r.err != "" {
		c.w.Error(r.err)
		res = "error"
	}
	return quit
}

// reply is what a command answers when it does not write a value: an
// error line.
type reply struct{ err string }

func errReply(format string, args ...any) reply { return reply{err: fmt.Sprintf(format, args...)} }

var done = reply{}

func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.WriteString(printable(args[0], 64))
	b.WriteString("', with args beginning with: ")
	for _, a := range args[1:min(len(args), 4)] {
		b.WriteString("'")
		b.WriteString(printable(a, 32))
		b.WriteString("' ")
	}
	return b.String()
}

// printable shortens b and drops bytes an error line cannot carry.
func printable(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, string(b))
}
