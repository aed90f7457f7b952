package node

import (
	"net/http"
	"strings"
	"testing"
)

// The Host check (issue 25): a loopback node answers loopback names; with
// --allowed-hosts it answers those too, and refuses every other name
// with 403 forbidden_host (a web page reaching it under its own name,
// DNS rebinding). No session: no interpreter starts.
func TestAllowedHosts(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.AllowedHosts = []string{"SRDD.example.com."}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	get := func(host string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+n.HTTPAddr()+"/v1/rdds", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 512)
		k, _ := resp.Body.Read(buf)
		b.Write(buf[:k])
		return resp.StatusCode, b.String()
	}
	for host, want := range map[string]int{
		"srdd.example.com": 200, "srdd.example.com:8998": 200, "localhost": 200, "127.0.0.1:1": 200,
		"evil.example": 403, "srdd.example.com.evil.example": 403,
	} {
		st, body := get(host)
		if st != want || (want == 403 && !strings.Contains(body, "forbidden_host")) {
			t.Errorf("Host %q: %d %s, want %d", host, st, body, want)
		}
	}
}
