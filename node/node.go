// Package node assembles one srdd node: registry, sessions, store and
// HTTP front end. cmd/srdd parses flags into a Config; system tests build
// nodes in-process with the same code.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/srdd/srdd/auth"
	"github.com/srdd/srdd/batches"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/connectapi"
	"github.com/srdd/srdd/httpapi"
	"github.com/srdd/srdd/internal/defaults"
	"github.com/srdd/srdd/internal/fileroot"
	"github.com/srdd/srdd/internal/peerid"
	"github.com/srdd/srdd/internal/tlsconf"
	"github.com/srdd/srdd/kvstore"
	"github.com/srdd/srdd/metrics"
	"github.com/srdd/srdd/redisapi"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge"
)

// Config is everything a node needs. Zero values mean "default".
type Config struct {
	NodeID    string
	HTTPAddr  string // default 127.0.0.1:8998
	RaftAddr  string // default 127.0.0.1:8999
	DataDir   string // default ./data
	Bootstrap bool
	// StrictBootstrap refuses Bootstrap on a node that already belongs to a
	// cluster of several servers (set when --bootstrap is given explicitly).
	StrictBootstrap bool
	// Join lists HTTP addresses of members to join through (any member;
	// the request reaches the leader). Ignored when the node has Raft state.
	Join []string
	// NonVoter joins as a non-voter, which leaves the cluster on Close.
	NonVoter bool
	// Admit pre-admits these node IDs as voters when this node bootstraps
	// a new cluster (--bootstrap --admit n2,n3), so each can join once
	// (docs/ARCHITECTURE.md, "Peer trust"). On a node that already has a
	// cluster it is ignored: admins run `srdd cluster admit ID`.
	Admit []string
	// LeaderTimeout bounds the wait for a Raft leader at start.
	LeaderTimeout time.Duration
	// LeaderWait bounds how long a registry write waits for a leader during
	// an election before it fails (cluster.Config.LeaderWait).
	LeaderWait  time.Duration
	SparkMaster string            // default local[*]
	SparkConf   map[string]string // applied to every session
	Python      string            // default python3
	// FakeInterpreter, for tests only, starts every session on the fast
	// tier's fake interpreter (sparkbridge/bridgetest) instead of PySpark:
	// the running executable is started as the interpreter, with
	// sparkbridge.FakeInterpreterEnv=1, so it must call
	// bridgetest.MaybeRun first thing (node's and cmd/srdd's TestMain and
	// bin/srdd's main do). Statements, loads and saves then fail; KV ops,
	// durable RDDs and lifecycle work (docs/ARCHITECTURE.md invariant 8).
	FakeInterpreter bool
	// InterpreterUser, if set, runs every interpreter as that unprivileged
	// account (the node must run as root): session code then cannot read
	// the Raft dir, the users file, keys or certificates. The data dir is
	// shared with the account's group for traversal only (0710); the
	// interpreter package is group-readable, the checkpoint dir and the
	// default file root are the account's, and each session gets a work
	// dir of its own (docs/ARCHITECTURE.md, "Sessions hold no secret").
	InterpreterUser string
	// InterpreterUIDs, if set ("FIRST-LAST"), runs each live session's
	// interpreter and each batch driver as a uid of its own from the
	// range (the node must run as root; each uid needs an account): the
	// kernel then keeps sessions of different users out of each other's
	// processes and files. Their shared group is gid FIRST, for read-only
	// things only (node/interpuser.go). It replaces InterpreterUser, which
	// runs every session as one account and so isolates the node from
	// sessions but not sessions from each other.
	InterpreterUIDs string
	// InterpreterEnv names variables of the node's environment that
	// interpreters get besides the allowlist (sparkbridge/env.go), e.g.
	// cloud credentials meant for Spark: whatever is named here, session
	// code can read.
	InterpreterEnv []string
	// ReadyTimeout bounds how long a call waits for a starting session.
	ReadyTimeout time.Duration
	// KVCacheMiB sizes each session's hot-key cache (0: the default, 64;
	// a spark.srdd.kv.cacheMiB in SparkConf wins).
	KVCacheMiB int
	// CSRFProtection requires X-Requested-By on mutating requests (Livy's option).
	CSRFProtection bool
	// ClusterKey, if set, is required on node-to-node calls and sent on ours
	// (development only; read from ClusterKeyFile by the server command).
	ClusterKey string
	// ClusterKeyFile, if set, holds the cluster key (it is never taken
	// from argv or the environment).
	ClusterKeyFile string
	// PeerCert, PeerKey and PeerCA (PEM files) turn on peer mutual TLS:
	// Raft, internal calls, forwarding and joins run over the Raft port,
	// authenticated by node certificates from PeerCA (docs/ARCHITECTURE.md,
	// "Peer trust"). Reloaded by Reload (SIGHUP).
	PeerCert, PeerKey, PeerCA string
	// AuthFile, if set, is the users file (auth package): every call then
	// needs a principal allowed to make it. Reloaded by Reload (SIGHUP).
	AuthFile string
	// TLSCert and TLSKey, if set, serve the API over https (reloaded by
	// Reload). TLSClientCA, if set, accepts client certificates signed by
	// it: a certificate's CN names a principal of the users file. TLSCA
	// is the CA that other nodes' certificates are checked against (empty:
	// the system's roots); with TLS every node of a cluster serves https.
	TLSCert, TLSKey, TLSClientCA, TLSCA string
	// Insecure allows a non-loopback HTTPAddr without AuthFile (protected
	// mode refuses it otherwise, as Redis does without a password), and,
	// without peer TLS, a plaintext cluster: Raft off loopback, joining
	// and being joined (refused otherwise: docs/ARCHITECTURE.md invariant 9).
	Insecure bool
	// RedisAddr, if set, serves the Redis protocol there (redisapi,
	// issue 26), with the API's users file, rules and forwarding. Without
	// AuthFile it must be loopback unless Insecure (protected mode). With
	// TLSCert it speaks TLS, with the API's certificate and client CA;
	// RedisTLS asks for that explicitly (an error without TLSCert).
	RedisAddr string
	RedisTLS  bool
	// ConnectAddr, if set, serves Spark Connect there (connectapi, issue
	// 27): each stream is proxied to the Spark Connect server inside the
	// session its x-srdd-session metadata names, with the API's users
	// file and the code rule of POST /sessions/{id}/statements. Without
	// AuthFile it must be loopback unless Insecure (protected mode). With
	// TLSCert it speaks TLS, with the API's certificate and client CA.
	ConnectAddr string
	// ConnectMaxExecsPerSession and ConnectMaxExecsPerPrincipal cap the
	// Spark Connect plans running at once in one session and for one
	// principal; ConnectIdleTimeout closes a Spark Connect client's
	// connection with no stream open for that long.
	ConnectMaxExecsPerSession, ConnectMaxExecsPerPrincipal int
	ConnectIdleTimeout                                     time.Duration
	// ConnectMaxArtifactBytes caps what one Spark Connect AddArtifacts
	// call uploads into a session.
	ConnectMaxArtifactBytes int64
	// AllowedHosts, if set, are the only Host header names the API answers
	// (on any bind; it stops DNS rebinding beyond loopback).
	AllowedHosts []string
	// ReadTimeout bounds the arrival of a whole API request, body
	// included; MaxConns caps the API's open connections.
	ReadTimeout time.Duration
	MaxConns    int
	// Durable configures checkpoints of durable RDDs (the default
	// checkpoint directory is DataDir/checkpoints).
	Durable kvstore.DurableConfig
	// MemoryOnly turns durable RDDs off: every RDD is memory-mode.
	MemoryOnly bool
	// FileRoots are the directories clients may name in bulk loads and
	// saves and in session jars/pyFiles/files/archives (default
	// DataDir/files, created 0700). AllowRemoteURIs also lets them name
	// non-local URIs (http:, hdfs:, s3a:, ...).
	FileRoots       []string
	AllowRemoteURIs bool
	// Caps on the sizes a session may ask for (sessions.Policy; zero:
	// sessions.DefaultPolicy, 8g, 8g, 8 cores, 16 executors).
	MaxDriverMemory, MaxExecutorMemory int64
	MaxCores, MaxExecutors             int
	// Limits (zero: the default): live sessions on this node (16) and per
	// principal (8), shared RDDs held by this node's sessions (1000),
	// statements kept per session by count (1000) and bytes (64 MiB),
	// interpreter log lines (1000) and bytes (1 MiB) kept per session.
	MaxSessions, MaxSessionsPerPrincipal, MaxRDDs int
	// MaxBatches bounds the live Livy batches of this node (default 16);
	// their driver logs keep MaxLogLines and MaxLogBytes, as sessions'.
	MaxBatches int
	// MaxDeadSessions is how many ended sessions of this node the registry
	// and the data dir keep (0: 100; negative: none); older ones are pruned.
	MaxDeadSessions          int
	MaxStatements            int
	MaxStatementBytes        int64
	MaxLogLines, MaxLogBytes int
	Version                  string         // shown by GET /version
	Raft                     cluster.Config // timing overrides (tests); addresses come from above
	Logger                   hclog.Logger

	// AdvertiseHTTP and AdvertiseRaft are the addresses other nodes use to
	// reach this one (host:port; a DNS name that follows the node, e.g. a
	// StatefulSet pod's); empty: the bound HTTPAddr and RaftAddr.
	AdvertiseHTTP string
	AdvertiseRaft string
	// MetricsMaxRDDs is how many shared RDDs get their own rdd label in
	// per-RDD metrics (0: metrics.DefaultMaxRDDs); later ones share "_other".
	MetricsMaxRDDs int
}

// DefaultKVCacheMiB is each session's hot-key cache (the interpreter's
// own default of spark.srdd.kv.cacheMiB, engine.py, is the same).
const DefaultKVCacheMiB = 64

// DefaultConfig returns every default of a node, as `srdd server` starts
// with them. The node's own (addresses, data dir, Spark master, ...) live
// here; the others come from the DefaultConfig of the package that owns
// them (sessions, batches, kvstore, metrics, cluster), which fills a zero
// field the node passes down. Zero fields of a Config mean "default".
func DefaultConfig() Config {
	s, b, dur := sessions.DefaultConfig(), batches.DefaultConfig(), kvstore.DefaultDurableConfig()
	return Config{
		NodeID:                      "node1",
		HTTPAddr:                    "127.0.0.1:8998",
		RaftAddr:                    "127.0.0.1:8999",
		DataDir:                     "data",
		Bootstrap:                   true,
		LeaderTimeout:               30 * time.Second,
		LeaderWait:                  cluster.DefaultConfig().LeaderWait,
		SparkMaster:                 "local[*]",
		Python:                      "python3",
		ReadyTimeout:                s.ReadyTimeout,
		KVCacheMiB:                  DefaultKVCacheMiB,
		MetricsMaxRDDs:              metrics.DefaultMaxRDDs,
		MaxDriverMemory:             s.Policy.MaxDriverMemory,
		MaxExecutorMemory:           s.Policy.MaxExecutorMemory,
		MaxCores:                    s.Policy.MaxCores,
		MaxExecutors:                s.Policy.MaxExecutors,
		MaxSessions:                 s.MaxSessions,
		MaxSessionsPerPrincipal:     s.MaxSessionsPerPrincipal,
		MaxDeadSessions:             s.MaxDeadSessions,
		MaxStatements:               s.History.MaxStatements,
		MaxStatementBytes:           s.History.MaxBytes,
		MaxLogLines:                 s.LogLines,
		MaxLogBytes:                 s.LogBytes,
		MaxBatches:                  b.MaxBatches,
		MaxRDDs:                     kvstore.DefaultLimits().MaxRDDs,
		ReadTimeout:                 httpapi.DefaultReadTimeout,
		MaxConns:                    httpapi.DefaultMaxConns,
		ConnectMaxExecsPerSession:   connectapi.DefaultMaxExecsPerSession,
		ConnectMaxExecsPerPrincipal: connectapi.DefaultMaxExecsPerPrincipal,
		ConnectIdleTimeout:          connectapi.DefaultIdleTimeout,
		ConnectMaxArtifactBytes:     connectapi.DefaultMaxArtifactBytes,
		Durable:                     kvstore.DurableConfig{CheckpointEvery: dur.CheckpointEvery, CheckpointInterval: dur.CheckpointInterval},
	}
}

// fillDefaults sets zero fields from DefaultConfig.
func (c *Config) fillDefaults() {
	d := DefaultConfig()
	for _, f := range []struct{ v, d *string }{
		{&c.NodeID, &d.NodeID}, {&c.HTTPAddr, &d.HTTPAddr}, {&c.RaftAddr, &d.RaftAddr},
		{&c.DataDir, &d.DataDir}, {&c.SparkMaster, &d.SparkMaster}, {&c.Python, &d.Python},
	} {
		defaults.Set(f.v, *f.d)
	}
	defaults.Set(&c.LeaderTimeout, d.LeaderTimeout)
	if c.Logger == nil {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "srdd", Output: os.Stderr})
	}
}

// Validate reports the first problem with the configuration.
func (c *Config) Validate() error {
	switch {
	case len(c.Join) > 0 && c.Bootstrap && c.StrictBootstrap:
		return errors.New("--bootstrap and --join exclude each other")
	case c.LeaderTimeout < 0, c.LeaderWait < 0, c.ReadyTimeout < 0, c.ConnectIdleTimeout < 0:
		return errors.New("timeouts must not be negative")
	case c.MaxDriverMemory < 0, c.MaxExecutorMemory < 0, c.MaxCores < 0, c.MaxExecutors < 0:
		return errors.New("session size caps must not be negative")
	case c.MaxSessions < 0, c.MaxSessionsPerPrincipal < 0, c.MaxBatches < 0, c.MaxRDDs < 0, c.MaxStatements < 0,
		c.MaxStatementBytes < 0, c.MaxLogLines < 0, c.MaxLogBytes < 0, c.ConnectMaxExecsPerSession < 0, c.ConnectMaxExecsPerPrincipal < 0, c.ConnectMaxArtifactBytes < 0:
		return errors.New("limits must not be negative")
	case (c.PeerCert == "") != (c.PeerKey == "") || (c.PeerCert == "") != (c.PeerCA == ""):
		return errors.New("--peer-cert, --peer-key and --peer-ca go together")
	case c.PeerCert == "" && !c.Insecure && (!httpapi.IsLoopbackAddr(c.RaftAddr) || (c.AdvertiseRaft != "" && !httpapi.IsLoopbackAddr(c.AdvertiseRaft))):
		return fmt.Errorf("%w: refusing Raft on %s without peer TLS: any host that reaches it could rewrite the registry; "+
			"give --peer-cert, --peer-key and --peer-ca (README, \"A three-node cluster\"), keep --raft-addr on loopback, or pass --insecure on a network you trust",
			ErrPlaintextCluster, orDefault(c.AdvertiseRaft, c.RaftAddr))
	case c.PeerCert == "" && !c.Insecure && len(c.Join) > 0:
		return fmt.Errorf("%w: refusing to join %v without peer TLS: nothing would prove either node to the other; "+
			"give --peer-cert, --peer-key and --peer-ca (README, \"A three-node cluster\"), or pass --insecure on a network you trust", ErrPlaintextCluster, c.Join)
	case len(c.Admit) > 0 && len(c.Join) > 0:
		return errors.New("--admit goes with --bootstrap, on the node that forms the cluster; members admit with `srdd cluster admit ID`")
	case c.ClusterKey != "" && c.ClusterKeyFile != "":
		return errors.New("give the cluster key once (--cluster-key-file)")
	case c.AuthFile != "" && len(c.Join) > 0 && c.ClusterKey == "" && c.ClusterKeyFile == "" && c.PeerCert == "":
		return errors.New("a node with --auth-file joins with peer TLS (--peer-cert, --peer-key, --peer-ca) or, in development, --cluster-key-file: it is what proves a node to the others")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case c.TLSClientCA != "" && c.TLSCert == "":
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	case c.RedisTLS && c.TLSCert == "":
		return errors.New("--redis-tls needs --tls-cert and --tls-key: the Redis port speaks TLS with the API's certificate")
	case c.AuthFile == "" && !c.Insecure && c.RedisAddr != "" && !httpapi.IsLoopbackAddr(c.RedisAddr):
		return fmt.Errorf("%w: refusing to serve the Redis port on %s without --auth-file: anyone who reaches it could read or change every RDD; "+
			"give --auth-file (README, \"Securing srdd\"), bind 127.0.0.1, or pass --insecure on a network you trust", ErrProtectedMode, c.RedisAddr)
	case c.AuthFile == "" && !c.Insecure && c.ConnectAddr != "" && !httpapi.IsLoopbackAddr(c.ConnectAddr):
		return fmt.Errorf("%w: refusing to serve Spark Connect on %s without --auth-file: anyone who reaches it could run code in every session; "+
			"give --auth-file (README, \"Securing srdd\"), bind 127.0.0.1, or pass --insecure on a network you trust", ErrProtectedMode, c.ConnectAddr)
	case c.AuthFile == "" && !c.Insecure && !httpapi.IsLoopbackAddr(c.HTTPAddr):
		return fmt.Errorf("%w: refusing to serve %s without --auth-file: anyone who reaches it could run code as this node's user; "+
			"give --auth-file (README, \"Securing srdd\"), bind 127.0.0.1, or pass --insecure on a network you trust", ErrProtectedMode, c.HTTPAddr)
	}
	for _, id := range c.Admit {
		if err := peerid.Valid(id); err != nil {
			return fmt.Errorf("--admit: %w", err)
		}
	}
	return nil
}

func orDefault(v, d string) string {
	if v != "" {
		return v
	}
	return d
}

// ErrProtectedMode refuses a non-loopback bind without auth.
var ErrProtectedMode = errors.New("protected mode")

// ErrPlaintextCluster refuses Raft off loopback, or a join, without peer
// TLS and without --insecure.
var ErrPlaintextCluster = errors.New("no plaintext cluster")

// ErrConfig marks a configuration Start refuses before it does anything
// (srdd server exits 2 on it).
var ErrConfig = errors.New("invalid configuration")

// Node is a running srdd node.
type Node struct {
	Registry *cluster.Node
	Sessions *sessions.Manager
	Batches  *batches.Manager
	Store    *kvstore.Store
	HTTP     *httpapi.Server
	Redis    *redisapi.Server   // nil without RedisAddr
	Connect  *connectapi.Server // nil without ConnectAddr
	// connectSessions are the sessions' own Spark Connect servers behind
	// Connect (their ports and tokens never leave the node; the proxy
	// benchmark dials them directly, in-process).
	connectSessions *connectapi.NodeSessions
	Metrics         *prometheus.Registry
	ln              net.Listener
	redisLn         net.Listener        // nil without RedisAddr
	connLn          net.Listener        // nil without ConnectAddr
	auth            *auth.Authenticator // nil without AuthFile
	cert            *tlsconf.Cert       // nil without TLS
	peer            *cluster.PeerCreds  // nil without peer TLS
	logger          hclog.Logger

	// Durability takes checkpoint and recovery measurements (metrics/durability.go).
	Durability *metrics.Durability

	serveErr  chan error
	closeOnce sync.Once
	// Start-up milestones, for Ready (GET /readyz).
	caughtUp, registered, started atomic.Bool
	nonVoter                      bool
	wipeRaft                      bool
	dataDir                       string
}

// leave takes a non-voter out of the cluster and wipes its Raft state, so
// it joins afresh next time (voters stay members across restarts).
func (n *Node) leave() {
	if err := n.Registry.Leave(); err != nil {
		n.logger.Warn("cannot leave the cluster", "error", err)
		return
	}
	n.wipeRaft = true
}

// Start opens the registry, waits for a leader, marks sessions lost by a
// previous run as dead, and starts serving HTTP.
func Start(cfg Config) (*Node, error) {
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve data dir: %w", err)
	}
	// The data dir holds the Raft log and the sessions' histories: 0700
	// (docs/ARCHITECTURE.md, "Sessions hold no secret").
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create data dir: %w", err)
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot restrict data dir: %w", err)
	}
	runAs, uids, err := interpreterAccounts(cfg)
	if err != nil {
		return nil, err
	}
	if err := runAs.ShareGroup(dataDir, 0o710); err != nil {
		return nil, err
	}
	n := &Node{logger: cfg.Logger, Metrics: prometheus.NewRegistry(), serveErr: make(chan error, 1)}
	n.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rddLabels, err := instrumentProcess(n.Metrics, cfg)
	if err != nil {
		return nil, err
	}

	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	var srvTLS, peerTLS *tls.Config
	if cfg.TLSCert != "" {
		if n.cert, err = tlsconf.LoadCert(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, err
		}
		if srvTLS, err = tlsconf.Server(n.cert, cfg.TLSClientCA); err != nil {
			return nil, err
		}
		if peerTLS, err = tlsconf.Client(cfg.TLSCA); err != nil {
			return nil, err
		}
	}
	// Listen first so the advertised HTTP address is known (port 0 in tests).
	n.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for http on %s: %w", cfg.HTTPAddr, err)
	}
	if srvTLS != nil {
		n.ln = tls.NewListener(n.ln, srvTLS)
	}
	if cfg.RedisAddr != "" {
		if n.redisLn, err = net.Listen("tcp", cfg.RedisAddr); err != nil {
			return nil, fmt.Errorf("cannot listen for redis on %s: %w", cfg.RedisAddr, err)
		}
	}
	if cfg.ConnectAddr != "" {
		if n.connLn, err = net.Listen("tcp", cfg.ConnectAddr); err != nil {
			return nil, fmt.Errorf("cannot listen for Spark Connect on %s: %w", cfg.ConnectAddr, err)
		}
		if cfg.AuthFile == "" && !httpapi.IsLoopbackAddr(n.connLn.Addr().String()) {
			cfg.Logger.Warn("INSECURE: serving Spark Connect on " + n.connLn.Addr().String() + " without --auth-file: anyone who can reach it can run code in every session (--insecure)")
		}
	}
	if n.redisLn != nil && cfg.AuthFile == "" && !httpapi.IsLoopbackAddr(n.redisLn.Addr().String()) {
		cfg.Logger.Warn("INSECURE: serving the Redis port " + n.redisLn.Addr().String() + " without --auth-file: anyone who can reach it can read or change every RDD (--insecure)")
	}
	loopback := httpapi.IsLoopbackAddr(n.ln.Addr().String())
	if cfg.AuthFile == "" && !loopback {
		cfg.Logger.Warn("INSECURE: serving " + n.ln.Addr().String() + " without --auth-file: anyone who can reach this port can run code as this node's user and read or change every RDD (--insecure)")
	}
	if !loopback && len(cfg.AllowedHosts) == 0 {
		cfg.Logger.Warn("serving " + n.ln.Addr().String() + " for any Host header: give --allowed-hosts with the names clients use, so a web page cannot reach the node under another name (DNS rebinding)")
	}
	allowedHosts := make([]string, 0, len(cfg.AllowedHosts))
	for _, h := range cfg.AllowedHosts {
		allowedHosts = append(allowedHosts, strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), "."))
	}
	rc := cfg.Raft
	httpAdv := n.ln.Addr().String()
	if cfg.AdvertiseHTTP != "" {
		httpAdv = cfg.AdvertiseHTTP
	}
	rc.NodeID, rc.RaftAddr, rc.HTTPAddr, rc.DataDir = cfg.NodeID, cfg.RaftAddr, httpAdv, dataDir
	rc.RaftAdvertise = cfg.AdvertiseRaft
	rc.Bootstrap = cfg.Bootstrap && len(cfg.Join) == 0
	rc.StrictBootstrap = cfg.StrictBootstrap
	rc.ForwardApply = true
	rc.PlaintextPeers = cfg.Insecure
	if cfg.ClusterKeyFile != "" {
		b, err := os.ReadFile(cfg.ClusterKeyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read --cluster-key-file: %w", err)
		}
		if cfg.ClusterKey = strings.TrimSpace(string(b)); cfg.ClusterKey == "" {
			return nil, fmt.Errorf("--cluster-key-file %s is empty", cfg.ClusterKeyFile)
		}
	}
	if cfg.PeerCert != "" {
		if n.peer, err = cluster.LoadPeerCreds(cfg.PeerCert, cfg.PeerKey, cfg.PeerCA); err != nil {
			return nil, err
		}
		rc.Peer = n.peer
	}
	rc.ClusterKey = cfg.ClusterKey
	rc.PeerTLS = peerTLS
	if cfg.LeaderWait > 0 {
		rc.LeaderWait = cfg.LeaderWait
	}
	rc.Logger = cfg.Logger.Named("cluster")
	n.Registry, err = cluster.Open(rc)
	if err != nil {
		return nil, err
	}
	n.nonVoter, n.dataDir = cfg.NonVoter, dataDir

	pyPath, err := sparkbridge.ExtractPython(dataDir)
	if err != nil {
		return nil, err
	}
	workRoot, err := interpreterDirs(runAs, dataDir)
	if err != nil {
		return nil, err
	}
	master := cfg.SparkMaster
	if cfg.KVCacheMiB > 0 {
		conf := map[string]string{"spark.srdd.kv.cacheMiB": fmt.Sprint(cfg.KVCacheMiB)}
		for k, v := range cfg.SparkConf {
			conf[k] = v
		}
		cfg.SparkConf = conf
	}
	// The interpreters' own calls back to this node (durable writes made
	// by session code) carry their session's capability, minted per
	// session: good for that session's RDDs on this node while it lives,
	// never a node-wide token (docs/ARCHITECTURE.md, "Sessions hold no
	// secret").
	var authn *auth.Authenticator
	var mint func(int64) (string, func(), error)
	if cfg.AuthFile != "" {
		if authn, err = auth.New(cfg.AuthFile, cfg.Logger.Named("auth")); err != nil {
			return nil, err
		}
		mint = authn.MintSession
		n.auth = authn
	}
	// Over TLS the interpreters call the advertised name, which the
	// certificate names; plain http, the bound address.
	nodeURL := "http://" + n.ln.Addr().String()
	if srvTLS != nil {
		nodeURL = "https://" + httpAdv
	}
	// One set of data rules: the store checks requests with them, and
	// every interpreter gets them for what only it sees (session code).
	limits := kvstore.DefaultLimits()
	if cfg.MaxRDDs > 0 {
		limits.MaxRDDs = cfg.MaxRDDs
	}
	python, interpEnv := cfg.Python, sparkbridge.PassEnv(cfg.InterpreterEnv)
	if cfg.FakeInterpreter {
		if python, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("cannot find this executable for the fake interpreter: %w", err)
		}
		interpEnv = append(interpEnv, sparkbridge.FakeInterpreterEnv+"=1")
	}
	n.Sessions = sessions.NewManager(sessions.Config{
		Bridge: sparkbridge.Config{
			Python: python, PythonPath: pyPath, Master: master, SparkConf: cfg.SparkConf,
			Metrics: sparkbridge.NewMetrics(n.Metrics),
			NodeURL: nodeURL, NodeCA: cfg.TLSCA,
			DataRules: limits.RulesJSON(),
			RunAs:     runAs, WorkRoot: workRoot, Env: interpEnv,
		},
		UIDs:         uids,
		MintToken:    mint,
		ReadyTimeout: cfg.ReadyTimeout,
		DataDir:      dataDir,
		MaxSessions:  cfg.MaxSessions, MaxSessionsPerPrincipal: cfg.MaxSessionsPerPrincipal,
		MaxDeadSessions: cfg.MaxDeadSessions,
		History:         sessions.HistoryLimits{MaxStatements: cfg.MaxStatements, MaxBytes: cfg.MaxStatementBytes},
		LogLines:        cfg.MaxLogLines, LogBytes: cfg.MaxLogBytes,
		Policy: sessions.Policy{MaxDriverMemory: cfg.MaxDriverMemory, MaxExecutorMemory: cfg.MaxExecutorMemory,
			MaxCores: cfg.MaxCores, MaxExecutors: cfg.MaxExecutors},
		Logger: cfg.Logger.Named("sessions"),
	}, n.Registry)
	n.Store = kvstore.New(n.Registry, kvstore.FromManager(n.Sessions), limits)
	// Only the store creates shared RDDs in interpreters, a starting
	// session's included.
	n.Sessions.SetHydrator(func(ctx context.Context, id int64, it *sparkbridge.Interpreter) error {
		return n.Store.Hydrate(ctx, id, it)
	})
	n.Store.Instrument(n.Metrics)
	n.instrument(rddLabels)
	n.Store.SetDurabilityHooks(n.Durability)
	if !cfg.MemoryOnly {
		n.Store.EnableDurable(cfg.Durable, dataDir)
	}
	files, err := fileRoots(cfg, dataDir, n.Store.CheckpointURI())
	if err != nil {
		return nil, err
	}
	if err := giveToInterpreters(runAs, uids, cfg, dataDir, n.Store.CheckpointURI()); err != nil {
		return nil, err
	}
	if uids != nil {
		n.Store.SetCheckpointOwner(ownCheckpointDir)
	}
	// A copy of a durable RDD catches up from a peer's checkpoint over the
	// peer channel (kvstore/ckptxfer.go).
	n.Store.SetCheckpointFetcher(n.Registry.FetchCheckpoint)
	n.Store.SetFileRoots(files)
	n.Sessions.SetFileRoots(files)
	storeLog := cfg.Logger.Named("kvstore")
	n.Store.SetLogger(func(msg string) { storeLog.Info(msg) })
	// Livy batches: spark-submit runs under the sessions' rules for files
	// and Spark settings (docs/ARCHITECTURE.md, "Batches").
	n.Batches, err = batches.New(batches.Config{
		Python: cfg.Python, Master: master, SparkConf: cfg.SparkConf, DataDir: dataDir,
		LogLines: cfg.MaxLogLines, LogBytes: cfg.MaxLogBytes, MaxBatches: cfg.MaxBatches,
		Scheme: peerScheme(peerTLS), Env: sparkbridge.PassEnv(cfg.InterpreterEnv), RunAs: runAs,
		UIDs: uids, Logger: cfg.Logger.Named("batches"),
	}, n.Registry, n.Sessions)
	if err != nil {
		return nil, err
	}
	var peers httpapi.Peers
	if n.peer != nil {
		peers = n.Registry
	}
	var connect httpapi.ConnectStreams // the console lists its streams
	if n.connLn != nil {
		n.connectSessions = connectapi.NewNodeSessions(n.Registry, n.Sessions, 0, cfg.Logger.Named("connect"))
		n.Connect = connectapi.New(connectapi.Config{
			Sessions: n.connectSessions,
			Auth:     authn, TLS: srvTLS, NodeID: cfg.NodeID, MaxConns: cfg.MaxConns, Logger: cfg.Logger.Named("connect"),
			MaxExecsPerSession: cfg.ConnectMaxExecsPerSession, MaxExecsPerPrincipal: cfg.ConnectMaxExecsPerPrincipal,
			IdleTimeout: cfg.ConnectIdleTimeout, MaxArtifactBytes: cfg.ConnectMaxArtifactBytes, Registry: n.Metrics, CheckConf: n.Sessions.CheckConf, Peers: connectPeers(n.Registry), AdmitPeer: n.Registry.AdmitPeer,
		})
		connect = n.Connect
	}
	n.HTTP = httpapi.New(httpapi.Config{
		Peers: peers, Connect: connect,
		Store: n.Store, Sessions: n.Sessions, Batches: n.Batches, Cluster: n.Registry,
		Registry: n.Metrics, Logger: cfg.Logger,
		CSRFProtection: cfg.CSRFProtection, Version: cfg.Version, ClusterKey: cfg.ClusterKey,
		RDDLabels: rddLabels, Ready: n.Ready, Auth: authn, LoopbackOnly: loopback, PeerTLS: peerTLS,
		PlaintextCluster: cfg.Insecure, AllowedHosts: allowedHosts, ReadTimeout: cfg.ReadTimeout, MaxConns: cfg.MaxConns,
	})
	// Serve before the node is a full member: joins and writes forwarded
	// by followers reach the leader over HTTP.
	go func() { n.serveErr <- n.HTTP.Serve(n.ln) }()
	if n.redisLn != nil {
		n.Redis = redisapi.New(redisapi.Config{
			API: n.HTTP, Auth: authn, TLS: srvTLS, Limits: limits, MaxConns: cfg.MaxConns,
			NodeID: cfg.NodeID, Version: cfg.Version, Registry: n.Metrics, Logger: cfg.Logger.Named("redis"),
		})
		go func() {
			if err := n.Redis.Serve(n.redisLn); err != nil {
				cfg.Logger.Error("redis port stopped", "error", err)
			}
		}()
	}
	if n.Connect != nil {
		go func() {
			if err := n.Connect.Serve(n.connLn); err != nil {
				cfg.Logger.Error("Spark Connect port stopped", "error", err)
			}
		}()
		if ln := n.Registry.ConnectListener(); ln != nil {
			go func() {
				if err := n.Connect.ServePeer(ln); err != nil {
					cfg.Logger.Debug("routed Spark Connect stopped", "error", err)
				}
			}()
		}
	}
	if pl := n.Registry.PeerListener(); pl != nil {
		go func() {
			if err := n.HTTP.ServePeer(pl); err != nil {
				cfg.Logger.Debug("peer http stopped", "error", err)
			}
		}()
	}

	if len(cfg.Join) > 0 && !n.Registry.HasState() {
		if err := n.Registry.JoinVia(cfg.Join, !cfg.NonVoter, time.Now().Add(cfg.LeaderTimeout)); err != nil {
			return nil, err
		}
	}
	if err := n.Registry.WaitForLeader(cfg.LeaderTimeout); err != nil {
		return nil, fmt.Errorf("cannot start registry: %w", err)
	}
	// Apply what the leader had committed before this node serves, so a
	// client that saw /readyz sees the registry as it was then.
	deadline := time.Now().Add(cfg.LeaderTimeout)
	if err := retryUntil(deadline, cfg.Logger, "catch up with the leader", n.Registry.ReadBarrier); err != nil {
		if n.halted(err) {
			ok = true
			return n, nil
		}
		return nil, err
	}
	n.caughtUp.Store(true)
	// A restarted follower knows the leader's id before its registry has
	// replayed the leader's address; Apply waits through that and through
	// elections (cluster.Config.LeaderWait), this loop past LeaderWait.
	register := func() error {
		_, err := n.Registry.Apply(cluster.Command{Type: cluster.CmdRegisterNode, Body: &cluster.RegisterNode{
			ID: cfg.NodeID, RaftAddr: n.Registry.RaftAddr(), HTTPAddr: httpAdv,
		}})
		return err
	}
	if err := retryUntil(deadline, cfg.Logger, "register this node", register); err != nil {
		if n.halted(err) {
			ok = true
			return n, nil
		}
		return nil, err
	}
	n.registered.Store(true)
	n.Registry.AdmitAtBootstrap(cfg.Admit)
	// Marking the previous run's sessions dead takes the registry: retry
	// through an election (a restarted leader's peers are electing one).
	for _, step := range []struct {
		what string
		f    func() error
	}{{"mark the previous run's sessions dead", n.Sessions.Reconcile}, {"mark the previous run's batches dead", n.Batches.Reconcile}} {
		if err := retryUntil(deadline, cfg.Logger, step.what, step.f); err != nil {
			if n.halted(err) {
				ok = true
				return n, nil
			}
			return nil, err
		}
	}
	// After Reconcile: sessions of a previous run are dead by now, so
	// their durable RDDs are adopted and rebuilt.
	n.Store.StartDurable()
	n.started.Store(true)
	cfg.Logger.Info("srdd node serving", "node", cfg.NodeID, "http", n.ln.Addr().String(), "redis", n.RedisAddr(), "connect", n.ConnectAddr(),
		"raft", n.Registry.RaftAddr(), "data", dataDir, "spark_master", master)
	ok = true
	return n, nil
}

// fileRoots opens the client file roots (creating the default one),
// protecting the data dir and a local checkpoint directory.
func fileRoots(cfg Config, dataDir, checkpointURI string) (*fileroot.Roots, error) {
	dirs := cfg.FileRoots
	if len(dirs) == 0 {
		def := filepath.Join(dataDir, "files")
		if err := os.MkdirAll(def, 0o700); err != nil {
			return nil, fmt.Errorf("cannot create file root: %w", err)
		}
		dirs = []string{def}
	}
	protected := []string{dataDir}
	if _, p, local := fileroot.Split(checkpointURI); local && p != "" {
		protected = append(protected, p)
	}
	r, err := fileroot.New(dirs, cfg.AllowRemoteURIs, protected...)
	if err != nil {
		return nil, fmt.Errorf("cannot open file roots: %w", err)
	}
	return r, nil
}

// halted reports whether err says the registry stopped applying at an
// entry this binary cannot decode. The node then stops its start-up
// where it is and serves, not ready (GET /readyz lists unknown_entry),
// instead of exiting: a service manager restarting it would only crash
// loop (docs/ARCHITECTURE.md invariant 10).
func (n *Node) halted(err error) bool {
	if !errors.Is(err, cluster.ErrHalted) {
		return false
	}
	n.logger.Error("start-up stopped: the registry log holds an entry this binary cannot decode; serving, not ready, until a binary that knows it runs here",
		"error", err)
	return true
}

// retryUntil calls f until it succeeds or deadline passes, and returns
// its last error, saying what it was for. A halted registry is final.
func retryUntil(deadline time.Time, log hclog.Logger, what string, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		if errors.Is(err, cluster.ErrHalted) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cannot %s: %w", what, err)
		}
		log.Warn("retrying at start-up", "step", what, "error", err)
		time.Sleep(200 * time.Millisecond)
	}
}

// Ready reports whether the node can take a write now: it has caught up
// with the registry the leader had when it started, registered itself,
// finished starting, and knows a leader. Otherwise it lists what it
// waits for (GET /readyz; docs/ARCHITECTURE.md invariant 11).
func (n *Node) Ready() (bool, []string) {
	var waiting []string
	if n.Registry != nil && n.Registry.Halted() != nil {
		waiting = append(waiting, "unknown_entry")
	}
	if n.Registry == nil || !n.Registry.HasLeader() {
		waiting = append(waiting, "leader")
	}
	if !n.caughtUp.Load() {
		waiting = append(waiting, "registry_catch_up")
	}
	if !n.registered.Load() {
		waiting = append(waiting, "registration")
	}
	if !n.started.Load() {
		waiting = append(waiting, "start")
	}
	if (n.Registry != nil && n.Registry.DiskFull() != nil) || (n.Store != nil && n.Store.CheckpointDiskFull() != nil) {
		waiting = append(waiting, "disk_space") // writes answer 507
	}
	return len(waiting) == 0, waiting
}

// HTTPAddr returns the address the node serves HTTP on.
func (n *Node) HTTPAddr() string { return n.ln.Addr().String() }

// RedisAddr returns the address of the Redis port ("" without one).
func (n *Node) RedisAddr() string {
	if n.redisLn == nil {
		return ""
	}
	return n.redisLn.Addr().String()
}

// connectPeers routes Spark Connect streams over the peer channel; nil
// without peer TLS (there is none to route on).
func connectPeers(reg *cluster.Node) connectapi.PeerDialer {
	if !reg.PeerTLS() {
		return nil
	}
	return reg
}

// ConnectAddr returns the address of the Spark Connect port ("" without one).
func (n *Node) ConnectAddr() string {
	if n.connLn == nil {
		return ""
	}
	return n.connLn.Addr().String()
}

// ServeErr delivers the HTTP server's error if it stops on its own.
func (n *Node) ServeErr() <-chan error { return n.serveErr }

// Reload re-reads what SIGHUP reloads: the users file and the TLS
// certificate. A bad file keeps
// the loaded one, and the error says why.
func (n *Node) Reload() error {
	var errs []error
	if n.auth != nil {
		errs = append(errs, n.auth.Reload())
	}
	if n.peer != nil {
		err := n.peer.Reload()
		if err != nil {
			n.logger.Error("cannot reload the peer certificate, key or CA; keeping the loaded ones", "error", err)
		} else {
			n.logger.Info("reloaded the peer certificate, key and CA")
		}
		errs = append(errs, err)
	}
	if n.cert != nil {
		err := n.cert.Reload()
		if err != nil {
			n.logger.Error("cannot reload the TLS certificate; keeping the loaded one", "error", err)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func peerScheme(peerTLS *tls.Config) string {
	if peerTLS != nil {
		return "https"
	}
	return "http"
}

// Close shuts down in reverse dependency order: HTTP, interpreters, Raft.
// It is idempotent.
func (n *Node) Close() {
	n.closeOnce.Do(func() {
		if n.nonVoter && n.Registry != nil {
			n.leave()
		}
		if n.Connect != nil {
			n.Connect.Close()
		} else if n.connLn != nil {
			_ = n.connLn.Close()
		}
		if n.Redis != nil {
			_ = n.Redis.Close()
		} else if n.redisLn != nil {
			_ = n.redisLn.Close()
		}
		if n.HTTP != nil {
			_ = n.HTTP.Close()
		} else if n.ln != nil {
			_ = n.ln.Close()
		}
		if n.Store != nil {
			n.Store.StopDurable()
		}
		if n.Batches != nil {
			n.Batches.Close()
		}
		if n.Sessions != nil {
			n.Sessions.Close()
		}
		if n.Registry != nil {
			if err := n.Registry.Close(); err != nil {
				n.logger.Warn("registry close", "error", err)
			}
		}
		if n.wipeRaft {
			_ = os.RemoveAll(filepath.Join(n.dataDir, "raft"))
		}
	})
}
