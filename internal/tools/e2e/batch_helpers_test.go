package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/testproc"
)

// mock is a running mockllm process.
type mock struct {
	t    *testing.T
	proc *testproc.Proc
}

func startMock(t *testing.T, args ...string) *mock {
	t.Helper()
	bin := testproc.Binaries(t)
	args = append([]string{"-addr", "127.0.0.1:0", "-api-key", "upstream-secret"}, args...)
	p := testproc.Start(t, "mockllm", filepath.Join(bin, "mockllm"), args, nil, testproc.MockReady)
	return &mock{t: t, proc: p}
}

// v1 is the base URL Volley should use for this mock.
func (m *mock) v1() string { return m.proc.URL + "/v1" }

type mockStats struct {
	TotalCalls      int            `json:"total_calls"`
	PeakConcurrency int            `json:"peak_concurrency"`
	Violations      int            `json:"violations"`
	DuplicateCalls  int            `json:"duplicate_calls"`
	InFlight        int            `json:"in_flight"`
	Canceled        int            `json:"canceled"`
	OverCapacity    int            `json:"over_capacity"`
	PeakServing     int            `json:"peak_serving"`
	StatusCounts    map[string]int `json:"status_counts"`
	Models          map[string]struct {
		Calls             int    `json:"calls"`
		PeakConcurrency   int    `json:"peak_concurrency"`
		LastAuthorization string `json:"last_authorization"`
	} `json:"models"`
}

func (m *mock) stats() mockStats {
	m.t.Helper()
	res, err := http.Get(m.proc.URL + "/stats")
	require.NoError(m.t, err)
	defer res.Body.Close()
	var s mockStats
	require.NoError(m.t, json.NewDecoder(res.Body).Decode(&s))
	return s
}

// upstreamConfig writes a YAML configuration routing every model to the mock, with fast retries.
func upstreamConfig(t *testing.T, m *mock, concurrency int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "volley.yaml")
	yaml := fmt.Sprintf(`upstreams:
  mock:
    url: %s
    api_key: upstream-secret
    timeout: 20s
models:
  - name: "*"
    upstream: mock
    concurrency: %d
retry:
  max_attempts: 5
  base_delay: 50ms
  max_delay: 2s
`, m.v1(), concurrency)
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return "VOLLEY_CONFIG=" + path
}

// dispatchEnv is the environment of a replica that dispatches to m quickly.
func dispatchEnv(t *testing.T, m *mock, concurrency int) []string {
	return []string{upstreamConfig(t, m, concurrency), "VOLLEY_POLL_INTERVAL=100ms", "VOLLEY_LEASE_TIMEOUT=2s", "VOLLEY_SHUTDOWN_GRACE=10s"}
}

// reqLine is one chat completion line; extra is spliced into the body (e.g. a mock directive).
func reqLine(customID, model, extra string) string {
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello %s"}]%s}`, model, customID, extra)
	return fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":%s}`+"\n", customID, body)
}

func uploadLines(t *testing.T, c openai.Client, lines ...string) string {
	t.Helper()
	f, err := c.Files.New(ctx(t), openai.FileNewParams{File: strings.NewReader(strings.Join(lines, "")), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	return f.ID
}

func createBatch(t *testing.T, c openai.Client, fileID, window string) *openai.Batch {
	t.Helper()
	b, err := c.Batches.New(ctx(t), openai.BatchNewParams{
		InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow(window),
	})
	require.NoError(t, err)
	return b
}

// waitBatch polls a batch until done says so, failing after timeout.
func waitBatch(t *testing.T, c openai.Client, id string, timeout time.Duration, done func(*openai.Batch) bool) *openai.Batch {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, err := c.Batches.Get(ctx(t), id)
		require.NoError(t, err)
		if done(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s still %s after %s: %+v", id, b.Status, timeout, b.RequestCounts)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

func terminal(b *openai.Batch) bool {
	switch b.Status {
	case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusExpired, openai.BatchStatusCancelled:
		return true
	}
	return false
}

// resultLine is one line of an output or error file.
type resultLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		RequestID  string          `json:"request_id"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// readResults downloads a result file ("" → none) and parses its lines, checking its size.
func readResults(t *testing.T, c openai.Client, fileID string) []resultLine {
	t.Helper()
	if fileID == "" {
		return nil
	}
	meta, err := c.Files.Get(ctx(t), fileID)
	require.NoError(t, err)
	res, err := c.Files.Content(ctx(t), fileID)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, meta.Bytes, int64(len(raw)), "file size is exact")
	var out []resultLine
	for _, l := range strings.SplitAfter(string(raw), "\n") {
		if l == "" {
			continue
		}
		require.True(t, strings.HasSuffix(l, "\n"), "every line is terminated")
		var r resultLine
		require.NoError(t, json.Unmarshal([]byte(l), &r), "line %q", l)
		require.True(t, strings.HasPrefix(r.ID, "batch_req_"))
		out = append(out, r)
	}
	return out
}

// checkExactlyOnce asserts that every custom_id in want appears exactly once across the output and
// error files, and that the batch's counts match the files. It returns the lines by custom_id.
func checkExactlyOnce(t *testing.T, c openai.Client, b *openai.Batch, want []string) (out, errs map[string]resultLine) {
	t.Helper()
	outLines := readResults(t, c, b.OutputFileID)
	errLines := readResults(t, c, b.ErrorFileID)
	out, errs = map[string]resultLine{}, map[string]resultLine{}
	seen := map[string]int{}
	for _, l := range outLines {
		seen[l.CustomID]++
		out[l.CustomID] = l
		require.Nil(t, l.Error)
		require.NotNil(t, l.Response)
	}
	for _, l := range errLines {
		seen[l.CustomID]++
		errs[l.CustomID] = l
	}
	for _, id := range want {
		require.Equal(t, 1, seen[id], "custom_id %s must appear exactly once", id)
	}
	require.Len(t, seen, len(want), "no custom_id that was not submitted")
	require.Equal(t, int64(len(want)), b.RequestCounts.Total)
	require.Equal(t, int64(len(outLines)), b.RequestCounts.Completed)
	require.Equal(t, int64(len(errLines)), b.RequestCounts.Failed)
	return out, errs
}

// optMock adds a mockllm directive to a request body.
func optMock(directive string) option.RequestOption {
	return option.WithJSONSet("mock", json.RawMessage(directive))
}
