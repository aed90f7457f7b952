package node

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/peerid/peeridtest"
)

// TestCheckpointFetchBetweenNodes: a node fetches a durable RDD's
// checkpoint from the node that wrote it on its own disk, over the peer
// channel (issue 24), and gets the checkpoint's files. The route serves
// members only: not on the client port, not to a certificate of the CA
// whose node is not a member, not without a certificate; and it sends
// nothing but a checkpoint of that RDD.
func TestCheckpointFetchBetweenNodes(t *testing.T) {
	ms := startCluster(t)
	base := ms[0].base()
	do(t, "POST", base+"/v1/rdds", `{"name":"xfer"}`, 201)
	do(t, "PUT", base+"/v1/rdds/xfer/keys/k1", `"v1"`, 204)
	do(t, "PUT", base+"/v1/rdds/xfer/keys/k2", `{"n":2}`, 204)
	var ck struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal(do(t, "POST", base+"/v1/rdds/xfer/checkpoint", "", 200), &ck); err != nil || ck.Path == "" {
		t.Fatalf("checkpoint: %+v %v", ck, err)
	}
	var where struct {
		Node string `json:"node"`
	}
	_ = json.Unmarshal(do(t, "GET", base+"/v1/rdds/xfer", "", 200), &where)
	owner, other := ownerAndOther(ms, where.Node)
	if owner == nil {
		t.Fatalf("owner %q is not a member", where.Node)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var buf bytes.Buffer
	if err := other.n.Registry.FetchCheckpoint(ctx, owner.id, "xfer", ck.Path, &buf); err != nil {
		t.Fatalf("%s fetching from %s: %v", other.id, owner.id, err)
	}
	files := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	name := ck.Path[strings.LastIndexByte(ck.Path, '/')+1:]
	data := files[name+"/fake-checkpoint.json"] // the fake interpreter's checkpoint
	if !strings.Contains(data, `"k1"`) || !strings.Contains(data, `"k2"`) || files[".srdd-end"] == "" {
		t.Fatalf("fetched %d entries: %v", len(files), files)
	}

	// Refused: not the RDD's checkpoint, or not there.
	for _, p := range []string{ck.Path + "/..", ck.Path + "/../../xfer/" + name, "/etc/passwd", ck.Path[:strings.LastIndexByte(ck.Path, '/')] + "/00000000000000000001-1"} {
		err := other.n.Registry.FetchCheckpoint(ctx, owner.id, "xfer", p, io.Discard)
		if err == nil || !(strings.Contains(err.Error(), "answered 400") || strings.Contains(err.Error(), "answered 404")) {
			t.Errorf("fetch of %s: %v, want 400 or 404", p, err)
		}
	}
	// Only members, on the peer channel.
	q := cluster.CheckpointPath + "?rdd=xfer&path=" + url.QueryEscape(ck.Path)
	do(t, "GET", owner.base()+q, "", 403)
	n9 := peerCA(t).Node(t, "n9") // the CA's, not a member
	if st := peerHTTP(t, owner.raft, &n9, "GET", q, ""); st != 403 {
		t.Errorf("a non-member's certificate: %d, want 403", st)
	}
	if st := peerHTTP(t, owner.raft, nil, "GET", q, ""); st != 0 {
		t.Errorf("no certificate: %d, want no answer", st)
	}
	if st := peerHTTP(t, owner.raft, &peeridtest.Files{Cert: other.peerCert, Key: other.peerKey}, "GET", q, ""); st != 200 {
		t.Errorf("a member's certificate: %d, want 200", st)
	}
}
