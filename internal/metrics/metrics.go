// Package metrics holds Volley's Prometheus metrics: what the API serves, what the dispatcher claims
// and sends, the queue as the database holds it, and the connection pool. Every label set is bounded:
// there is never an owner, batch or custom_id label, and model labels are capped (see Models).
//
// A nil *Metrics is valid and records nothing, so components built without metrics (tests, tools)
// need no special case.
package metrics

import (
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "volley"

// Metrics is one replica's set of metrics, registered on its own registry.
type Metrics struct {
	registry *prometheus.Registry
	models   *Models

	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	uploadsActive prometheus.Gauge
	uploadBytes   prometheus.Counter

	claims         prometheus.Counter
	claimDuration  prometheus.Histogram
	claimSize      prometheus.Histogram
	upstreamCalls  *prometheus.CounterVec
	upstreamTime   *prometheus.HistogramVec
	retries        *prometheus.CounterVec
	finished       *prometheus.CounterVec
	inFlight       *prometheus.GaugeVec
	modelLimit     *prometheus.GaugeVec
	effectiveLimit *prometheus.GaugeVec
	batchesCreated prometheus.Counter
	batchesEnded   *prometheus.CounterVec
	webhookTries   *prometheus.CounterVec
}

// New returns the metrics of one replica, with the Go runtime, process and build-info collectors.
func New() *Metrics {
	m := &Metrics{registry: prometheus.NewRegistry(), models: NewModels(DefaultMaxModels)}
	latency := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "http_requests_total",
		Help: "API requests answered, by route pattern and status code.",
	}, []string{"route", "code"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "http_request_duration_seconds",
		Help: "Time from a request's arrival to the end of its answer, by route pattern.", Buckets: latency,
	}, []string{"route"})
	m.uploadsActive = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "uploads_in_progress",
		Help: "File uploads being received by this replica, waiting for a turn or ingesting.",
	})
	m.uploadBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "upload_bytes_total",
		Help: "Bytes of file content stored by uploads on this replica.",
	})
	m.claims = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "dispatch_claims_total",
		Help: "Claims made by this replica's dispatcher (each takes up to a claim's worth of requests).",
	})
	m.claimDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "dispatch_claim_duration_seconds",
		Help:    "Time one claim took, its transaction included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	m.claimSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "dispatch_claim_requests",
		Help:    "Requests taken by one claim.",
		Buckets: []float64{0, 1, 5, 10, 50, 100, 250, 500, 1000, 2000},
	})
	m.upstreamCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "upstream_calls_total",
		Help: "Calls made to upstreams, by model, upstream and status class (2xx, 4xx, 5xx, error).",
	}, []string{"model", "upstream", "class"})
	m.upstreamTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "upstream_call_duration_seconds",
		Help: "Time an upstream call took until its whole answer was read, by model.", Buckets: latency,
	}, []string{"model"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "dispatch_retries_total",
		Help: "Requests put back in the queue to be tried again, by reason (status code class or error code).",
	}, []string{"reason"})
	m.finished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "requests_finished_total",
		Help: "Requests this replica brought to an end, by model and outcome (completed, failed, cancelled, expired).",
	}, []string{"model", "outcome"})
	m.inFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "dispatch_in_flight",
		Help: "Upstream calls in flight on this replica, by model.",
	}, []string{"model"})
	m.modelLimit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "model_concurrency_limit",
		Help: "The concurrency limit of a model across all replicas.",
	}, []string{"model"})
	m.effectiveLimit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "model_effective_limit",
		Help: "The effective concurrency limit of a model whose limit adapts to its upstream, as this replica last read or set it.",
	}, []string{"model"})
	m.batchesCreated = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "batches_created_total",
		Help: "Batches created through this replica.",
	})
	m.batchesEnded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "batches_ended_total",
		Help: "Batches this replica brought to their final status, by status.",
	}, []string{"status"})
	m.webhookTries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "webhook_attempts_total",
		Help: "Webhook delivery attempts this replica made, by outcome: delivered, retry (failed, to be tried again), failed (given up), lost (the outcome could not be recorded).",
	}, []string{"outcome"})

	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
		m.httpRequests, m.httpDuration, m.uploadsActive, m.uploadBytes,
		m.claims, m.claimDuration, m.claimSize, m.upstreamCalls, m.upstreamTime, m.retries, m.finished,
		m.inFlight, m.modelLimit, m.effectiveLimit, m.batchesCreated, m.batchesEnded, m.webhookTries,
	)
	return m
}

// buildInfo is volley_build_info{version, revision, goversion} = 1.
func buildInfo() prometheus.Collector {
	version, revision, goVersion := "(devel)", "unknown", "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		goVersion = info.GoVersion
		if info.Main.Version != "" {
			version = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; its labels say which build of Volley is running.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	}, func() float64 { return 1 })
}

// Register adds collectors of other parts (the queue, the pool) to this replica's registry.
func (m *Metrics) Register(cs ...prometheus.Collector) {
	if m == nil {
		return
	}
	m.registry.MustRegister(cs...)
}

// Handler serves the registry in the Prometheus text format (or OpenMetrics when asked for).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Gatherer is the registry, for tests and tools that read the metrics in process.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.registry }

// Model is the label a model name is recorded under.
func (m *Metrics) Model(name string) string { return m.models.Label(name) }

// HTTPRequest records one answered API request.
func (m *Metrics) HTTPRequest(route string, code int, took time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	m.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(took.Seconds())
}

// UploadStarted counts an upload in progress until the returned function is called.
func (m *Metrics) UploadStarted() (done func()) {
	if m == nil {
		return func() {}
	}
	m.uploadsActive.Inc()
	return m.uploadsActive.Dec
}

// UploadBytes counts stored upload bytes.
func (m *Metrics) UploadBytes(n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.uploadBytes.Add(float64(n))
}

// Claim records one claim that took n requests.
func (m *Metrics) Claim(n int, took time.Duration) {
	if m == nil {
		return
	}
	m.claims.Inc()
	m.claimDuration.Observe(took.Seconds())
	m.claimSize.Observe(float64(n))
}

// UpstreamCall records one call to an upstream: status 0 means no answer came.
func (m *Metrics) UpstreamCall(model, upstream string, status int, took time.Duration) {
	if m == nil {
		return
	}
	label := m.Model(model)
	m.upstreamCalls.WithLabelValues(label, upstream, StatusClass(status)).Inc()
	m.upstreamTime.WithLabelValues(label).Observe(took.Seconds())
}

// StatusClass is "2xx" … "5xx" for an HTTP status, "error" when there was none.
func StatusClass(status int) string {
	if status < 100 || status > 599 {
		return "error"
	}
	return strconv.Itoa(status/100) + "xx"
}

// Retry records a request put back in the queue, and why.
func (m *Metrics) Retry(reason string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(reason).Inc()
}

// Finished records a request brought to an end.
func (m *Metrics) Finished(model, outcome string) {
	if m == nil {
		return
	}
	m.finished.WithLabelValues(m.Model(model), outcome).Inc()
}

// InFlight moves the in-flight gauge of a model by delta.
func (m *Metrics) InFlight(model string, delta int) {
	if m == nil {
		return
	}
	m.inFlight.WithLabelValues(m.Model(model)).Add(float64(delta))
}

// ModelLimit records a model's concurrency limit.
func (m *Metrics) ModelLimit(model string, limit int) {
	if m == nil {
		return
	}
	m.modelLimit.WithLabelValues(m.Model(model)).Set(float64(limit))
}

// EffectiveLimit sets the effective limit of a model whose limit adapts.
func (m *Metrics) EffectiveLimit(model string, limit int) {
	if m == nil {
		return
	}
	m.effectiveLimit.WithLabelValues(m.Model(model)).Set(float64(limit))
}

// BatchCreated counts a created batch.
func (m *Metrics) BatchCreated() {
	if m == nil {
		return
	}
	m.batchesCreated.Inc()
}

// BatchEnded counts a batch brought to its final status.
func (m *Metrics) BatchEnded(status string) {
	if m == nil {
		return
	}
	m.batchesEnded.WithLabelValues(status).Inc()
}

// WebhookAttempt counts one webhook delivery attempt by its outcome.
func (m *Metrics) WebhookAttempt(outcome string) {
	if m == nil {
		return
	}
	m.webhookTries.WithLabelValues(outcome).Inc()
}
