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
