package node

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/srdd/srdd/internal/testutil"
)

// TestAdvertisedNames runs two nodes that bind to 127.0.0.1 but advertise
// "localhost:port", as StatefulSet pods advertise their DNS names: the
// registry records the names, and joining, forwarding and replication
// all go through them.
func TestAdvertisedNames(t *testing.T) {
	cfgFor := func(id string) (Config, string) {
		cfg := testConfig(t, t.TempDir())
		h, r := testutil.FreePort(t), testutil.FreePort(t)
		cfg.NodeID = id
		cfg.HTTPAddr, cfg.RaftAddr = fmt.Sprintf("127.0.0.1:%d", h), fmt.Sprintf("127.0.0.1:%d", r)
		cfg.AdvertiseHTTP, cfg.AdvertiseRaft = fmt.Sprintf("localhost:%d", h), fmt.Sprintf("localhost:%d", r)
		return cfg, cfg.AdvertiseHTTP
	}
	c1, adv1 := cfgFor("a1")
	c1.Admit = []string{"a2"}
	withPeerTLS(t, &c1)
	n1, err := Start(c1)
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Close()
	c2, _ := cfgFor("a2")
	c2.Bootstrap, c2.Join = false, []string{adv1}
	withPeerTLS(t, &c2)
	n2, err := Start(c2) // registers itself through a forwarded write to the leader's advertised name
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()

	var st struct {
		Members []struct {
			ID       string `json:"id"`
			RaftAddr string `json:"raft_addr"`
			HTTPAddr string `json:"http_addr"`
			Status   string `json:"status"`
			Suffrage string `json:"suffrage"`
		} `json:"members"`
	}
	want := map[string][2]string{"a1": {c1.AdvertiseHTTP, c1.AdvertiseRaft}, "a2": {c2.AdvertiseHTTP, c2.AdvertiseRaft}}
	if err := testutil.WaitFor(20*time.Second, func() (bool, error) {
		_ = json.Unmarshal(do(t, "GET", "http://"+n2.HTTPAddr()+"/v1/cluster", "", 200), &st)
		if len(st.Members) != 2 {
			return false, nil
		}
		for _, m := range st.Members {
			if m.Status != "up" || m.Suffrage != "voter" {
				return false, nil
			}
			if w := want[m.ID]; m.HTTPAddr != w[0] || m.RaftAddr != w[1] {
				return false, fmt.Errorf("member %s recorded as %s / %s, want %v", m.ID, m.HTTPAddr, m.RaftAddr, w)
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("%v: %+v", err, st)
	}
	// Replication reaches the follower through its advertised Raft name.
	idx := n1.Registry.AppliedIndex()
	if err := testutil.WaitFor(10*time.Second, func() (bool, error) { return n2.Registry.AppliedIndex() >= idx, nil }); err != nil {
		t.Fatal(err)
	}
}
