// Package loadgen is srdd's load generator: fixed-seed key and value
// streams, a closed-loop runner (each client sends its next request when
// the previous one is answered), latency percentiles, and targets (srdd
// REST, the seed's statement wrapper, Redis, a no-op HTTP route) that all
// get the very same load.
package loadgen

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
)

// KeyName is the i-th key of a key space: fixed width, so every key is
// the same size ("key:00000042").
func KeyName(prefix string, i int) string {
	return fmt.Sprintf("%skey:%08d", prefix, i)
}

// Value is a JSON string of exactly size bytes (at least 2), the same for
// the same i, so runs are repeatable.
func Value(size, i int) []byte {
	if size < 2 {
		size = 2
	}
	body := size - 2
	var b strings.Builder
	b.Grow(size)
	b.WriteByte('"')
	seed := fmt.Sprintf("v%d-", i)
	for b.Len() < body+1 {
		n := body + 1 - b.Len()
		if n > len(seed) {
			n = len(seed)
		}
		b.WriteString(seed[:n])
	}
	b.WriteByte('"')
	return []byte(b.String())
}

// Chooser picks the next key index in [0, n).
type Chooser interface {
	Next(r *rand.Rand) int
}

// Uniform picks every key with the same probability.
type Uniform struct{ N int }

func (u Uniform) Next(r *rand.Rand) int { return r.IntN(u.N) }

// Zipfian is YCSB's scrambled zipfian generator (Gray et al., "Quickly
// generating billion-record synthetic databases"), theta 0.99 by default:
// a few keys are very hot; the hot ranks are scattered over the key space
// by a hash, so they do not cluster in one partition.
type Zipfian struct {
	n                       int
	theta, alpha, zetan, et float64
	half                    float64
}

// NewZipfian prepares a generator over n keys (computing zeta is O(n)).
func NewZipfian(n int, theta float64) *Zipfian {
	if theta <= 0 || theta >= 1 {
		theta = 0.99
	}
	z := &Zipfian{n: n, theta: theta}
	z.zetan = zeta(n, theta)
	z.alpha = 1 / (1 - theta)
	z.et = (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta(2, theta)/z.zetan)
	z.half = 1 + math.Pow(0.5, theta)
	return z
}

func zeta(n int, theta float64) float64 {
	s := 0.0
	for i := 1; i <= n; i++ {
		s += 1 / math.Pow(float64(i), theta)
	}
	return s
}

// Rank draws a zipfian rank (0 is the most popular).
func (z *Zipfian) Rank(r *rand.Rand) int {
	u := r.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < z.half {
		return 1
	}
	k := int(float64(z.n) * math.Pow(z.et*u-z.et+1, z.alpha))
	if k >= z.n {
		k = z.n - 1
	}
	return k
}

// Next draws a rank and scatters it over the key space.
func (z *Zipfian) Next(r *rand.Rand) int {
	rank := z.Rank(r)
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(rank >> (8 * i))
	}
	h.Write(b[:])
	return int(h.Sum64() % uint64(z.n))
}

// Sequence hands out every key once, in a fixed scattered order, across
// all clients (for cold reads: no key is read twice). It wraps around
// after n keys.
type Sequence struct {
	n, step int
	next    atomic.Int64
	start   int64
}

// NewSequence walks n keys starting at position start of the order.
func NewSequence(n int, start int64) *Sequence {
	step := 1_000_003 // a prime: coprime with n unless n is a multiple
	for gcd(step, n) != 1 {
		step += 2
	}
	s := &Sequence{n: n, step: step % n, start: start}
	if s.step == 0 {
		s.step = 1
	}
	return s
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Next ignores r: the order is shared by all clients.
func (s *Sequence) Next(*rand.Rand) int {
	i := s.start + s.next.Add(1) - 1
	return int((i * int64(s.step)) % int64(s.n))
}

// Used reports how many keys were handed out.
func (s *Sequence) Used() int64 { return s.next.Load() }

// NewChooser builds a chooser by name: uniform, zipfian or sequential.
func NewChooser(dist string, n int, start int64) (Chooser, error) {
	switch dist {
	case "", "uniform":
		return Uniform{N: n}, nil
	case "zipfian":
		return NewZipfian(n, 0.99), nil
	case "sequential":
		return NewSequence(n, start), nil
	}
	return nil, fmt.Errorf("unknown key distribution %q (uniform, zipfian, sequential)", dist)
}
