package rawgrpc

import (
	"bytes"
	"testing"
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
