package handlers

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/config"
	"github.com/volleyhq/volley/internal/tools/testdb"
)

func TestPanicsBecomeA500Envelope(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := &Server{logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	h := s.observe(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		loggerFrom(r.Context()).Info("before the panic")
		panic("boom")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/files", nil))
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	require.Equal(t, "false", rec.Header().Get("x-should-retry"))
	require.NotEmpty(t, rec.Header().Get("x-request-id"))
	e := decodeEnvelope(t, rec.Body.Bytes())
	require.Equal(t, "server_error", e.Error.Type)
	require.NotContains(t, e.Error.Message, "boom", "internals are not leaked")

	// Every line of the request carries its id; the panic is logged with its stack.
	var lines []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		lines = append(lines, m)
	}
	require.NotEmpty(t, lines)
	var panicked bool
	for _, l := range lines {
		require.Equal(t, rec.Header().Get("x-request-id"), l["request_id"], l)
		if l["msg"] == "panic" {
			panicked = true
			require.Equal(t, "boom", l["panic"])
			require.Contains(t, l["stack"], "middleware_test.go", "the stack points at the panic")
		}
	}
	require.True(t, panicked, logs.String())
}

func TestReadyzReportsWhatIsMissing(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	s := New(pool, config.Default(), nil, nil, slog.New(slog.DiscardHandler))
	t.Cleanup(s.Close)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	get := func() (int, string) {
		res, err := http.Get(srv.URL + "/readyz")
		require.NoError(t, err)
		defer res.Body.Close()
		var body struct{ Migrations, Database string }
		require.NoError(t, jsonDecode(res, &body))
		return res.StatusCode, body.Migrations + " " + body.Database
	}
	status, what := get()
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, "pending ok", what)
	s.MarkReady()
	status, _ = get()
	require.Equal(t, http.StatusOK, status)
	pool.Close()
	status, what = get()
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, what, "unreachable")
}
