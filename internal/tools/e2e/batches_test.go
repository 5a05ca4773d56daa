package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"
)

func TestBatchCompletesWithEveryResultExactlyOnce(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "5ms")
	v := startVolley(t, dispatchEnv(t, m, 8)...)
	c := v.client(v.key("alice"))

	var lines, ids []string
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("ok-%d", i)
		lines, ids = append(lines, reqLine(id, "m1", "")), append(ids, id)
	}
	special := map[string]string{
		"bad-request": `,"mock":{"status":400,"message":"unsupported parameter"}`,
		"flaky-500":   `,"mock":{"status":500,"times":2}`,
		"throttled":   `,"mock":{"status":429,"retry_after":"2","times":1}`,
		"reset":       `,"mock":{"reset":true,"times":1}`,
	}
	for _, id := range []string{"bad-request", "flaky-500", "throttled", "reset"} {
		lines, ids = append(lines, reqLine(id, "m1", special[id])), append(ids, id)
	}
	fileID := uploadLines(t, c, lines...)

	start := time.Now()
	b := createBatch(t, c, fileID, "24h")
	require.Equal(t, openai.BatchStatusInProgress, b.Status)
	require.Equal(t, int64(44), b.RequestCounts.Total)
	require.Equal(t, b.CreatedAt+86400, b.ExpiresAt)
	require.Equal(t, "m1", b.Model)
	require.Empty(t, b.OutputFileID, "file ids appear only when the batch ends")

	b = waitBatch(t, c, b.ID, time.Minute, terminal)
	elapsed := time.Since(start)
	require.Equal(t, openai.BatchStatusCompleted, b.Status)
	require.NotZero(t, b.CompletedAt)
	require.NotZero(t, b.FinalizingAt)
	require.GreaterOrEqual(t, elapsed, 2*time.Second, "Retry-After: 2 is waited for")

	out, errs := checkExactlyOnce(t, c, b, ids)
	require.Len(t, out, 43)
	require.Len(t, errs, 1)
	bad := errs["bad-request"]
	require.Nil(t, bad.Error, "an upstream answer goes to the error file with error null")
	require.Equal(t, http.StatusBadRequest, bad.Response.StatusCode)
	var envelope struct {
		Error struct{ Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(bad.Response.Body, &envelope))
	require.Equal(t, "unsupported parameter", envelope.Error.Message)
	for _, id := range []string{"flaky-500", "throttled", "reset"} {
		require.Equal(t, http.StatusOK, out[id].Response.StatusCode, id)
	}

	// Usage is the sum of the output file's usage.
	var in, outTok, total int64
	for _, l := range out {
		var body struct {
			Usage struct {
				PromptTokens     int64 `json:"prompt_tokens"`
				CompletionTokens int64 `json:"completion_tokens"`
				TotalTokens      int64 `json:"total_tokens"`
			} `json:"usage"`
		}
		require.NoError(t, json.Unmarshal(l.Response.Body, &body))
		in += body.Usage.PromptTokens
		outTok += body.Usage.CompletionTokens
		total += body.Usage.TotalTokens
	}
	require.Positive(t, total)
	require.Equal(t, in, b.Usage.InputTokens)
	require.Equal(t, outTok, b.Usage.OutputTokens)
	require.Equal(t, total, b.Usage.TotalTokens)

	// The output file lists in input order, is a batch_output file of the owner, and never leaks.
	outFile, err := c.Files.Get(ctx(t), b.OutputFileID)
	require.NoError(t, err)
	require.Equal(t, "batch_"+b.ID+"_output.jsonl", outFile.Filename)
	require.Equal(t, openai.FileObjectPurposeBatchOutput, outFile.Purpose)
	lines2 := readResults(t, c, b.OutputFileID)
	require.Equal(t, "ok-0", lines2[0].CustomID)
	require.Equal(t, "ok-39", lines2[39].CustomID)
	other := v.client(v.key("mallory"))
	_, err = other.Files.Content(ctx(t), b.OutputFileID)
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	_, err = other.Batches.Get(ctx(t), b.ID)
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)

	// The upstream saw the upstream's key, never the user's.
	st := m.stats()
	require.Equal(t, "Bearer upstream-secret", st.Models["m1"].LastAuthorization)

	// A finished batch cannot be cancelled: 400, not 409 (SDKs retry 409).
	_, err = c.Batches.Cancel(ctx(t), b.ID)
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
	require.Contains(t, apiErr.Message, "'completed'")

	// The output and error files list under their purposes and delete like any file.
	for _, f := range []struct {
		id      string
		purpose openai.FileListParams
	}{
		{b.OutputFileID, openai.FileListParams{Purpose: openai.String("batch_output")}},
		{b.ErrorFileID, openai.FileListParams{Purpose: openai.String("batch_error")}},
	} {
		var listed []string
		iter := c.Files.ListAutoPaging(ctx(t), f.purpose)
		for iter.Next() {
			listed = append(listed, iter.Current().ID)
		}
		require.NoError(t, iter.Err())
		require.Equal(t, []string{f.id}, listed)
		deleted, err := c.Files.Delete(ctx(t), f.id)
		require.NoError(t, err)
		require.True(t, deleted.Deleted)
		_, err = c.Files.Content(ctx(t), f.id)
		require.True(t, errors.As(err, &apiErr))
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	}
	got, err := c.Batches.Get(ctx(t), b.ID)
	require.NoError(t, err)
	require.Equal(t, b.RequestCounts, got.RequestCounts, "the batch outlives its files")
}

func TestBatchCancelKeepsPartialResults(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "300ms")
	v := startVolley(t, dispatchEnv(t, m, 2)...)
	c := v.client(v.key("alice"))
	var lines, ids []string
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("r%d", i)
		lines, ids = append(lines, reqLine(id, "slow", "")), append(ids, id)
	}
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")
	waitBatch(t, c, b.ID, 30*time.Second, func(b *openai.Batch) bool { return b.RequestCounts.Completed >= 2 })

	cancelled, err := c.Batches.Cancel(ctx(t), b.ID)
	require.NoError(t, err)
	require.Contains(t, []openai.BatchStatus{openai.BatchStatusCancelling, openai.BatchStatusCancelled}, cancelled.Status)
	require.NotZero(t, cancelled.CancellingAt)

	final := waitBatch(t, c, b.ID, 10*time.Second, terminal)
	require.Equal(t, openai.BatchStatusCancelled, final.Status)
	require.NotZero(t, final.CancelledAt)
	out, errs := checkExactlyOnce(t, c, final, ids)
	require.GreaterOrEqual(t, len(out), 2, "completed results are kept")
	require.NotEmpty(t, errs)
	for id, l := range errs {
		require.Nil(t, l.Response, id)
		require.Equal(t, "batch_cancelled", l.Error.Code, id)
	}
	// Cancelling again is idempotent.
	again, err := c.Batches.Cancel(ctx(t), b.ID)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusCancelled, again.Status)
	// Nothing more is sent after the cancel settled.
	calls := m.stats().TotalCalls
	require.LessOrEqual(t, calls, len(out)+2, "at most the two in-flight calls besides the completed ones")
}

// Cancelling aborts the calls in flight: with an upstream that takes a minute, the batch can only
// end within seconds if they are abandoned.
func TestBatchCancelAbortsInFlightCalls(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "60s")
	v := startVolley(t, dispatchEnv(t, m, 2)...)
	c := v.client(v.key("alice"))
	var lines, ids []string
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("r%d", i)
		lines, ids = append(lines, reqLine(id, "slow", "")), append(ids, id)
	}
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")
	require.Eventually(t, func() bool { return m.stats().InFlight == 2 }, 20*time.Second, 20*time.Millisecond)

	_, err := c.Batches.Cancel(ctx(t), b.ID)
	require.NoError(t, err)
	final := waitBatch(t, c, b.ID, 20*time.Second, terminal)
	require.Equal(t, openai.BatchStatusCancelled, final.Status)
	out, errs := checkExactlyOnce(t, c, final, ids)
	require.Empty(t, out)
	require.Len(t, errs, 5)
	for id, l := range errs {
		require.Equal(t, "batch_cancelled", l.Error.Code, id)
	}
	require.Eventually(t, func() bool { return m.stats().Canceled == 2 }, 10*time.Second, 20*time.Millisecond,
		"the upstream saw both calls abandoned")
	st := m.stats()
	require.Equal(t, 2, st.TotalCalls, "nothing else was sent")
	require.Zero(t, st.InFlight)
}

func TestBatchExpiresAfterItsWindow(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "2s")
	v := startVolley(t, dispatchEnv(t, m, 1)...)
	c := v.client(v.key("alice"))
	var lines, ids []string
	for i := 0; i < 45; i++ {
		id := fmt.Sprintf("e%d", i)
		lines, ids = append(lines, reqLine(id, "m", "")), append(ids, id)
	}
	b := createBatch(t, c, uploadLines(t, c, lines...), "1m")
	require.Equal(t, b.CreatedAt+60, b.ExpiresAt)
	final := waitBatch(t, c, b.ID, 100*time.Second, terminal)
	require.Equal(t, openai.BatchStatusExpired, final.Status)
	require.NotZero(t, final.ExpiredAt)
	out, errs := checkExactlyOnce(t, c, final, ids)
	require.NotEmpty(t, out, "what completed before the window passed is kept")
	require.NotEmpty(t, errs)
	for id, l := range errs {
		require.Equal(t, "batch_expired", l.Error.Code, id)
		require.Nil(t, l.Response, id)
	}
}

func TestBatchListPagesNewestFirst(t *testing.T) {
	t.Parallel()
	m := startMock(t)
	v := startVolley(t, dispatchEnv(t, m, 4)...)
	c := v.client(v.key("alice"))
	fileID := uploadLines(t, c, reqLine("a", "m", ""))
	var created []string
	for i := 0; i < 3; i++ {
		created = append(created, createBatch(t, c, fileID, "24h").ID)
	}
	var got []string
	iter := c.Batches.ListAutoPaging(ctx(t), openai.BatchListParams{Limit: openai.Int(1)})
	for iter.Next() {
		got = append(got, iter.Current().ID)
		require.Less(t, len(got), 10)
	}
	require.NoError(t, iter.Err())
	require.Equal(t, []string{created[2], created[1], created[0]}, got)
}

func TestRequestsOutOfRetriesLandInTheErrorFile(t *testing.T) {
	t.Parallel()
	m := startMock(t)
	path := t.TempDir() + "/volley.yaml"
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`upstreams:
  mock:
    url: %s
    api_key: upstream-secret
    timeout: 500ms
models:
  - name: "*"
    upstream: mock
    concurrency: 4
  - name: patient
    upstream: mock
    concurrency: 4
    timeout: 2s
    retry: {max_attempts: 4}
retry:
  max_attempts: 2
  base_delay: 20ms
  max_delay: 100ms
`, m.v1())), 0o600))
	v := startVolley(t, "VOLLEY_CONFIG="+path, "VOLLEY_POLL_INTERVAL=100ms")
	c := v.clientAs(t, "alice")
	lines := []string{
		reqLine("ok", "m", ""),
		reqLine("always-500", "m", `,"mock":{"status":500}`),
		reqLine("hangs", "m", `,"mock":{"hang":true}`),
		reqLine("resets", "m", `,"mock":{"reset":true}`),
		// The model's own policy: more attempts (inheriting the delays), and a timeout long
		// enough for an answer that takes a second.
		reqLine("patient-500", "patient", `,"mock":{"status":500}`),
		reqLine("patient-slow", "patient", `,"mock":{"latency":"1s"}`),
	}
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")
	final := waitBatch(t, c, b.ID, 30*time.Second, terminal)
	require.Equal(t, openai.BatchStatusCompleted, final.Status)
	out, errs := checkExactlyOnce(t, c, final, []string{"ok", "always-500", "hangs", "resets", "patient-500", "patient-slow"})
	require.Len(t, out, 2)
	require.Contains(t, out, "patient-slow")
	require.Equal(t, 4+1, m.stats().Models["patient"].Calls, "max_attempts 4 for the failing one, 1 for the slow one")
	require.Equal(t, http.StatusInternalServerError, errs["always-500"].Response.StatusCode, "a final HTTP answer keeps its status and body")
	require.Nil(t, errs["always-500"].Error)
	require.Nil(t, errs["hangs"].Response)
	require.Equal(t, "request_timeout", errs["hangs"].Error.Code)
	require.Nil(t, errs["resets"].Response)
	require.Equal(t, "upstream_unreachable", errs["resets"].Error.Code)
	require.Equal(t, 1+2+2+2+4+1, m.stats().TotalCalls, "each failing request is tried max_attempts times")
}
