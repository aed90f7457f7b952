package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/srdd/srdd/cluster"
)

// joinPeer joins over the peer channel (docs/ARCHITECTURE.md, "Peer
// trust"). addrs are members' HTTP addresses, as without peer TLS: each
// tells its members' Raft addresses (GET /v1/cluster), and the join is
// sent there, over mutual TLS, authenticated by this node's certificate.
// An address that does not answer /v1/cluster (it needs credentials, or
// it is a Raft address) is tried as a Raft address itself.
func joinPeer(addrs []string, body []byte, clientTLS *tls.Config, peer *cluster.PeerCreds) error {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	var last error
	for attempt := 0; attempt < 10; attempt++ {
		for _, a := range addrs {
			for _, raftAddr := range raftAddrsOf(hc, a, clientTLS) {
				err := joinAt(raftAddr, body, peer)
				if err == nil {
					return nil
				}
				last = err
				if pe, ok := err.(*permanentErr); ok {
					return fmt.Errorf("cannot join the cluster: %w", pe.err)
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("cannot join the cluster through %v: %w", addrs, last)
}

type permanentErr struct{ err error }

func (p *permanentErr) Error() string { return p.err.Error() }

// raftAddrsOf lists the Raft addresses of the members the node at HTTP
// address a knows, the leader first; a itself if it cannot tell.
func raftAddrsOf(hc *http.Client, a string, clientTLS *tls.Config) []string {
	u := a
	if !strings.Contains(u, "://") {
		u = peerScheme(clientTLS) + "://" + u
	}
	u = strings.TrimSuffix(u, "/")
	var st cluster.Status
	if getJSON(hc, u+"/v1/cluster", &st) != nil {
		// /v1/cluster needs credentials with --auth-file; /healthz tells
		// this member's own peer address to anyone.
		var h struct {
			PeerAddr string `json:"peer_addr"`
		}
		if getJSON(hc, u+"/healthz", &h) == nil && h.PeerAddr != "" {
			return []string{h.PeerAddr}
		}
		return []string{hostPortOf(a)}
	}
	var out []string
	for _, m := range st.Members {
		if m.RaftAddr == "" {
			continue
		}
		if m.ID == st.Leader {
			out = append([]string{m.RaftAddr}, out...)
		} else {
			out = append(out, m.RaftAddr)
		}
	}
	if len(out) == 0 {
		return []string{hostPortOf(a)}
	}
	return out
}

func getJSON(hc *http.Client, url string, out any) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", url, resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out)
}

func hostPortOf(a string) string {
	if i := strings.Index(a, "://"); i >= 0 {
		a = a[i+3:]
	}
	return strings.TrimSuffix(a, "/")
}

// joinAt sends the join to the member at a Raft address over the peer
// channel.
func joinAt(raftAddr string, body []byte, peer *cluster.PeerCreds) error {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return cluster.DialPeerAddr(peer, raftAddr, 10*time.Second)
		},
		DisableKeepAlives: true,
	}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+raftAddr+"/v1/cluster/join", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Requested-By", "srdd")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	err = fmt.Errorf("%s answered %d: %s", raftAddr, resp.StatusCode, b)
	if resp.StatusCode < 500 && resp.StatusCode != http.StatusForbidden {
		return &permanentErr{err}
	}
	return err
}

// leavePeer removes this non-voter through the leader over the peer
// channel.
func (n *Node) leavePeer() {
	err := func() error {
		leader, err := n.Registry.LeaderID()
		if err != nil {
			return err
		}
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return n.Registry.DialPeer(leader, 10*time.Second)
			},
			DisableKeepAlives: true,
		}}
		req, _ := http.NewRequest(http.MethodDelete, "http://"+leader+"/v1/cluster/nodes/"+n.Registry.ID(), nil)
		req.Header.Set("X-Requested-By", "srdd")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("leader answered %d", resp.StatusCode)
		}
		return nil
	}()
	if err != nil {
		n.logger.Warn("cannot leave the cluster", "error", err)
		return
	}
	n.wipeRaft = true
}
