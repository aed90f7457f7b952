//go:build !unix

package httpapi

import "net"

// peerClosed cannot peek at a socket here; the request goes out and a
// dead connection fails as before.
func peerClosed(net.Conn) bool { return false }
