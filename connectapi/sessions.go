package connectapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/rawgrpc"
	"github.com/srdd/srdd/sessions"
	"github.com/srdd/srdd/sparkbridge"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Registry is the registry's view of sessions (cluster.Node).
type Registry interface {
	Session(id int64) (cluster.Session, bool)
}

// Interpreters is the node's live sessions (sessions.Manager).
type Interpreters interface {
	Resolve(idOrName string) (int64, error)
	Interpreter(ctx context.Context, id int64) (*sparkbridge.Interpreter, error)
}

// NodeSessions is Sessions on a node: it starts Spark Connect in a
// session's interpreter on first use (op connect.start, with a random
// token it keeps) and holds one gRPC connection to it until the
// interpreter ends.
type NodeSessions struct {
	reg     Registry
	its     Interpreters
	maxMsg  int
	logger  hclog.Logger
	mu      sync.Mutex
	started map[*sparkbridge.Interpreter]*attachment
}

// attachment is one interpreter's Spark Connect, being started or
// running. Its token stays the interpreter's for life: a start that timed
// out on the node's side may still have happened in the interpreter,
// which then asks that token.
type attachment struct {
	token string
	ready chan struct{} // closed once b or err is set
	b     *Backend
	err   error
}

// startTimeout bounds starting Spark Connect in a session (a few seconds
// on a warm JVM).
const startTimeout = 2 * time.Minute

// NewNodeSessions wires the port to the node's registry and sessions;
// maxMsg bounds one message from the backend (0: the default).
func NewNodeSessions(reg Registry, its Interpreters, maxMsg int, logger hclog.Logger) *NodeSessions {
	if maxMsg <= 0 {
		maxMsg = DefaultMaxMessageBytes
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &NodeSessions{reg: reg, its: its, maxMsg: maxMsg, logger: logger, started: map[*sparkbridge.Interpreter]*attachment{}}
}

// Lookup implements Sessions.
func (n *NodeSessions) Lookup(ref string) (cluster.Session, error) {
	id, err := n.its.Resolve(ref)
	if err != nil {
		return cluster.Session{}, err
	}
	rec, ok := n.reg.Session(id)
	if !ok {
		return cluster.Session{}, fmt.Errorf("%w: %d", sessions.ErrNotFound, id)
	}
	return rec, nil
}

// Attach implements Sessions. Concurrent first attaches of a session
// start its Spark Connect once; a failed start is tried again by the next
// attach.
func (n *NodeSessions) Attach(ctx context.Context, id int64) (*Backend, error) {
	it, err := n.its.Interpreter(ctx, id)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	a, ok := n.started[it]
	if !ok || (isClosed(a.ready) && a.err != nil) {
		next := &attachment{ready: make(chan struct{})}
		if ok {
			next.token = a.token
		} else {
			if next.token, err = newToken(); err != nil {
				n.mu.Unlock()
				return nil, err
			}
			go func() { // one per interpreter, bounded by its life
				<-it.Done()
				n.mu.Lock()
				last := n.started[it]
				delete(n.started, it)
				n.mu.Unlock()
				<-last.ready
				if last.b != nil {
					_ = last.b.Conn.Close()
				}
			}()
		}
		a = next
		n.started[it] = a
		// Not the caller's context: a client that gives up must not
		// leave the start half done.
		go func() {
			sctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			defer cancel()
			a.b, a.err = n.start(sctx, id, it, a.token)
			close(a.ready)
		}()
	}
	n.mu.Unlock()
	select {
	case <-a.ready:
		return a.b, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func newToken() (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return hex.EncodeToString(raw), nil
}

// ioBuffer is the read and write buffer of the node's own connections
// to its sessions' Spark Connect servers and to the members it routes
// to, one each, where results flow in; clientWriteBuffer is the write
// buffer of the port's connections, held only while a connection writes
// (gRPC shares write buffers by default): at most MaxStreams of them, 128 MiB at the
// default 1,024. gRPC's default is 32 KiB: a system call per 32 KiB of
// results.
const (
	ioBuffer          = 256 << 10
	clientWriteBuffer = 128 << 10
)

// start starts Spark Connect in interpreter it and dials it.
func (n *NodeSessions) start(ctx context.Context, id int64, it *sparkbridge.Interpreter, token string) (*Backend, error) {
	var out struct {
		Port int `msgpack:"port"`
	}
	if err := it.Call(ctx, "connect.start", map[string]any{"token": token}, &out); err != nil {
		return nil, fmt.Errorf("cannot start Spark Connect in session %d: %w", id, err)
	}
	if out.Port <= 0 || out.Port > 65535 {
		return nil, fmt.Errorf("session %d's Spark Connect reported port %d", id, out.Port)
	}
	conn, err := grpc.NewClient("passthrough:///"+net.JoinHostPort("127.0.0.1", strconv.Itoa(out.Port)),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithWriteBufferSize(ioBuffer), grpc.WithReadBufferSize(ioBuffer),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawgrpc.CodecV2{}), grpc.MaxCallRecvMsgSize(n.maxMsg), grpc.MaxCallSendMsgSize(n.maxMsg)))
	if err != nil {
		return nil, err
	}
	n.logger.Info("Spark Connect started in a session", "session", id, "port", out.Port)
	return &Backend{
		Conn: conn, Token: token, Done: it.Done(),
		Refresh: func(ctx context.Context) error { return it.Call(ctx, "connect.views", map[string]any{}, nil) },
	}, nil
}
