package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	srddclient "github.com/srdd/srdd/client/go"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/tlsconf"
)

func clusterCmd() *cobra.Command {
	c := &cobra.Command{Use: "cluster", Short: "Show and change cluster membership"}
	c.AddCommand(&cobra.Command{
		Use: "status", Aliases: []string{"ls"}, Short: "Members, voter state, health, leader, Raft indexes, sessions and RDDs per node; admitted nodes that have not joined", Args: cobra.NoArgs,
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
			for _, a := range st.Admitted {
				suffrage := "nonvoter"
				if a.Voter {
					suffrage = "voter"
				}
				fmt.Fprintf(w, "%s\t-\t-\t%s\tadmitted\tfalse\t0\t-\n", a.ID, suffrage)
			}
			return w.Flush()
		},
	})
	var voter bool
	admit := &cobra.Command{
		Use:   "admit ID",
		Short: "Admit a node ID (admin): the node may then join once, with its node certificate",
		Long: `Admit a node ID: a node joins only if an admin admitted its ID first, and
the admission is used up by the join. Without --voter the node may join only
as a non-voter (srdd server --non-voter). srdd cluster ls lists admitted IDs
that have not joined yet.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Admitted string `json:"admitted"`
				Voter    bool   `json:"voter"`
			}
			body := map[string]any{"id": args[0], "voter": voter}
			if err := clientFor(cmd).Do(context.Background(), http.MethodPost, "/v1/cluster/admit", body, &out); err != nil {
				return err
			}
			kind := "a non-voter"
			if out.Voter {
				kind = "a voter"
			}
			fmt.Printf("admitted %s: it may join once, as %s\n", out.Admitted, kind)
			return nil
		},
	}
	admit.Flags().BoolVar(&voter, "voter", false, "the node may join as a voter (counts towards quorum)")
	c.AddCommand(admit)
	var keyFile string
	remove := &cobra.Command{
		Use: "remove ID", Short: "Remove a node from the cluster (it must wipe its data dir to join again)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, _ := cmd.Flags().GetString("addr")
			token, _ := cmd.Flags().GetString("token")
			ca, _ := cmd.Flags().GetString("ca-cert")
			key := ""
			if keyFile != "" {
				b, err := os.ReadFile(keyFile)
				if err != nil {
					return fmt.Errorf("cannot read --cluster-key-file: %w", err)
				}
				key = strings.TrimSpace(string(b))
			}
			return removeNode(addr, args[0], key, token, ca)
		},
	}
	remove.Flags().StringVar(&keyFile, "cluster-key-file", "", "file holding the cluster key, if the nodes require one (development, without peer TLS); with peer TLS, removal needs an admin's --token when the nodes have --auth-file")
	c.AddCommand(remove)
	return c
}

// removeNode asks the nodes in addrs (comma-separated), first reachable
// first, to remove node id.
func removeNode(addrs, id, key, token, caCert string) error {
	hc, scheme := http.DefaultClient, "http://"
	if caCert != "" {
		tc, err := tlsconf.Client(caCert)
		if err != nil {
			return err
		}
		hc, scheme = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}, "https://"
	}
	var last error
	for _, a := range strings.Split(addrs, ",") {
		a = strings.TrimSpace(a)
		if !strings.Contains(a, "://") {
			a = scheme + a
		}
		req, err := http.NewRequest(http.MethodDelete, strings.TrimSuffix(a, "/")+"/v1/cluster/nodes/"+url.PathEscape(id), nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-Requested-By", "srdd")
		req.Header.Set(cluster.KeyHeader, key)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			last = err
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("%s answered %d: %s", a, resp.StatusCode, body)
		}
		return nil
	}
	return fmt.Errorf("no node of %s could be reached: %w", addrs, last)
}

func clientFor(cmd *cobra.Command) *srddclient.Client {
	addr, _ := cmd.Flags().GetString("addr")
	var o srddclient.Options
	o.Token, _ = cmd.Flags().GetString("token")
	o.CACert, _ = cmd.Flags().GetString("ca-cert")
	c, err := srddclient.NewWithOptions(addr, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "srdd:", err)
		os.Exit(1)
	}
	return c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
