package sessions

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestConstHistogramFromBucketCounts(t *testing.T) {
	d := prometheus.NewDesc("h", "h", []string{"rdd"}, nil)
	var h jobHist
	h.add(jobHist{Counts: []uint64{1, 0, 2, 1}, Sum: 9.5, Count: 4}) // bounds 0.1, 1, 10, +Inf
	h.add(jobHist{Counts: []uint64{0, 3, 0, 0}, Sum: 1.5, Count: 3})
	m, ok := constHistogram(d, []float64{0.1, 1, 10}, h, "states")
	if !ok {
		t.Fatal("no histogram")
	}
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	hist := out.GetHistogram()
	if hist.GetSampleCount() != 7 || hist.GetSampleSum() != 11 {
		t.Fatalf("count %d sum %v", hist.GetSampleCount(), hist.GetSampleSum())
	}
	want := []uint64{1, 4, 6} // cumulative; +Inf is the count
	for i, b := range hist.GetBucket() {
		if b.GetCumulativeCount() != want[i] {
			t.Fatalf("bucket %v = %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want[i])
		}
	}
	if _, ok := constHistogram(d, []float64{0.1, 1}, h, "x"); ok {
		t.Fatal("bucket count mismatch accepted")
	}
	if _, ok := constHistogram(d, nil, jobHist{}, "x"); ok {
		t.Fatal("a histogram without bounds (no stats answer yet) was exported")
	}
}
