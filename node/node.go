// Package node assembles one srdd node: registry, sessions, store and
// HTTP front end. cmd/srdd parses flags into a Config; system tests build
// nodes in-process with the same code.
package node

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/httpapi"
	"github.com/srdd/srdd/kvstore"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge"
)

// Config is everything a node needs. Zero values mean "default".
type Config struct {
	NodeID      string
	HTTPAddr    string // default 127.0.0.1:8998
	RaftAddr    string // default 127.0.0.1:8999
	DataDir     string // default ./data
	Bootstrap   bool
	SparkMaster string            // default local[*]
	SparkConf   map[string]string // applied to every session
	Python      string            // default python3
	// ReadyTimeout bounds how long a call waits for a starting session.
	ReadyTimeout time.Duration
	// CSRFProtection requires X-Requested-By on mutating requests (Livy's option).
	CSRFProtection bool
	Version        string         // shown by GET /version
	Raft           cluster.Config // timing overrides (tests); addresses come from above
	Logger         hclog.Logger
}

// Node is a running srdd node.
type Node struct {
	Registry *cluster.Node
	Sessions *sessions.Manager
	Store    *kvstore.Store
	HTTP     *httpapi.Server
	Metrics  *prometheus.Registry
	ln       net.Listener
	logger   hclog.Logger

	serveErr  chan error
	closeOnce sync.Once
}

// Start opens the registry, waits for a leader, marks sessions lost by a
// previous run as dead, and starts serving HTTP.
func Start(cfg Config) (*Node, error) {
	if cfg.NodeID == "" {
		cfg.NodeID = "node1"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:8998"
	}
	if cfg.RaftAddr == "" {
		cfg.RaftAddr = "127.0.0.1:8999"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "data"
	}
	if cfg.Python == "" {
		cfg.Python = "python3"
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "srdd", Output: os.Stderr})
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create data dir: %w", err)
	}
	n := &Node{logger: cfg.Logger, Metrics: prometheus.NewRegistry(), serveErr: make(chan error, 1)}
	n.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	// Listen first so the advertised HTTP address is known (port 0 in tests).
	n.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for http on %s: %w", cfg.HTTPAddr, err)
	}
	rc := cfg.Raft
	rc.NodeID, rc.RaftAddr, rc.HTTPAddr, rc.DataDir = cfg.NodeID, cfg.RaftAddr, n.ln.Addr().String(), dataDir
	rc.Bootstrap = cfg.Bootstrap
	rc.Logger = cfg.Logger.Named("cluster")
	n.Registry, err = cluster.Open(rc)
	if err != nil {
		return nil, err
	}
	if err := n.Registry.WaitForLeader(30 * time.Second); err != nil {
		return nil, fmt.Errorf("cannot start registry: %w", err)
	}
	if _, err := n.Registry.Apply(cluster.Command{Type: cluster.CmdRegisterNode, Body: &cluster.RegisterNode{
		ID: cfg.NodeID, RaftAddr: n.Registry.RaftAddr(), HTTPAddr: n.ln.Addr().String(),
	}}); err != nil {
		return nil, fmt.Errorf("cannot register node: %w", err)
	}

	pyPath, err := sparkbridge.ExtractPython(dataDir)
	if err != nil {
		return nil, err
	}
	master := cfg.SparkMaster
	if master == "" {
		master = "local[*]"
	}
	n.Sessions = sessions.NewManager(sessions.Config{
		Bridge: sparkbridge.Config{
			Python: cfg.Python, PythonPath: pyPath, Master: master, SparkConf: cfg.SparkConf,
			Metrics: sparkbridge.NewMetrics(n.Metrics),
		},
		ReadyTimeout: cfg.ReadyTimeout,
		DataDir:      dataDir,
		Logger:       cfg.Logger.Named("sessions"),
	}, n.Registry)
	if err := n.Sessions.Reconcile(); err != nil {
		return nil, err
	}
	n.Store = kvstore.New(n.Registry, n.Sessions, kvstore.DefaultLimits())
	n.HTTP = httpapi.New(httpapi.Config{
		Store: n.Store, Sessions: n.Sessions, Cluster: n.Registry,
		Registry: n.Metrics, Logger: cfg.Logger,
		CSRFProtection: cfg.CSRFProtection, Version: cfg.Version,
	})
	go func() { n.serveErr <- n.HTTP.Serve(n.ln) }()
	cfg.Logger.Info("srdd node serving", "node", cfg.NodeID, "http", n.ln.Addr().String(),
		"raft", n.Registry.RaftAddr(), "data", dataDir, "spark_master", master)
	ok = true
	return n, nil
}

// HTTPAddr returns the address the node serves HTTP on.
func (n *Node) HTTPAddr() string { return n.ln.Addr().String() }

// ServeErr delivers the HTTP server's error if it stops on its own.
func (n *Node) ServeErr() <-chan error { return n.serveErr }

// Close shuts down in reverse dependency order: HTTP, interpreters, Raft.
// It is idempotent.
func (n *Node) Close() {
	n.closeOnce.Do(func() {
		if n.HTTP != nil {
			_ = n.HTTP.Close()
		} else if n.ln != nil {
			_ = n.ln.Close()
		}
		if n.Sessions != nil {
			n.Sessions.Close()
		}
		if n.Registry != nil {
			if err := n.Registry.Close(); err != nil {
				n.logger.Warn("registry close", "error", err)
			}
		}
	})
}
