package connectapi

import (
	"errors"

	"github.com/srdd/srdd/sessions"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// configMethod sets and reads a client's Spark settings.
const configMethod = "/spark.connect.SparkConnectService/Config"

// confSets reads the settings a ConfigRequest sets: its operation (field
// 3), when that is a set (field 1), has repeated pairs (field 1), each a
// KeyValue of key (1) and value (2). These field numbers are all the
// port knows of Config (DESIGN.md). ok is false for a message it cannot
// read: the caller refuses it rather than pass a set it did not check.
func confSets(msg []byte) (pairs [][2]string, ok bool) {
	op, ok := only(msg, 3)
	if !ok || op == nil {
		return nil, ok
	}
	set, ok := only(op, 1)
	if !ok || set == nil {
		return nil, ok // another operation: get, unset, ...
	}
	for len(set) > 0 {
		num, typ, n := protowire.ConsumeTag(set)
		if n < 0 {
			return nil, false
		}
		set = set[n:]
		if num != 1 || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, set); n < 0 {
				return nil, false
			}
			set = set[n:]
			continue
		}
		kv, n := protowire.ConsumeBytes(set)
		if n < 0 {
			return nil, false
		}
		set = set[n:]
		key, ok1 := only(kv, 1)
		val, ok2 := only(kv, 2)
		if !ok1 || !ok2 {
			return nil, false
		}
		pairs = append(pairs, [2]string{string(key), string(val)})
	}
	return pairs, true
}

// only returns the contents of length-delimited field num of msg (nil if
// it is absent); ok is false if msg is malformed or has the field twice
// (protobuf would merge the two, and the check would have to as well: no
// client sends that).
func only(msg []byte, num protowire.Number) (b []byte, ok bool) {
	seen := false
	for len(msg) > 0 {
		n, t, k := protowire.ConsumeTag(msg)
		if k < 0 {
			return nil, false
		}
		msg = msg[k:]
		if n == num && t == protowire.BytesType {
			v, k := protowire.ConsumeBytes(msg)
			if k < 0 || seen {
				return nil, false
			}
			b, msg, seen = v, msg[k:], true
			continue
		}
		if k = protowire.ConsumeFieldValue(n, t, msg); k < 0 {
			return nil, false
		}
		msg = msg[k:]
	}
	return b, true
}

// checkConfig applies check to each setting a Config message sets: the
// first refusal is the stream's status, and the message goes no further.
func checkConfig(msg []byte, check func(key, val string) error) error {
	pairs, ok := confSets(msg)
	if !ok {
		return status.Error(codes.InvalidArgument, "cannot read this Config request's settings: the node checks each one before Spark sees it")
	}
	for _, kv := range pairs {
		if err := check(kv[0], kv[1]); err != nil {
			code := codes.InvalidArgument
			if errors.Is(err, sessions.ErrConfNotAllowed) || errors.Is(err, sessions.ErrConfTooLarge) {
				code = codes.PermissionDenied
			}
			return status.Error(code, err.Error())
		}
	}
	return nil
}
