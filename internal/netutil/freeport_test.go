package netutil

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortBelowTheEphemeralRange: where the kernel says its range,
// the port is below it (no outbound connection can take it) and free.
func TestFreePortBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if low := ephemeralLow(); low > 10000 && (port >= low || port < low-8000) {
			t.Fatalf("port %d, the ephemeral range starts at %d", port, low)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatalf("port %d is not free: %v", port, err)
		}
		ln.Close()
	}
}
