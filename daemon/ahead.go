package daemon

import (
	"math"
	"sync"
	"time"
)

// aheadPlan decides how many requests of each model a claim takes past the model's limit. A
// request claimed ahead waits in this replica for a call of its model to return and then starts
// at once, so that a slot does not sit idle while the finished call's result is written and a
// claim replaces it. Holding more than that idle time needs only makes requests wait in the
// replica while they show as running, so the plan takes what the model's calls return during
// aheadReplacements replacements: its rate of returns times the time a replacement takes (the
// flush interval, the write and two claims, since a claim already under way when the write
// commits misses it), rounded, at most the configured cap and, in the claim, at most the limit.
// A model whose calls return less often than that gets none, and its running requests are its
// calls.
type aheadPlan struct {
	max   int           // the most ahead per model; 0 claims none
	flush time.Duration // the recorder's flush interval

	mu      sync.Mutex
	last    time.Time
	rates   map[string]float64 // returns per second, decaying over rateWindow
	pending map[string]int     // returns not yet folded into rates
	claim   time.Duration      // a claim's duration, averaged
	write   time.Duration      // a result write's duration, averaged
}

// rateWindow is how fast a model's rate follows a change: its weight halves about every 0.35 s.
const rateWindow = 500 * time.Millisecond

// aheadReplacements is how many replacements' worth of returns are held ahead. One is the
// average; claims come only after writes, so the time between two is often longer, and with one
// the requests held ahead ran out: at 20 ms and limit 256, 7,609 and 7,365 req/s with one, 8,053,
// 7,668 and 7,888 with two, and 8,069 and 7,782 holding the whole limit ahead (three runs each).
const aheadReplacements = 2

func newAheadPlan(max int, flush time.Duration) *aheadPlan {
	return &aheadPlan{max: min(max, math.MaxInt32), flush: flush, rates: make(map[string]float64), pending: make(map[string]int)}
}

// plan folds in the calls that returned since the last plan, per model, and gives the models to
// claim ahead for with how many each.
func (a *aheadPlan) plan(now time.Time, returned map[string]int) (models []string, ahead []int32) {
	models, ahead = []string{}, []int32{}
	if a.max == 0 {
		return models, ahead
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for m, n := range returned {
		a.pending[m] += n
	}
	dt := now.Sub(a.last).Seconds()
	switch {
	case a.last.IsZero() || dt > 10*rateWindow.Seconds():
		// The first plan, or one after a long quiet: the old rates say nothing of now.
		a.last = now
		clear(a.rates)
		clear(a.pending)
		return models, ahead
	case dt > 0:
		weight := 1 - math.Exp(-dt/rateWindow.Seconds())
		for m := range a.pending {
			if _, ok := a.rates[m]; !ok {
				a.rates[m] = 0
			}
		}
		for m, r := range a.rates {
			a.rates[m] = r + weight*(float64(a.pending[m])/dt-r)
		}
		a.last = now
		clear(a.pending)
	}
	// With no time passed the returns wait for the next plan, and this one uses the rates as
	// they stand.
	replacement := aheadReplacements * (a.flush + a.write + 2*a.claim).Seconds()
	for m, r := range a.rates {
		n := min(int(math.Round(r*replacement)), a.max)
		if n > 0 {
			models, ahead = append(models, m), append(ahead, int32(n))
		} else if r < 1 {
			delete(a.rates, m) // back from nothing when its calls return again
		}
	}
	return models, ahead
}

// claimed folds in how long a claim took.
func (a *aheadPlan) claimed(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.claim = average(a.claim, d)
}

// wrote folds in how long a write of results took.
func (a *aheadPlan) wrote(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.write = average(a.write, d)
}

// average moves avg a fifth of the way to d, or to d at once from nothing.
func average(avg, d time.Duration) time.Duration {
	if avg == 0 {
		return d
	}
	return avg + (d-avg)/5
}
