package cluster

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// threeNodes starts a 3-node registry on loopback (production timings)
// and returns its leader.
func threeNodes(b *testing.B) *Node {
	b.Helper()
	var nodes []*Node
	for i := 1; i <= 3; i++ {
		n, err := Open(Config{NodeID: fmt.Sprintf("n%d", i), RaftAddr: "127.0.0.1:0", DataDir: b.TempDir(),
			Bootstrap: i == 1, Logger: hclog.NewNullLogger()})
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, n)
		b.Cleanup(func() { n.Close() })
	}
	if err := nodes[0].WaitForLeader(10 * time.Second); err != nil {
		b.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if err := nodes[0].Admit(n.ID(), true, "test"); err != nil {
			b.Fatal(err)
		}
		if err := nodes[0].Join(n.ID(), n.RaftAddr(), "", true, false); err != nil {
			b.Fatal(err)
		}
	}
	return nodes[0]
}

func percentile(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

// BenchmarkRegistryCommit1Client: one client creating session records.
func BenchmarkRegistryCommit1Client(b *testing.B) {
	leader := threeNodes(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := leader.Apply(Command{Type: CmdCreateSession, Body: &CreateSession{Kind: "pyspark", Node: "n1"}}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}

// BenchmarkRegistryCommit64Clients: 64 concurrent clients; Raft batches
// their entries into shared appends.
func BenchmarkRegistryCommit64Clients(b *testing.B) {
	leader := threeNodes(b)
	const clients = 64
	var wg sync.WaitGroup
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	next := make(chan struct{}, b.N)
	for i := 0; i < b.N; i++ {
		next <- struct{}{}
	}
	close(next)
	b.ResetTimer()
	t0 := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				s := time.Now()
				if _, err := leader.Apply(Command{Type: CmdCreateSession, Body: &CreateSession{Kind: "pyspark", Node: "n1"}}); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(s)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "writes/s")
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}
