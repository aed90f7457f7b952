package bridgetest

import (
	"errors"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/srdd/srdd/internal/rawgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The fake's Spark Connect (op connect.start): a gRPC server that answers
// every method of every service by echoing, so the node's Spark Connect
// port (connectapi) is tested through its proxy without a JVM. It asks
// the bearer token it was started with, as Spark Connect does.
//
// Each message a stream receives is sent back as it is. The response
// headers say what the server saw: EchoHeaderMethod the full method
// name, EchoHeaderKeys the request's metadata keys (sorted, comma
// separated), EchoHeaderViews how many connect.views calls the fake had
// answered. The trailer EchoTrailerCount is the number of messages. A
// method whose name ends in "/Fail" answers codes.Aborted after echoing.
const (
	EchoHeaderMethod = "x-echo-method"
	EchoHeaderKeys   = "x-echo-keys"
	EchoHeaderViews  = "x-echo-views"
	EchoTrailerCount = "x-echo-count"
)

// EchoServer is a running fake Spark Connect server.
type EchoServer struct {
	Addr  string
	srv   *grpc.Server
	views *atomic.Int64
}

// StartEcho serves the fake Spark Connect on 127.0.0.1, asking token;
// views counts connect.views calls (nil: none).
func StartEcho(token string, views *atomic.Int64) (*EchoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if views == nil {
		views = new(atomic.Int64)
	}
	e := &EchoServer{Addr: ln.Addr().String(), views: views}
	e.srv = grpc.NewServer(grpc.ForceServerCodec(rawgrpc.Codec{}),
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error { return e.echo(token, ss) }))
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

// Stop ends the server and its streams.
func (e *EchoServer) Stop() { e.srv.Stop() }

func (e *EchoServer) echo(token string, ss grpc.ServerStream) error {
	md, _ := metadata.FromIncomingContext(ss.Context())
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+token {
		return status.Error(codes.Unauthenticated, "fake Spark Connect: wrong or missing token")
	}
	method, _ := grpc.MethodFromServerStream(ss)
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if err := ss.SendHeader(metadata.Pairs(EchoHeaderMethod, method, EchoHeaderKeys, strings.Join(keys, ","),
		EchoHeaderViews, strconv.FormatInt(e.views.Load(), 10))); err != nil {
		return err
	}
	n := 0
	for {
		var f rawgrpc.Frame
		err := ss.RecvMsg(&f)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		n++
		if err := ss.SendMsg(&f); err != nil {
			return err
		}
	}
	ss.SetTrailer(metadata.Pairs(EchoTrailerCount, strconv.Itoa(n)))
	if strings.HasSuffix(method, "/Fail") {
		return status.Error(codes.Aborted, "fake Spark Connect: failed as asked")
	}
	return nil
}
