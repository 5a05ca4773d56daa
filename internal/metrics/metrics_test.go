package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestQueueReadsTheDatabaseAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	var reads atomic.Int32
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	load := func(context.Context) ([]QueueModel, error) {
		reads.Add(1)
		return []QueueModel{{Model: "m", Pending: 10, Overdue: 1, Within1h: 2, Within24h: 3, Running: 4, OldestPendingAt: created}}, nil
	}
	m := New()
	q := NewQueue(load, 5*time.Second, m, nil)
	now := created.Add(time.Minute)
	var mu sync.Mutex
	q.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m.Register(q)

	// Many scrapers at once, many times: one reading.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				_, err := m.Gatherer().Gather()
				require.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int32(1), reads.Load())

	expected := `
# HELP volley_queue_pending Requests waiting to be sent, by model (all replicas).
# TYPE volley_queue_pending gauge
volley_queue_pending{model="m"} 10
# HELP volley_queue_pending_by_deadline Requests waiting to be sent, by model and time to their deadline (overdue, within_1h, within_24h, later).
# TYPE volley_queue_pending_by_deadline gauge
volley_queue_pending_by_deadline{model="m",window="later"} 4
volley_queue_pending_by_deadline{model="m",window="overdue"} 1
volley_queue_pending_by_deadline{model="m",window="within_1h"} 2
volley_queue_pending_by_deadline{model="m",window="within_24h"} 3
# HELP volley_queue_running Requests being sent upstream, by model (all replicas).
# TYPE volley_queue_running gauge
volley_queue_running{model="m"} 4
# HELP volley_queue_oldest_pending_age_seconds Age of the oldest pending request of a model, from its batch's or response's creation.
# TYPE volley_queue_oldest_pending_age_seconds gauge
volley_queue_oldest_pending_age_seconds{model="m"} 60
`
	require.NoError(t, testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(expected),
		"volley_queue_pending", "volley_queue_pending_by_deadline", "volley_queue_running", "volley_queue_oldest_pending_age_seconds"))

	mu.Lock()
	now = now.Add(5 * time.Second)
	mu.Unlock()
	_, err := m.Gatherer().Gather()
	require.NoError(t, err)
	require.Equal(t, int32(2), reads.Load(), "a scrape after the interval reads again")
}

func TestQueueReportsADrainedModelAsZero(t *testing.T) {
	t.Parallel()
	var rows atomic.Value
	rows.Store([]QueueModel{{Model: "m", Pending: 3, Running: 1}})
	load := func(context.Context) ([]QueueModel, error) { return rows.Load().([]QueueModel), nil }
	m := New()
	q := NewQueue(load, time.Second, m, nil)
	now := time.Unix(1000, 0)
	q.now = func() time.Time { return now }
	m.Register(q)
	require.Equal(t, 3.0, gaugeValue(t, m, "volley_queue_pending"))
	rows.Store([]QueueModel{})
	now = now.Add(time.Second)
	require.Equal(t, 0.0, gaugeValue(t, m, "volley_queue_pending"))
	require.Equal(t, 0.0, gaugeValue(t, m, "volley_queue_running"))
	require.Equal(t, 0.0, gaugeValue(t, m, "volley_queue_oldest_pending_age_seconds"))
}

func TestQueueKeepsTheLastReadingWhenTheDatabaseFails(t *testing.T) {
	t.Parallel()
	fail := atomic.Bool{}
	var reads atomic.Int32
	load := func(context.Context) ([]QueueModel, error) {
		reads.Add(1)
		if fail.Load() {
			return nil, errors.New("database gone")
		}
		return []QueueModel{{Model: "m", Pending: 7}}, nil
	}
	m := New()
	q := NewQueue(load, time.Second, m, nil)
	now := time.Unix(1000, 0)
	q.now = func() time.Time { return now }
	m.Register(q)
	_, err := m.Gatherer().Gather()
	require.NoError(t, err)

	fail.Store(true)
	now = now.Add(2 * time.Second)
	require.Equal(t, 7.0, gaugeValue(t, m, "volley_queue_pending"))
	require.Equal(t, 1.0, testutil.ToFloat64(q.readErrors))
	// The figures say how old they are.
	require.Equal(t, 2.0, gaugeValue(t, m, "volley_queue_snapshot_age_seconds"))
	require.Equal(t, int32(2), reads.Load(), "the failed reading is not retried before the next interval")
}

func gaugeValue(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	families, err := m.Gatherer().Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			require.Len(t, f.GetMetric(), 1)
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestModelLabelsAreCapped(t *testing.T) {
	t.Parallel()
	models := NewModels(3)
	models.Declare("configured")
	require.Equal(t, "a", models.Label("a"))
	require.Equal(t, "b", models.Label("b"))
	require.Equal(t, OtherModel, models.Label("c"), "past the cap")
	require.Equal(t, "a", models.Label("a"), "a name seen before keeps its label")
	require.Equal(t, "configured", models.Label("configured"))
}

func TestQueueSumsModelsPastTheCap(t *testing.T) {
	t.Parallel()
	m := New()
	m.models = NewModels(1)
	m.DeclareModels("known")
	load := func(context.Context) ([]QueueModel, error) {
		return []QueueModel{{Model: "known", Pending: 1}, {Model: "x", Pending: 2}, {Model: "y", Pending: 3}}, nil
	}
	m.Register(NewQueue(load, time.Minute, m, nil))
	expected := `
# HELP volley_queue_pending Requests waiting to be sent, by model (all replicas).
# TYPE volley_queue_pending gauge
volley_queue_pending{model="_other"} 5
volley_queue_pending{model="known"} 1
`
	require.NoError(t, testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(expected), "volley_queue_pending"))
}

func TestStatusClass(t *testing.T) {
	t.Parallel()
	for status, class := range map[int]string{0: "error", 200: "2xx", 201: "2xx", 429: "4xx", 503: "5xx", 99: "error", 600: "error"} {
		require.Equal(t, class, StatusClass(status), status)
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.HTTPRequest("/v1/files", 200, time.Millisecond)
	m.UploadStarted()()
	m.UploadBytes(10)
	m.Claim(3, time.Millisecond)
	m.UpstreamCall("m", "u", 200, time.Millisecond)
	m.Retry("5xx")
	m.Finished("m", "completed")
	m.InFlight("m", 1)
	m.ModelLimit("m", 4)
	m.BatchCreated()
	m.BatchEnded("completed")
	m.WebhookAttempt("delivered")
	m.Register()
	m.DeclareModels("m")
}

func TestHandlerServesTheTextFormat(t *testing.T) {
	t.Parallel()
	m := New()
	m.HTTPRequest("/v1/batches/{batch_id}", 200, 3*time.Millisecond)
	m.HTTPRequest("", 404, time.Millisecond)
	m.UpstreamCall("m", "local", 0, time.Second)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	require.Contains(t, rec.Header().Get("Content-Type"), "text/plain")
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	require.Contains(t, text, `volley_http_requests_total{code="200",route="/v1/batches/{batch_id}"} 1`)
	require.Contains(t, text, `volley_http_requests_total{code="404",route="unmatched"} 1`)
	require.Contains(t, text, `volley_upstream_calls_total{class="error",model="m",upstream="local"} 1`)
	require.Contains(t, text, `volley_build_info{`)
	require.Contains(t, text, `go_goroutines `)
	require.Contains(t, text, `process_resident_memory_bytes `)
}

// A database that is slow to answer makes the figures older, never the scrape slow: a scrape while
// a reading is under way answers from the last reading, and the reading serves a later scrape.
func TestQueueScrapeDoesNotWaitForASlowDatabase(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var reads atomic.Int32
	load := func(ctx context.Context) ([]QueueModel, error) {
		if reads.Add(1) == 1 {
			return []QueueModel{{Model: "m", Pending: 7}}, nil
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return []QueueModel{{Model: "m", Pending: 3}}, nil
	}
	m := New()
	q := NewQueue(load, time.Second, m, nil)
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	q.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m.Register(q)
	require.Equal(t, 7.0, gaugeValue(t, m, "volley_queue_pending"))

	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	scraped := make(chan float64, 1)
	go func() { scraped <- gaugeValue(t, m, "volley_queue_pending") }()
	select {
	case v := <-scraped:
		require.Equal(t, 7.0, v, "answered from the last reading while the database is slow")
	case <-time.After(30 * time.Second):
		t.Fatal("the scrape waited for the database")
	}
	require.Equal(t, int32(2), reads.Load(), "one reading under way")
	close(release)
	require.Eventually(t, func() bool { return gaugeValue(t, m, "volley_queue_pending") == 3 },
		10*time.Second, 10*time.Millisecond, "the reading serves a later scrape")
	require.Equal(t, int32(2), reads.Load(), "scrapes within the interval share that reading")
}
