package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	srddclient "github.com/srdd/srdd/client/go"
	"github.com/srdd/srdd/cluster"
)

func clusterCmd() *cobra.Command {
	c := &cobra.Command{Use: "cluster", Short: "Show and change cluster membership"}
	c.AddCommand(&cobra.Command{
		Use: "status", Short: "Members, voter state, health, leader, Raft indexes, sessions and RDDs per node", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var st cluster.Status
			if err := clientFor(cmd).Do(context.Background(), http.MethodGet, "/v1/cluster", nil, &st); err != nil {
				return err
			}
			fmt.Printf("node %s sees leader %s; term %s, commit %s, applied %s\n", st.Node, st.Leader, st.Term, st.CommitIndex, st.AppliedIndex)
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tHTTP\tRAFT\tSUFFRAGE\tSTATUS\tLEADER\tSESSIONS\tRDDS")
			for _, m := range st.Members {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%v\t%d\t%s\n", m.ID, m.HTTPAddr, m.RaftAddr, orDash(m.Suffrage),
					m.Status, m.Leader, len(m.Sessions), orDash(strings.Join(m.RDDs, ",")))
			}
			return w.Flush()
		},
	})
	c.AddCommand(&cobra.Command{
		Use: "remove ID", Short: "Remove a node from the cluster (it must wipe its data dir to join again)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clientFor(cmd).Do(context.Background(), http.MethodDelete, "/v1/cluster/nodes/"+url.PathEscape(args[0]), nil, nil)
		},
	})
	return c
}

func clientFor(cmd *cobra.Command) *srddclient.Client {
	addr, _ := cmd.Flags().GetString("addr")
	return srddclient.New(addr)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
