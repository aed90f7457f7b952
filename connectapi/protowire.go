package connectapi

import "google.golang.org/protobuf/encoding/protowire"

// The few fields of Spark Connect's messages the port reads (DESIGN.md),
// read from a message's bytes with protowire; a malformed message reads
// as not ok, never as a half-read one.

// fields calls fn with the value of every field num of wire type typ in
// msg, in order (a length-delimited field's contents, a varint's bytes),
// until fn returns false; it returns false if msg is malformed or fn
// stopped.
func fields(msg []byte, num protowire.Number, typ protowire.Type, fn func([]byte) bool) bool {
	for len(msg) > 0 {
		n, t, k := protowire.ConsumeTag(msg)
		if k < 0 {
			return false
		}
		msg = msg[k:]
		if k = protowire.ConsumeFieldValue(n, t, msg); k < 0 {
			return false
		}
		if v := msg[:k]; n == num && t == typ {
			if t == protowire.BytesType {
				v, _ = protowire.ConsumeBytes(v)
			}
			if !fn(v) {
				return false
			}
		}
		msg = msg[k:]
	}
	return true
}

// each calls fn with the contents of every length-delimited field num.
func each(msg []byte, num protowire.Number, fn func([]byte) bool) bool {
	return fields(msg, num, protowire.BytesType, fn)
}

// only returns the contents of length-delimited field num of msg (nil if
// it is absent); ok is false if msg is malformed or has the field twice
// (protobuf would merge the two, and a check would have to as well: no
// client sends that).
func only(msg []byte, num protowire.Number) (b []byte, ok bool) {
	n := 0
	ok = each(msg, num, func(v []byte) bool { b, n = v, n+1; return n == 1 })
	return b, ok
}

// varint is the last varint field num of msg, as protobuf reads it.
func varint(msg []byte, num protowire.Number) (v int64, found bool) {
	fields(msg, num, protowire.VarintType, func(b []byte) bool {
		if x, k := protowire.ConsumeVarint(b); k > 0 {
			v, found = int64(x), true
		}
		return true
	})
	return v, found
}
