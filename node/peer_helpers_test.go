package node

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/srdd/srdd/internal/peerid/peeridtest"
)

// peerTestCA is the peer CA of every test cluster of this package (created
// once, in a directory that outlives the test that made it).
var peerTestCA struct {
	once sync.Once
	ca   *peeridtest.CA
	dirs []string
}

type keepTB struct{ testing.TB }

func (k keepTB) TempDir() string {
	d, err := os.MkdirTemp("", "srdd-peer-ca-")
	if err != nil {
		k.Fatal(err)
	}
	peerTestCA.dirs = append(peerTestCA.dirs, d)
	return d
}

func peerCA(t testing.TB) *peeridtest.CA {
	peerTestCA.once.Do(func() { peerTestCA.ca = peeridtest.NewCA(keepTB{t}, "srdd-test-ca") })
	return peerTestCA.ca
}

// withPeerTLS gives c a peer certificate for its node ID from the test
// CA, and its own copy of the CA file (a rotation test swaps it).
func withPeerTLS(t testing.TB, c *Config) {
	ca := peerCA(t)
	f := ca.Node(t, c.NodeID)
	caFile := filepath.Join(filepath.Dir(f.Cert), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c.PeerCert, c.PeerKey, c.PeerCA = f.Cert, f.Key, caFile
}

// withoutPeerTLS is development mode: a plaintext cluster, which needs
// --insecure.
func withoutPeerTLS(c *Config) { c.PeerCert, c.PeerKey, c.PeerCA, c.Insecure = "", "", "", true }
