package cluster

import (
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tcpStreamLayer is raft.StreamLayer over a TCP listener we opened
// ourselves, so the bound address (port 0 in tests) is known before Raft
// starts and no advertise address needs guessing.
type tcpStreamLayer struct{ ln *net.TCPListener }

func (t *tcpStreamLayer) Accept() (net.Conn, error) { return t.ln.Accept() }
func (t *tcpStreamLayer) Close() error              { return t.ln.Close() }
func (t *tcpStreamLayer) Addr() net.Addr            { return t.ln.Addr() }

func (t *tcpStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}
