package connectapi

import (
	"errors"
	"strings"

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

// artifactsMethod uploads jars, Python files and other files into the
// client's Spark session.
const artifactsMethod = "/spark.connect.SparkConnectService/AddArtifacts"

// artifactCheck rules the messages of one AddArtifacts stream: each
// artifact's name must be a relative path that stays inside the
// session's artifact directory (no empty, "." or ".." segment, no
// backslash or NUL), and the stream may carry at most max bytes, its
// declared chunked sizes included. It reads the request's batch (field
// 3: artifacts, 1, each a name, 1) and begin_chunk (4: name 1,
// total_bytes 2) with protowire, every occurrence of each, so a repeated
// field cannot hide a name.
type artifactCheck struct {
	max, seen int64
}

func (a *artifactCheck) check(msg []byte) error {
	a.seen += int64(len(msg))
	if a.seen > a.max {
		return status.Errorf(codes.ResourceExhausted, "this AddArtifacts call carries more than %d bytes, the node's limit (--connect-max-artifact-bytes)", a.max)
	}
	var bad error
	ok := each(msg, 3, func(batch []byte) bool {
		return each(batch, 1, func(art []byte) bool {
			return each(art, 1, func(name []byte) bool { bad = artifactName(name); return bad == nil })
		})
	}) && each(msg, 4, func(begin []byte) bool {
		if bad = eachName(begin); bad != nil {
			return false
		}
		if n, ok := varint(begin, 2); ok && n > a.max-a.seen {
			bad = status.Errorf(codes.ResourceExhausted, "an artifact of %d bytes is over the node's limit of %d a call (--connect-max-artifact-bytes)", n, a.max)
			return false
		}
		return true
	})
	if bad != nil {
		return bad
	}
	if !ok {
		return status.Error(codes.InvalidArgument, "cannot read this AddArtifacts request: the node checks each artifact's name before Spark sees it")
	}
	return nil
}

func eachName(msg []byte) (bad error) {
	each(msg, 1, func(name []byte) bool { bad = artifactName(name); return bad == nil })
	return bad
}

// artifactName refuses a name that could leave the artifact directory.
func artifactName(b []byte) error {
	name := string(b)
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\\\x00") {
			return status.Errorf(codes.InvalidArgument, "artifact name %q must be a relative path of plain segments (no empty, '.' or '..' segment, no backslash)", name)
		}
	}
	return nil
}

// each calls fn with the contents of every length-delimited field num of
// msg, in order, until fn returns false; it returns false if msg is
// malformed or fn stopped.
func each(msg []byte, num protowire.Number, fn func([]byte) bool) bool {
	for len(msg) > 0 {
		n, t, k := protowire.ConsumeTag(msg)
		if k < 0 {
			return false
		}
		msg = msg[k:]
		if n == num && t == protowire.BytesType {
			v, k := protowire.ConsumeBytes(msg)
			if k < 0 || !fn(v) {
				return false
			}
			msg = msg[k:]
			continue
		}
		if k = protowire.ConsumeFieldValue(n, t, msg); k < 0 {
			return false
		}
		msg = msg[k:]
	}
	return true
}

// varint is the last varint field num of msg.
func varint(msg []byte, num protowire.Number) (v int64, found bool) {
	for len(msg) > 0 {
		n, t, k := protowire.ConsumeTag(msg)
		if k < 0 {
			return v, found
		}
		msg = msg[k:]
		if n == num && t == protowire.VarintType {
			x, k := protowire.ConsumeVarint(msg)
			if k < 0 {
				return v, found
			}
			v, found, msg = int64(x), true, msg[k:]
			continue
		}
		if k = protowire.ConsumeFieldValue(n, t, msg); k < 0 {
			return v, found
		}
		msg = msg[k:]
	}
	return v, found
}
