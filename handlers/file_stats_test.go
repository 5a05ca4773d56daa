package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/upstream"
)

func TestFileStatsEstimateCostsFromThePriceTable(t *testing.T) {
	t.Parallel()
	f := setup(t)
	cfg, err := upstream.Parse([]byte(`upstreams:
  u:
    url: http://127.0.0.1:9/v1
models:
  - name: m1
    upstream: u
    price: {input: 2, output: 8, batch_discount: 0.5}
  - name: m2
    upstream: u
`), "test.yaml", func(string) string { return "" })
	require.NoError(t, err)
	f.server.router = upstream.NewRouter(cfg)

	body := func(model, extra string) string {
		return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello"}]%s}`, model, extra)
	}
	bodies := []struct{ model, body string }{
		{"m1", body("m1", `,"max_tokens":100`)},
		{"m1", body("m1", `,"max_completion_tokens":50,"max_tokens":999`)}, // the newer name wins
		{"m1", body("m1", "")},                                             // no cap: the model's average
		{"m2", body("m2", `,"max_tokens":"many"`)},                         // not a number: no cap
		{"m2", body("m2", `,"max_tokens":10`)},
	}
	var content strings.Builder
	var m1Bytes, m2Bytes int64
	for i, b := range bodies {
		fmt.Fprintf(&content, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":%s}`+"\n", i, b.body)
		if b.model == "m1" {
			m1Bytes += int64(len(b.body))
		} else {
			m2Bytes += int64(len(b.body))
		}
		if i == 2 {
			content.WriteString("\n")
		}
	}
	file := f.uploadOK(f.alice, content.String())
	// m1's history: 30 output tokens per completed request.
	_, err = f.pool.Exec(context.Background(), `INSERT INTO batches (id, owner, input_file_id, endpoint, completion_window, model, status, created_at, expires_at, total, completed, output_tokens)
		VALUES ('batch_old', 'bob', 'file-x', '/v1/chat/completions', '24h', 'm1', 'completed', now(), now(), 4, 4, 120)`)
	require.NoError(t, err)

	var stats struct {
		Object   string `json:"object"`
		ID       string `json:"id"`
		Lines    int64  `json:"lines"`
		Requests int64  `json:"requests"`
		Bytes    int64  `json:"bytes"`
		Models   []struct {
			Model                 string   `json:"model"`
			Requests              int64    `json:"requests"`
			BodyBytes             int64    `json:"body_bytes"`
			EstimatedInputTokens  int64    `json:"estimated_input_tokens"`
			EstimatedOutputTokens *int64   `json:"estimated_output_tokens"`
			EstimatedCost         *float64 `json:"estimated_cost"`
		} `json:"models"`
	}
	status, raw := f.getJSON("/v1/files/"+file.ID+"/stats", f.alice, &stats)
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Equal(t, "file.stats", stats.Object)
	require.Equal(t, file.ID, stats.ID)
	require.Equal(t, int64(6), stats.Lines)
	require.Equal(t, int64(5), stats.Requests)
	require.Equal(t, file.Bytes, stats.Bytes)
	require.Len(t, stats.Models, 2)
	m1, m2 := stats.Models[0], stats.Models[1]
	require.Equal(t, "m1", m1.Model)
	require.Equal(t, int64(3), m1.Requests)
	require.Equal(t, m1Bytes, m1.BodyBytes)
	require.Equal(t, (m1Bytes+3)/4, m1.EstimatedInputTokens)
	require.Equal(t, int64(100+50+30), *m1.EstimatedOutputTokens)
	wantCost := (float64(m1.EstimatedInputTokens)*2 + 180*8) / 1e6 * 0.5
	require.InDelta(t, wantCost, *m1.EstimatedCost, 1e-6)
	require.Equal(t, "m2", m2.Model)
	require.Equal(t, m2Bytes, m2.BodyBytes)
	require.Nil(t, m2.EstimatedOutputTokens, "one request sets no cap and m2 has no history")
	require.Nil(t, m2.EstimatedCost)

	// m2 with history, still no price: tokens but no cost.
	_, err = f.pool.Exec(context.Background(), `INSERT INTO batches (id, owner, input_file_id, endpoint, completion_window, model, status, created_at, expires_at, total, completed, output_tokens)
		VALUES ('batch_old2', 'bob', 'file-x', '/v1/chat/completions', '24h', 'm2', 'completed', now(), now(), 2, 2, 41)`)
	require.NoError(t, err)
	f.getJSON("/v1/files/"+file.ID+"/stats", f.alice, &stats)
	require.Equal(t, int64(10+21), *stats.Models[1].EstimatedOutputTokens) // 20.5 rounds to 21
	require.Nil(t, stats.Models[1].EstimatedCost)

	status, raw = f.getJSON("/v1/files/"+file.ID+"/stats", f.bob, nil)
	require.Equal(t, http.StatusNotFound, status, string(raw))
	var e envelope
	require.NoError(t, json.Unmarshal(raw, &e))
}
