package upstream

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffFullJitter(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MaxAttempts: 8, BaseDelay: time.Second, MaxDelay: 30 * time.Second}
	ceilings := map[int]time.Duration{
		0:    time.Second, // treated as the first attempt
		1:    time.Second,
		2:    2 * time.Second,
		3:    4 * time.Second,
		5:    16 * time.Second,
		6:    30 * time.Second,
		7:    30 * time.Second,
		1000: 30 * time.Second, // no overflow
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for attempt, ceiling := range ceilings {
		require.Zero(t, p.Backoff(attempt, 0, func() float64 { return 0 }), "attempt %d", attempt)
		top := p.Backoff(attempt, 0, func() float64 { return 0.999999 })
		require.Less(t, top, ceiling, "attempt %d", attempt)
		require.Greater(t, top, ceiling*99/100, "attempt %d", attempt)

		var sum time.Duration
		const n = 2000
		for range n {
			d := p.Backoff(attempt, 0, rnd.Float64)
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.Less(t, d, ceiling)
			sum += d
		}
		// Uniform over [0, ceiling): the mean is near ceiling/2.
		mean := sum / n
		require.InDelta(t, float64(ceiling/2), float64(mean), float64(ceiling)/10, "attempt %d", attempt)
	}

	// The default source works too.
	d := p.Backoff(3, 0, nil)
	require.GreaterOrEqual(t, d, time.Duration(0))
	require.Less(t, d, 4*time.Second)
}

func TestBackoffGrows(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Minute}
	half := func() float64 { return 0.5 }
	prev := time.Duration(0)
	for attempt := 1; attempt <= 12; attempt++ {
		d := p.Backoff(attempt, 0, half)
		require.Greater(t, d, prev, "attempt %d", attempt)
		prev = d
	}
	require.Equal(t, 150*time.Second, p.Backoff(30, 0, half))
}

func TestBackoffHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{BaseDelay: time.Second, MaxDelay: 10 * time.Second}
	low := func() float64 { return 0.1 }
	require.Equal(t, 7*time.Second, p.Backoff(1, 7*time.Second, low))
	// Beyond MaxDelay too: the server knows best ...
	require.Equal(t, 2*time.Minute, p.Backoff(1, 2*time.Minute, low))
	// ... up to an hour.
	require.Equal(t, MaxRetryAfter, p.Backoff(1, 48*time.Hour, low))
	// A shorter hint than the jittered delay does not shorten it.
	require.Equal(t, 5*time.Second, p.Backoff(6, time.Second, func() float64 { return 0.5 }))
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"none", http.Header{}, 0},
		{"seconds", http.Header{"Retry-After": {"3"}}, 3 * time.Second},
		{"fractional seconds", http.Header{"Retry-After": {"1.5"}}, 1500 * time.Millisecond},
		{"date", http.Header{"Retry-After": {now.Add(20 * time.Second).Format(http.TimeFormat)}}, 20 * time.Second},
		{"date in the past", http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{"milliseconds", http.Header{"Retry-After-Ms": {"250"}}, 250 * time.Millisecond},
		{"fractional milliseconds", http.Header{"Retry-After-Ms": {"12.5"}}, 12500 * time.Microsecond},
		{"milliseconds win", http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"1"}}, 250 * time.Millisecond},
		{"bad milliseconds fall back", http.Header{"Retry-After-Ms": {"soon"}, "Retry-After": {"2"}}, 2 * time.Second},
		{"negative", http.Header{"Retry-After": {"-5"}}, 0},
		{"garbage", http.Header{"Retry-After": {"later"}}, 0},
		{"not a number", http.Header{"Retry-After": {"NaN"}}, 0},
		{"huge", http.Header{"Retry-After": {"99999999999999999999"}}, MaxRetryAfter},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, parseRetryAfter(tc.header, now), tc.name)
	}
}
