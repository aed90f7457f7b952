package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkForwardedGet compares a key get at the owner with the same get
// through another node (forwarded), sequentially, on one keep-alive client.
// Run with: go test -run XXX -bench ForwardedGet -benchtime 2000x ./node
func BenchmarkForwardedGet(b *testing.B) {
	ms := startCluster(b)
	var s struct {
		ID   int64  `json:"id"`
		Node string `json:"node"`
	}
	resp, err := http.Post(ms[0].base()+"/sessions", "application/json", jsonBody(`{"kind":"pyspark"}`))
	if err != nil {
		b.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if err := createSessionWait(ms[0].base(), s.ID); err != nil {
		b.Fatal(err)
	}
	mustStatus(b, "POST", ms[0].base()+"/v1/rdds", fmt.Sprintf(`{"name":"bench","session":%d}`, s.ID), 201)
	mustStatus(b, "PUT", ms[0].base()+"/v1/rdds/bench/keys/k", `"a value of about twenty bytes"`, 204)
	owner, other := ownerAndOther(ms, s.Node)
	client := &http.Client{}
	measure := func(base string) []time.Duration {
		lat := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			r, err := client.Get(base + "/v1/rdds/bench/keys/k")
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, r.Body)
			r.Body.Close()
			lat = append(lat, time.Since(t0))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return lat
	}
	b.ResetTimer()
	direct := measure(owner.base())
	forwarded := measure(other.base())
	b.StopTimer()
	p := func(l []time.Duration, q float64) float64 {
		return float64(l[int(float64(len(l)-1)*q)].Microseconds()) / 1000
	}
	b.ReportMetric(p(direct, 0.5), "owner-p50-ms")
	b.ReportMetric(p(forwarded, 0.5), "forwarded-p50-ms")
	b.ReportMetric(p(forwarded, 0.5)-p(direct, 0.5), "added-p50-ms")
	b.ReportMetric(p(direct, 0.99), "owner-p99-ms")
	b.ReportMetric(p(forwarded, 0.99), "forwarded-p99-ms")
}

func jsonBody(s string) io.Reader { return strings.NewReader(s) }

func mustStatus(tb testing.TB, method, url, body string, want int) {
	tb.Helper()
	if st, b := rawDo(method, url, body); st != want {
		tb.Fatalf("%s %s: %d %s", method, url, st, b)
	}
}
