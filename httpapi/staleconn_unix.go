//go:build unix

package httpapi

import (
	"net"
	"syscall"
)

// peerClosed reports whether the peer has closed conn (or reset it, or
// sent something unasked): a non-blocking peek at the socket. An idle
// HTTP/1.1 connection has nothing to read, so EAGAIN means it is alive.
func peerClosed(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
		case rerr != nil, n == 0, n > 0:
			closed = true
		}
		return true // never wait for readiness
	})
	return closed || err != nil
}
