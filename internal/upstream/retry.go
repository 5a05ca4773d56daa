package upstream

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter bounds how long a server's Retry-After hint can hold a request back.
const MaxRetryAfter = time.Hour

// Backoff returns how long to wait before the attempt after attempt (1 for the first) failed:
// a delay drawn uniformly from [0, min(MaxDelay, BaseDelay·2^(attempt-1))) ("full jitter"), but
// never less than retryAfter, the server's hint, which is honoured in full up to MaxRetryAfter.
// rnd returns numbers in [0, 1); nil uses math/rand/v2's Float64, which is safe for concurrent
// use.
func (p RetryPolicy) Backoff(attempt int, retryAfter time.Duration, rnd func() float64) time.Duration {
	ceiling := max(p.BaseDelay, 0)
	for i := 1; i < attempt && ceiling < p.MaxDelay; i++ {
		ceiling *= 2 // cannot overflow: ceiling < MaxDelay before doubling
	}
	ceiling = max(min(ceiling, p.MaxDelay), 0)
	if rnd == nil {
		rnd = rand.Float64
	}
	d := time.Duration(rnd() * float64(ceiling))
	return max(d, min(retryAfter, MaxRetryAfter))
}

// parseRetryAfter reads the server's hint: retry-after-ms (milliseconds, possibly fractional, as
// OpenAI sends) first, then Retry-After (seconds or an HTTP date). It returns 0 when there is no
// usable hint, and at most MaxRetryAfter.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v, ok := h["Retry-After-Ms"]; ok && len(v) > 0 {
		if d, ok := parseAmount(v[0], float64(time.Millisecond)); ok {
			return d
		}
	}
	v, ok := h["Retry-After"]
	if !ok || len(v) == 0 {
		return 0
	}
	if d, ok := parseAmount(v[0], float64(time.Second)); ok {
		return d
	}
	if t, err := http.ParseTime(strings.TrimSpace(v[0])); err == nil {
		return min(max(t.Sub(now), 0), MaxRetryAfter)
	}
	return 0
}

// parseAmount parses a non-negative number of units, clamped to [0, MaxRetryAfter].
func parseAmount(s string, unit float64) (time.Duration, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	ns := f * unit
	switch {
	case ns <= 0:
		return 0, true
	case ns >= float64(MaxRetryAfter):
		return MaxRetryAfter, true
	}
	return time.Duration(ns), true
}
