package e2e

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"
)

// A configuration routing two models to the mock, one of them priced.
func pricedConfig(t *testing.T, m *mock) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "volley.yaml")
	yaml := fmt.Sprintf(`upstreams:
  mock:
    url: %s
    api_key: upstream-secret
models:
  - name: priced
    upstream: mock
    concurrency: 4
    price: {input: 2.0, output: 8.0, batch_discount: 0.5}
  - name: free
    upstream: mock
    concurrency: 4
`, m.v1())
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return "VOLLEY_CONFIG=" + path
}

// pricedLine is a chat line for model with a max_tokens cap; it returns the line and its body.
func pricedLine(customID, model string, maxTokens int) (line, body string) {
	body = fmt.Sprintf(`{"model":%q,"max_tokens":%d,"messages":[{"role":"user","content":"hello %s"}]}`, model, maxTokens, customID)
	return fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":%s}`+"\n", customID, body), body
}

// Through the SDK against a real server: list filters and paging of batches, the stats of a file
// over two models against a price table, and the queue's deadline windows for batches of a 1h and a
// 24h window, as their owner and as an admin sees them.
func TestFindAndPriceThings(t *testing.T) {
	t.Parallel()
	m := startMock(t)
	// Nothing is dispatched while the models are absent, so the queue holds still.
	v := startVolley(t, pricedConfig(t, m), "VOLLEY_POLL_INTERVAL=100ms", "VOLLEY_MODEL_TRICKLE_INTERVAL=0")
	admin, ok := v.adminKey("ops")
	require.True(t, ok)
	for _, model := range []string{"priced", "free"} {
		status, body := v.api(http.MethodPost, "/v1/models/"+model+"/availability", admin, `{"state":"absent"}`, nil)
		require.Equal(t, http.StatusOK, status, string(body))
	}
	aliceKey, bobKey := v.key("alice"), v.key("bob")
	alice, bob := v.client(aliceKey), v.client(bobKey)

	// Stats: three priced lines and two free ones, each capped.
	var lines []string
	var pricedBytes, freeBytes int64
	for i, model := range []string{"priced", "priced", "priced", "free", "free"} {
		l, body := pricedLine(fmt.Sprintf("r%d", i), model, 100)
		lines = append(lines, l)
		if model == "priced" {
			pricedBytes += int64(len(body))
		} else {
			freeBytes += int64(len(body))
		}
	}
	fileA := uploadLines(t, alice, lines...)
	var stats struct {
		Object   string `json:"object"`
		Lines    int64  `json:"lines"`
		Requests int64  `json:"requests"`
		Models   []struct {
			Model                 string   `json:"model"`
			Requests              int64    `json:"requests"`
			BodyBytes             int64    `json:"body_bytes"`
			EstimatedInputTokens  int64    `json:"estimated_input_tokens"`
			EstimatedOutputTokens *int64   `json:"estimated_output_tokens"`
			EstimatedCost         *float64 `json:"estimated_cost"`
		} `json:"models"`
	}
	require.NoError(t, alice.Get(ctx(t), "files/"+fileA+"/stats", nil, &stats))
	require.Equal(t, "file.stats", stats.Object)
	require.EqualValues(t, 5, stats.Requests)
	require.Len(t, stats.Models, 2)
	byModel := map[string]int{}
	for i, ms := range stats.Models {
		byModel[ms.Model] = i
	}
	p, f := stats.Models[byModel["priced"]], stats.Models[byModel["free"]]
	require.EqualValues(t, 3, p.Requests)
	require.Equal(t, pricedBytes, p.BodyBytes)
	require.Equal(t, (pricedBytes+3)/4, p.EstimatedInputTokens, "a token per 4 bytes of body, rounded up")
	require.NotNil(t, p.EstimatedOutputTokens)
	require.EqualValues(t, 300, *p.EstimatedOutputTokens, "the caps")
	require.NotNil(t, p.EstimatedCost)
	want := (float64(p.EstimatedInputTokens)*2.0 + 300*8.0) / 1e6 * 0.5
	require.InDelta(t, want, *p.EstimatedCost, 1e-6)
	require.Equal(t, freeBytes, f.BodyBytes)
	require.EqualValues(t, 200, *f.EstimatedOutputTokens)
	require.Nil(t, f.EstimatedCost, "no price, no cost")
	status, _ := v.api(http.MethodGet, "/v1/files/"+fileA+"/stats", bobKey, "", nil)
	require.Equal(t, http.StatusNotFound, status, "another owner's file")

	// Batches of a 1h and a 24h window, and one cancelled.
	l1, _ := pricedLine("x1", "priced", 10)
	l2, _ := pricedLine("x2", "priced", 10)
	fileB := uploadLines(t, alice, l1, l2)
	hour := createBatch(t, alice, fileA, "1h")
	day := createBatch(t, alice, fileB, "24h")
	gone := createBatch(t, alice, fileB, "24h")
	_, err := alice.Batches.Cancel(ctx(t), gone.ID)
	require.NoError(t, err)
	// Wait for the cancel to finish: a batch still cancelling counts as active
	// and would move between pages of the active_first list below.
	waitBatch(t, alice, gone.ID, 30*time.Second, func(b *openai.Batch) bool { return b.Status == openai.BatchStatusCancelled })
	lb, _ := pricedLine("b1", "free", 10)
	bobs := createBatch(t, bob, uploadLines(t, bob, lb), "24h")

	list := func(c openai.Client, query map[string]string) []string {
		t.Helper()
		opts := []option.RequestOption{}
		for k, val := range query {
			opts = append(opts, option.WithQuery(k, val))
		}
		var ids []string
		it := c.Batches.ListAutoPaging(ctx(t), openai.BatchListParams{Limit: openai.Int(1)}, opts...)
		for it.Next() {
			ids = append(ids, it.Current().ID)
		}
		require.NoError(t, it.Err())
		return ids
	}
	require.Equal(t, []string{gone.ID, day.ID, hour.ID}, list(alice, nil), "newest first, a page of one at a time")
	require.Equal(t, []string{gone.ID}, list(alice, map[string]string{"status": "cancelled"}))
	require.Equal(t, []string{day.ID, hour.ID}, list(alice, map[string]string{"status": "in_progress"}))
	require.Equal(t, []string{gone.ID, day.ID}, list(alice, map[string]string{"input_file_id": fileB}))
	require.Equal(t, []string{day.ID, hour.ID, gone.ID}, list(alice, map[string]string{"active_first": "true"}))
	require.Equal(t, []string{hour.ID}, list(alice, map[string]string{"search": hour.ID[len(hour.ID)-10:]}))
	require.Empty(t, list(alice, map[string]string{"created_after": fmt.Sprint(math.MaxInt32)}))
	require.Equal(t, []string{bobs.ID}, list(v.client(admin), map[string]string{"owner": "bob"}), "an admin reads another owner's list")
	status, _ = v.api(http.MethodGet, "/v1/batches?owner=bob", aliceKey, "", nil)
	require.Equal(t, http.StatusBadRequest, status, "a plain key may not")

	// Queue windows: the owner's own, and everyone's for an admin.
	type queue struct {
		WindowsScope string `json:"windows_scope"`
		Data         []struct {
			Model           string `json:"model"`
			Pending         int64  `json:"pending"`
			DeadlineWindows []struct {
				Window  string `json:"window"`
				Pending int64  `json:"pending"`
			} `json:"deadline_windows"`
		} `json:"data"`
	}
	windows := func(key string) (string, map[string]map[string]int64) {
		t.Helper()
		var q queue
		status, body := v.api(http.MethodGet, "/v1/queue?windows=1h,24h", key, "", &q)
		require.Equal(t, http.StatusOK, status, string(body))
		out := map[string]map[string]int64{}
		for _, d := range q.Data {
			out[d.Model] = map[string]int64{}
			for _, w := range d.DeadlineWindows {
				out[d.Model][w.Window] = w.Pending
			}
		}
		return q.WindowsScope, out
	}
	scope, own := windows(aliceKey)
	require.Equal(t, "own", scope)
	require.Equal(t, map[string]int64{"overdue": 0, "within_1h": 3, "within_24h": 2, "later": 0}, own["priced"],
		"the 1h batch's three priced lines, the 24h batch's two; the cancelled batch's are not pending")
	require.Equal(t, map[string]int64{"overdue": 0, "within_1h": 2, "within_24h": 0, "later": 0}, own["free"])
	scope, all := windows(admin)
	require.Equal(t, "all", scope)
	require.Equal(t, map[string]int64{"overdue": 0, "within_1h": 2, "within_24h": 1, "later": 0}, all["free"], "bob's line too")
}
