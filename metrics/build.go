package metrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Build describes this binary for srdd_build_info.
type Build struct {
	Version string // srdd's version (main.version, from git describe)
	PySpark string // the pinned pyspark version the interpreter needs
}

// revision is set by the Makefile and the Dockerfile
// (-ldflags "-X github.com/srdd/srdd/metrics.revision=..."), for builds
// where Go does not stamp VCS information (GOFLAGS=-buildvcs=false, or a
// Docker context without .git).
var revision string

// Revision returns the VCS revision: the one given at link time, else the
// one Go stamped into the binary, else "unknown".
func Revision() string {
	if revision != "" {
		return revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// RegisterBuildInfo registers srdd_build_info, a gauge of 1 whose labels
// say what is running. The Spark version a session actually started is in
// srdd_spark_info (sessions).
func RegisterBuildInfo(reg prometheus.Registerer, b Build) {
	if b.Version == "" {
		b.Version = "dev"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "srdd_build_info",
		Help: "Build of this srdd node (always 1): version, VCS revision, Go version, pinned PySpark.",
		ConstLabels: prometheus.Labels{
			"version": b.Version, "revision": Revision(), "goversion": runtime.Version(), "pyspark": b.PySpark,
		},
	})
	g.Set(1)
	reg.MustRegister(g)
}
