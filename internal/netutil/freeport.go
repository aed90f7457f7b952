package netutil

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// a server that cannot listen on port 0 (redis-server, Prometheus, a node
// that must restart on the address its peers remember). Another process
// may take it in between; to make that rare, the port is picked below the
// kernel's ephemeral range (ip_local_port_range), which outbound
// connections draw from, so only another explicit bind can take it: a
// test that opens many connections while its nodes start (the edge
// tests' knocks) once lost a node's Raft port to one of its own dials.
// Where the range is unknown, or nothing below it is free, the kernel
// picks (port 0).
func FreePort() (int, error) {
	if low := ephemeralLow(); low > 10000 {
		for range 50 {
			port := low - 8000 + rand.IntN(8000)
			if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
				ln.Close()
				return port, nil
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range, or 0.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return low
}
