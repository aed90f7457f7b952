package report

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"github.com/srdd/srdd/benchmarks/loadgen"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var palette = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 255}, {R: 0xd6, G: 0x27, B: 0x28, A: 255},
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 255}, {R: 0x94, G: 0x67, B: 0xbd, A: 255},
	{R: 0xff, G: 0x7f, B: 0x0e, A: 255}, {R: 0x8c, G: 0x56, B: 0x4b, A: 255},
}

// Charts writes the PNG charts into dir and returns their file names.
func (r *Results) Charts(dir string) ([]string, error) {
	var out []string
	if name, err := r.cdfChart(dir); err != nil {
		return out, err
	} else if name != "" {
		out = append(out, name)
	}
	if name, err := r.curveChart(dir); err != nil {
		return out, err
	} else if name != "" {
		out = append(out, name)
	}
	for _, tag := range []string{"@1M", "@10M", "@1M-standalone"} {
		name := "issue16" + strings.NewReplacer("@", "-").Replace(tag) + ".png"
		if ok, err := CompareChart(nil, r, tag, "Issue 16 runs "+tag+": latency CDF", filepath.Join(dir, name)); err != nil {
			return out, err
		} else if ok {
			out = append(out, name)
		}
	}
	return out, nil
}

// cdfChart: latency CDFs of the 64-client runs (srdd cached get and set,
// Redis, the no-op route), latency on a log axis.
func (r *Results) cdfChart(dir string) (string, error) {
	series := []struct{ scenario, target, label string }{
		{"noop-c64", "noop", "no-op route"},
		{"get-cached-c64", "srdd", "srdd get (cached)"},
		{"set-c64", "srdd", "srdd set"},
		{"get-cold-c64", "srdd", "srdd get (cold: Spark job)"},
		{"get-c64", "redis", "redis GET"},
		{"set-c64", "redis", "redis SET"},
	}
	p := cdfPlot("Latency CDF, 64 clients (same generator, same run)")
	p.Legend.XOffs = -5
	n := 0
	for i, s := range series {
		run := r.Run(s.scenario, s.target)
		l, err := cdfLine(run, palette[i%len(palette)])
		if err != nil {
			return "", err
		}
		if l == nil {
			continue
		}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (%.0f ops/s)", s.label, run.OpsPerSec), l)
		n++
	}
	if n == 0 {
		return "", nil
	}
	name := "latency-cdf.png"
	return name, p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, name))
}

// cdfPlot is an empty latency CDF chart: latency on a log scale against
// the fraction of requests, legend at the bottom right.
func cdfPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "latency (ms, log scale)"
	p.Y.Label.Text = "fraction of requests"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	return p
}

// cdfLine is run's latency CDF as a line in c (points at 0 ms left out,
// for the log scale), or nil if run has no CDF.
func cdfLine(run *loadgen.Result, c color.Color) (*plotter.Line, error) {
	if run == nil || len(run.CDF) == 0 {
		return nil, nil
	}
	var xy plotter.XYs
	for _, pt := range run.CDF {
		if pt.LatencyMs > 0 {
			xy = append(xy, plotter.XY{X: pt.LatencyMs, Y: pt.Fraction})
		}
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return nil, err
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	return l, nil
}

// curveChart: get latency (p50) against the number of keys, the seed's
// ShareableRdd vs srdd, both axes log scale.
func (r *Results) curveChart(dir string) (string, error) {
	byTarget := map[string]plotter.XYs{}
	for _, c := range r.Curve {
		if c.P50Ms > 0 {
			byTarget[c.Target] = append(byTarget[c.Target], plotter.XY{X: float64(c.Keys), Y: c.P50Ms})
		}
	}
	if len(byTarget) == 0 {
		return "", nil
	}
	p := plot.New()
	p.Title.Text = "Get latency (p50) as the number of keys grows"
	p.X.Label.Text = "keys in the shared RDD (log scale)"
	p.Y.Label.Text = "p50 latency (ms, log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	names := make([]string, 0, len(byTarget))
	for k := range byTarget {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, name := range names {
		xy := byTarget[name]
		sort.Slice(xy, func(a, b int) bool { return xy[a].X < xy[b].X })
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return "", err
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.5)
		s.Color = l.Color
		s.Shape = draw.CircleGlyph{}
		p.Add(l, s)
		p.Legend.Add(name, l, s)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, xy := range byTarget {
		for _, pt := range xy {
			lo, hi = math.Min(lo, pt.Y), math.Max(hi, pt.Y)
		}
	}
	p.Y.Min, p.Y.Max = lo/2, hi*2
	name := "seed-vs-srdd.png"
	return name, p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, name))
}

// issue16Scenarios are the runs the cold-read charts show, per data-set tag.
var issue16Scenarios = []struct{ prefix, label string }{
	{"cold-get-c8", "cold get, 8 clients"},
	{"cold-mget-100", "cold multiget, 100 keys"},
	{"cold-mget-10000", "cold multiget, 10,000 keys"},
	{"cached-get-c64", "cached get, 64 clients"},
	{"cached-get-c64-compaction", "cached get, 64 clients, during a compaction"},
	{"cached-get-c64-load", "cached get, 64 clients, during a bulk load"},
}

// CompareChart writes a latency CDF chart of the issue-16 runs with tag
// (e.g. "@1M") of before (dashed) and after (solid) to path; it returns
// false if neither has such runs.
func CompareChart(before, after *Results, tag, title, path string) (bool, error) {
	p := cdfPlot(title)
	n := 0
	for i, s := range issue16Scenarios {
		for _, side := range []struct {
			r    *Results
			name string
			dash bool
		}{{before, "before", true}, {after, "after", false}} {
			if side.r == nil {
				continue
			}
			run := side.r.Run(s.prefix+tag, "srdd")
			l, err := cdfLine(run, palette[i%len(palette)])
			if err != nil {
				return false, err
			}
			if l == nil {
				continue
			}
			if side.dash {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			p.Add(l)
			p.Legend.Add(fmt.Sprintf("%s: %s (p50 %.2f ms)", side.name, s.label, run.Latency.P50), l)
			n++
		}
	}
	if n == 0 {
		return false, nil
	}
	return true, p.Save(10*vg.Inch, 6*vg.Inch, path)
}
