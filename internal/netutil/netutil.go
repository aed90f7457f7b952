// Package netutil holds small network helpers shared by the benchmark
// harness, the deploy checks and the tests.
package netutil

import "net"

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// a server that cannot listen on port 0 (redis-server, Prometheus, a node
// that must restart on the address its peers remember). Another process
// may take it in between; callers accept that small race.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
