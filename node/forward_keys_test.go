package node

import (
	"encoding/json"
	"net/url"
	"testing"
)

// TestHostileKeysThroughAForward: keys that look like paths (encoded
// slashes, dot segments) stay one key when a node forwards a per-key call
// to the RDD's owner: the owner sees the path the client sent, not a
// normalised one.
func TestHostileKeysThroughAForward(t *testing.T) {
	a, b, _ := startPair(t, "plain", func(*Config) {})
	do(t, "POST", a.base()+"/v1/rdds", `{"name":"hostile"}`, 201)
	var info struct{ Node string }
	_ = json.Unmarshal(do(t, "GET", a.base()+"/v1/rdds/hostile", "", 200), &info)
	owner, other := a, b
	if info.Node == b.id {
		owner, other = b, a
	}
	for _, key := range []string{"a/b", "../x", "..", "%2e%2e", "a/../../sessions", "./k", "a//b"} {
		path := "/v1/rdds/hostile/keys/" + url.PathEscape(key)
		do(t, "PUT", other.base()+path, `"v"`, 204)
		for _, m := range []*member{owner, other} {
			var got struct{ Key string }
			_ = json.Unmarshal(do(t, "GET", m.base()+path, "", 200), &got)
			if got.Key != key {
				t.Errorf("key %q through %s came back as %q", key, m.id, got.Key)
			}
		}
	}
}
