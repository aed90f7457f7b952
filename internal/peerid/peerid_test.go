package peerid_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/srdd/srdd/internal/peerid"
	"github.com/srdd/srdd/internal/peerid/peeridtest"
)

func leaf(t *testing.T, f peeridtest.Files) *x509.Certificate {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNodeIDFromTheURISANOnly(t *testing.T) {
	ca := peeridtest.NewCA(t, "test-ca")
	for _, tc := range []struct {
		cn, uri, want string
		bad           bool
	}{
		{cn: "n1", uri: "n1", want: "n1"},
		{cn: "something-else", uri: "n2", want: "n2"}, // the URI SAN wins
		{cn: "n3", uri: "", bad: true},                // no URI SAN: no node, whatever the CN
		{cn: "", uri: "", bad: true},
		{cn: "../etc", uri: "", bad: true},
		{cn: "x", uri: "a/b", bad: true},
	} {
		id, err := peerid.NodeID(leaf(t, ca.NodeNamed(t, tc.cn, tc.uri)))
		if tc.bad {
			if err == nil {
				t.Errorf("cn %q uri %q: got id %q, want an error", tc.cn, tc.uri, id)
			}
			continue
		}
		if err != nil || id != tc.want {
			t.Errorf("cn %q uri %q: got %q, %v; want %q", tc.cn, tc.uri, id, err, tc.want)
		}
	}
	if _, err := peerid.NodeID(nil); err == nil {
		t.Error("nil certificate: want an error")
	}
}

// A user's certificate (client usage only, as srdd cert client makes it)
// or a server-only one names no node, even with a node URI SAN.
func TestNodeIDNeedsServerAndClientUsage(t *testing.T) {
	ca := peeridtest.NewCA(t, "test-ca")
	for name, f := range map[string]peeridtest.Files{
		"client certificate with a member's CN": ca.Client(t, "n1"),
		"client usage with a node URI":          ca.Issue(t, "n1", "n1", x509.ExtKeyUsageClientAuth),
		"server usage with a node URI":          ca.Issue(t, "n1", "n1", x509.ExtKeyUsageServerAuth),
		"no usage":                              ca.Issue(t, "n1", "n1"),
	} {
		if id, err := peerid.NodeID(leaf(t, f)); err == nil {
			t.Errorf("%s: got node %q, want an error", name, id)
		}
	}
	if id, err := peerid.NodeID(leaf(t, ca.Node(t, "n1"))); err != nil || id != "n1" {
		t.Errorf("node certificate: %q, %v", id, err)
	}
}

func TestTwoURISANsThatDisagreeAreRefused(t *testing.T) {
	ca := peeridtest.NewCA(t, "test-ca")
	c := leaf(t, ca.Node(t, "n1"))
	c.URIs = append(c.URIs, peerid.URI("n2"))
	if id, err := peerid.NodeID(c); err == nil {
		t.Fatalf("got %q, want an error", id)
	}
}
