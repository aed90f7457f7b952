// Command bench is srdd's benchmark suite.
//
//	bench suite   run the standard set against a fresh srdd node, Redis and
//	              a no-op route; write RESULTS.md, results.json and charts
//	bench run     one load against one target (srdd, redis, noop, seed)
//	bench noop    serve the no-op route (the front end's ceiling)
//	bench report  rewrite RESULTS.md and the charts from results.json
//
// Benchmarks never run inside `make test`; `make bench` runs the suite.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/srdd/srdd/benchmarks/loadgen"
	"github.com/srdd/srdd/benchmarks/noop"
)

// commands are bench's subcommands, each given the arguments after its
// name.
var commands = map[string]func(args []string) error{
	"run": runCmd, "noop": noopCmd, "suite": suiteCmd, "report": reportCmd, "durable": durableCmd, "compare": compareCmd,
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		usage()
	}
	if err := cmd(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: bench suite|durable|run|noop|report|compare [flags] (bench CMD -h for flags)")
	os.Exit(2)
}

// loadFlags binds the load generator's knobs to fs.
func loadFlags(fs *flag.FlagSet, c *loadgen.Config) {
	fs.IntVar(&c.Keys, "keys", 100_000, "key space size")
	fs.StringVar(&c.KeyPrefix, "key-prefix", "", "prefix of every key")
	fs.IntVar(&c.ValueSize, "value-size", 100, "value size in bytes (a JSON string)")
	fs.IntVar(&c.Concurrency, "clients", 8, "concurrent clients (closed loop)")
	fs.Float64Var(&c.ReadRatio, "read", 1, "fraction of gets (the rest are sets)")
	fs.StringVar(&c.Dist, "dist", "uniform", "key distribution: uniform, zipfian, sequential")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured time")
	fs.IntVar(&c.Ops, "ops", 0, "stop after this many requests instead of a duration")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "unmeasured time before the duration")
	fs.Uint64Var(&c.Seed, "seed", 1, "random seed (same seed, same keys)")
	fs.Int64Var(&c.SeqStart, "seq-start", 0, "sequential: first position in the key order")
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var cfg loadgen.Config
	loadFlags(fs, &cfg)
	target := fs.String("target", "srdd", "srdd, redis, noop or seed")
	addr := fs.String("addr", "127.0.0.1:8998", "target address (host:port)")
	rdd := fs.String("rdd", "bench", "srdd: shared RDD name")
	session := fs.Int64("session", 0, "seed: session id")
	variable := fs.String("var", "srdd", "seed: the ShareableRdd variable")
	out := fs.String("json", "", "write the result as JSON to this file")
	load := fs.Bool("load", false, "redis: load the keys first")
	_ = fs.Parse(args)
	var t loadgen.Target
	switch *target {
	case "srdd":
		t = loadgen.NewSRDD(*addr, *rdd, cfg.Concurrency)
	case "noop":
		t = loadgen.NewHTTPGet("noop", *addr, noop.Path, cfg.Concurrency)
	case "redis":
		r := loadgen.NewRedis(*addr)
		if *load {
			if err := r.Load(cfg.KeyPrefix, cfg.Keys, cfg.ValueSize); err != nil {
				return err
			}
		}
		t = r
	case "seed":
		t = loadgen.NewSeed(*addr, *session, *variable, cfg.Concurrency)
	default:
		return fmt.Errorf("unknown target %q", *target)
	}
	defer t.Close()
	res, err := loadgen.Run(context.Background(), "adhoc", cfg, t)
	if err != nil {
		return err
	}
	printResult(res)
	if *out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		return os.WriteFile(*out, b, 0o644)
	}
	return nil
}

func printResult(r loadgen.Result) {
	fmt.Printf("%-28s %-6s c=%-3d ops=%-8d %9.0f ops/s  p50 %7.3f  p99 %8.3f  p99.9 %8.3f  max %8.3f ms  errors %d %s\n",
		r.Scenario, r.Target, r.Config.Concurrency, r.Ops, r.OpsPerSec, r.Latency.P50, r.Latency.P99,
		r.Latency.P999, r.Latency.Max, r.Errors, r.FirstError)
}

func noopCmd(args []string) error {
	fs := flag.NewFlagSet("noop", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("noop listening on %s\n", ln.Addr())
	return noop.Serve(ln)
}
