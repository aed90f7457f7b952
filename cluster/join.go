package cluster

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
	"github.com/hashicorp/raft"
)

// Joining and leaving a cluster: the leader's side (Join, Remove; httpapi
// serves them on JoinPath and NodesPath, deciding who may ask) and the
// client side a node runs (JoinVia at start, Leave at close); the
// protocol's table is in rpc.go.

// Join adds a node to the Raft configuration (as a voter, or a non-voter
// that does not count towards quorum) and records it. Only the leader can;
// others return ErrNotLeader. A node that was removed may come back only
// with its Raft state wiped (hasState false).
func (n *Node) Join(id, raftAddr, httpAddr string, voter, hasState bool) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if m, ok := n.Member(id); ok && m.Status == NodeRemoved && hasState {
		return fmt.Errorf("%w: %q; wipe its data dir before it joins again", ErrNodeRemoved, id)
	}
	// One join at a time: the admission a join checks is used up by its
	// registration, before the next join looks.
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	if err := n.admission(id, raftAddr, voter, f.Configuration().Servers); err != nil {
		return err
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID != raft.ServerID(id) && srv.Address == raft.ServerAddress(raftAddr) {
			// A join never pushes out another member: replacing the
			// member at an address would let an admitted node remove any
			// node (and, at a quorum's addresses, stop the cluster). The
			// operator removes the old member first (srdd cluster remove).
			return fmt.Errorf("%w: %s is member %q; remove it before %q joins there", ErrAddressInUse, raftAddr, srv.ID, id)
		}
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == raft.ServerID(id) {
			if srv.Address == raft.ServerAddress(raftAddr) {
				return n.register(id, raftAddr, httpAddr) // already a member: idempotent
			}
			// The node itself (its certificate names id) moved address.
			if err := n.raft.RemoveServer(srv.ID, 0, 0).Error(); err != nil {
				return fmt.Errorf("cannot replace stale member %s: %w", srv.ID, err)
			}
		}
	}
	var fut raft.IndexFuture
	if voter {
		fut = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, 0)
	} else {
		fut = n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, 0)
	}
	if err := fut.Error(); err != nil {
		return fmt.Errorf("cannot add %s to the cluster: %w", id, err)
	}
	return n.register(id, raftAddr, httpAddr)
}

func (n *Node) register(id, raftAddr, httpAddr string) error {
	// Join refused a removed id that still has state, so here it is wiped.
	_, err := n.Apply(Command{Type: CmdRegisterNode, Body: &RegisterNode{ID: id, RaftAddr: raftAddr, HTTPAddr: httpAddr, Readmit: true}})
	return err
}

// Remove takes a node out of the Raft configuration and marks it removed.
// Only the leader can.
func (n *Node) Remove(id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if _, ok := n.Member(id); !ok {
		return fmt.Errorf("%w: %q", ErrNodeNotFound, id)
	}
	if id == n.cfg.NodeID {
		// Raft shuts a removed node down; a leader removing itself would
		// stop before it could record the removal. Hand over first; the
		// caller retries against the new leader.
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			return fmt.Errorf("cannot hand over leadership before removing %s: %w", id, err)
		}
		return ErrNotLeader
	}
	// Record the removal first (its sessions become dead), then change the
	// Raft configuration.
	if _, err := n.Apply(Command{Type: CmdRemoveNode, Body: &RemoveNode{ID: id}}); err != nil {
		return err
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, 0).Error(); err != nil {
		return fmt.Errorf("cannot remove %s: %w", id, err)
	}
	return nil
}

// JoinVia asks the cluster to add this node (as a voter, or not),
// through the members at HTTP addresses addrs (any member: the request
// reaches the leader), until deadline. With peer TLS the join runs over
// the peer channel of the member's Raft address; without, to its HTTP
// address with the cluster key (development, --insecure).
func (n *Node) JoinVia(addrs []string, voter bool, deadline time.Time) error {
	return joinRequest{addrs: addrs, id: n.cfg.NodeID, raftAddr: n.RaftAddr(), httpAddr: n.cfg.HTTPAddr, voter: voter,
		key: n.cfg.ClusterKey, clientTLS: n.cfg.PeerTLS, peer: n.cfg.Peer, deadline: deadline, log: n.cfg.Logger}.run()
}

// joinRequest is this node asking the cluster to add it.
type joinRequest struct {
	addrs              []string // members' HTTP addresses
	id                 string
	raftAddr, httpAddr string
	voter              bool
	key                string      // the cluster key (development, without peer TLS)
	clientTLS          *tls.Config // the API's TLS, to reach members' HTTP addresses
	peer               *PeerCreds
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
		a = httpScheme(j.clientTLS) + "://" + a
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: j.clientTLS}}
	req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(a, "/")+JoinPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Requested-By", "srdd") // passes --csrf-protection
	req.Header.Set(KeyHeader, j.key)
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
		u = httpScheme(clientTLS) + "://" + u
	}
	u = strings.TrimSuffix(u, "/")
	var st Status
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
func joinAt(raftAddr string, body []byte, peer *PeerCreds) error {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return DialPeerAddr(peer, raftAddr, 10*time.Second)
		},
		DisableKeepAlives: true,
	}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+raftAddr+JoinPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Requested-By", "srdd")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	return joinAnswer(raftAddr, resp)
}

// AdmitAtBootstrap admits ids (--admit) once, on the node that has just
// formed a new cluster; elsewhere it says why it does nothing.
func (n *Node) AdmitAtBootstrap(ids []string) {
	if len(ids) == 0 {
		return
	}
	if !n.Bootstrapped() {
		n.cfg.Logger.Info("--admit ignored: this node's cluster exists already; admins run `srdd cluster admit ID`", "ids", strings.Join(ids, ","))
		return
	}
	for _, id := range ids {
		err := n.Admit(id, true, "--admit")
		switch {
		case err == nil:
			n.cfg.Logger.Info("admitted a node; it may join once", "node", id)
		case errors.Is(err, ErrMemberExists):
		default:
			n.cfg.Logger.Error("cannot admit a node given with --admit; admit it with `srdd cluster admit`", "node", id, "error", err)
		}
	}
}

// Leave takes this node out of the cluster through the leader (a
// non-voter leaving on Close), over the peer channel with peer TLS, else
// over HTTP with the cluster key.
func (n *Node) Leave() error {
	var (
		hc   *http.Client
		addr string
		err  error
	)
	if n.cfg.Peer != nil {
		leader, err := n.LeaderID()
		if err != nil {
			return err
		}
		hc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return n.DialPeer(leader, 10*time.Second)
			},
			DisableKeepAlives: true,
		}}
		addr = "http://" + leader
	} else {
		if addr, err = n.LeaderHTTP(); err != nil {
			return err
		}
		hc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: n.cfg.PeerTLS}}
		addr = httpScheme(n.cfg.PeerTLS) + "://" + addr
	}
	req, _ := http.NewRequest(http.MethodDelete, addr+NodesPath+n.cfg.NodeID, nil)
	req.Header.Set("X-Requested-By", "srdd")
	if n.cfg.Peer == nil {
		req.Header.Set(KeyHeader, n.cfg.ClusterKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("leader answered %d", resp.StatusCode)
	}
	return nil
}

// httpScheme is the scheme of members' HTTP addresses: https when the
// API runs over TLS (clientTLS set).
func httpScheme(clientTLS *tls.Config) string {
	if clientTLS != nil {
		return "https"
	}
	return "http"
}
