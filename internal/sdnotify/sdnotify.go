// Package sdnotify tells systemd about a service's state (sd_notify(3)):
// a unit with Type=notify is "started" only when the service sends
// READY=1, so units ordered after srdd start once it can take a write.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// Ready sends READY=1 to the socket in $NOTIFY_SOCKET. It reports false,
// and does nothing, when the variable is unset (not run by systemd with
// Type=notify).
func Ready() (bool, error) { return Notify("READY=1") }

// Stopping sends STOPPING=1.
func Stopping() (bool, error) { return Notify("STOPPING=1") }

// Notify sends one state string to $NOTIFY_SOCKET. A leading '@' names a
// socket in the abstract namespace, as systemd documents.
func Notify(state string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("cannot reach the systemd notify socket: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("cannot notify systemd: %w", err)
	}
	return true, nil
}
