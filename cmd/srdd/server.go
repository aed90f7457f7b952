package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/srdd/srdd/internal/preflight"
	"github.com/srdd/srdd/internal/sdnotify"
	"github.com/srdd/srdd/node"
	"github.com/srdd/srdd/sessions"
)

func serverCmd() *cobra.Command {
	var cfg node.Config
	var conf []string
	var logLevel string
	var maxDriverMem, maxExecutorMem, maxStmtBytes, maxLogBytes string
	var maxDead int
	var skipPreflight bool
	c := &cobra.Command{
		Use:   "server",
		Short: "Run an srdd node in the foreground (Ctrl-C stops it cleanly)",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.SparkConf = map[string]string{}
			for _, kv := range conf {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--spark-conf %q must be key=value", kv)
				}
				cfg.SparkConf[k] = v
			}
			for _, m := range []struct {
				flag, val string
				to        *int64
			}{{"--max-driver-memory", maxDriverMem, &cfg.MaxDriverMemory}, {"--max-executor-memory", maxExecutorMem, &cfg.MaxExecutorMemory},
				{"--max-statement-bytes", maxStmtBytes, &cfg.MaxStatementBytes}} {
				n, err := sessions.ParseSize(m.val)
				if err != nil || n <= 0 {
					return fmt.Errorf("%s %q must be a size such as 512m or 8g", m.flag, m.val)
				}
				*m.to = n
			}
			lb, err := sessions.ParseSize(maxLogBytes)
			if err != nil || lb <= 0 || lb > 1<<30 {
				return fmt.Errorf("--max-log-bytes %q must be a size such as 1m, at most 1g", maxLogBytes)
			}
			cfg.MaxLogBytes = int(lb)
			switch {
			case maxDead < 0:
				return fmt.Errorf("--max-dead-sessions %d must not be negative", maxDead)
			case maxDead == 0:
				cfg.MaxDeadSessions = -1 // keep none
			default:
				cfg.MaxDeadSessions = maxDead
			}
			cfg.Version = version
			cfg.StrictBootstrap = cmd.Flags().Changed("bootstrap")
			cfg.Python = defaultPython(cfg.Python)
			// A config the node would refuse (protected mode, ...) is
			// refused before the preflight creates any directory.
			if err := cfg.Validate(); err != nil {
				return exitCode(2, fmt.Errorf("invalid node config: %w", err))
			}
			// Tests only (the fast tier, README "Tests"): sessions run on
			// the fake interpreter (sparkbridge/bridgetest), which needs
			// neither Python nor Java, so their preflight is skipped.
			if os.Getenv(testFakeInterpreterEnv) == "1" {
				cfg.FakeInterpreter, skipPreflight = true, true
			}
			if !skipPreflight {
				checks := preflight.Run(preflight.Config{Python: cfg.Python, DataDir: cfg.DataDir,
					CheckpointURI: cfg.Durable.CheckpointURI, FileRoots: cfg.FileRoots, MemoryOnly: cfg.MemoryOnly, Create: true})
				if err := preflight.Err(checks); err != nil {
					return exitCode(2, err)
				}
			}
			cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "srdd", Level: hclog.LevelFromString(logLevel), Output: os.Stderr})
			n, err := node.Start(cfg)
			if err != nil {
				return err
			}
			scheme := "http"
			if cfg.TLSCert != "" {
				scheme = "https"
			}
			fmt.Fprintf(os.Stderr, "srdd: serving on %s://%s (Ctrl-C to stop)\n", scheme, n.HTTPAddr())
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
	f := c.Flags()
	f.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8998", "HTTP address to serve the API on")
	f.StringVar(&cfg.RaftAddr, "raft-addr", "127.0.0.1:8999", "TCP address for Raft")
	f.StringVar(&cfg.AdvertiseHTTP, "advertise-http", "", "HTTP address other nodes use to reach this one, host:port (a DNS name allowed); default: --http-addr as bound")
	f.StringVar(&cfg.AdvertiseRaft, "advertise-raft", "", "Raft address other nodes dial, host:port (a DNS name allowed); default: --raft-addr as bound")
	f.StringVar(&cfg.DataDir, "data-dir", "data", "directory for the registry (Raft) and interpreter files")
	f.StringVar(&cfg.NodeID, "node-id", "node1", "unique, stable id of this node")
	f.BoolVar(&cfg.Bootstrap, "bootstrap", true, "form a one-node cluster if this node has no Raft state yet; given explicitly, refused on a node that already belongs to a cluster")
	f.StringSliceVar(&cfg.Join, "join", nil, "join the cluster through these members' HTTP addresses (comma-separated); ignored once the node has Raft state")
	f.StringSliceVar(&cfg.Admit, "admit", nil, "with --bootstrap: admit these node IDs (comma-separated) as voters when this node forms a new cluster, so each may join once; later, admins run `srdd cluster admit ID`")
	f.BoolVar(&cfg.NonVoter, "non-voter", false, "join as a non-voter, which leaves the cluster (and wipes its Raft state) on SIGTERM")
	f.StringVar(&cfg.SparkMaster, "spark-master", "local[*]", "Spark master for session interpreters")
	f.StringVar(&cfg.Python, "python", "", "Python executable with the pinned pyspark and msgpack (make venv); default: env SRDD_PYTHON, else .venv/bin/python in the working directory if it exists, else python3")
	f.BoolVar(&skipPreflight, "skip-preflight", false, "start without checking --python, Java and the directories first (srdd doctor runs the same checks)")
	f.StringArrayVar(&cfg.InterpreterEnv, "interpreter-env", nil, "pass this variable of the node's environment to session interpreters (repeatable); they otherwise get an allowlist only (PATH, HOME, locale, JAVA_HOME, SPARK_*, PYSPARK_*, HADOOP_*, ...), and session code can read what they get")
	f.StringVar(&cfg.InterpreterUser, "interpreter-user", "", "run session interpreters as this unprivileged account (the node must run as root); session code then cannot read the Raft dir, users file, keys or certificates")
	f.StringArrayVar(&conf, "spark-conf", nil, "extra Spark setting for every session, key=value (repeatable)")
	f.DurationVar(&cfg.LeaderWait, "leader-wait", 10*time.Second, "how long a registry write waits for a leader during start-up or an election before it fails with 503 no_leader")
	f.DurationVar(&cfg.ReadyTimeout, "ready-timeout", 2*time.Minute, "how long a request waits for a starting session before 503")
	f.IntVar(&cfg.KVCacheMiB, "kv-cache-mib", 64, "size of each session's hot-key cache in MiB (spark.srdd.kv.cacheMiB)")
	f.IntVar(&cfg.MetricsMaxRDDs, "metrics-max-rdds", 32, "shared RDDs that get their own rdd label in per-RDD metrics; later ones are counted under rdd=\"_other\"")
	f.StringVar(&logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	f.StringVar(&cfg.PeerCert, "peer-cert", "", "this node's peer certificate (PEM; a node certificate: URI SAN srdd://node/ID = --node-id, TLS server and client usage, as `srdd cert node` makes): Raft, internal calls, forwarding and joins then run over mutual TLS on the Raft port; reloaded on SIGHUP")
	f.StringVar(&cfg.PeerKey, "peer-key", "", "PEM private key of --peer-cert")
	f.StringVar(&cfg.PeerCA, "peer-ca", "", "CA (PEM bundle) that other nodes' peer certificates must chain to; reloaded on SIGHUP")
	f.StringVar(&cfg.ClusterKeyFile, "cluster-key-file", "", "development only, without peer TLS: file holding a shared secret required on node-to-node HTTP calls (Raft itself stays unauthenticated)")
	f.StringVar(&cfg.AuthFile, "auth-file", "", "users file (srdd auth add): every call then needs a bearer token or HTTP Basic of a user whose roles allow it; reloaded on SIGHUP")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "serve the API over https with this PEM certificate (chain); reloaded on SIGHUP")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cfg.TLSClientCA, "tls-client-ca", "", "accept client certificates signed by this CA (PEM): a certificate's CN names a user of --auth-file")
	f.StringVar(&cfg.TLSCA, "tls-ca", "", "CA (PEM) other nodes' certificates are checked against, and session code's calls to this node (default: the system's roots)")
	f.BoolVar(&cfg.Insecure, "insecure", false, "allow a non-loopback --http-addr without --auth-file (protected mode refuses it otherwise) and, without peer TLS, a plaintext cluster (Raft off loopback, joining and being joined); only on a network you trust")
	f.BoolVar(&cfg.CSRFProtection, "csrf-protection", false, "require an X-Requested-By header on mutating requests (as Livy's csrf-protection)")
	f.StringVar(&cfg.Durable.CheckpointURI, "checkpoint-uri", "", "where durable RDDs are checkpointed: a directory or any Hadoop-compatible URI Spark can write (hdfs://, s3a://, shared file://); default DATA-DIR/checkpoints. In a cluster, every node must be able to read every other node's checkpoints")
	f.IntVar(&cfg.Durable.CheckpointEvery, "checkpoint-every", 100000, "checkpoint a durable RDD after this many logged writes")
	f.DurationVar(&cfg.Durable.CheckpointInterval, "checkpoint-interval", time.Minute, "checkpoint a durable RDD with new writes at least this often")
	f.StringArrayVar(&cfg.FileRoots, "file-root", nil, "directory clients may read and write in bulk loads and saves and name in session jars, pyFiles, files and archives (repeatable; relative paths are taken from the first); default DATA-DIR/files")
	f.BoolVar(&cfg.AllowRemoteURIs, "allow-remote-uris", false, "let clients name non-local URIs (http:, hdfs:, s3a:, ...) in loads, saves and session files; off: local paths in a --file-root only")
	f.StringVar(&maxDriverMem, "max-driver-memory", "8g", "largest driverMemory / spark.driver.memory a session may ask for")
	f.StringVar(&maxExecutorMem, "max-executor-memory", "8g", "largest executorMemory / spark.executor.memory a session may ask for")
	f.IntVar(&cfg.MaxCores, "max-cores", 8, "most driverCores / executorCores (spark.driver.cores, spark.executor.cores) a session may ask for")
	f.IntVar(&cfg.MaxExecutors, "max-executors", 16, "most numExecutors (spark.executor.instances, dynamic allocation bounds) a session may ask for")
	f.IntVar(&cfg.MaxSessions, "max-sessions", 16, "most live sessions (interpreters, each a JVM) on this node; over it, 429 limit_reached")
	f.IntVar(&cfg.MaxBatches, "max-batches", 16, "most live Livy batches (spark-submit runs, each a JVM) on this node; over it, 429 limit_reached")
	f.IntVar(&cfg.MaxSessionsPerPrincipal, "max-sessions-per-principal", 8, "most live sessions one principal may hold on this node (unauthenticated callers are one principal)")
	f.IntVar(&cfg.MaxRDDs, "max-rdds", 1000, "most shared RDDs this node's sessions may hold")
	f.IntVar(&maxDead, "max-dead-sessions", sessions.DefaultMaxDeadSessions, "ended (dead or killed) sessions of this node kept in the registry and under DATA-DIR/sessions (0: none); the oldest are pruned first, and ids are never reused")
	f.IntVar(&cfg.MaxStatements, "max-statements", 1000, "statements kept per session (in memory and on disk); older ones are trimmed and answer 404")
	f.StringVar(&maxStmtBytes, "max-statement-bytes", "64m", "bytes of code and output kept per session's statements; older ones are trimmed, and longer code answers 413")
	f.IntVar(&cfg.MaxLogLines, "max-log-lines", 1000, "interpreter log lines kept per session")
	f.StringVar(&maxLogBytes, "max-log-bytes", "1m", "interpreter log bytes kept per session")
	f.BoolVar(&cfg.MemoryOnly, "memory-only", false, "disable durable RDDs: every shared RDD is memory-mode (its data is lost with its interpreter)")
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
