// Command render-panels draws key panels of the Grafana dashboard as one
// PNG, from a real Prometheus scraping a real node under load (the same
// harness as the deploy checks): what a person would see in Grafana,
// without Grafana. `make check-deploy` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/srdd/srdd/deploy/check"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// panels are dashboard panel titles, drawn left to right, top to bottom.
var panels = []string{
	"Throughput by route", "Key latency p50 / p99 by op",
	"Keys per RDD", "Hot-key cache hit ratio",
	"Spark job latency p99", "Queue depth",
	"Interpreter memory", "Requests per RDD and op",
}

var palette = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 255}, {R: 0xd6, G: 0x27, B: 0x28, A: 255},
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 255}, {R: 0x94, G: 0x67, B: 0xbd, A: 255},
	{R: 0xff, G: 0x7f, B: 0x0e, A: 255}, {R: 0x8c, G: 0x56, B: 0x4b, A: 255},
}

func main() {
	out := flag.String("out", "deploy/grafana/panels.png", "PNG to write")
	load := flag.Duration("load", 60*time.Second, "how long the load runs")
	clients := flag.Int("clients", 4, "concurrent clients of the load")
	flag.Parse()
	if err := run(*out, *load, *clients); err != nil {
		fmt.Fprintln(os.Stderr, "render-panels:", err)
		os.Exit(1)
	}
}

func run(out string, load time.Duration, clients int) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	dash, err := check.LoadDashboard(filepath.Join(root, "deploy", "grafana", "srdd-dashboard.json"))
	if err != nil {
		return err
	}
	byTitle := map[string]check.Panel{}
	for _, p := range dash.Panels {
		byTitle[p.Title] = p
	}
	py, err := check.FindPython(root)
	if err != nil {
		return err
	}
	env, err := check.Start(check.Options{DeployDir: filepath.Join(root, "deploy"), Python: py})
	if err != nil {
		return err
	}
	defer env.Close()
	start := time.Now()
	fmt.Fprintf(os.Stderr, "render-panels: %s of load against %s, Prometheus at %s\n", load, env.NodeURL, env.PromURL)
	if err := env.Load(context.Background(), load, clients); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	time.Sleep(3 * check.ScrapeInterval) // the last scrapes
	end := time.Now()

	const cols = 2
	rows := (len(panels) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for i := range plots {
		plots[i] = make([]*plot.Plot, cols)
	}
	for i, title := range panels {
		p, ok := byTitle[title]
		if !ok {
			return fmt.Errorf("no panel %q in the dashboard", title)
		}
		pl, err := draw1(env, p, start, end)
		if err != nil {
			return fmt.Errorf("panel %q: %w", title, err)
		}
		plots[i/cols][i%cols] = pl
	}
	img := vgimg.New(vg.Points(1400), vg.Points(float64(rows)*300))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(8), PadY: vg.Points(8),
		PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6)}
	canvases := plot.Align(plots, tiles, dc)
	for r := range plots {
		for c := range plots[r] {
			if plots[r][c] != nil {
				plots[r][c].Draw(canvases[r][c])
			}
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	fmt.Fprintf(os.Stderr, "render-panels: wrote %s\n", out)
	return f.Close()
}

func draw1(env *check.Env, p check.Panel, start, end time.Time) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.Title
	pl.X.Label.Text = "seconds"
	pl.Y.Label.Text = p.FieldConfig.Defaults.Unit
	pl.Legend.Top = true
	pl.Legend.TextStyle.Font.Size = vg.Points(7)
	pl.Add(plotter.NewGrid())
	n := 0
	for _, t := range p.Targets {
		series, err := env.QueryRange(check.Resolve(t.Expr), start, end, check.ScrapeInterval)
		if err != nil {
			return nil, err
		}
		// The busiest series first: a legend of eight at most.
		sort.SliceStable(series, func(i, j int) bool { return mean(series[i].Values) > mean(series[j].Values) })
		for _, s := range series {
			var pts plotter.XYs
			for i, v := range s.Values {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					continue
				}
				pts = append(pts, plotter.XY{X: s.Times[i] - float64(start.Unix()), Y: v})
			}
			if len(pts) == 0 || n >= 8 {
				continue
			}
			line, err := plotter.NewLine(pts)
			if err != nil {
				return nil, err
			}
			line.Color = palette[n%len(palette)]
			line.Width = vg.Points(1.2)
			pl.Add(line)
			pl.Legend.Add(legend(t.LegendFormat, s.Metric), line)
			n++
		}
	}
	return pl, nil
}

func mean(vs []float64) float64 {
	sum, n := 0.0, 0
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			sum += v
			n++
		}
	}
	if n == 0 {
		return math.Inf(-1)
	}
	return sum / float64(n)
}

// legend fills a Grafana legend format ({{label}}) from a series' labels.
func legend(format string, m map[string]string) string {
	out := format
	for k, v := range m {
		out = strings.ReplaceAll(out, "{{"+k+"}}", v)
	}
	if out == "" {
		out = fmt.Sprint(m)
	}
	return out
}
