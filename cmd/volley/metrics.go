package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/config"
	"github.com/volleyhq/volley/internal/metrics"
)

// metricsPath is where the Prometheus metrics are served.
const metricsPath = "/metrics"

// withMetrics serves the metrics at /metrics beside the API, without an API key.
func withMetrics(api, m http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == metricsPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			m.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// serveMetrics serves the metrics on an address of their own when VOLLEY_METRICS_ADDR names one; it
// returns nil when they are served beside the API or not at all.
func serveMetrics(cfg config.Config, m *metrics.Metrics, logger *slog.Logger) (*http.Server, error) {
	if cfg.Metrics.Addr == "" || cfg.Metrics.Addr == config.MetricsOff {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.Metrics.Addr)
	if err != nil {
		return nil, fmt.Errorf("VOLLEY_METRICS_ADDR: listen on %s: %w", cfg.Metrics.Addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(metricsPath, m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server", "error", err.Error())
		}
	}()
	logger.Info("serving metrics", "addr", ln.Addr().String(), "path", metricsPath)
	return srv, nil
}

// queueLoader reads the queue figures of the metrics from the database.
func queueLoader(pool *pgxpool.Pool) metrics.QueueLoader {
	q := dbsqlc.New(pool)
	return func(ctx context.Context) ([]metrics.QueueModel, error) {
		rows, err := q.MetricsQueue(ctx)
		if err != nil {
			return nil, fmt.Errorf("read queue: %w", err)
		}
		out := make([]metrics.QueueModel, len(rows))
		for i, r := range rows {
			out[i] = metrics.QueueModel{Model: r.Model, Pending: r.Pending, Overdue: r.Overdue,
				Within1h: r.Within1h, Within24h: r.Within24h, Running: r.Running}
			if r.OldestPendingUnix > 0 {
				out[i].OldestPendingAt = time.UnixMicro(int64(r.OldestPendingUnix * 1e6))
			}
		}
		return out, nil
	}
}
