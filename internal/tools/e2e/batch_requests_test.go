package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"
)

// api calls one of Volley's extension routes with key, decoding a 200's JSON into out.
func (v *volley) api(method, path, key, body string, out any) (int, []byte) {
	v.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, strings.TrimSuffix(v.proc.URL, "/v1")+path, r)
	require.NoError(v.t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(v.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(v.t, err)
	if res.StatusCode == http.StatusOK && out != nil {
		require.NoError(v.t, json.Unmarshal(b, out), string(b))
	}
	return res.StatusCode, b
}

type browseItem struct {
	CustomID string `json:"custom_id"`
	Line     int    `json:"line"`
	Model    string `json:"model"`
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		RequestID  string          `json:"request_id"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Body json.RawMessage `json:"body"`
}

type browsePage struct {
	Data    []browseItem `json:"data"`
	LastID  *string      `json:"last_id"`
	HasMore bool         `json:"has_more"`
}

// browseAll reads every page of a batch's requests under query.
func (v *volley) browseAll(key, batchID, query string, limit int) []browseItem {
	v.t.Helper()
	var all []browseItem
	after := ""
	for {
		q := fmt.Sprintf("?limit=%d&%s", limit, query)
		if after != "" {
			q += "&after=" + url.QueryEscape(after)
		}
		var page browsePage
		status, body := v.api(http.MethodGet, "/v1/batches/"+batchID+"/requests"+q, key, "", &page)
		require.Equal(v.t, http.StatusOK, status, string(body))
		all = append(all, page.Data...)
		if !page.HasMore {
			return all
		}
		require.NotEmpty(v.t, page.Data)
		after = *page.LastID
	}
}

// Cancelling ten named lines mid-batch ends exactly those, running or pending, and the rest of
// the batch completes.
func TestCancelNamedRequestsMidBatch(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "1s")
	v := startVolley(t, dispatchEnv(t, m, 5)...)
	key := v.key("alice")
	c := v.client(key)
	lines, ids := manyLines("r", "slow", 40)
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")

	var running []browseItem
	require.Eventually(t, func() bool {
		running = v.browseAll(key, b.ID, "status=running", 100)
		return len(running) == 5
	}, 20*time.Second, 20*time.Millisecond)
	pending := v.browseAll(key, b.ID, "status=pending", 100)
	require.GreaterOrEqual(t, len(pending), 20)
	var named []string
	for _, r := range running {
		named = append(named, r.CustomID)
	}
	for _, r := range pending[len(pending)-5:] {
		named = append(named, r.CustomID)
	}
	body, _ := json.Marshal(map[string]any{"custom_ids": named})
	var res struct {
		Data []struct {
			CustomID string `json:"custom_id"`
			Result   string `json:"result"`
		} `json:"data"`
	}
	status, raw := v.api(http.MethodPost, "/v1/batches/"+b.ID+"/requests/cancel", key, string(body), &res)
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Len(t, res.Data, 10)
	for i, d := range res.Data {
		require.Equal(t, named[i], d.CustomID)
		if i < 5 {
			require.Contains(t, []string{"cancelling", "already_completed"}, d.Result, "a running request is being aborted")
		} else {
			require.Equal(t, "cancelled", d.Result, "a pending request ends at once")
		}
	}

	final := waitBatch(t, c, b.ID, 60*time.Second, terminal)
	require.Equal(t, openai.BatchStatusCompleted, final.Status)
	out, errs := checkExactlyOnce(t, c, final, ids)
	require.Len(t, errs, 10, "exactly the named lines failed")
	for _, id := range named {
		require.Contains(t, errs, id)
		require.Equal(t, "request_cancelled", errs[id].Error.Code, id)
		require.Nil(t, errs[id].Response)
	}
	require.Len(t, out, 30)
	require.Eventually(t, func() bool { return m.stats().Canceled >= 5 }, 10*time.Second, 20*time.Millisecond,
		"the upstream saw the running calls abandoned")

	// Browsing agrees with the files.
	cancelled := v.browseAll(key, b.ID, "status=cancelled", 3)
	require.Len(t, cancelled, 10)
	for _, r := range cancelled {
		require.Equal(t, "request_cancelled", r.Error.Code)
	}
}

// A 2,000-line batch with injected 400s and 500s, browsed with every filter while it runs and
// after; then its failures retried as a new batch, the old batch left as it was.
func TestBrowseAndRetryABatchWithFailures(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "50ms")
	v := startVolley(t, dispatchEnv(t, m, 40)...)
	key := v.key("alice")
	c := v.client(key)
	const n = 2000
	var lines, ids []string
	bodies := map[string]string{}
	want400, want500 := map[string]bool{}, map[string]bool{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("req_%04d", i)
		model, extra := "m-a", ""
		if i%2 == 1 {
			model = "m-b"
		}
		switch {
		case i%97 == 0:
			extra = `,"mock":{"status":400}`
			want400[id] = true
		case i%101 == 0:
			// Fails every attempt of the first batch (max_attempts 5), answers the retry.
			extra = fmt.Sprintf(`,"mock":{"status":500,"times":5,"content":"again %d"}`, i)
			want500[id] = true
		}
		l := reqLine(id, model, extra)
		lines, ids = append(lines, l), append(ids, id)
		var parsed struct {
			Body json.RawMessage `json:"body"`
		}
		require.NoError(t, json.Unmarshal([]byte(l), &parsed))
		bodies[id] = string(parsed.Body)
	}
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")

	// While it runs: every page is in input order with no line twice, whatever moves underneath.
	during := v.browseAll(key, b.ID, "", 100)
	require.Len(t, during, n)
	for i, r := range during {
		require.Equal(t, ids[i], r.CustomID)
		require.Equal(t, i+1, r.Line)
		require.Contains(t, []string{"pending", "running", "completed", "failed"}, r.Status)
	}
	// Each filter while it runs: every row matches it as it was read, in input order.
	for query, match := range map[string]func(browseItem) bool{
		"status=pending":           func(r browseItem) bool { return r.Status == "pending" },
		"status=running,completed": func(r browseItem) bool { return r.Status == "running" || r.Status == "completed" },
		"status=failed":            func(r browseItem) bool { return r.Status == "failed" && (want400[r.CustomID] || want500[r.CustomID]) },
		"model=m-b":                func(r browseItem) bool { return r.Model == "m-b" },
		"search=REQ_19":            func(r browseItem) bool { return strings.HasPrefix(r.CustomID, "req_19") },
		"search=1&model=m-a":       func(r browseItem) bool { return strings.Contains(r.CustomID, "1") && r.Model == "m-a" },
	} {
		rows := v.browseAll(key, b.ID, query, 50)
		for i, r := range rows {
			require.True(t, match(r), "%s: %+v", query, r)
			if i > 0 {
				require.Greater(t, r.Line, rows[i-1].Line, query)
			}
		}
	}
	running, err := c.Batches.Get(ctx(t), b.ID)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusInProgress, running.Status, "the filters were read while the batch ran")
	final := waitBatch(t, c, b.ID, 120*time.Second, terminal)
	require.Equal(t, openai.BatchStatusCompleted, final.Status)
	out, errs := checkExactlyOnce(t, c, final, ids)
	require.Len(t, errs, len(want400)+len(want500))

	// After: each filter, paged, agrees with the files.
	all := v.browseAll(key, b.ID, "include=body", 333)
	require.Len(t, all, n)
	for i, r := range all {
		require.Equal(t, ids[i], r.CustomID)
		require.JSONEq(t, bodies[r.CustomID], string(r.Body), "include=body is the uploaded body")
		switch {
		case want400[r.CustomID]:
			require.Equal(t, "failed", r.Status)
			require.Nil(t, r.Error, "an upstream answer: error is null, as in the error line")
			require.Equal(t, 400, r.Response.StatusCode)
			require.Equal(t, 1, r.Attempts)
		case want500[r.CustomID]:
			require.Equal(t, "failed", r.Status)
			require.Equal(t, 500, r.Response.StatusCode)
			require.Equal(t, 5, r.Attempts)
		default:
			require.Equal(t, "completed", r.Status)
			require.Equal(t, 200, r.Response.StatusCode)
			require.Nil(t, r.Error)
			line := out[r.CustomID]
			require.Equal(t, line.Response.RequestID, r.Response.RequestID, "as the output line says")
			require.JSONEq(t, string(line.Response.Body), string(r.Response.Body))
		}
	}
	failed := v.browseAll(key, b.ID, "status=failed", 7)
	require.Len(t, failed, len(errs))
	for _, r := range failed {
		require.Contains(t, errs, r.CustomID)
		require.Equal(t, errs[r.CustomID].Response.StatusCode, r.Response.StatusCode)
	}
	require.Len(t, v.browseAll(key, b.ID, "status=completed&status=failed", 1000), n)
	require.Len(t, v.browseAll(key, b.ID, "status=pending,running", 1000), 0)
	modelB := v.browseAll(key, b.ID, "model=m-b", 250)
	require.Len(t, modelB, n/2)
	for _, r := range modelB {
		require.Equal(t, "m-b", r.Model)
	}
	search := v.browseAll(key, b.ID, "search=REQ_19", 10) // case-insensitive; _ literal
	require.Len(t, search, 100)
	require.Len(t, v.browseAll(key, b.ID, "search="+url.QueryEscape("q_1%"), 10), 0, "% matches only itself")
	require.Len(t, v.browseAll(key, b.ID, "search=_01&status=failed&model=m-a", 10), 1, "req_0194 is the only failed m-a line with _01")

	// Retry the failures: a new batch of exactly those lines, the old batch unchanged.
	var retried struct {
		ID            string              `json:"id"`
		Status        string              `json:"status"`
		Metadata      map[string]string   `json:"metadata"`
		RequestCounts struct{ Total int } `json:"request_counts"`
	}
	status, raw := v.api(http.MethodPost, "/v1/batches/"+b.ID+"/retry", key, "", &retried)
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Equal(t, b.ID, retried.Metadata["volley_retry_of"])
	require.Equal(t, len(errs), retried.RequestCounts.Total)
	again := waitBatch(t, c, retried.ID, 60*time.Second, terminal)
	var retriedIDs []string
	for _, id := range ids {
		if want400[id] || want500[id] {
			retriedIDs = append(retriedIDs, id)
		}
	}
	out2, errs2 := checkExactlyOnce(t, c, again, retriedIDs)
	require.Len(t, out2, len(want500), "the 500s answer the second time")
	require.Len(t, errs2, len(want400), "the 400s fail again")
	for id := range errs2 {
		require.True(t, want400[id], id)
	}
	unchanged, err := c.Batches.Get(ctx(t), b.ID)
	require.NoError(t, err)
	require.Equal(t, final.RequestCounts, unchanged.RequestCounts)
	require.Equal(t, final.OutputFileID, unchanged.OutputFileID)
	require.Equal(t, final.ErrorFileID, unchanged.ErrorFileID)
	outAgain, errsAgain := checkExactlyOnce(t, c, unchanged, ids)
	require.Equal(t, len(out), len(outAgain))
	require.Equal(t, len(errs), len(errsAgain))
}

// Deleting a running batch aborts its calls; it and its files are gone, and the SDK sees a 404.
func TestDeleteARunningBatch(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "60s")
	v := startVolley(t, dispatchEnv(t, m, 2)...)
	key := v.key("alice")
	c := v.client(key)
	lines, _ := manyLines("d", "slow", 6)
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")
	require.Eventually(t, func() bool { return m.stats().InFlight == 2 }, 20*time.Second, 20*time.Millisecond)

	status, raw := v.api(http.MethodDelete, "/v1/batches/"+b.ID, key, "", nil)
	require.Equal(t, http.StatusOK, status, string(raw))
	require.JSONEq(t, fmt.Sprintf(`{"id":%q,"object":"batch","deleted":true}`, b.ID), string(raw))
	_, err := c.Batches.Get(ctx(t), b.ID)
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	page, err := c.Batches.List(ctx(t), openai.BatchListParams{})
	require.NoError(t, err)
	require.Empty(t, page.Data)
	require.Eventually(t, func() bool { return m.stats().Canceled == 2 }, 20*time.Second, 20*time.Millisecond,
		"the in-flight calls were aborted")
	files, err := c.Files.List(ctx(t), openai.FileListParams{})
	require.NoError(t, err)
	for _, f := range files.Data {
		require.Equal(t, "batch", string(f.Purpose), "no output or error file of the deleted batch appears")
	}
}
