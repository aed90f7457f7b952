package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	srddclient "github.com/srdd/srdd/client/go"
)

func addClientCmds(root *cobra.Command) {
	var addr string
	root.PersistentFlags().StringVar(&addr, "addr", envOr("SRDD_ADDR", "127.0.0.1:8998"), "srdd node to talk to (env SRDD_ADDR)")
	cl := func() *srddclient.Client { return srddclient.New(addr) }
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
			fmt.Fprintln(w, "NAME\tSESSION\tNODE\tMODE\tSTATE\tKEYS")
			for _, r := range rdds {
				keys := "-"
				if r.Keys != nil {
					keys = fmt.Sprint(*r.Keys)
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", r.Name, r.Session, r.Node, r.Mode, r.State, keys)
			}
			return w.Flush()
		},
	})
	var session string
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a shared RDD", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := cl().CreateRDD(ctx, args[0], session)
			if err != nil {
				return err
			}
			return printJSON(r)
		},
	}
	create.Flags().StringVar(&session, "session", "", "session id or name to place the RDD in (default: the node's default session)")
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
