package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/preflight"
	"github.com/srdd/srdd/internal/sdnotify"
	"github.com/srdd/srdd/node"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge"
)

// serverOpts are srdd server's flags. Every default comes from
// node.DefaultConfig, the defaults of the packages that own them
// (TestServerFlagsTakeTheDefaults checks flags, defaults and the README
// agree).
type serverOpts struct {
	cfg                                                     node.Config
	conf                                                    []string
	logLevel                                                string
	maxDriverMem, maxExecutorMem, maxStmtBytes, maxLogBytes string
	maxArtifactBytes                                        string
	maxDead                                                 int
	skipPreflight                                           bool
	diskReserve                                             string
}

func (o *serverOpts) register(f *pflag.FlagSet) {
	d, cfg := node.DefaultConfig(), &o.cfg
	f.StringVar(&cfg.HTTPAddr, "http-addr", d.HTTPAddr, "HTTP address to serve the API on")
	f.StringVar(&cfg.RaftAddr, "raft-addr", d.RaftAddr, "TCP address for Raft")
	f.StringVar(&cfg.AdvertiseHTTP, "advertise-http", "", "HTTP address other nodes use to reach this one, host:port (a DNS name allowed); default: --http-addr as bound")
	f.StringVar(&cfg.AdvertiseRaft, "advertise-raft", "", "Raft address other nodes dial, host:port (a DNS name allowed); default: --raft-addr as bound")
	f.StringVar(&cfg.DataDir, "data-dir", d.DataDir, "directory for the registry (Raft) and interpreter files")
	f.StringVar(&cfg.NodeID, "node-id", d.NodeID, "unique, stable id of this node")
	f.BoolVar(&cfg.Bootstrap, "bootstrap", d.Bootstrap, "form a one-node cluster if this node has no Raft state yet; given explicitly, refused on a node that already belongs to a cluster")
	f.StringSliceVar(&cfg.Join, "join", nil, "join the cluster through these members' HTTP addresses (comma-separated); ignored once the node has Raft state")
	f.StringSliceVar(&cfg.Admit, "admit", nil, "with --bootstrap: admit these node IDs (comma-separated) as voters when this node forms a new cluster, so each may join once; later, admins run `srdd cluster admit ID`")
	f.BoolVar(&cfg.NonVoter, "non-voter", false, "join as a non-voter, which leaves the cluster (and wipes its Raft state) on SIGTERM")
	f.StringVar(&cfg.SparkMaster, "spark-master", d.SparkMaster, "Spark master for session interpreters")
	f.StringVar(&cfg.Python, "python", "", "Python executable with the pinned pyspark and msgpack (make venv); default: env SRDD_PYTHON, else .venv/bin/python in the working directory if it exists, else "+d.Python)
	f.BoolVar(&o.skipPreflight, "skip-preflight", false, "start without checking --python, Java and the directories first (srdd doctor runs the same checks)")
	f.StringArrayVar(&cfg.InterpreterEnv, "interpreter-env", nil, "pass this variable of the node's environment to session interpreters (repeatable); they otherwise get an allowlist only (PATH, HOME, locale, JAVA_HOME, SPARK_*, PYSPARK_*, HADOOP_*, ...), and session code can read what they get")
	f.StringVar(&cfg.InterpreterUser, "interpreter-user", "", "run every session interpreter and batch driver as this one unprivileged account (the node must run as root); session code then cannot read the Raft dir, users file, keys or certificates, but sessions share that uid and so can reach each other: use --interpreter-uids to isolate them")
	f.StringVar(&cfg.InterpreterUIDs, "interpreter-uids", "", "FIRST-LAST: run each live session interpreter and batch driver as a uid of its own from this range (the node must run as root; each uid needs an account, their group is gid FIRST); sessions then cannot read each other's memory, files or tokens, nor signal each other")
	f.StringArrayVar(&o.conf, "spark-conf", nil, "extra Spark setting for every session, key=value (repeatable)")
	f.DurationVar(&cfg.LeaderWait, "leader-wait", d.LeaderWait, "how long a registry write waits for a leader during start-up or an election before it fails with 503 no_leader")
	f.DurationVar(&cfg.ReadyTimeout, "ready-timeout", d.ReadyTimeout, "how long a request waits for a starting session before 503")
	f.IntVar(&cfg.KVCacheMiB, "kv-cache-mib", d.KVCacheMiB, "size of each session's hot-key cache in MiB (spark.srdd.kv.cacheMiB)")
	f.IntVar(&cfg.MetricsMaxRDDs, "metrics-max-rdds", d.MetricsMaxRDDs, "shared RDDs that get their own rdd label in per-RDD metrics; later ones are counted under rdd=\"_other\"")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	f.StringVar(&cfg.PeerCert, "peer-cert", "", "this node's peer certificate (PEM; a node certificate: URI SAN srdd://node/ID = --node-id, TLS server and client usage, as `srdd cert node` makes): Raft, internal calls, forwarding and joins then run over mutual TLS on the Raft port; reloaded on SIGHUP")
	f.StringVar(&cfg.PeerKey, "peer-key", "", "PEM private key of --peer-cert")
	f.StringVar(&cfg.PeerCA, "peer-ca", "", "CA (PEM bundle) that other nodes' peer certificates must chain to; reloaded on SIGHUP")
	f.StringVar(&cfg.ClusterKeyFile, "cluster-key-file", "", "development only, without peer TLS: file holding a shared secret required on node-to-node HTTP calls (Raft itself stays unauthenticated)")
	f.StringVar(&cfg.AuthFile, "auth-file", "", "users file (srdd auth add): every call then needs a bearer token or HTTP Basic of a user whose roles allow it; reloaded on SIGHUP")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "serve the API over https with this PEM certificate (chain); reloaded on SIGHUP")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cfg.TLSClientCA, "tls-client-ca", "", "accept client certificates signed by this CA (PEM): a certificate's CN names a user of --auth-file")
	f.StringVar(&cfg.TLSCA, "tls-ca", "", "CA (PEM) other nodes' certificates are checked against, and session code's calls to this node (default: the system's roots)")
	f.BoolVar(&cfg.Insecure, "insecure", false, "allow a non-loopback --http-addr, --redis-addr or --connect-addr without --auth-file (protected mode refuses it otherwise) and, without peer TLS, a plaintext cluster (Raft off loopback, joining and being joined); only on a network you trust")
	f.DurationVar(&cfg.ReadTimeout, "read-timeout", d.ReadTimeout, "a whole API request, body included, must arrive within this; a body is read only once the caller is authenticated (else 408, and the connection closes)")
	f.IntVar(&cfg.MaxConns, "max-conns", d.MaxConns, "most open API connections; a client over it gets a fast 503")
	f.StringVar(&cfg.RedisAddr, "redis-addr", d.RedisAddr, "also serve the Redis protocol (RESP2/RESP3) on HOST:PORT: key rdd:key is key of shared RDD rdd, with the API's users, rules and forwarding (README, \"Redis clients\"); off when empty; loopback only without --auth-file")
	f.StringVar(&cfg.ConnectAddr, "connect-addr", d.ConnectAddr, "also serve Spark Connect on HOST:PORT (15002 is Spark's own): a client names its session with sc://HOST:PORT/;x-srdd-session=ID and runs in that session's SparkContext, with the API's users and rules (README, \"Spark Connect\"); off when empty; loopback only without --auth-file")
	f.IntVar(&cfg.ConnectMaxExecsPerSession, "connect-max-executions-per-session", d.ConnectMaxExecsPerSession, "most Spark Connect plans (ExecutePlan, ReattachExecute) running at once in one session; over it, RESOURCE_EXHAUSTED")
	f.IntVar(&cfg.ConnectMaxExecsPerPrincipal, "connect-max-executions-per-principal", d.ConnectMaxExecsPerPrincipal, "most Spark Connect plans running at once for one principal, over all sessions of this node (with --auth-file); over it, RESOURCE_EXHAUSTED")
	f.DurationVar(&cfg.ConnectIdleTimeout, "connect-idle-timeout", d.ConnectIdleTimeout, "close a Spark Connect client's connection that has had no stream open for this long (the client reconnects when it next calls; its Spark session lives on in the interpreter)")
	f.StringVar(&o.maxArtifactBytes, "connect-max-artifact-bytes", sessions.FormatSize(d.ConnectMaxArtifactBytes), "most bytes one Spark Connect AddArtifacts call may upload into a session (jars, Python files, files, archives); over it, RESOURCE_EXHAUSTED")
	f.BoolVar(&cfg.RedisTLS, "redis-tls", d.RedisTLS, "require TLS on the Redis port (it speaks TLS whenever --tls-cert is given; this makes a missing --tls-cert an error)")
	f.StringSliceVar(&cfg.AllowedHosts, "allowed-hosts", nil, "the only Host header names the API answers (comma-separated, e.g. srdd.example.com); on a non-loopback bind without it any Host is served, and a web page could reach the node under a name of its own (DNS rebinding)")
	f.BoolVar(&cfg.CSRFProtection, "csrf-protection", false, "require an X-Requested-By header on mutating requests (as Livy's csrf-protection)")
	f.StringVar(&cfg.Durable.CheckpointURI, "checkpoint-uri", "", "where durable RDDs are checkpointed: a directory or any Hadoop-compatible URI Spark can write (hdfs://, s3a://, shared file://); default DATA-DIR/checkpoints. In a cluster, every node must be able to read every other node's checkpoints")
	f.DurationVar(&cfg.Raft.DownAfter, "down-after", d.Raft.DownAfter, "the leader marks a node down (its sessions dead, its durable RDDs adopted elsewhere) once it has not answered Raft for this long, a paused one too; at least 1s; 0: 3s")
	f.StringVar(&o.diskReserve, "disk-reserve", sessions.FormatSize(cluster.DefaultDiskReserve), "free space kept on the data dir's and a local --checkpoint-uri's filesystems: below it, writes answer 507 insufficient_storage (nothing is appended), reads go on, /readyz says disk_space, and writes pass again once space is freed; 0: no check")
	f.IntVar(&cfg.Durable.CheckpointEvery, "checkpoint-every", d.Durable.CheckpointEvery, "checkpoint a durable RDD after this many logged writes")
	f.DurationVar(&cfg.Durable.CheckpointInterval, "checkpoint-interval", d.Durable.CheckpointInterval, "checkpoint a durable RDD with new writes at least this often")
	f.StringArrayVar(&cfg.FileRoots, "file-root", nil, "directory clients may read and write in bulk loads and saves and name in session jars, pyFiles, files and archives (repeatable; relative paths are taken from the first); default DATA-DIR/files")
	f.BoolVar(&cfg.AllowRemoteURIs, "allow-remote-uris", false, "let clients name non-local URIs (http:, hdfs:, s3a:, ...) in loads, saves and session files; off: local paths in a --file-root only")
	f.StringVar(&o.maxDriverMem, "max-driver-memory", sessions.FormatSize(d.MaxDriverMemory), "largest driverMemory / spark.driver.memory a session may ask for")
	f.StringVar(&o.maxExecutorMem, "max-executor-memory", sessions.FormatSize(d.MaxExecutorMemory), "largest executorMemory / spark.executor.memory a session may ask for")
	f.IntVar(&cfg.MaxCores, "max-cores", d.MaxCores, "most driverCores / executorCores (spark.driver.cores, spark.executor.cores) a session may ask for")
	f.IntVar(&cfg.MaxExecutors, "max-executors", d.MaxExecutors, "most numExecutors (spark.executor.instances, dynamic allocation bounds) a session may ask for")
	f.IntVar(&cfg.MaxSessions, "max-sessions", d.MaxSessions, "most live sessions (interpreters, each a JVM) on this node; over it, 429 limit_reached")
	f.IntVar(&cfg.MaxBatches, "max-batches", d.MaxBatches, "most live Livy batches (spark-submit runs, each a JVM) on this node; over it, 429 limit_reached")
	f.IntVar(&cfg.MaxSessionsPerPrincipal, "max-sessions-per-principal", d.MaxSessionsPerPrincipal, "most live sessions one principal may hold on this node (unauthenticated callers are one principal)")
	f.IntVar(&cfg.MaxRDDs, "max-rdds", d.MaxRDDs, "most shared RDDs this node's sessions may hold")
	f.IntVar(&o.maxDead, "max-dead-sessions", d.MaxDeadSessions, "ended (dead or killed) sessions of this node kept in the registry and under DATA-DIR/sessions (0: none); the oldest are pruned first, and ids are never reused")
	f.IntVar(&cfg.MaxStatements, "max-statements", d.MaxStatements, "statements kept per session (in memory and on disk); older ones are trimmed and answer 404")
	f.StringVar(&o.maxStmtBytes, "max-statement-bytes", sessions.FormatSize(d.MaxStatementBytes), "bytes of code and output kept per session's statements; older ones are trimmed, and longer code answers 413")
	f.IntVar(&cfg.MaxLogLines, "max-log-lines", d.MaxLogLines, "interpreter log lines kept per session")
	f.StringVar(&o.maxLogBytes, "max-log-bytes", sessions.FormatSize(int64(d.MaxLogBytes)), "interpreter log bytes kept per session")
	f.BoolVar(&cfg.MemoryOnly, "memory-only", false, "disable durable RDDs: every shared RDD is memory-mode (its data is lost with its interpreter)")
}

// config is the node configuration the parsed flags say (sizes parsed,
// --spark-conf split); explicitBootstrap is whether --bootstrap was given.
func (o *serverOpts) config(explicitBootstrap bool) (node.Config, error) {
	cfg := o.cfg
	cfg.SparkConf = map[string]string{}
	for _, kv := range o.conf {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return cfg, fmt.Errorf("--spark-conf %q must be key=value", kv)
		}
		cfg.SparkConf[k] = v
	}
	for _, m := range []struct {
		flag, val string
		to        *int64
	}{{"--max-driver-memory", o.maxDriverMem, &cfg.MaxDriverMemory}, {"--max-executor-memory", o.maxExecutorMem, &cfg.MaxExecutorMemory},
		{"--max-statement-bytes", o.maxStmtBytes, &cfg.MaxStatementBytes}, {"--connect-max-artifact-bytes", o.maxArtifactBytes, &cfg.ConnectMaxArtifactBytes}} {
		n, err := sessions.ParseSize(m.val)
		if err != nil || n <= 0 {
			return cfg, fmt.Errorf("%s %q must be a size such as 512m or 8g", m.flag, m.val)
		}
		*m.to = n
	}
	lb, err := sessions.ParseSize(o.maxLogBytes)
	if err != nil || lb <= 0 || lb > 1<<30 {
		return cfg, fmt.Errorf("--max-log-bytes %q must be a size such as 1m, at most 1g", o.maxLogBytes)
	}
	cfg.MaxLogBytes = int(lb)
	// The reserve's default stays 0 in the config (cluster and kvstore
	// fill it in); 0 on the command line turns the check off.
	if o.diskReserve == "0" {
		cfg.Raft.DiskReserve, cfg.Durable.DiskReserve = -1, -1
	} else if dr, err := sessions.ParseSize(o.diskReserve); err != nil || dr <= 0 {
		return cfg, fmt.Errorf("--disk-reserve %q must be a size such as 16m, or 0 for no check", o.diskReserve)
	} else if dr != cluster.DefaultDiskReserve {
		cfg.Raft.DiskReserve, cfg.Durable.DiskReserve = dr, dr
	}
	switch {
	case o.maxDead < 0:
		return cfg, fmt.Errorf("--max-dead-sessions %d must not be negative", o.maxDead)
	case o.maxDead == 0:
		cfg.MaxDeadSessions = -1 // keep none
	default:
		cfg.MaxDeadSessions = o.maxDead
	}
	cfg.Version = version
	cfg.StrictBootstrap = explicitBootstrap
	return cfg, nil
}

func serverCmd() *cobra.Command {
	o := &serverOpts{}
	c := &cobra.Command{
		Use:   "server",
		Short: "Run an srdd node in the foreground (Ctrl-C stops it cleanly)",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := o.config(cmd.Flags().Changed("bootstrap"))
			if err != nil {
				return err
			}
			cfg.Python = defaultPython(cfg.Python)
			// A config the node would refuse (protected mode, ...) is
			// refused before the preflight creates any directory.
			if err := cfg.Validate(); err != nil {
				return exitCode(2, fmt.Errorf("invalid node config: %w", err))
			}
			// Tests only (the fast tier, README "Tests"): sessions run on
			// the fake interpreter (sparkbridge/bridgetest), which needs
			// neither Python nor Java, so their preflight is skipped.
			skipPreflight := o.skipPreflight
			if os.Getenv(testFakeInterpreterEnv) == "1" {
				cfg.FakeInterpreter, skipPreflight = true, true
			}
			if !skipPreflight {
				pc := preflight.Config{Python: cfg.Python, DataDir: cfg.DataDir,
					CheckpointURI: cfg.Durable.CheckpointURI, FileRoots: cfg.FileRoots, MemoryOnly: cfg.MemoryOnly, Create: true}
				pc.RunAs, pc.RunAsName = interpreterCredential(cfg)
				checks := preflight.Run(pc)
				if err := preflight.Err(checks); err != nil {
					return exitCode(2, err)
				}
			}
			cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "srdd", Level: hclog.LevelFromString(o.logLevel), Output: os.Stderr})
			n, err := node.Start(cfg)
			if err != nil {
				return err
			}
			scheme := "http"
			if cfg.TLSCert != "" {
				scheme = "https"
			}
			fmt.Fprintf(os.Stderr, "srdd: serving on %s://%s (Ctrl-C to stop)\n", scheme, n.HTTPAddr())
			if a := n.ConnectAddr(); a != "" {
				fmt.Fprintf(os.Stderr, "srdd: Spark Connect on sc://%s/;x-srdd-session=ID\n", a)
			}
			// Start returned: the node has caught up, registered and can
			// take a write (GET /readyz). Tell systemd (Type=notify).
			if _, err := sdnotify.Ready(); err != nil {
				cfg.Logger.Warn("cannot tell systemd the node is ready", "error", err)
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
		wait:
			for {
				select {
				case <-hup:
					// Reload logs what it kept on a bad file.
					_ = n.Reload()
				case s := <-sig:
					cfg.Logger.Info("stopping", "signal", s.String())
					_, _ = sdnotify.Stopping()
					break wait
				case err := <-n.ServeErr():
					cfg.Logger.Error("http server stopped", "error", err)
					break wait
				}
			}
			go func() {
				<-sig
				cfg.Logger.Warn("second signal: exiting now")
				os.Exit(2)
			}()
			n.Close()
			return nil
		},
	}
	o.register(c.Flags())
	return c
}

// defaultPython is the interpreter Python when --python is not given:
// env SRDD_PYTHON, else .venv/bin/python in the working directory (what
// `make venv` makes, so the README's commands work in a fresh clone),
// else python3.
func defaultPython(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv("SRDD_PYTHON"); p != "" {
		return p
	}
	if fi, err := os.Stat(filepath.Join(".venv", "bin", "python")); err == nil && !fi.IsDir() {
		if abs, err := filepath.Abs(filepath.Join(".venv", "bin", "python")); err == nil {
			return abs
		}
	}
	return "python3"
}

// exitCode prints err as main does and ends the process with code (2:
// refused before it started, a set-up to fix). It runs before the node
// opens anything, so there is nothing to clean up.
func exitCode(code int, err error) error {
	fmt.Fprintln(os.Stderr, "srdd:", err)
	os.Exit(code)
	return err
}

// interpreterCredential is whom interpreters run as, for the preflight's
// --python check: the first uid of --interpreter-uids, or the account of
// --interpreter-user (nil when they run as the node, or when the flags
// are wrong: node.Start says why).
func interpreterCredential(cfg node.Config) (*syscall.Credential, string) {
	if os.Geteuid() != 0 {
		return nil, ""
	}
	if cfg.InterpreterUIDs != "" {
		first, _, err := sparkbridge.ParseUIDRange(cfg.InterpreterUIDs)
		if err != nil {
			return nil, ""
		}
		return &syscall.Credential{Uid: first, Gid: first, Groups: []uint32{}}, fmt.Sprintf("uid %d (--interpreter-uids)", first)
	}
	if cfg.InterpreterUser != "" {
		u, err := sparkbridge.LookupUser(cfg.InterpreterUser)
		if err != nil {
			return nil, ""
		}
		return u.Credential(), u.Name + " (--interpreter-user)"
	}
	return nil, ""
}
