package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/srdd/srdd/internal/pki"
)

// certCmd makes the certificates of a small cluster: a CA, node
// certificates for peer mTLS (--peer-cert/--peer-key/--peer-ca) and client
// certificates for the API's --tls-client-ca. For development and small
// clusters without a PKI (docs/ARCHITECTURE.md, "Certificates for people
// without a PKI").
func certCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "cert",
		Short: "Make a CA and node or client certificates (for development and small clusters without a PKI)",
		Long: `Make the certificates of a small cluster with crypto/x509 (ECDSA P-256):

  srdd cert ca --out ca                                                # ca/ca.pem, ca/ca-key.pem (0600)
  srdd cert node --ca ca --name n1 --host n1.example.internal --host 10.0.0.5 --out n1
                                                                       # n1/n1.pem, n1/n1-key.pem (0600), n1/ca.pem
  srdd server --node-id n1 --peer-cert n1/n1.pem --peer-key n1/n1-key.pem --peer-ca n1/ca.pem ...

A node certificate names its node as CommonName = node ID and URI SAN
srdd://node/<node-id>, is valid as TLS server and client, and names the hosts
(DNS names, IP addresses) its peers dial. Keep ca-key.pem off the nodes. This
is for development and small clusters: a real PKI (Vault, cert-manager, your
own CA) must issue node certificates with the same CommonName and URI SAN.`,
	}
	c.AddCommand(certCACmd(), certNodeCmd(), certClientCmd())
	return c
}

// outFlags are the flags every cert subcommand has: --out (required),
// --days and --force.
type outFlags struct {
	out   string
	days  int
	force bool
}

func (o *outFlags) bind(c *cobra.Command, outHelp string, validity time.Duration, daysHelp string) {
	c.Flags().StringVar(&o.out, "out", "", outHelp)
	c.Flags().IntVar(&o.days, "days", int(validity/(24*time.Hour)), daysHelp)
	c.Flags().BoolVar(&o.force, "force", false, "replace existing files")
	_ = c.MarkFlagRequired("out")
}

// validity is --days as a duration; it must be positive.
func (o *outFlags) validity() (time.Duration, error) {
	if o.days <= 0 {
		return 0, fmt.Errorf("--days %d must be positive", o.days)
	}
	return time.Duration(o.days) * 24 * time.Hour, nil
}

func certCACmd() *cobra.Command {
	var name string
	var o outFlags
	c := &cobra.Command{
		Use:   "ca",
		Short: "Make a CA: DIR/ca.pem and DIR/ca-key.pem (0600); refuses to overwrite without --force",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			validity, err := o.validity()
			if err != nil {
				return err
			}
			ca, err := pki.NewCA(name, validity)
			if err != nil {
				return err
			}
			out := o.out
			if err := pki.WriteCA(out, ca, o.force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s\n", filepath.Join(out, pki.CACertFile), filepath.Join(out, pki.CAKeyFile))
			fmt.Fprintf(cmd.ErrOrStderr(), "srdd: CA valid until %s; keep %s off the nodes (for development and small clusters)\n",
				ca.Cert.NotAfter.UTC().Format(time.DateOnly), pki.CAKeyFile)
			return nil
		},
	}
	o.bind(c, "directory to write ca.pem and ca-key.pem to (created 0700)", pki.DefaultCAValidity, "validity in days")
	c.Flags().StringVar(&name, "name", "srdd development CA", "the CA's CommonName")
	return c
}

// issueCmd is `cert node` and `cert client`: they differ in the kind and
// in --host.
func issueCmd(kind pki.Kind) *cobra.Command {
	var caDir, name string
	var hosts []string
	var o outFlags
	c := &cobra.Command{Args: cobra.NoArgs}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		validity, err := o.validity()
		if err != nil {
			return err
		}
		ca, err := pki.LoadCA(caDir)
		if err != nil {
			return err
		}
		certPEM, keyPEM, err := ca.Issue(pki.Request{Kind: kind, Name: name, Hosts: hosts, Validity: validity})
		if err != nil {
			return err
		}
		out := o.out
		if err := pki.WritePair(out, name, ca, certPEM, keyPEM, o.force); err != nil {
			return err
		}
		certFile, keyFile := filepath.Join(out, name+".pem"), filepath.Join(out, name+"-key.pem")
		caFile := filepath.Join(out, pki.CACertFile)
		fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s\n%s\n", certFile, keyFile, caFile)
		if kind == pki.Node {
			fmt.Fprintf(cmd.ErrOrStderr(), "srdd: start the node with --node-id %s --peer-cert %s --peer-key %s --peer-ca %s\n",
				name, certFile, keyFile, caFile)
		} else {
			fmt.Fprintf(cmd.ErrOrStderr(), "srdd: user %s; the server needs --tls-client-ca %s (the CA certificate)\n", name, caFile)
		}
		return nil
	}
	c.Flags().StringVar(&caDir, "ca", "", "directory with ca.pem and ca-key.pem (from srdd cert ca)")
	o.bind(c, "directory to write NAME.pem, NAME-key.pem (0600) and ca.pem to", pki.DefaultCertValidity, "validity in days (at most the CA's)")
	_ = c.MarkFlagRequired("ca")
	_ = c.MarkFlagRequired("name")
	if kind == pki.Node {
		c.Use = "node"
		c.Short = "Make a node certificate (CN and URI SAN srdd://node/NAME, TLS server and client) signed by the CA"
		c.Flags().StringVar(&name, "name", "", "node ID (the server's --node-id)")
		c.Flags().StringArrayVar(&hosts, "host", nil, "DNS name or IP address peers dial this node at (repeatable, at least one)")
		_ = c.MarkFlagRequired("host")
	} else {
		c.Use = "client"
		c.Short = "Make a client certificate (CN = user name, TLS client only) for the API's --tls-client-ca"
		c.Flags().StringVar(&name, "name", "", "user name (a user of the --auth-file)")
	}
	return c
}

func certNodeCmd() *cobra.Command   { return issueCmd(pki.Node) }
func certClientCmd() *cobra.Command { return issueCmd(pki.Client) }
