package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Target is one system under load. Get and Set are called concurrently,
// each client (0 .. Concurrency-1) from its own goroutine, so a target may
// keep per-client state (a connection) indexed by client.
type Target interface {
	Name() string
	Get(client int, key string) error
	Set(client int, key string, value []byte) error
	Close() error
}

// ErrMissing is what a target returns for a get of a key it does not hold
// (counted as an error: benchmarks only read keys they loaded).
var ErrMissing = errors.New("key not found")

// Config is one run's load. Runs with the same Config and Seed send the
// same keys in the same order from each client.
type Config struct {
	Keys        int           `json:"keys"`
	KeyPrefix   string        `json:"key_prefix,omitempty"`
	ValueSize   int           `json:"value_size"`
	Concurrency int           `json:"concurrency"`
	ReadRatio   float64       `json:"read_ratio"` // 1: only gets, 0: only sets
	Dist        string        `json:"dist"`       // uniform, zipfian, sequential
	Duration    time.Duration `json:"duration"`   // measured time (after Warmup)
	Ops         int           `json:"ops,omitempty"`
	Warmup      time.Duration `json:"warmup,omitempty"`
	Seed        uint64        `json:"seed"`
	SeqStart    int64         `json:"seq_start,omitempty"` // sequential: first position
	// Batch > 1 makes each get one request for Batch keys (the target must
	// be a BatchGetter); throughput is then also counted in keys.
	Batch int `json:"batch,omitempty"`
}

// BatchGetter is a target that can get many keys in one request.
type BatchGetter interface {
	GetMany(client int, keys []string) error
}

// Result is what one run measured.
type Result struct {
	Scenario   string  `json:"scenario"`
	Target     string  `json:"target"`
	Config     Config  `json:"config"`
	Ops        int64   `json:"ops"`
	Gets       int64   `json:"gets"`
	Sets       int64   `json:"sets"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	OpsPerSec  float64 `json:"ops_per_sec"`
	KeysPerSec float64 `json:"keys_per_sec"`
	Latency    Summary `json:"latency"`
	CDF        []Point `json:"cdf,omitempty"`
	KeysUsed   int64   `json:"keys_used,omitempty"`
}

func (c *Config) check() error {
	switch {
	case c.Keys < 1:
		return fmt.Errorf("keys must be >= 1")
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency must be >= 1")
	case c.ReadRatio < 0 || c.ReadRatio > 1:
		return fmt.Errorf("read ratio must be in [0, 1]")
	case c.Duration <= 0 && c.Ops <= 0:
		return fmt.Errorf("give a duration or an op count")
	}
	if c.ValueSize == 0 {
		c.ValueSize = 100
	}
	return nil
}

// valueCache holds a few distinct values so sets do not build one per op.
const valueVariants = 256

// Run drives t with cfg's load until the duration passes (or Ops requests
// completed) and reports throughput and latency. Requests that fail are
// counted, not timed.
func Run(ctx context.Context, scenario string, cfg Config, t Target) (Result, error) {
	if err := cfg.check(); err != nil {
		return Result{}, err
	}
	chooser, err := NewChooser(cfg.Dist, cfg.Keys, cfg.SeqStart)
	if err != nil {
		return Result{}, err
	}
	bg, _ := t.(BatchGetter)
	if cfg.Batch > 1 && bg == nil {
		return Result{}, fmt.Errorf("target %s cannot get keys in batches", t.Name())
	}
	values := make([][]byte, valueVariants)
	for i := range values {
		values[i] = Value(cfg.ValueSize, i)
	}
	var (
		issued, gets, sets, errs atomic.Int64
		firstErr                 atomic.Value
		wg                       sync.WaitGroup
		mu                       sync.Mutex
		all                      Latencies
		lastEnd                  atomic.Int64
	)
	start := time.Now()
	recordFrom := start
	if cfg.Ops == 0 {
		recordFrom = start.Add(cfg.Warmup)
	}
	deadline := recordFrom.Add(cfg.Duration)
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func(client int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(cfg.Seed, uint64(client)+1))
			var lat Latencies
			for ctx.Err() == nil {
				if cfg.Ops > 0 {
					if issued.Add(1) > int64(cfg.Ops) {
						break
					}
				} else if !time.Now().Before(deadline) {
					break
				}
				k := chooser.Next(r)
				key := KeyName(cfg.KeyPrefix, k)
				isGet := cfg.ReadRatio >= 1 || (cfg.ReadRatio > 0 && r.Float64() < cfg.ReadRatio)
				var batch []string
				if isGet && cfg.Batch > 1 {
					batch = make([]string, cfg.Batch)
					batch[0] = key
					for i := 1; i < cfg.Batch; i++ {
						batch[i] = KeyName(cfg.KeyPrefix, chooser.Next(r))
					}
				}
				t0 := time.Now()
				var err error
				if batch != nil {
					err = bg.GetMany(client, batch)
				} else if isGet {
					err = t.Get(client, key)
				} else {
					err = t.Set(client, key, values[k%valueVariants])
				}
				end := time.Now()
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s %s: %v", map[bool]string{true: "get", false: "set"}[isGet], key, err))
					continue
				}
				if t0.Before(recordFrom) {
					continue
				}
				lat = append(lat, end.Sub(t0))
				if isGet {
					gets.Add(1)
				} else {
					sets.Add(1)
				}
				if e := end.UnixNano(); e > lastEnd.Load() {
					lastEnd.Store(e)
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	res := Result{Scenario: scenario, Target: t.Name(), Config: cfg, Gets: gets.Load(), Sets: sets.Load(), Errors: errs.Load()}
	res.Ops = res.Gets + res.Sets
	if fe, ok := firstErr.Load().(string); ok {
		res.FirstError = fe
	}
	end := time.Unix(0, lastEnd.Load())
	if res.Ops > 0 {
		res.Seconds = end.Sub(recordFrom).Seconds()
		if res.Seconds > 0 {
			res.OpsPerSec = float64(res.Ops) / res.Seconds
			res.KeysPerSec = res.OpsPerSec
			if cfg.Batch > 1 {
				res.KeysPerSec = float64(res.Gets*int64(cfg.Batch)+res.Sets) / res.Seconds
			}
		}
	}
	res.Latency = all.Summarize()
	res.CDF = all.CDF(200)
	if s, ok := chooser.(*Sequence); ok {
		res.KeysUsed = s.Used()
	}
	return res, ctx.Err()
}
