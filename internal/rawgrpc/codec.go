// Package rawgrpc is a gRPC codec that passes each message through as its
// wire bytes, so that a proxy can forward any service (Spark Connect's,
// in connectapi) without compiling its protos: the server forces it with
// grpc.ForceServerCodec, the client side with grpc.ForceCodec.
package rawgrpc

import "fmt"

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
