package loadgen

import (
	"math"
	"sort"
	"time"
)

// Latencies holds every sample of a run (8 bytes each: a million samples
// is 8 MB), so percentiles are exact.
type Latencies []time.Duration

// Summary is what a run reports about its latencies, in milliseconds.
type Summary struct {
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Sort sorts in place; Percentile and CDF need sorted samples.
func (l Latencies) Sort() { sort.Slice(l, func(i, j int) bool { return l[i] < l[j] }) }

// Percentile is the nearest-rank percentile (p in [0, 100]) of sorted samples.
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(l)) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	if rank > len(l) {
		rank = len(l)
	}
	return l[rank-1]
}

// Summarize sorts the samples and summarizes them.
func (l Latencies) Summarize() Summary {
	if len(l) == 0 {
		return Summary{}
	}
	l.Sort()
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	return Summary{
		Mean: ms(sum / time.Duration(len(l))),
		P50:  ms(l.Percentile(50)), P90: ms(l.Percentile(90)),
		P99: ms(l.Percentile(99)), P999: ms(l.Percentile(99.9)),
		Max: ms(l[len(l)-1]),
	}
}

// Point is one point of a latency CDF: the fraction of requests that took
// at most LatencyMs.
type Point struct {
	LatencyMs float64 `json:"ms"`
	Fraction  float64 `json:"f"`
}

// CDF samples the distribution of sorted latencies at about n points,
// denser in the tail (where the interesting part is).
func (l Latencies) CDF(n int) []Point {
	if len(l) == 0 || n < 2 {
		return nil
	}
	var out []Point
	last := -1
	for i := 0; i < n; i++ {
		// fractions 1 - 10^(-4 i/(n-1)): from 0 to 0.9999, log-spaced in the tail
		f := 1 - math.Pow(10, -4*float64(i)/float64(n-1))
		idx := int(f * float64(len(l)-1))
		if idx == last {
			continue
		}
		last = idx
		out = append(out, Point{LatencyMs: ms(l[idx]), Fraction: float64(idx+1) / float64(len(l))})
	}
	out = append(out, Point{LatencyMs: ms(l[len(l)-1]), Fraction: 1})
	return out
}
