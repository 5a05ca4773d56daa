package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueModel is the queue of one model as the database holds it, for every replica together.
type QueueModel struct {
	Model string
	// Pending by time to deadline; Pending is their sum.
	Pending, Overdue, Within1h, Within24h int64
	Running                               int64
	// OldestPendingAt is when the oldest pending request's batch or response was created; zero when
	// nothing is pending.
	OldestPendingAt time.Time
}

// QueueLoader reads the queue from the database.
type QueueLoader func(ctx context.Context) ([]QueueModel, error)

// Queue is a collector of the queue's depth. It reads the database at most once per interval,
// however many scrapers there are and however often they scrape: a scrape within the interval is
// answered from the last reading, and concurrent scrapes share one reading.
type Queue struct {
	load     QueueLoader
	interval time.Duration
	timeout  time.Duration
	logger   *slog.Logger
	models   *Models
	now      func() time.Time

	// waitBound is the longest a scrape waits for a reading under way.
	waitBound time.Duration

	mu      sync.Mutex
	reading chan struct{} // closed when the reading under way ends; nil when none is
	readAt  time.Time     // of the last good reading
	triedAt time.Time     // of the last attempt
	last    []QueueModel
	// seen holds every model label reported so far: a model whose queue is empty reports 0 rather
	// than vanishing, so that a drained queue reads as 0 and not as no data.
	seenMu sync.Mutex
	seen   map[string]bool

	pending, window, running, oldest, age, errors *prometheus.Desc
	readErrors                                    prometheus.Counter
}

// NewQueue returns a queue collector that reads through load at most once per interval.
func NewQueue(load QueueLoader, interval time.Duration, m *Metrics, logger *slog.Logger) *Queue {
	q := &Queue{load: load, interval: interval, timeout: 5 * time.Second, waitBound: 100 * time.Millisecond, logger: logger, now: time.Now}
	if m != nil {
		q.models = m.models
	}
	q.pending = prometheus.NewDesc(namespace+"_queue_pending", "Requests waiting to be sent, by model (all replicas).", []string{"model"}, nil)
	q.window = prometheus.NewDesc(namespace+"_queue_pending_by_deadline",
		"Requests waiting to be sent, by model and time to their deadline (overdue, within_1h, within_24h, later).",
		[]string{"model", "window"}, nil)
	q.running = prometheus.NewDesc(namespace+"_queue_running", "Requests being sent upstream, by model (all replicas).", []string{"model"}, nil)
	q.oldest = prometheus.NewDesc(namespace+"_queue_oldest_pending_age_seconds",
		"Age of the oldest pending request of a model, from its batch's or response's creation.", []string{"model"}, nil)
	q.age = prometheus.NewDesc(namespace+"_queue_snapshot_age_seconds",
		"How old the queue reading these figures come from is.", nil, nil)
	q.readErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "queue_read_errors_total",
		Help: "Readings of the queue that failed (the last good reading is kept).",
	})
	return q
}

// Describe implements prometheus.Collector.
func (q *Queue) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.pending
	ch <- q.window
	ch <- q.running
	ch <- q.oldest
	ch <- q.age
	q.readErrors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (q *Queue) Collect(ch chan<- prometheus.Metric) {
	rows, readAt := q.snapshot()
	now := q.now()
	// Models beyond the label cap are summed under one label.
	type sums struct{ QueueModel }
	merged := make(map[string]*sums)
	var order []string
	for _, r := range rows {
		label := q.models.Label(r.Model)
		s := merged[label]
		if s == nil {
			s = &sums{}
			merged[label] = s
			order = append(order, label)
		}
		s.Pending += r.Pending
		s.Overdue += r.Overdue
		s.Within1h += r.Within1h
		s.Within24h += r.Within24h
		s.Running += r.Running
		if !r.OldestPendingAt.IsZero() && (s.OldestPendingAt.IsZero() || r.OldestPendingAt.Before(s.OldestPendingAt)) {
			s.OldestPendingAt = r.OldestPendingAt
		}
	}
	q.seenMu.Lock()
	if q.seen == nil {
		q.seen = make(map[string]bool)
	}
	for _, label := range order {
		q.seen[label] = true
	}
	for label := range q.seen {
		if merged[label] == nil {
			merged[label] = &sums{}
			order = append(order, label)
		}
	}
	q.seenMu.Unlock()
	for _, label := range order {
		s := merged[label]
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{label}, labels...)...)
		}
		gauge(q.pending, float64(s.Pending))
		gauge(q.running, float64(s.Running))
		later := s.Pending - s.Overdue - s.Within1h - s.Within24h
		gauge(q.window, float64(s.Overdue), "overdue")
		gauge(q.window, float64(s.Within1h), "within_1h")
		gauge(q.window, float64(s.Within24h), "within_24h")
		gauge(q.window, float64(later), "later")
		age := 0.0
		if !s.OldestPendingAt.IsZero() {
			age = max(now.Sub(s.OldestPendingAt).Seconds(), 0)
		}
		gauge(q.oldest, age)
	}
	if !readAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(q.age, prometheus.GaugeValue, now.Sub(readAt).Seconds())
	}
	q.readErrors.Collect(ch)
}

// snapshot returns the last reading, reading the database first when it is older than the interval.
// A scrape waits for that reading at most waitBound (or, before the first reading, the read's own
// timeout): a slow database makes the figures older, which volley_queue_snapshot_age_seconds shows,
// never the scrape slow or failed. The reading goes on in the background and serves the next one.
func (q *Queue) snapshot() ([]QueueModel, time.Time) {
	q.mu.Lock()
	if q.reading == nil && (q.triedAt.IsZero() || q.now().Sub(q.triedAt) >= q.interval) {
		q.triedAt = q.now()
		done := make(chan struct{})
		q.reading = done
		go q.read(done)
	}
	reading, first := q.reading, q.readAt.IsZero()
	q.mu.Unlock()
	if reading != nil {
		wait := q.waitBound
		if first {
			wait = q.timeout
		}
		t := time.NewTimer(wait)
		select {
		case <-reading:
		case <-t.C:
		}
		t.Stop()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.last, q.readAt
}

// read reads the queue once and closes done.
func (q *Queue) read(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
	defer cancel()
	rows, err := q.load(ctx)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.reading = nil
	defer close(done)
	if err != nil {
		q.readErrors.Inc()
		if q.logger != nil {
			q.logger.Warn("read the queue for metrics", "error", err.Error())
		}
		// The next attempt waits for the next interval, not the next scrape of a struggling database.
		return
	}
	q.last, q.readAt = rows, q.now()
}
