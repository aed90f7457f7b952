// Package rawgrpc is a gRPC codec that passes each message through as its
// wire bytes, so that a proxy can forward any service (Spark Connect's,
// in connectapi) without compiling its protos: the server forces it with
// grpc.ForceServerCodec, the client side with grpc.ForceCodec.
package rawgrpc

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
)

// Frame is one message's wire bytes.
type Frame []byte

// Codec marshals *Frame (or Frame, or []byte) as its bytes and
// unmarshals into a *Frame, copying: gRPC may reuse the buffer it passes
// to Unmarshal once Unmarshal returns.
type Codec struct{}

// Marshal answers the frame's bytes.
func (Codec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *Frame:
		return *m, nil
	case Frame:
		return m, nil
	case []byte:
		return m, nil
	}
	return nil, fmt.Errorf("rawgrpc: cannot marshal %T", v)
}

// Unmarshal copies data into v, a *Frame.
func (Codec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*Frame)
	if !ok {
		return fmt.Errorf("rawgrpc: cannot unmarshal into %T", v)
	}
	*f = append((*f)[:0], data...)
	return nil
}

// Name is "proto": on the wire the messages are the protobuf bytes the
// peers' own codecs wrote (content-type application/grpc+proto).
func (Codec) Name() string { return "proto" }

// Answer is what one stream answered: its messages, headers, trailer and
// final status (nil for OK).
type Answer struct {
	Msgs    []Frame
	Header  metadata.MD
	Trailer metadata.MD
	Err     error
}

// Exchange opens one stream of method on conn, sends msgs, closes its
// send side and reads the answer to the end. after, if set, is called
// once the first answer has come, before the rest is read (and then the
// send side stays open until the stream ends). A client of any service,
// for tests.
func Exchange(ctx context.Context, conn *grpc.ClientConn, method string, msgs []Frame, after func()) Answer {
	var a Answer
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodec(Codec{}))
	if err != nil {
		a.Err = err
		return a
	}
	for i := range msgs {
		if cs.SendMsg(&msgs[i]) != nil {
			break // the status comes from RecvMsg
		}
	}
	if after == nil {
		_ = cs.CloseSend()
	}
	for {
		var f Frame
		if err := cs.RecvMsg(&f); err != nil {
			if !errors.Is(err, io.EOF) {
				a.Err = err
			}
			break
		}
		a.Msgs = append(a.Msgs, f)
		if after != nil {
			after()
			after = nil
		}
	}
	a.Header, _ = cs.Header()
	a.Trailer = cs.Trailer()
	return a
}

// CodecV2 is Codec for gRPC's buffer-slice codec API: a received message
// is copied once, out of gRPC's pooled buffers into the Frame (Codec's
// bridge copies twice), and a sent Frame is handed over without a copy.
// A proxy forwards every byte of every message, so the copy it saves is
// on its whole throughput. Force it with grpc.ForceServerCodecV2 and
// grpc.ForceCodecV2.
type CodecV2 struct{}

// Marshal answers the frame's bytes as one buffer, not copied.
func (CodecV2) Marshal(v any) (mem.BufferSlice, error) {
	b, err := Codec{}.Marshal(v)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// Unmarshal copies data into v, a *Frame, once.
func (CodecV2) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*Frame)
	if !ok {
		return fmt.Errorf("rawgrpc: cannot unmarshal into %T", v)
	}
	if n := data.Len(); cap(*f) < n {
		*f = make(Frame, 0, n)
	}
	*f = (*f)[:0]
	for _, d := range data {
		*f = append(*f, d.ReadOnlyData()...)
	}
	return nil
}

// Name is Codec's.
func (CodecV2) Name() string { return Codec{}.Name() }
