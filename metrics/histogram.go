package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// WithNative returns o as a native histogram too, for servers that scrape
// those; its classic buckets stay (dashboards and alerts use them). The
// node's latency histograms of HTTP requests and interpreter calls share
// these settings.
func WithNative(o prometheus.HistogramOpts) prometheus.HistogramOpts {
	o.NativeHistogramBucketFactor = 1.1
	o.NativeHistogramMaxBucketNumber = 160
	o.NativeHistogramMinResetDuration = time.Hour
	return o
}
