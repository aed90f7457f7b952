package node

import (
	"os"
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

// withPeerTLS gives c a peer certificate for its node ID from the test CA.
func withPeerTLS(t testing.TB, c *Config) {
	ca := peerCA(t)
	f := ca.Node(t, c.NodeID)
	c.PeerCert, c.PeerKey, c.PeerCA = f.Cert, f.Key, ca.File
}

// withoutPeerTLS is development mode.
func withoutPeerTLS(c *Config) { c.PeerCert, c.PeerKey, c.PeerCA = "", "", "" }
