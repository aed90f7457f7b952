package connectapi

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// methodNames are Spark Connect's methods, the values of the method
// label; any other method is "other", so a client cannot grow the
// series by inventing names.
var methodNames = []string{"ExecutePlan", "ReattachExecute", "ReleaseExecute", "AnalyzePlan", "Config",
	"AddArtifacts", "ArtifactStatus", "Interrupt", "ReleaseSession", "FetchErrorDetails"}

const (
	servicePrefix = "/spark.connect.SparkConnectService/"
	otherMethod   = "other"
)

// connectMetrics are the port's series, bound once.
type connectMetrics struct {
	streams  *prometheus.CounterVec   // method, code
	seconds  *prometheus.HistogramVec // method
	open     prometheus.Gauge
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter
	rows     prometheus.Counter
	routed   *prometheus.CounterVec // code
}

func newConnectMetrics(reg prometheus.Registerer) *connectMetrics {
	m := &connectMetrics{
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "srdd_connect_streams_total",
			Help: "Spark Connect streams (calls) that ended, by method and gRPC status code.",
		}, []string{"method", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "srdd_connect_stream_duration_seconds",
			Help:    "Duration of Spark Connect streams, by method.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"method"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "srdd_connect_streams_open",
			Help: "Spark Connect streams open on this node.",
		}),
		bytesIn:  counter("srdd_connect_received_bytes_total", "Bytes of Spark Connect messages received from clients."),
		bytesOut: counter("srdd_connect_sent_bytes_total", "Bytes of Spark Connect messages sent to clients."),
		rows:     counter("srdd_connect_result_rows_total", "Rows of the Arrow batches that ExecutePlan and ReattachExecute streams sent to clients."),
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "srdd_connect_routed_streams_total",
			Help: "Spark Connect streams this node routed to the node that holds their session, by gRPC status code (that node counts them in srdd_connect_streams_total).",
		}, []string{"code"}),
	}
	if reg != nil {
		reg.MustRegister(m.streams, m.seconds, m.open, m.bytesIn, m.bytesOut, m.rows, m.routed)
	}
	for _, name := range append(methodNames, otherMethod) {
		m.streams.WithLabelValues(name, codes.OK.String())
		m.seconds.WithLabelValues(name)
	}
	return m
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

// methodLabel is the method label of a full method name.
func methodLabel(method string) string {
	if name, ok := strings.CutPrefix(method, servicePrefix); ok {
		for _, m := range methodNames {
			if m == name {
				return m
			}
		}
	}
	return otherMethod
}

// done records an ended stream.
func (m *connectMetrics) done(method string, code codes.Code, d time.Duration, in, out, rows int64) {
	label := methodLabel(method)
	// A counter panics on a negative add: a total that wrapped (a
	// backend's absurd row counts) counts nothing.
	in, out, rows = max(in, 0), max(out, 0), max(rows, 0)
	m.streams.WithLabelValues(label, code.String()).Inc()
	m.seconds.WithLabelValues(label).Observe(d.Seconds())
	m.bytesIn.Add(float64(in))
	m.bytesOut.Add(float64(out))
	m.rows.Add(float64(rows))
}

// arrowRows is the row count of an ExecutePlanResponse that carries an
// Arrow batch (field 2, arrow_batch; its field 1, row_count), read from
// the message's bytes; 0 for any other message or one it cannot read.
// The port otherwise never parses result messages; these two field
// numbers are all it knows of them (DESIGN.md).
func arrowRows(msg []byte) int64 {
	batch, ok := only(msg, 2)
	if !ok || batch == nil {
		return 0
	}
	n, found := varint(batch, 1)
	if !found || n < 0 {
		return 0
	}
	// Bounded, so that no run of messages can wrap a stream's total.
	return min(n, maxBatchRows)
}

// maxBatchRows bounds the rows one message may count for (a backend
// that session code can reach could send any number).
const maxBatchRows = 1 << 40
