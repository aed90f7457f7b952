package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/srdd/srdd/internal/tlsconf"
)

// readyCmd is `srdd ready`: exit 0 when the node answers GET /readyz with
// 200 (it can take a write), 1 otherwise. It is the health check of the
// compose file (the image has no curl) and a way for scripts to wait for a
// node: `srdd ready --wait 2m && srdd rdd create states`.
func readyCmd() *cobra.Command {
	var wait time.Duration
	c := &cobra.Command{
		Use:   "ready",
		Short: "Exit 0 when the node can take a write (GET /readyz), 1 otherwise; --wait polls until then",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, _ := cmd.Flags().GetString("addr")
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			for {
				ca, _ := cmd.Flags().GetString("ca-cert")
				ok, why := probeReady(addr, ca)
				if ok {
					fmt.Println("ready")
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("node %s is not ready: %s", addr, why)
				case <-time.After(200 * time.Millisecond):
				}
			}
		},
	}
	c.Flags().DurationVar(&wait, "wait", 0, "keep asking until ready or this long has passed (0: ask once)")
	return c
}

// probeReady asks addr once; why is the node's own answer when it is not
// ready, or the error that kept it from answering.
func probeReady(addr, caCert string) (ok bool, why string) {
	hc := &http.Client{Timeout: 5 * time.Second}
	scheme := "http://"
	if caCert != "" {
		tc, err := tlsconf.Client(caCert)
		if err != nil {
			return false, err.Error()
		}
		hc.Transport, scheme = &http.Transport{TLSClientConfig: tc}, "https://"
	}
	if !strings.Contains(addr, "://") {
		addr = scheme + addr
	}
	resp, err := hc.Get(strings.TrimSuffix(addr, "/") + "/readyz")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusOK {
		return true, ""
	}
	return false, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
}
