package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/srdd/srdd/cluster"
)

// joinRequest is this node asking the cluster to add it.
type joinRequest struct {
	addrs              []string // members' HTTP addresses
	id                 string
	raftAddr, httpAddr string
	voter              bool
	key                string      // the cluster key (development, without peer TLS)
	clientTLS          *tls.Config // the API's TLS, to reach members' HTTP addresses
	peer               *cluster.PeerCreds
	deadline           time.Time
	log                hclog.Logger
}

// run sends the join through each address in turn until a member adds
// this node, a member refuses it for good, or the deadline passes. A
// node that is not admitted yet (403 not_admitted) keeps asking until
// the deadline: with `--bootstrap --admit` the first node admits it a
// moment after it starts, and an admin may run `srdd cluster admit`.
// Pauses grow from 0.5 s to 4 s.
func (j joinRequest) run() error {
	body, _ := json.Marshal(map[string]any{"id": j.id, "raft_addr": j.raftAddr, "http_addr": j.httpAddr, "voter": j.voter})
	var last error
	pause := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		for _, a := range j.addrs {
			var err error
			if j.peer != nil {
				for _, raftAddr := range raftAddrsOf(j.clientTLS, a) {
					if err = joinAt(raftAddr, body, j.peer); err == nil {
						return nil
					}
					if _, final := err.(*permanentErr); final {
						break
					}
				}
			} else {
				err = j.plain(a, body)
			}
			if err == nil {
				return nil
			}
			last = err
			if pe, ok := err.(*permanentErr); ok {
				return fmt.Errorf("cannot join the cluster: %w", pe.err)
			}
		}
		if !time.Now().Add(pause).Before(j.deadline) {
			return fmt.Errorf("cannot join the cluster through %v: %w", j.addrs, last)
		}
		if attempt%4 == 0 {
			j.log.Warn("cannot join yet; asking again", "through", strings.Join(j.addrs, ","), "error", last)
		}
		time.Sleep(pause)
		pause = min(2*pause, 4*time.Second)
	}
}

// plain sends the join to the member at HTTP address a, without peer
// TLS (development, with --insecure and the cluster key).
func (j joinRequest) plain(a string, body []byte) error {
	if !strings.Contains(a, "://") {
		a = peerScheme(j.clientTLS) + "://" + a
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: j.clientTLS}}
	req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(a, "/")+"/v1/cluster/join", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Requested-By", "srdd") // passes --csrf-protection
	req.Header.Set(cluster.KeyHeader, j.key)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	return joinAnswer(a, resp)
}

// joinAnswer reads a member's answer to a join: nil for 200; 403
// not_admitted (not admitted yet) and 5xx may pass; any other 4xx is
// final (a bad request, a wrong key or certificate, a removed node with
// state, an address in use).
func joinAnswer(at string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	err := fmt.Errorf("%s answered %d: %s", at, resp.StatusCode, bytes.TrimSpace(b))
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	if resp.StatusCode < 500 && e.Error.Code != "not_admitted" {
		return &permanentErr{err}
	}
	return err
}

type permanentErr struct{ err error }

func (p *permanentErr) Error() string { return p.err.Error() }

// raftAddrsOf lists the Raft addresses of the members the node at HTTP
// address a knows, the leader first; a itself if it cannot tell.
func raftAddrsOf(clientTLS *tls.Config, a string) []string {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS}}
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
	return joinAnswer(raftAddr, resp)
}

// admitAtBootstrap admits ids (--admit) once, on the node that has just
// formed a new cluster; elsewhere it says why it does nothing.
func (n *Node) admitAtBootstrap(ids []string) {
	if len(ids) == 0 {
		return
	}
	if !n.Registry.Bootstrapped() {
		n.logger.Info("--admit ignored: this node's cluster exists already; admins run `srdd cluster admit ID`", "ids", strings.Join(ids, ","))
		return
	}
	for _, id := range ids {
		err := n.Registry.Admit(id, true, "--admit")
		switch {
		case err == nil:
			n.logger.Info("admitted a node; it may join once", "node", id)
		case errors.Is(err, cluster.ErrMemberExists):
		default:
			n.logger.Error("cannot admit a node given with --admit; admit it with `srdd cluster admit`", "node", id, "error", err)
		}
	}
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
