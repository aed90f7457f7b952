package report

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"sort"

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
	p := plot.New()
	p.Title.Text = "Latency CDF, 64 clients (same generator, same run)"
	p.X.Label.Text = "latency (ms, log scale)"
	p.Y.Label.Text = "fraction of requests"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs = -5
	p.Add(plotter.NewGrid())
	n := 0
	for i, s := range series {
		run := r.Run(s.scenario, s.target)
		if run == nil || len(run.CDF) == 0 {
			continue
		}
		var xy plotter.XYs
		for _, pt := range run.CDF {
			if pt.LatencyMs > 0 {
				xy = append(xy, plotter.XY{X: pt.LatencyMs, Y: pt.Fraction})
			}
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return "", err
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.5)
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
