// Command mockllm runs a simulated OpenAI-compatible inference server: an
// upstream for Volley demos, tests and benchmarks. It answers
// /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/moderations and
// /v1/responses with deterministic content, can add latency and inject
// faults at configurable rates, behave like an upstream of limited capacity
// (-capacity), and reports what it saw on GET /stats.
//
// Every flag can also be set through an environment variable named
// MOCKLLM_ followed by the flag name in upper case with dashes replaced by
// underscores (-fail-rate: MOCKLLM_FAIL_RATE). Flags win over the
// environment.
//
// Once listening, mockllm prints exactly one line to stdout:
//
//	mockllm listening on http://HOST:PORT
//
// with the actual port when -addr asks for port 0. Logs go to stderr.
// SIGINT or SIGTERM shuts it down gracefully: hanging requests are answered
// with 503, others are allowed to finish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/volleyhq/volley/internal/tools/mockllm"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

type options struct {
	addr            string
	addrFile        string
	anyPortIfTaken  bool
	cfg             mockllm.Config
	maxHeaderBytes  int
	shutdownTimeout time.Duration
}

// envName returns the environment variable that sets flag name.
func envName(name string) string {
	return "MOCKLLM_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func parseFlags(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("mockllm", flag.ContinueOnError)
	fs.SetOutput(stderr)

	o := &options{}
	c := &o.cfg
	var (
		failRate   float64
		failStatus string
		models     string
		seed       uint64
	)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:9090", "listen address (port 0 picks a free port)")
	fs.BoolVar(&o.anyPortIfTaken, "any-port-if-taken", false, "listen on a free port of the same host when -addr's port is in use")
	fs.StringVar(&o.addrFile, "addr-file", "", "once listening, write the address (host:port) to this file")
	fs.StringVar(&c.APIKey, "api-key", "", "only accept this bearer key (default: accept any non-empty key)")
	fs.BoolVar(&c.NoAuth, "no-auth", false, "do not require an Authorization header at all")
	fs.DurationVar(&c.Latency, "latency", 0, "latency of every API request (mean for -latency-dist exp), e.g. 20ms, 2s")
	fs.DurationVar(&c.LatencyJitter, "latency-jitter", 0, "uniform jitter: latency is drawn from [latency-jitter, latency+jitter]")
	fs.StringVar(&c.LatencyDist, "latency-dist", mockllm.DistUniform, "latency distribution: uniform (latency ± jitter), fixed (ignores jitter) or exp (exponential with mean latency)")
	fs.Uint64Var(&seed, "seed", 1, "seed of the random fault and latency draws")
	fs.Float64Var(&failRate, "fail-rate", 0, "probability of answering with an error status from -fail-status (shared by entries without their own rate)")
	fs.StringVar(&failStatus, "fail-status", "500", "error statuses to inject: STATUS[:RATE][,STATUS[:RATE]...], e.g. 500 or 500:0.05,503:0.01,400:0.01")
	fs.Float64Var(&c.RateLimitRate, "rate-limit-rate", 0, "probability of answering 429")
	fs.DurationVar(&c.RetryAfter, "retry-after", time.Second, "Retry-After (seconds, rounded up) and retry-after-ms sent with random 429s; 0 omits them")
	fs.Float64Var(&c.ResetRate, "reset-rate", 0, "probability of resetting the connection without answering")
	fs.Float64Var(&c.HangRate, "hang-rate", 0, "probability of never answering (until the client goes away or -hang-max)")
	fs.DurationVar(&c.HangMax, "hang-max", mockllm.DefaultHangMax, "longest hang, answered with 504 afterwards")
	fs.IntVar(&c.MaxConcurrency, "max-concurrency", 0, "count a violation when more API requests than this are in flight (0: no limit)")
	fs.IntVar(&c.Capacity, "capacity", 0, "serve at most this many API calls at once, like a loaded upstream (0: unbounded); see -capacity-mode")
	fs.StringVar(&c.CapacityMode, "capacity-mode", mockllm.CapacityReject, "above -capacity: reject (answer -capacity-status at once) or slow (latency × calls served / capacity)")
	fs.IntVar(&c.CapacityStatus, "capacity-status", 429, "status of a call refused for capacity: 429, 503 or 529 (sent with -retry-after)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", mockllm.DefaultMaxBodyBytes, "largest accepted request body")
	fs.IntVar(&o.maxHeaderBytes, "max-header-bytes", 8<<20, "largest accepted request header block")
	fs.IntVar(&c.PadBytes, "pad-bytes", 0, "pad every generated text with filler to at least this many bytes (0: no padding)")
	fs.IntVar(&c.EchoMaxRunes, "echo-max", mockllm.DefaultEchoMaxRunes, "truncate echoed user text to this many characters (negative: no limit)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long to wait for in-flight requests on shutdown")
	fs.BoolVar(&c.RecordStarts, "record-starts", false, "keep each call's start and its model's calls in flight then, served at GET /stats/starts")
	fs.StringVar(&models, "models", "", "comma-separated model names that GET /v1/models lists (calls for any model are served)")
	fs.BoolVar(&c.Verbose, "v", false, "log every request")
	fs.BoolVar(&c.Verbose, "verbose", false, "same as -v")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mockllm [flags]\n\nEvery flag may also be set with MOCKLLM_<NAME> (e.g. MOCKLLM_FAIL_RATE); flags win.\n\n")
		fs.PrintDefaults()
	}

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v, ok := lookupEnv(name); ok && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("invalid value %q for %s: %w", v, name, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	c.Seed = seed
	for m := range strings.SplitSeq(models, ",") {
		if m = strings.TrimSpace(m); m != "" {
			c.Models = append(c.Models, m)
		}
	}
	if failRate < 0 || failRate > 1 || failRate != failRate {
		return nil, fmt.Errorf("-fail-rate must be within [0,1], got %v", failRate)
	}
	failures, err := mockllm.ParseFailures(failStatus, failRate)
	if err != nil {
		return nil, fmt.Errorf("-fail-status: %w", err)
	}
	c.Failures = failures
	if c.MaxBodyBytes <= 0 {
		return nil, errors.New("-max-body-bytes must be positive")
	}
	if o.maxHeaderBytes <= 0 {
		return nil, errors.New("-max-header-bytes must be positive")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, lookupEnv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mockllm:", err)
		return 2
	}

	level := slog.LevelInfo
	if opts.cfg.Verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	mock := mockllm.New(opts.cfg, logger)

	ln, err := listen(opts.addr, opts.anyPortIfTaken, logger)
	if err != nil {
		fmt.Fprintln(stderr, "mockllm:", err)
		return 1
	}
	if opts.addrFile != "" {
		if err := writeAddrFile(opts.addrFile, ln.Addr().String()); err != nil {
			_ = ln.Close()
			fmt.Fprintln(stderr, "mockllm:", err)
			return 1
		}
	}
	srv := &http.Server{
		Handler:           mock.Handler(),
		MaxHeaderBytes:    opts.maxHeaderBytes,
		ReadHeaderTimeout: time.Minute,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	fmt.Fprintf(stdout, "mockllm listening on http://%s\n", ln.Addr())
	cfg := opts.cfg
	logger.Info("mockllm started", "addr", ln.Addr().String(),
		"latency", cfg.Latency, "latency_jitter", cfg.LatencyJitter, "latency_dist", cfg.LatencyDist,
		"seed", cfg.Seed, "failures", fmt.Sprint(cfg.Failures), "rate_limit_rate", cfg.RateLimitRate,
		"reset_rate", cfg.ResetRate, "hang_rate", cfg.HangRate, "max_concurrency", cfg.MaxConcurrency,
		"capacity", cfg.Capacity, "capacity_mode", cfg.CapacityMode, "capacity_status", cfg.CapacityStatus,
		"api_key_set", cfg.APIKey != "", "no_auth", cfg.NoAuth)

	select {
	case err := <-serveErr:
		logger.Error("serve failed", "err", err)
		return 1
	case <-ctx.Done():
	}
	stop() // a second signal kills the process

	logger.Info("shutting down")
	mock.Close()
	sctx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("graceful shutdown incomplete, closing connections", "err", err)
		_ = srv.Close()
	}
	return 0
}

// listen listens on addr or, when its port is taken and anyPort is set, on a free port of the same
// host.
func listen(addr string, anyPort bool, logger *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil || !anyPort || !errors.Is(err, syscall.EADDRINUSE) {
		return ln, err
	}
	host, _, splitErr := net.SplitHostPort(addr)
	if splitErr != nil {
		return nil, err
	}
	ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err == nil {
		logger.Info("address in use, listening on a free port instead", "wanted", addr, "addr", ln.Addr().String())
	}
	return ln, err
}

// writeAddrFile writes addr to path through a temporary file renamed into place, so that a reader
// polling for path never sees it half-written.
func writeAddrFile(path, addr string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o644); err != nil {
		return fmt.Errorf("write -addr-file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write -addr-file: %w", err)
	}
	return nil
}
