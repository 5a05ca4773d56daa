package mockllm

import (
	"crypto/sha256"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Stats is the JSON document served by GET /stats.
type Stats struct {
	// StartedAt is when the server was created; ResetAt when the stats were
	// last cleared (equal to StartedAt before any reset).
	StartedAt time.Time `json:"started_at"`
	ResetAt   time.Time `json:"reset_at"`
	// TotalCalls counts API requests (including rejected ones).
	TotalCalls int64 `json:"total_calls"`
	// InFlight is the number of API requests currently being handled and
	// PeakConcurrency the highest value it reached.
	InFlight        int64 `json:"in_flight"`
	PeakConcurrency int64 `json:"peak_concurrency"`
	// MaxConcurrency echoes the configured limit (0: none); Violations
	// counts requests that started while the limit was exceeded.
	MaxConcurrency int   `json:"max_concurrency"`
	Violations     int64 `json:"violations"`
	// Capacity echoes the configured capacity (0: none) and CapacityMode
	// its mode; Serving is the number of calls held in a capacity slot
	// now, PeakServing its highest value and OverCapacity the calls
	// refused (reject mode) or slowed (slow mode) for capacity.
	Capacity     int    `json:"capacity"`
	CapacityMode string `json:"capacity_mode,omitempty"`
	Serving      int64  `json:"serving"`
	PeakServing  int64  `json:"peak_serving"`
	OverCapacity int64  `json:"over_capacity"`
	// UniqueBodies counts distinct request bodies (by SHA-256), Duplicates
	// the bodies seen more than once and DuplicateCalls the calls whose
	// body had been seen before.
	UniqueBodies   int64 `json:"unique_bodies"`
	Duplicates     int64 `json:"duplicates"`
	DuplicateCalls int64 `json:"duplicate_calls"`
	// Resets counts connections reset on purpose, Hangs requests that were
	// left hanging, Canceled requests abandoned by the client before an
	// answer was written.
	Resets   int64 `json:"resets"`
	Hangs    int64 `json:"hangs"`
	Canceled int64 `json:"canceled"`
	// StatusCounts maps HTTP status codes (as strings) to the number of
	// API answers written with them.
	StatusCounts map[string]int64 `json:"status_counts"`
	// Endpoints maps API paths to call counts.
	Endpoints map[string]int64 `json:"endpoints"`
	// Models maps the request "model" to per-model stats. Models without
	// calls since the last reset are omitted.
	Models map[string]ModelStats `json:"models"`
}

// ModelStats are the per-model counters of Stats.
type ModelStats struct {
	Calls           int64            `json:"calls"`
	InFlight        int64            `json:"in_flight"`
	PeakConcurrency int64            `json:"peak_concurrency"`
	StatusCounts    map[string]int64 `json:"status_counts"`
	// LastAuthorization is the Authorization header of the latest call.
	LastAuthorization string `json:"last_authorization"`
}

const statusSlots = 600

type statusCounter [statusSlots]atomic.Int64

func (c *statusCounter) add(status int) {
	if status < 0 || status >= statusSlots {
		status = 0
	}
	c[status].Add(1)
}

func (c *statusCounter) snapshot() map[string]int64 {
	m := make(map[string]int64)
	for i := range c {
		if v := c[i].Load(); v != 0 {
			m[strconv.Itoa(i)] = v
		}
	}
	return m
}

func (c *statusCounter) reset() {
	for i := range c {
		c[i].Store(0)
	}
}

// gauge tracks a current value and its peak.
type gauge struct {
	cur  atomic.Int64
	peak atomic.Int64
}

func (g *gauge) inc() int64 {
	v := g.cur.Add(1)
	g.raisePeak(v)
	return v
}

func (g *gauge) raisePeak(v int64) {
	for {
		p := g.peak.Load()
		if v <= p || g.peak.CompareAndSwap(p, v) {
			return
		}
	}
}

// tryInc increments the gauge unless it is already at limit; it reports
// whether it did.
func (g *gauge) tryInc(limit int64) bool {
	for {
		v := g.cur.Load()
		if v >= limit {
			return false
		}
		if g.cur.CompareAndSwap(v, v+1) {
			g.raisePeak(v + 1)
			return true
		}
	}
}

func (g *gauge) dec() { g.cur.Add(-1) }

// resetPeak makes the peak the current value.
func (g *gauge) resetPeak() { g.peak.Store(g.cur.Load()) }

type modelState struct {
	calls    atomic.Int64
	inflight gauge
	status   statusCounter
	auth     atomic.Pointer[string]
}

func (m *modelState) setAuth(v string) {
	if p := m.auth.Load(); p != nil && *p == v {
		return
	}
	m.auth.Store(&v)
}

const bodyShards = 64

type bodyShard struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]int64
	_  [48]byte // keep shards on separate cache lines
}

// bodyTracker counts how often each request body (by SHA-256) was seen.
type bodyTracker struct {
	shards         [bodyShards]bodyShard
	unique         atomic.Int64
	duplicates     atomic.Int64
	duplicateCalls atomic.Int64
}

func (b *bodyTracker) init() {
	for i := range b.shards {
		b.shards[i].m = make(map[[sha256.Size]byte]int64)
	}
}

// observe records one more sighting of sum and returns how many times it
// has been seen, including this one.
func (b *bodyTracker) observe(sum [sha256.Size]byte) int64 {
	sh := &b.shards[sum[0]%bodyShards]
	sh.mu.Lock()
	n := sh.m[sum] + 1
	sh.m[sum] = n
	sh.mu.Unlock()
	switch {
	case n == 1:
		b.unique.Add(1)
	case n == 2:
		b.duplicates.Add(1)
		b.duplicateCalls.Add(1)
	default:
		b.duplicateCalls.Add(1)
	}
	return n
}

func (b *bodyTracker) reset() {
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		sh.m = make(map[[sha256.Size]byte]int64)
		sh.mu.Unlock()
	}
	b.unique.Store(0)
	b.duplicates.Store(0)
	b.duplicateCalls.Store(0)
}

type stats struct {
	startedAt  time.Time
	resetAt    atomic.Pointer[time.Time]
	total      atomic.Int64
	inflight   gauge
	violations atomic.Int64
	serving    gauge
	over       atomic.Int64
	resets     atomic.Int64
	hangs      atomic.Int64
	canceled   atomic.Int64
	status     statusCounter
	endpoints  [numEndpoints]atomic.Int64
	models     sync.Map // string -> *modelState
	bodies     bodyTracker
}

func newStats() *stats {
	now := time.Now().UTC()
	s := &stats{startedAt: now}
	s.resetAt.Store(&now)
	s.bodies.init()
	return s
}

func (s *stats) model(name string) *modelState {
	if v, ok := s.models.Load(name); ok {
		return v.(*modelState)
	}
	v, _ := s.models.LoadOrStore(name, new(modelState))
	return v.(*modelState)
}

func (s *stats) snapshot(maxConcurrency, capacity int, capacityMode string) Stats {
	out := Stats{
		Capacity:        capacity,
		StartedAt:       s.startedAt,
		ResetAt:         *s.resetAt.Load(),
		TotalCalls:      s.total.Load(),
		InFlight:        s.inflight.cur.Load(),
		PeakConcurrency: s.inflight.peak.Load(),
		MaxConcurrency:  maxConcurrency,
		Violations:      s.violations.Load(),
		Serving:         s.serving.cur.Load(),
		PeakServing:     s.serving.peak.Load(),
		OverCapacity:    s.over.Load(),
		UniqueBodies:    s.bodies.unique.Load(),
		Duplicates:      s.bodies.duplicates.Load(),
		DuplicateCalls:  s.bodies.duplicateCalls.Load(),
		Resets:          s.resets.Load(),
		Hangs:           s.hangs.Load(),
		Canceled:        s.canceled.Load(),
		StatusCounts:    s.status.snapshot(),
		Endpoints:       make(map[string]int64),
		Models:          make(map[string]ModelStats),
	}
	if capacity > 0 {
		out.CapacityMode = capacityMode
	}
	for i := range s.endpoints {
		if v := s.endpoints[i].Load(); v != 0 {
			out.Endpoints[endpointPaths[i]] = v
		}
	}
	s.models.Range(func(k, v any) bool {
		m := v.(*modelState)
		ms := ModelStats{
			Calls:           m.calls.Load(),
			InFlight:        m.inflight.cur.Load(),
			PeakConcurrency: m.inflight.peak.Load(),
			StatusCounts:    m.status.snapshot(),
		}
		if p := m.auth.Load(); p != nil {
			ms.LastAuthorization = *p
		}
		if ms.Calls != 0 || ms.InFlight != 0 {
			out.Models[k.(string)] = ms
		}
		return true
	})
	return out
}

// reset zeroes the counters. In-flight gauges keep their current value
// (requests still running will decrement them) and peaks restart from it.
func (s *stats) reset() {
	now := time.Now().UTC()
	s.resetAt.Store(&now)
	s.total.Store(0)
	s.inflight.resetPeak()
	s.violations.Store(0)
	s.serving.resetPeak()
	s.over.Store(0)
	s.resets.Store(0)
	s.hangs.Store(0)
	s.canceled.Store(0)
	s.status.reset()
	for i := range s.endpoints {
		s.endpoints[i].Store(0)
	}
	s.models.Range(func(_, v any) bool {
		m := v.(*modelState)
		m.calls.Store(0)
		m.inflight.resetPeak()
		m.status.reset()
		m.auth.Store(nil)
		return true
	})
	s.bodies.reset()
}
