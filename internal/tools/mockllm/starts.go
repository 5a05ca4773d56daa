package mockllm

import (
	"sync"
	"sync/atomic"
	"time"
)

// MaxRecordedStarts bounds the starts kept by Config.RecordStarts, over every model; later starts
// are counted as dropped.
const MaxRecordedStarts = 4 << 20

// Start is one call's start as a model's in-flight count saw it: when (Unix nanoseconds) and how
// many calls of the model were in flight with it, itself included.
type Start struct {
	At       int64 `json:"at"`
	InFlight int64 `json:"in_flight"`
}

// Starts is GET /stats/starts: every recorded start per model, in the order of their counting.
type Starts struct {
	Models  map[string][]Start `json:"models"`
	Dropped int64              `json:"dropped"`
}

// startLog keeps the starts of every model, when recording is on.
type startLog struct {
	mu      sync.Mutex
	models  map[string][]Start
	n       int
	dropped atomic.Int64
}

// record notes a start of model with inflight calls of it in flight. The count and the time are
// taken under one lock, so that starts are in the order of their counts.
func (l *startLog) record(model string, g *gauge) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := g.inc()
	if l.n >= MaxRecordedStarts {
		l.dropped.Add(1)
		return
	}
	if l.models == nil {
		l.models = make(map[string][]Start)
	}
	l.models[model] = append(l.models[model], Start{At: time.Now().UnixNano(), InFlight: cur})
	l.n++
}

func (l *startLog) snapshot() Starts {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := Starts{Models: make(map[string][]Start, len(l.models)), Dropped: l.dropped.Load()}
	for m, s := range l.models {
		out.Models[m] = append([]Start(nil), s...)
	}
	return out
}

func (l *startLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.models, l.n = nil, 0
	l.dropped.Store(0)
}
