package rawgrpc

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
)

func TestCodecPassesBytesThroughAndCopies(t *testing.T) {
	var c Codec
	in := []byte{0x0a, 0x03, 'a', 'b', 'c'}
	for _, v := range []any{Frame(in), &[]Frame{in}[0], in} {
		out, err := c.Marshal(v)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("Marshal(%T) = %x, %v", v, out, err)
		}
	}
	if _, err := c.Marshal("text"); err == nil {
		t.Fatal("Marshal of a string: no error")
	}
	var f Frame
	buf := append([]byte(nil), in...)
	if err := c.Unmarshal(buf, &f); err != nil || !bytes.Equal(f, in) {
		t.Fatalf("Unmarshal = %x, %v", f, err)
	}
	buf[0] = 0xff // gRPC reuses its buffer: the frame must not change
	if f[0] != 0x0a {
		t.Fatal("Unmarshal kept gRPC's buffer instead of copying it")
	}
	var s string
	if err := c.Unmarshal(in, &s); err == nil {
		t.Fatal("Unmarshal into a *string: no error")
	}
	if c.Name() != "proto" {
		t.Fatalf("Name = %q", c.Name())
	}
}

// TestCodecV2 is the same contract over gRPC's buffer slices: a message
// in one buffer or many comes out whole, copied (the buffers go back to
// gRPC's pool), and a frame is sent as its bytes.
func TestCodecV2(t *testing.T) {
	var c CodecV2
	in := []byte("0123456789abcdefghij")
	out, err := c.Marshal(Frame(in))
	if err != nil || !bytes.Equal(out.Materialize(), in) {
		t.Fatalf("Marshal = %q, %v", out.Materialize(), err)
	}
	if _, err := c.Marshal(3); err == nil {
		t.Fatal("Marshal of an int: no error")
	}
	for _, cuts := range [][]int{{20}, {1, 19}, {7, 0, 6, 7}} {
		var bufs mem.BufferSlice
		raw := append([]byte(nil), in...)
		off := 0
		for _, n := range cuts {
			bufs = append(bufs, mem.SliceBuffer(raw[off:off+n]))
			off += n
		}
		f := Frame("old contents that are longer")
		if err := c.Unmarshal(bufs, &f); err != nil || !bytes.Equal(f, in) {
			t.Fatalf("cuts %v: Unmarshal = %q, %v", cuts, f, err)
		}
		raw[0] = 'X'
		if f[0] != '0' {
			t.Fatalf("cuts %v: the frame shares gRPC's buffer", cuts)
		}
	}
	var s string
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(in)}, &s); err == nil {
		t.Fatal("Unmarshal into a *string: no error")
	}
	if c.Name() != "proto" {
		t.Fatalf("Name = %q", c.Name())
	}
}
