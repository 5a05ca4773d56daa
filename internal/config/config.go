// Package config loads Volley's configuration once at start-up, from environment variables and an
// optional YAML file, and validates it. The resulting Config is passed down explicitly.
package config

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/volleyhq/volley/internal/machine"
)

// Config is every setting Volley reads.
type Config struct {
	// Addr is the HTTP listen address (VOLLEY_ADDR).
	Addr string
	// DataDir holds the embedded PostgreSQL cluster when DatabaseURL is empty (VOLLEY_DATA_DIR).
	DataDir string
	// DatabaseURL is the PostgreSQL DSN (DATABASE_URL); empty means the embedded cluster.
	DatabaseURL string
	// LogLevel is debug, info, warn or error (VOLLEY_LOG_LEVEL).
	LogLevel slog.Level
	// LogFormat is "auto" (tint on a terminal, JSON otherwise), "text" or "json" (VOLLEY_LOG_FORMAT).
	LogFormat string

	// DBMaxConns caps the connection pool (VOLLEY_DB_MAX_CONNS).
	DBMaxConns int32
	// DBTimeout bounds each database statement of an API request (VOLLEY_DB_TIMEOUT, default 15s; 0
	// means no limit). A request whose statement runs out answers 503, which the SDKs retry, instead
	// of waiting for as long as the database does not answer. COPY of an upload is not bounded: it
	// goes as fast as the client sends.
	DBTimeout time.Duration

	Files FileLimits

	// MaxJSONBodyBytes caps the body of every request but uploads (VOLLEY_MAX_BODY_BYTES, 16 MiB).
	MaxJSONBodyBytes int64

	// HeaderTimeout is how long a client may take to send a request's line and headers
	// (VOLLEY_HEADER_TIMEOUT, default 10s); a slower one is disconnected.
	HeaderTimeout time.Duration
	// BodyIdleTimeout is how long a request body may go without sending a byte
	// (VOLLEY_BODY_IDLE_TIMEOUT, default 30s); a stalled body is answered 408. It bounds each read,
	// not the whole body, so a large upload over a slow link takes the time it needs.
	BodyIdleTimeout time.Duration
	// HandlerTimeout bounds the time from a request's headers to its answer
	// (VOLLEY_HANDLER_TIMEOUT, default 15m), the time an upload spends receiving its file excepted
	// (the idle timeout bounds that). It must exceed the flex wait and the upstream timeout.
	HandlerTimeout time.Duration

	// ShutdownGrace is how long a SIGTERM waits for in-flight HTTP requests and upstream calls
	// before handing the rest back to the queue (VOLLEY_SHUTDOWN_GRACE).
	ShutdownGrace time.Duration

	Dispatch Dispatch

	// FlexWait is how long a flex-tier /v1/responses call waits for its queued answer before it
	// returns the response as it stands (VOLLEY_FLEX_WAIT, default 10m).
	FlexWait time.Duration
	// ResponseWindow is how long a queued response may wait and run before it fails
	// (VOLLEY_RESPONSE_WINDOW, default 24h).
	ResponseWindow time.Duration

	Metrics Metrics

	Webhook Webhook
}

// Webhook configures the delivery of webhook events.
type Webhook struct {
	// RetryFor is how long a failing delivery is retried after its event (VOLLEY_WEBHOOK_RETRY_FOR,
	// default 24h).
	RetryFor time.Duration
	// Timeout bounds one delivery attempt (VOLLEY_WEBHOOK_TIMEOUT, default 15s).
	Timeout time.Duration
	// Backoff is the delay before the first retry, doubled after each failure up to an hour, with
	// jitter (VOLLEY_WEBHOOK_BACKOFF, default 5s).
	Backoff time.Duration
	// Concurrency is how many deliveries one replica makes at once (VOLLEY_WEBHOOK_CONCURRENCY,
	// default 16).
	Concurrency int
	// AllowPrivate lets endpoints point at private, loopback and link-local addresses
	// (VOLLEY_WEBHOOK_ALLOW_PRIVATE, default false). A webhook URL is a request Volley makes on an
	// owner's behalf, from inside the operator's network.
	AllowPrivate bool
	// AllowHosts, when set, are the only hosts endpoints may name (VOLLEY_WEBHOOK_ALLOW_HOSTS,
	// comma-separated; default: any public host).
	AllowHosts []string
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Addr serves /metrics on an address of its own (VOLLEY_METRICS_ADDR); empty serves it on the
	// API's address, "off" not at all.
	Addr string
	// QueueInterval is how often the queue figures are read from the database, at most
	// (VOLLEY_METRICS_QUEUE_INTERVAL, default 5s), however many scrapers there are.
	QueueInterval time.Duration
}

// MetricsOff is the VOLLEY_METRICS_ADDR that serves no metrics.
const MetricsOff = "off"

// Dispatch tunes the replica's dispatcher.
type Dispatch struct {
	// Enabled runs the dispatcher in this replica (VOLLEY_DISPATCH, default true); an API-only
	// replica sets it to false.
	Enabled bool
	// MaxInFlight caps this replica's concurrent upstream calls (VOLLEY_MAX_IN_FLIGHT).
	MaxInFlight int
	// MaxInFlightBytes caps the request and answer bytes the dispatcher holds in memory
	// (VOLLEY_MAX_INFLIGHT_BYTES, default a quarter of the machine's or the container's memory).
	MaxInFlightBytes int64
	// LeaseTimeout is how long a silent replica keeps its requests (VOLLEY_LEASE_TIMEOUT).
	LeaseTimeout time.Duration
	// PollInterval is how often the queue is checked without a notification (VOLLEY_POLL_INTERVAL).
	PollInterval time.Duration
	// RampFraction is the last part of a request's window in which a request of a model that is
	// not live goes to the model's fallback route (VOLLEY_FALLBACK_RAMP, default 0.25).
	RampFraction float64
	// BackgroundShare is the most of a model's limit that requests of the `background` service
	// tier may hold, at least one slot (VOLLEY_BACKGROUND_SHARE, default 0.5).
	BackgroundShare float64
	// ClaimAhead is the most requests of a model past its limit a replica may claim
	// (VOLLEY_CLAIM_AHEAD: a number, or `limit`, the default, for at most the model's limit; 0
	// claims none ahead). They wait in the replica and start the moment one of its calls returns,
	// without a trip to the database. A replica claims only about as many ahead as its model's
	// calls return while two claims replace them, and only while it is alone on the model.
	ClaimAhead int
	// FlushInterval is how long a finished call's result waits for others to be written with it
	// (VOLLEY_FLUSH_INTERVAL, default 5ms); 0 writes at once what finished while the last write ran.
	FlushInterval time.Duration
	// TrickleInterval is how often one request per owner of a model marked `coming` is let
	// through to its upstream, so that a model scaled to zero sees demand
	// (VOLLEY_MODEL_TRICKLE_INTERVAL, default 1m; 0 lets none through).
	TrickleInterval time.Duration
}

// FileLimits bound what an upload may hold.
type FileLimits struct {
	// MaxBytes is the largest file accepted (VOLLEY_MAX_FILE_BYTES, default 200 MB as OpenAI).
	MaxBytes int64
	// MaxLines is the largest number of requests in one file (VOLLEY_MAX_FILE_LINES, default 50,000).
	MaxLines int
	// MaxLineBytes bounds one line (VOLLEY_MAX_LINE_BYTES, default 16 MiB), so that memory stays
	// bounded however a file is shaped.
	MaxLineBytes int
	// MaxCustomIDBytes bounds one custom_id (VOLLEY_MAX_CUSTOM_ID_BYTES, default 512).
	MaxCustomIDBytes int
	// DefaultExpiry is how long a batch file lives without expires_after (30 days).
	DefaultExpiry time.Duration
	// MaxConcurrent is how many uploads this replica ingests at once (VOLLEY_MAX_CONCURRENT_UPLOADS,
	// default half the CPUs, at least 1; 0 means no limit). Ingesting is CPU-bound here and in
	// PostgreSQL, so more uploads at once only slow each other and every other request. An upload
	// holds a turn only while its bytes flow, for a slice at a time when others wait; waiting ones
	// are served round the owners, their bodies unread meanwhile.
	MaxConcurrent int
}

// AheadUpToTheLimit is ClaimAhead's `limit`: as many ahead as the model's limit, the claim's cap.
const AheadUpToTheLimit = math.MaxInt32

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Addr:       ":8080",
		DataDir:    ".volley",
		LogLevel:   slog.LevelInfo,
		LogFormat:  "auto",
		DBMaxConns: 40,
		DBTimeout:  15 * time.Second,
		Files: FileLimits{
			MaxBytes:         200 * 1000 * 1000,
			MaxLines:         50_000,
			MaxLineBytes:     16 << 20,
			MaxCustomIDBytes: 512,
			DefaultExpiry:    30 * 24 * time.Hour,
			MaxConcurrent:    max(1, runtime.GOMAXPROCS(0)/2),
		},
		MaxJSONBodyBytes: 16 << 20,
		ShutdownGrace:    30 * time.Second,
		HeaderTimeout:    10 * time.Second,
		BodyIdleTimeout:  30 * time.Second,
		HandlerTimeout:   15 * time.Minute,
		FlexWait:         10 * time.Minute,
		ResponseWindow:   24 * time.Hour,
		Metrics:          Metrics{QueueInterval: 5 * time.Second},
		Webhook: Webhook{
			RetryFor:    24 * time.Hour,
			Timeout:     15 * time.Second,
			Backoff:     5 * time.Second,
			Concurrency: 16,
		},
		Dispatch: Dispatch{
			Enabled:          true,
			MaxInFlight:      20000,
			MaxInFlightBytes: machine.MemoryBytes() / 4,
			LeaseTimeout:     15 * time.Second,
			PollInterval:     time.Second,
			TrickleInterval:  time.Minute,
			RampFraction:     0.25,
			BackgroundShare:  0.5,
			FlushInterval:    5 * time.Millisecond,
			ClaimAhead:       AheadUpToTheLimit,
		},
	}
}

// Load reads the environment (through getenv, so tests can supply their own) on top of Default.
func Load(getenv func(string) string) (Config, error) {
	c := Default()
	l := loader{getenv: getenv}
	l.str("VOLLEY_ADDR", &c.Addr)
	l.str("VOLLEY_DATA_DIR", &c.DataDir)
	l.str("DATABASE_URL", &c.DatabaseURL)
	l.level("VOLLEY_LOG_LEVEL", &c.LogLevel)
	l.str("VOLLEY_LOG_FORMAT", &c.LogFormat)
	l.int32("VOLLEY_DB_MAX_CONNS", &c.DBMaxConns)
	l.duration("VOLLEY_DB_TIMEOUT", &c.DBTimeout)
	l.int64("VOLLEY_MAX_FILE_BYTES", &c.Files.MaxBytes)
	l.int("VOLLEY_MAX_FILE_LINES", &c.Files.MaxLines)
	l.int("VOLLEY_MAX_LINE_BYTES", &c.Files.MaxLineBytes)
	l.int("VOLLEY_MAX_CUSTOM_ID_BYTES", &c.Files.MaxCustomIDBytes)
	l.int("VOLLEY_MAX_CONCURRENT_UPLOADS", &c.Files.MaxConcurrent)
	l.int64("VOLLEY_MAX_BODY_BYTES", &c.MaxJSONBodyBytes)
	l.duration("VOLLEY_SHUTDOWN_GRACE", &c.ShutdownGrace)
	l.duration("VOLLEY_HEADER_TIMEOUT", &c.HeaderTimeout)
	l.duration("VOLLEY_BODY_IDLE_TIMEOUT", &c.BodyIdleTimeout)
	l.duration("VOLLEY_HANDLER_TIMEOUT", &c.HandlerTimeout)
	l.duration("VOLLEY_FLEX_WAIT", &c.FlexWait)
	l.duration("VOLLEY_RESPONSE_WINDOW", &c.ResponseWindow)
	l.boolean("VOLLEY_DISPATCH", &c.Dispatch.Enabled)
	l.int("VOLLEY_MAX_IN_FLIGHT", &c.Dispatch.MaxInFlight)
	l.int64("VOLLEY_MAX_INFLIGHT_BYTES", &c.Dispatch.MaxInFlightBytes)
	l.duration("VOLLEY_LEASE_TIMEOUT", &c.Dispatch.LeaseTimeout)
	l.duration("VOLLEY_POLL_INTERVAL", &c.Dispatch.PollInterval)
	l.duration("VOLLEY_MODEL_TRICKLE_INTERVAL", &c.Dispatch.TrickleInterval)
	if v, ok := l.raw("VOLLEY_CLAIM_AHEAD"); ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			c.Dispatch.ClaimAhead = min(n, AheadUpToTheLimit) // no limit is larger
		} else if v == "limit" {
			c.Dispatch.ClaimAhead = AheadUpToTheLimit
		} else {
			l.fail("VOLLEY_CLAIM_AHEAD", v, "`limit` or a whole number from 0")
		}
	}
	l.duration("VOLLEY_FLUSH_INTERVAL", &c.Dispatch.FlushInterval)
	l.float("VOLLEY_FALLBACK_RAMP", &c.Dispatch.RampFraction)
	l.float("VOLLEY_BACKGROUND_SHARE", &c.Dispatch.BackgroundShare)
	l.str("VOLLEY_METRICS_ADDR", &c.Metrics.Addr)
	l.duration("VOLLEY_METRICS_QUEUE_INTERVAL", &c.Metrics.QueueInterval)
	l.duration("VOLLEY_WEBHOOK_RETRY_FOR", &c.Webhook.RetryFor)
	l.duration("VOLLEY_WEBHOOK_TIMEOUT", &c.Webhook.Timeout)
	l.duration("VOLLEY_WEBHOOK_BACKOFF", &c.Webhook.Backoff)
	l.int("VOLLEY_WEBHOOK_CONCURRENCY", &c.Webhook.Concurrency)
	l.boolean("VOLLEY_WEBHOOK_ALLOW_PRIVATE", &c.Webhook.AllowPrivate)
	l.list("VOLLEY_WEBHOOK_ALLOW_HOSTS", &c.Webhook.AllowHosts)
	if l.err != nil {
		return Config{}, l.err
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// FromEnv loads the configuration from the process environment.
func FromEnv() (Config, error) { return Load(os.Getenv) }

// PGDataDir is where the embedded cluster lives.
func (c Config) PGDataDir() string { return filepath.Join(c.DataDir, "pg") }

func (c Config) validate() error {
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		return fmt.Errorf("VOLLEY_LOG_FORMAT: %q is not one of auto, text, json", c.LogFormat)
	}
	if c.DBMaxConns < 4 {
		return fmt.Errorf("VOLLEY_DB_MAX_CONNS: must be at least 4, got %d", c.DBMaxConns)
	}
	if c.Files.MaxBytes < 1 {
		return fmt.Errorf("VOLLEY_MAX_FILE_BYTES: must be positive, got %d", c.Files.MaxBytes)
	}
	if c.Files.MaxLines < 1 {
		return fmt.Errorf("VOLLEY_MAX_FILE_LINES: must be positive, got %d", c.Files.MaxLines)
	}
	if c.Files.MaxLineBytes < 1024 {
		return fmt.Errorf("VOLLEY_MAX_LINE_BYTES: must be at least 1024, got %d", c.Files.MaxLineBytes)
	}
	if c.Files.MaxCustomIDBytes < 1 {
		return fmt.Errorf("VOLLEY_MAX_CUSTOM_ID_BYTES: must be positive, got %d", c.Files.MaxCustomIDBytes)
	}
	if c.DBTimeout != 0 && c.DBTimeout < 100*time.Millisecond {
		return fmt.Errorf("VOLLEY_DB_TIMEOUT: must be 0 (no limit) or at least 100ms, got %s", c.DBTimeout)
	}
	if c.Files.MaxConcurrent < 0 {
		return fmt.Errorf("VOLLEY_MAX_CONCURRENT_UPLOADS: must be 0 (no limit) or more, got %d", c.Files.MaxConcurrent)
	}
	if c.MaxJSONBodyBytes < 1024 {
		return fmt.Errorf("VOLLEY_MAX_BODY_BYTES: must be at least 1024, got %d", c.MaxJSONBodyBytes)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"VOLLEY_HEADER_TIMEOUT", c.HeaderTimeout}, {"VOLLEY_BODY_IDLE_TIMEOUT", c.BodyIdleTimeout}, {"VOLLEY_HANDLER_TIMEOUT", c.HandlerTimeout}} {
		if d.v < 100*time.Millisecond {
			return fmt.Errorf("%s: must be at least 100ms, got %s", d.name, d.v)
		}
	}
	if c.HandlerTimeout <= c.FlexWait {
		return fmt.Errorf("VOLLEY_HANDLER_TIMEOUT: must be longer than VOLLEY_FLEX_WAIT (%s), got %s", c.FlexWait, c.HandlerTimeout)
	}
	if c.ResponseWindow < time.Minute {
		return fmt.Errorf("VOLLEY_RESPONSE_WINDOW: must be at least 1m, got %s", c.ResponseWindow)
	}
	if c.Dispatch.MaxInFlight < 1 {
		return fmt.Errorf("VOLLEY_MAX_IN_FLIGHT: must be positive, got %d", c.Dispatch.MaxInFlight)
	}
	if c.Dispatch.MaxInFlightBytes < 1<<20 {
		return fmt.Errorf("VOLLEY_MAX_INFLIGHT_BYTES: must be at least 1048576 (1 MiB), got %d", c.Dispatch.MaxInFlightBytes)
	}
	if c.Dispatch.LeaseTimeout < time.Second {
		return fmt.Errorf("VOLLEY_LEASE_TIMEOUT: must be at least 1s, got %s", c.Dispatch.LeaseTimeout)
	}
	if c.Dispatch.PollInterval < 10*time.Millisecond {
		return fmt.Errorf("VOLLEY_POLL_INTERVAL: must be at least 10ms, got %s", c.Dispatch.PollInterval)
	}
	if c.Dispatch.BackgroundShare <= 0 || c.Dispatch.BackgroundShare > 1 {
		return fmt.Errorf("VOLLEY_BACKGROUND_SHARE: must be above 0 and at most 1 (the part of a model's limit background requests may hold), got %g", c.Dispatch.BackgroundShare)
	}
	if c.Dispatch.RampFraction <= 0 || c.Dispatch.RampFraction > 1 {
		return fmt.Errorf("VOLLEY_FALLBACK_RAMP: must be above 0 and at most 1 (the last part of a window that falls back), got %g", c.Dispatch.RampFraction)
	}
	if c.Dispatch.FlushInterval < 0 || c.Dispatch.FlushInterval > time.Second {
		return fmt.Errorf("VOLLEY_FLUSH_INTERVAL: must be from 0 to 1s, got %s", c.Dispatch.FlushInterval)
	}
	if c.Dispatch.TrickleInterval < 0 {
		return fmt.Errorf("VOLLEY_MODEL_TRICKLE_INTERVAL: must not be negative, got %s", c.Dispatch.TrickleInterval)
	}
	if c.Metrics.QueueInterval < 100*time.Millisecond {
		return fmt.Errorf("VOLLEY_METRICS_QUEUE_INTERVAL: must be at least 100ms, got %s", c.Metrics.QueueInterval)
	}
	if c.Webhook.Timeout < 100*time.Millisecond {
		return fmt.Errorf("VOLLEY_WEBHOOK_TIMEOUT: must be at least 100ms, got %s", c.Webhook.Timeout)
	}
	if c.Webhook.Backoff < 10*time.Millisecond {
		return fmt.Errorf("VOLLEY_WEBHOOK_BACKOFF: must be at least 10ms, got %s", c.Webhook.Backoff)
	}
	if c.Webhook.Concurrency < 1 {
		return fmt.Errorf("VOLLEY_WEBHOOK_CONCURRENCY: must be positive, got %d", c.Webhook.Concurrency)
	}
	if c.DataDir == "" && c.DatabaseURL == "" {
		return fmt.Errorf("VOLLEY_DATA_DIR: must not be empty when DATABASE_URL is unset")
	}
	return nil
}

// loader reads typed values and keeps the first error, naming the variable.
type loader struct {
	getenv func(string) string
	err    error
}

func (l *loader) raw(name string) (string, bool) {
	v := strings.TrimSpace(l.getenv(name))
	return v, v != "" && l.err == nil
}

func (l *loader) fail(name, v, want string) {
	l.err = fmt.Errorf("%s: %q is not %s", name, v, want)
}

func (l *loader) str(name string, dst *string) {
	if v, ok := l.raw(name); ok {
		*dst = v
	}
}

func (l *loader) int(name string, dst *int) {
	if v, ok := l.raw(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			l.fail(name, v, "a whole number")
			return
		}
		*dst = n
	}
}

func (l *loader) float(name string, dst *float64) {
	if v, ok := l.raw(name); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			l.fail(name, v, "a number")
			return
		}
		*dst = f
	}
}

func (l *loader) int32(name string, dst *int32) {
	if v, ok := l.raw(name); ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			l.fail(name, v, "a whole number")
			return
		}
		*dst = int32(n)
	}
}

func (l *loader) int64(name string, dst *int64) {
	if v, ok := l.raw(name); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			l.fail(name, v, "a whole number")
			return
		}
		*dst = n
	}
}

func (l *loader) duration(name string, dst *time.Duration) {
	if v, ok := l.raw(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			l.fail(name, v, "a duration like 30s or 5m")
			return
		}
		*dst = d
	}
}

func (l *loader) boolean(name string, dst *bool) {
	if v, ok := l.raw(name); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			l.fail(name, v, "true or false")
			return
		}
		*dst = b
	}
}

func (l *loader) list(name string, dst *[]string) {
	if v, ok := l.raw(name); ok {
		var out []string
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		*dst = out
	}
}

func (l *loader) level(name string, dst *slog.Level) {
	if v, ok := l.raw(name); ok {
		if err := dst.UnmarshalText([]byte(v)); err != nil {
			l.fail(name, v, "one of debug, info, warn, error")
		}
	}
}
