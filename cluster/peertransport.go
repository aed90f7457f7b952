package cluster

import (
	"bufio"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// RPC type bytes of hashicorp/raft's NetworkTransport wire format
// (net_transport.go): one byte, then the msgpack-encoded request.
const (
	rpcAppendEntries uint8 = iota
	rpcRequestVote
	rpcInstallSnapshot
	rpcTimeoutNow
	rpcRequestPreVote
)

// peerTransport is hashicorp/raft's NetworkTransport for outbound RPCs,
// with inbound connections served here instead, so that every RPC's
// header is checked against the node ID the connection's certificate
// proved (docs/ARCHITECTURE.md, "Peer trust"): a member cannot speak as
// another. The wire format is NetworkTransport's.
type peerTransport struct {
	*raft.NetworkTransport
	check   func(certID string, h raft.RPCHeader) error
	log     hclog.Logger
	consume chan raft.RPC
	stop    chan struct{}
	once    sync.Once
	hbMu    sync.Mutex
	hb      func(raft.RPC)
}

func newPeerTransport(nt *raft.NetworkTransport, mux *peerMux, check func(string, raft.RPCHeader) error, log hclog.Logger) *peerTransport {
	t := &peerTransport{NetworkTransport: nt, check: check, log: log, consume: make(chan raft.RPC), stop: make(chan struct{})}
	go func() {
		for {
			select {
			case c := <-mux.raftCh:
				go t.serve(c)
			case <-t.stop:
				return
			case <-mux.closed:
				return
			}
		}
	}()
	return t
}

// Consumer implements raft.Transport.
func (t *peerTransport) Consumer() <-chan raft.RPC { return t.consume }

// SetHeartbeatHandler implements raft.Transport.
func (t *peerTransport) SetHeartbeatHandler(fn func(raft.RPC)) {
	t.hbMu.Lock()
	defer t.hbMu.Unlock()
	t.hb = fn
}

// Close implements raft.WithClose.
func (t *peerTransport) Close() error {
	t.once.Do(func() { close(t.stop) })
	return t.NetworkTransport.Close()
}

func (t *peerTransport) serve(c *PeerConn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 256*1024)
	w := bufio.NewWriter(c)
	dec := codec.NewDecoder(r, &codec.MsgpackHandle{})
	// As NetworkTransport encodes by default (MsgpackUseNewTimeFormat off).
	eh := &codec.MsgpackHandle{}
	eh.TimeNotBuiltin = true
	enc := codec.NewEncoder(w, eh)
	for {
		if err := t.one(c.id, r, dec, enc); err != nil {
			if err != io.EOF {
				t.log.Warn("raft connection from peer closed", "peer", c.id, "error", err)
			}
			return
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// one reads, checks and dispatches one RPC, and writes its answer.
func (t *peerTransport) one(certID string, r *bufio.Reader, dec *codec.Decoder, enc *codec.Encoder) error {
	typ, err := r.ReadByte()
	if err != nil {
		return err
	}
	respCh := make(chan raft.RPCResponse, 1)
	rpc := raft.RPC{RespChan: respCh}
	heartbeat := false
	var hdr raft.RPCHeader
	switch typ {
	case rpcAppendEntries:
		var req raft.AppendEntriesRequest
		if err := dec.Decode(&req); err != nil {
			return err
		}
		rpc.Command, hdr = &req, req.RPCHeader
		heartbeat = req.Term != 0 && len(req.RPCHeader.Addr) > 0 && req.PrevLogEntry == 0 &&
			req.PrevLogTerm == 0 && len(req.Entries) == 0 && req.LeaderCommitIndex == 0
	case rpcRequestVote:
		var req raft.RequestVoteRequest
		if err := dec.Decode(&req); err != nil {
			return err
		}
		rpc.Command, hdr = &req, req.RPCHeader
	case rpcRequestPreVote:
		var req raft.RequestPreVoteRequest
		if err := dec.Decode(&req); err != nil {
			return err
		}
		rpc.Command, hdr = &req, req.RPCHeader
	case rpcInstallSnapshot:
		var req raft.InstallSnapshotRequest
		if err := dec.Decode(&req); err != nil {
			return err
		}
		rpc.Command, hdr = &req, req.RPCHeader
		rpc.Reader = io.LimitReader(r, req.Size)
	case rpcTimeoutNow:
		var req raft.TimeoutNowRequest
		if err := dec.Decode(&req); err != nil {
			return err
		}
		rpc.Command, hdr = &req, req.RPCHeader
	default:
		return fmt.Errorf("unknown rpc type %d", typ)
	}
	if err := t.check(certID, hdr); err != nil {
		// Nothing reaches Raft: the connection is closed unanswered.
		return err
	}
	if heartbeat {
		t.hbMu.Lock()
		fn := t.hb
		t.hbMu.Unlock()
		if fn != nil {
			fn(rpc)
			return t.answer(respCh, enc)
		}
	}
	select {
	case t.consume <- rpc:
	case <-t.stop:
		return raft.ErrTransportShutdown
	}
	return t.answer(respCh, enc)
}

func (t *peerTransport) answer(respCh chan raft.RPCResponse, enc *codec.Encoder) error {
	select {
	case resp := <-respCh:
		msg := ""
		if resp.Error != nil {
			msg = resp.Error.Error()
		}
		if err := enc.Encode(msg); err != nil {
			return err
		}
		return enc.Encode(resp.Response)
	case <-t.stop:
		return raft.ErrTransportShutdown
	}
}
