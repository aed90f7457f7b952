package connectapi

import (
	"errors"
	"strings"

	"github.com/srdd/srdd/sessions"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
	ok = each(set, 1, func(kv []byte) bool {
		key, ok1 := only(kv, 1)
		val, ok2 := only(kv, 2)
		pairs = append(pairs, [2]string{string(key), string(val)})
		return ok1 && ok2
	})
	if !ok {
		return nil, false
	}
	return pairs, true
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
