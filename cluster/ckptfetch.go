package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// FetchCheckpoint streams the checkpoint at path of durable RDD rdd from
// member node (its node id) into w: the tar stream that node's
// kvstore.Store.ServeCheckpoint writes (CheckpointPath). The call runs
// on the peer channel (mutual TLS, the peer must prove it is node) with
// peer TLS, else on the member's HTTP address with the cluster key. ctx
// bounds the whole transfer. A stream cut short is an error (the body
// must end as HTTP says it does).
func (n *Node) FetchCheckpoint(ctx context.Context, node, rdd, path string, w io.Writer) error {
	addr, err := n.memberPeer(node)
	if err != nil {
		return err
	}
	q := url.Values{"rdd": {rdd}, "path": {path}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.peerURL(addr, CheckpointPath)+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set(KeyHeader, n.cfg.ClusterKey)
	resp, err := n.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach node %s at %s: %w", node, addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("node %s answered %d to a checkpoint fetch of %q: %s", node, resp.StatusCode, rdd, bytes.TrimSpace(body))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("checkpoint of %q from node %s: %w", rdd, node, err)
	}
	return nil
}

// memberPeer is where this node calls member id's internal routes: its
// Raft address in the Raft configuration over the peer channel with peer
// TLS (the channel checks the certificate names id), else its HTTP
// address.
func (n *Node) memberPeer(id string) (string, error) {
	if n.mux == nil {
		m, ok := n.Member(id)
		if !ok || m.HTTPAddr == "" {
			return "", fmt.Errorf("%w: %s (no known HTTP address)", ErrNodeNotFound, id)
		}
		return m.HTTPAddr, nil
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return "", err
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return string(s.Address), nil
		}
	}
	return "", fmt.Errorf("%w: %s is not in the Raft configuration", ErrNodeNotFound, id)
}
