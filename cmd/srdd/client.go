package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	srddclient "github.com/srdd/srdd/client/go"
)

func addClientCmds(root *cobra.Command) {
	var addr string
	var opts srddclient.Options
	root.PersistentFlags().StringVar(&addr, "addr", envOr("SRDD_ADDR", "127.0.0.1:8998"), "srdd node to talk to (env SRDD_ADDR)")
	root.PersistentFlags().StringVar(&opts.Token, "token", os.Getenv("SRDD_TOKEN"), "bearer token (srdd auth add; env SRDD_TOKEN)")
	root.PersistentFlags().StringVar(&opts.CACert, "ca-cert", os.Getenv("SRDD_CA_CERT"), "CA certificate (PEM) of the node's TLS certificate; addresses without a scheme then use https (env SRDD_CA_CERT)")
	cl := func() *srddclient.Client {
		c, err := srddclient.NewWithOptions(addr, opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "srdd:", err)
			os.Exit(1)
		}
		return c
	}
	ctx := context.Background()

	rdd := &cobra.Command{Use: "rdd", Short: "List, create, describe and drop shared RDDs"}
	rdd.AddCommand(&cobra.Command{
		Use: "ls", Short: "List shared RDDs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rdds, err := cl().ListRDDs(ctx)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSESSION\tNODE\tMODE\tSTATE\tKEYS\tCOPIES\tDETAIL")
			for _, r := range rdds {
				keys := "-"
				if r.Keys != nil {
					keys = fmt.Sprint(*r.Keys)
				}
				copies := "-" // a server from before copies were reported
				if r.Replicas > 0 {
					copies = fmt.Sprintf("%d/%d", len(r.Copies), r.Replicas)
					if len(r.Copies) > 0 {
						nodes := make([]string, len(r.Copies))
						for i, c := range r.Copies {
							nodes[i] = c.Node
							if c.Role == "copy" && c.AppliedIndex > 0 && r.LastWrite >= c.AppliedIndex {
								nodes[i] += fmt.Sprintf("(lag %d)", r.LastWrite-c.AppliedIndex)
							}
						}
						copies += " " + strings.Join(nodes, ",")
					}
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Session, r.Node, r.Mode, r.State, keys, copies, rddDetail(r))
			}
			return w.Flush()
		},
	})
	var session, mode string
	var replicas int
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a shared RDD", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("replicas") && replicas < 1 {
				return fmt.Errorf("--replicas must be 1 or more, not %d", replicas)
			}
			r, err := cl().CreateRDDWith(ctx, args[0], srddclient.CreateRDDOptions{Session: session, Mode: mode, Replicas: replicas})
			if err != nil {
				return err
			}
			return printJSON(r)
		},
	}
	create.Flags().StringVar(&session, "session", "", "session id or name to place the RDD in (default: the node's default session)")
	create.Flags().StringVar(&mode, "mode", "", "durable (the default: writes logged through Raft, checkpointed, rebuilt after failures) or memory (faster, lost with its interpreter)")
	create.Flags().IntVar(&replicas, "replicas", 0, "copies wanted, 1 up to the cluster's node count (default: 2 for a durable RDD on 2 or more nodes, else 1); each copy is on a different node, and one takes over when the owner's node is lost")
	rdd.AddCommand(create)
	rdd.AddCommand(&cobra.Command{
		Use: "describe NAME", Short: "Describe a shared RDD", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := cl().DescribeRDD(ctx, args[0])
			if err != nil {
				return err
			}
			return printJSON(r)
		},
	})
	rdd.AddCommand(&cobra.Command{
		Use: "drop NAME", Short: "Drop a shared RDD and its data", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return cl().DropRDD(ctx, args[0]) },
	})
	root.AddCommand(rdd)

	root.AddCommand(&cobra.Command{
		Use: "get RDD KEY", Short: "Print the JSON value of a key", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := cl().Get(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Println(string(v))
			return nil
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "set RDD KEY VALUE",
		Short: "Set a key; VALUE is JSON, or taken as a string if it is not valid JSON",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := []byte(args[2])
			if !json.Valid(v) {
				v, _ = json.Marshal(args[2])
			}
			return cl().Set(ctx, args[0], args[1], v)
		},
	})
	root.AddCommand(&cobra.Command{
		Use: "del RDD KEY", Short: "Delete a key", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return cl().Delete(ctx, args[0], args[1]) },
	})
	addBulkCmds(root, cl)
}

func addBulkCmds(root *cobra.Command, cl func() *srddclient.Client) {
	ctx := context.Background()
	var opts srddclient.LoadOptions
	var quiet bool
	load := &cobra.Command{
		Use:   "load RDD PATH",
		Short: "Load a JSON Lines, CSV or Parquet file (a path in one of the node's --file-root directories; relative: in the first) into a shared RDD, showing progress",
		Long: "Load rows into a shared RDD. JSON Lines rows are {\"key\": ..., \"value\": ...}; CSV (with a header)\n" +
			"and Parquet have a key column and a value column holding JSON text. Loaded rows overwrite\n" +
			"existing keys (--mode merge) or replace all data (--mode replace). PATH is read by the node's\n" +
			"Spark, so it must be a path on the node (or a URI Spark can read).",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cl()
			if _, err := c.Load(ctx, args[0], args[1], opts); err != nil {
				return err
			}
			out := cmd.ErrOrStderr()
			last := ""
			st, err := c.WaitLoad(ctx, args[0], 500*time.Millisecond, func(st srddclient.LoadStatus) {
				if quiet || st.State != "running" {
					return
				}
				line := fmt.Sprintf("loading %s: %5.1f%%  %d rows  %.0f rows/s", st.Path, st.Percent, st.Rows, st.RowsPerSec)
				if line != last {
					fmt.Fprintln(out, line)
					last = line
				}
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "loaded %d rows from %s in %.1fs (%.0f rows/s)\n", st.Rows, st.Path, st.Seconds, st.RowsPerSec)
			return nil
		},
	}
	load.Flags().StringVar(&opts.Format, "format", "", "jsonl (default), csv or parquet")
	load.Flags().StringVar(&opts.Mode, "mode", "", "merge (default: loaded rows overwrite existing keys) or replace")
	load.Flags().StringVar(&opts.KeyColumn, "key-column", "", "CSV/Parquet key column (default key)")
	load.Flags().StringVar(&opts.ValueColumn, "value-column", "", "CSV/Parquet value column, JSON text (default value)")
	load.Flags().BoolVarP(&quiet, "quiet", "q", false, "do not print progress")
	root.AddCommand(load)

	var format string
	var overwrite bool
	save := &cobra.Command{
		Use:   "save RDD PATH",
		Short: "Save a shared RDD as JSON Lines, CSV or Parquet (a directory of part files in one of the node's --file-root directories)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := cl().Save(ctx, args[0], args[1], format, overwrite)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "saved %d rows to %s (%s) in %.1fs\n", res.Rows, res.Path, res.Format, res.Seconds)
			return nil
		},
	}
	save.Flags().StringVar(&format, "format", "jsonl", "jsonl, csv or parquet")
	save.Flags().BoolVar(&overwrite, "overwrite", false, "replace PATH if it exists")
	root.AddCommand(save)

	var prefix string
	var limit int
	var all bool
	scan := &cobra.Command{
		Use:   "scan RDD",
		Short: "List keys and values in key order, by prefix (one JSON object per line)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cl()
			cursor := ""
			for {
				page, err := c.Scan(ctx, args[0], prefix, cursor, limit)
				if err != nil {
					return err
				}
				for _, kv := range page.Items {
					b, _ := json.Marshal(kv)
					fmt.Fprintln(cmd.OutOrStdout(), string(b))
				}
				if !all || page.Cursor == "" {
					if page.Cursor != "" {
						fmt.Fprintf(cmd.ErrOrStderr(), "more keys follow (--all to list them)\n")
					}
					return nil
				}
				cursor = page.Cursor
			}
		},
	}
	scan.Flags().StringVar(&prefix, "prefix", "", "only keys that start with this")
	scan.Flags().IntVar(&limit, "limit", 100, "keys per page")
	scan.Flags().BoolVar(&all, "all", false, "follow the cursor to the last page")
	root.AddCommand(scan)

	root.AddCommand(&cobra.Command{
		Use: "count RDD", Short: "Print the number of keys", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := cl().Count(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), n)
			return nil
		},
	})
}

func printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// rddDetail says why a recovering RDD is not back yet and when it is
// tried next, or why it is at risk, for srdd rdd ls.
func rddDetail(r srddclient.RDD) string {
	if r.LastError == "" {
		if r.AtRisk != "" {
			return "at risk: " + r.AtRisk
		}
		return ""
	}
	d := r.LastError
	if r.NextAttemptAt > 0 {
		wait := time.Until(time.UnixMilli(r.NextAttemptAt)).Round(time.Second)
		d = fmt.Sprintf("next try in %s; last error: %s", max(wait, 0), r.LastError)
	}
	return d
}
