package config

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	c, err := Load(env(nil))
	require.NoError(t, err)
	require.Equal(t, Default(), c)
	require.Equal(t, ".volley/pg", c.PGDataDir())

	c, err = Load(env(map[string]string{
		"VOLLEY_ADDR": "127.0.0.1:9000", "VOLLEY_LOG_LEVEL": "debug", "VOLLEY_MAX_FILE_LINES": "10",
		"VOLLEY_DISPATCH": "false", "VOLLEY_LEASE_TIMEOUT": "3s", "VOLLEY_FLEX_WAIT": "30s",
		"VOLLEY_MAX_CONCURRENT_UPLOADS": "0", "VOLLEY_DB_TIMEOUT": "2s",
		"VOLLEY_METRICS_ADDR": "127.0.0.1:9464", "VOLLEY_METRICS_QUEUE_INTERVAL": "1s",
		"VOLLEY_WEBHOOK_RETRY_FOR": "2h", "VOLLEY_WEBHOOK_ALLOW_PRIVATE": "true", "VOLLEY_WEBHOOK_TIMEOUT": "3s",
		"VOLLEY_WEBHOOK_ALLOW_HOSTS": " hooks.internal, 127.0.0.1 ,",
	}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9000", c.Addr)
	require.Equal(t, slog.LevelDebug, c.LogLevel)
	require.Equal(t, 10, c.Files.MaxLines)
	require.False(t, c.Dispatch.Enabled)
	require.Equal(t, 3*time.Second, c.Dispatch.LeaseTimeout)
	require.Equal(t, 30*time.Second, c.FlexWait)
	require.Zero(t, c.Files.MaxConcurrent, "0 lifts the limit")
	require.Equal(t, 2*time.Second, c.DBTimeout)
	require.Positive(t, Default().Files.MaxConcurrent)
	require.Equal(t, "127.0.0.1:9464", c.Metrics.Addr)
	require.Equal(t, time.Second, c.Metrics.QueueInterval)
	require.Equal(t, 2*time.Hour, c.Webhook.RetryFor)
	require.True(t, c.Webhook.AllowPrivate)
	require.Equal(t, 3*time.Second, c.Webhook.Timeout)
	require.Equal(t, []string{"hooks.internal", "127.0.0.1"}, c.Webhook.AllowHosts)
	require.Equal(t, 24*time.Hour, Default().Webhook.RetryFor)
	require.False(t, Default().Webhook.AllowPrivate, "private addresses are refused unless allowed")
}

func TestLoadNamesTheBadVariable(t *testing.T) {
	t.Parallel()
	for name, value := range map[string]string{
		"VOLLEY_LOG_LEVEL":      "loud",
		"VOLLEY_LOG_FORMAT":     "xml",
		"VOLLEY_MAX_FILE_BYTES": "lots",
		"VOLLEY_MAX_FILE_LINES": "0",
		"VOLLEY_DB_MAX_CONNS":   "2",
		"VOLLEY_SHUTDOWN_GRACE": "soon",
		"VOLLEY_DISPATCH":       "maybe",
		"VOLLEY_LEASE_TIMEOUT":  "10ms",
		"VOLLEY_MAX_LINE_BYTES": "12",
		"VOLLEY_POLL_INTERVAL":  "1ms",

		"VOLLEY_MAX_CONCURRENT_UPLOADS": "-1",
		"VOLLEY_DB_TIMEOUT":             "5ms",
		"VOLLEY_METRICS_QUEUE_INTERVAL": "1ms",
		"VOLLEY_HEADER_TIMEOUT":         "0s",
		"VOLLEY_BODY_IDLE_TIMEOUT":      "1ms",
		"VOLLEY_HANDLER_TIMEOUT":        "5m", // shorter than the flex wait
		"VOLLEY_WEBHOOK_RETRY_FOR":      "a day",
		"VOLLEY_WEBHOOK_TIMEOUT":        "1ms",
		"VOLLEY_WEBHOOK_BACKOFF":        "1ms",
		"VOLLEY_WEBHOOK_CONCURRENCY":    "0",
		"VOLLEY_WEBHOOK_ALLOW_PRIVATE":  "sure",
	} {
		_, err := Load(env(map[string]string{name: value}))
		require.Error(t, err, name)
		require.Contains(t, err.Error(), name)
	}
}

func TestMaxInFlightBytes(t *testing.T) {
	t.Parallel()
	require.Positive(t, Default().Dispatch.MaxInFlightBytes, "a default from the machine's memory")
	c, err := Load(env(map[string]string{"VOLLEY_MAX_INFLIGHT_BYTES": "268435456"}))
	require.NoError(t, err)
	require.Equal(t, int64(256<<20), c.Dispatch.MaxInFlightBytes)
	for _, bad := range []string{"lots", "0", "1000"} {
		_, err := Load(env(map[string]string{"VOLLEY_MAX_INFLIGHT_BYTES": bad}))
		require.ErrorContains(t, err, "VOLLEY_MAX_INFLIGHT_BYTES", bad)
	}
}

func TestFractionsAreChecked(t *testing.T) {
	for _, f := range []struct {
		name  string
		field func(Config) float64
		def   float64
	}{
		{"VOLLEY_FALLBACK_RAMP", func(c Config) float64 { return c.Dispatch.RampFraction }, 0.25},
		{"VOLLEY_BACKGROUND_SHARE", func(c Config) float64 { return c.Dispatch.BackgroundShare }, 0.5},
	} {
		c, err := Load(env(map[string]string{f.name: "0.75"}))
		require.NoError(t, err)
		require.Equal(t, 0.75, f.field(c), f.name)
		c, err = Load(env(nil))
		require.NoError(t, err)
		require.Equal(t, f.def, f.field(c), f.name)
		for _, bad := range []string{"0", "-0.1", "1.5", "half"} {
			_, err := Load(env(map[string]string{f.name: bad}))
			require.ErrorContains(t, err, f.name, bad)
		}
	}
}

func TestFlushIntervalIsChecked(t *testing.T) {
	c, err := Load(env(nil))
	require.NoError(t, err)
	require.Equal(t, 5*time.Millisecond, c.Dispatch.FlushInterval)
	c, err = Load(env(map[string]string{"VOLLEY_FLUSH_INTERVAL": "0"}))
	require.NoError(t, err)
	require.Zero(t, c.Dispatch.FlushInterval)
	for _, bad := range []string{"-1ms", "2s", "soon"} {
		_, err := Load(env(map[string]string{"VOLLEY_FLUSH_INTERVAL": bad}))
		require.ErrorContains(t, err, "VOLLEY_FLUSH_INTERVAL", bad)
	}
}

func TestClaimAheadIsChecked(t *testing.T) {
	c, err := Load(env(nil))
	require.NoError(t, err)
	require.Equal(t, AheadUpToTheLimit, c.Dispatch.ClaimAhead, "up to each model's limit unless set")
	for v, want := range map[string]int{"256": 256, "0": 0, "limit": AheadUpToTheLimit, "99999999999": AheadUpToTheLimit} {
		c, err = Load(env(map[string]string{"VOLLEY_CLAIM_AHEAD": v}))
		require.NoError(t, err)
		require.Equal(t, want, c.Dispatch.ClaimAhead, v)
	}
	for _, bad := range []string{"-1", "many", "Limit", "1.5"} {
		_, err := Load(env(map[string]string{"VOLLEY_CLAIM_AHEAD": bad}))
		require.ErrorContains(t, err, "VOLLEY_CLAIM_AHEAD", bad)
	}
}
