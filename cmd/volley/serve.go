package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/volleyhq/volley/daemon"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/handlers"
	"github.com/volleyhq/volley/internal/apikey"
	"github.com/volleyhq/volley/internal/config"
	"github.com/volleyhq/volley/internal/metrics"
	"github.com/volleyhq/volley/internal/ui"
	"github.com/volleyhq/volley/internal/upstream"
	"github.com/volleyhq/volley/internal/webhook"
)

// memoryHeadroom is what a replica holds beside its dispatcher's byte budget: the API's buffers,
// the pools' connections, the runtime.
const memoryHeadroom = 96 << 20

// memoryLimit is the Go runtime's soft memory limit for a dispatching replica: its byte budget
// plus a fixed headroom, so that the collector runs before garbage doubles the heap rather than
// after. GOMEMLIMIT, when set, is the operator's own choice and wins.
func memoryLimit(cfg config.Config, getenv func(string) string) (int64, bool) {
	if !cfg.Dispatch.Enabled || cfg.Dispatch.MaxInFlightBytes <= 0 || getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	return cfg.Dispatch.MaxInFlightBytes + memoryHeadroom, true
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dev := fs.Bool("dev", false, "print a ready-to-use API key for local use (kept in $VOLLEY_DATA_DIR/dev-key)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	if limit, ok := memoryLimit(cfg, os.Getenv); ok {
		debug.SetMemoryLimit(limit)
		logger.Debug("memory limit", "bytes", limit)
	}
	upstreams, err := upstream.Load(os.Getenv)
	if err != nil {
		return err
	}

	d, err := openDatabase(ctx, cfg, logger, cfg.DBMaxConns)
	if err != nil {
		return err
	}
	defer d.close(ctx)

	router := upstream.NewRouter(upstreams)
	m := metrics.New()
	models, _, _, _ := router.Limits()
	m.DeclareModels(models...)
	m.Register(metrics.NewPool(d.pool), metrics.NewQueue(queueLoader(d.pool), cfg.Metrics.QueueInterval, m, logger))
	srv := handlers.New(d.pool, cfg, router, upstream.NewClient(upstreams, logger), logger)
	srv.UseMetrics(m)
	defer srv.Close()
	srv.MarkReady()

	var dispatcher *daemon.Daemon
	var deliverer *webhook.Worker
	if cfg.Dispatch.Enabled {
		dc := daemon.DefaultConfig()
		dc.MaxInFlight = cfg.Dispatch.MaxInFlight
		dc.MaxInFlightBytes = cfg.Dispatch.MaxInFlightBytes
		dc.LeaseTimeout = cfg.Dispatch.LeaseTimeout
		dc.HeartbeatInterval = max(cfg.Dispatch.LeaseTimeout/6, 100*time.Millisecond)
		dc.PollInterval = cfg.Dispatch.PollInterval
		dc.TrickleInterval = cfg.Dispatch.TrickleInterval
		dc.ClaimAhead = cfg.Dispatch.ClaimAhead
		dc.FlushInterval = cfg.Dispatch.FlushInterval
		dc.RampFraction = cfg.Dispatch.RampFraction
		dc.BackgroundShare = cfg.Dispatch.BackgroundShare
		dc.OutputExpiry = cfg.Files.DefaultExpiry
		dc.Metrics = m
		dispatcher = daemon.New(d.pool, dc, upstreams, logger)
		if err := dispatcher.Start(ctx); err != nil {
			return err
		}
		wc := webhookConfig(cfg)
		wc.Metrics = m
		deliverer = webhook.New(d.pool, wc, logger)
		if err := deliverer.Start(ctx); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	handler := srv.Handler()
	metricsSrv, err := serveMetrics(cfg, m, logger)
	if err != nil {
		return err
	}
	if metricsSrv != nil {
		defer metricsSrv.Close()
	} else if cfg.Metrics.Addr == "" {
		handler = withMetrics(handler, m.Handler())
	}
	handler = ui.With(handler)
	httpSrv := &http.Server{
		Handler:           handlers.CloseAmbiguous(handler),
		ReadHeaderTimeout: cfg.HeaderTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnContext:       handlers.ConnContext,
	}
	baseURL := "http://" + displayAddr(ln.Addr()) + "/v1"
	fmt.Fprintf(stdout, "Volley is serving the OpenAI API at %s\n", baseURL)
	if *dev {
		key, err := devKey(ctx, cfg, dbsqlc.New(d.pool))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\n  export OPENAI_BASE_URL=%s\n  export OPENAI_API_KEY=%s\n\n", baseURL, key)
	}
	logger.Info("serving", "addr", ln.Addr().String(), "base_url", baseURL)

	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(handlers.Listener(ln, maxHeaderBytes)) }()

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "grace", cfg.ShutdownGrace.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		var wg sync.WaitGroup
		if deliverer != nil {
			wg.Go(func() { _ = deliverer.Stop(shutdownCtx) })
		}
		if dispatcher != nil {
			_ = dispatcher.Stop(shutdownCtx)
		}
		wg.Wait()
	}()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("graceful shutdown incomplete; closing connections", "error", err.Error())
		_ = httpSrv.Close()
	}
	<-stopped
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// maxHeaderBytes bounds a request's line and headers; more is answered 431.
const maxHeaderBytes = 64 << 10

// webhookConfig is the delivery worker's share of the configuration.
func webhookConfig(cfg config.Config) webhook.Config {
	wc := webhook.DefaultConfig()
	wc.RetryFor = cfg.Webhook.RetryFor
	wc.Timeout = cfg.Webhook.Timeout
	wc.Backoff = cfg.Webhook.Backoff
	wc.Concurrency = cfg.Webhook.Concurrency
	wc.AllowPrivate = cfg.Webhook.AllowPrivate
	wc.AllowHosts = cfg.Webhook.AllowHosts
	wc.PollInterval = cfg.Dispatch.PollInterval
	return wc
}

// displayAddr turns a listener address into something a browser or SDK can use.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// devKey returns the local development key kept in the data directory, making a new one when there
// is none or it no longer works.
func devKey(ctx context.Context, cfg config.Config, q *dbsqlc.Queries) (string, error) {
	path := filepath.Join(cfg.DataDir, "dev-key")
	if b, err := os.ReadFile(path); err == nil {
		key := strings.TrimSpace(string(b))
		row, err := q.APIKeyGetByHash(ctx, apikey.Hash(key))
		if err == nil && row.RevokedAt == nil {
			return key, nil
		}
		if err = db.Translate(err); err != nil && !errors.Is(err, db.ErrNotFound) {
			return "", fmt.Errorf("check dev key: %w", err)
		}
	}
	key, err := createKey(ctx, q, "local", "dev", false)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write dev key: %w", err)
	}
	return key, nil
}
