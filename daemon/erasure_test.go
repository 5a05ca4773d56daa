package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/handlers"
	"github.com/volleyhq/volley/internal/apikey"
	"github.com/volleyhq/volley/internal/config"
	"github.com/volleyhq/volley/internal/tools/testdb"
	"github.com/volleyhq/volley/internal/upstream"
)

// tablesHolding lists the tables with a row whose text, bytea or jsonb columns contain marker.
func tablesHolding(t *testing.T, pool *pgxpool.Pool, marker string) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
		WHERE table_schema = 'public' AND data_type IN ('text', 'bytea', 'jsonb') ORDER BY table_name, column_name`)
	require.NoError(t, err)
	type col struct{ table, column, kind string }
	var cols []col
	for rows.Next() {
		var c col
		require.NoError(t, rows.Scan(&c.table, &c.column, &c.kind))
		cols = append(cols, c)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, cols)
	var holding []string
	for _, c := range cols {
		expr := fmt.Sprintf("position(convert_to($1, 'UTF8') IN %q) > 0", c.column)
		if c.kind != "bytea" {
			expr = fmt.Sprintf("strpos(%q::text, $1) > 0", c.column)
		}
		var n int
		require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %q WHERE %s", c.table, expr), marker).Scan(&n))
		if n > 0 {
			holding = append(holding, fmt.Sprintf("%s.%s (%d rows)", c.table, c.column, n))
		}
	}
	return holding
}

// Deleting a file and the batch made from it, then one janitor pass, leaves none of their bytes in
// any table: neither the input lines nor the bodies nor the upstream's answers.
func TestDeletingAFileAndItsBatchErasesTheirBytes(t *testing.T) {
	t.Parallel()
	const marker = "ERASE-ME-7f3a"
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		text := "echo"
		if bytes.Contains(body, []byte(marker)) {
			text = "echo " + marker
		}
		if bytes.Contains(body, []byte("fail")) {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":{"message":%q,"type":"invalid_request_error"}}`, text)
			return
		}
		fmt.Fprintf(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":%q}}]}`, text)
	}))
	t.Cleanup(echo.Close)

	pool := testdb.New(t)
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	ucfg, err := upstream.Parse([]byte(fmt.Sprintf("upstreams:\n  u:\n    url: %s/v1\nmodels:\n  - name: \"*\"\n    upstream: u\n    concurrency: 4\n", echo.URL)), "test.yaml", func(string) string { return "" })
	require.NoError(t, err)
	srv := handlers.New(pool, config.Default(), upstream.NewRouter(ucfg), nil, logger)
	t.Cleanup(srv.Close)
	srv.MarkReady()
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)
	key, hash, display := apikey.New()
	_, err = dbsqlc.New(pool).APIKeyInsert(ctx, dbsqlc.APIKeyInsertParams{Owner: "alice", KeyHash: hash, KeyPrefix: display})
	require.NoError(t, err)
	call := func(method, path, contentType string, body io.Reader, out any) {
		t.Helper()
		req, err := http.NewRequest(method, api.URL+path, body)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		require.Equal(t, http.StatusOK, res.StatusCode, "%s %s: %s", method, path, b)
		if out != nil {
			require.NoError(t, json.Unmarshal(b, out))
		}
	}

	var content strings.Builder
	for i := 0; i < 20; i++ {
		word := "ok"
		if i%5 == 0 {
			word = "fail"
		}
		fmt.Fprintf(&content, `{"custom_id":"%s-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"%s %s"}]}}`+"\n", marker, i, word, marker)
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	require.NoError(t, mw.WriteField("purpose", "batch"))
	fw, err := mw.CreateFormFile("file", "in.jsonl")
	require.NoError(t, err)
	_, err = io.WriteString(fw, content.String())
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	var file struct{ ID string }
	call(http.MethodPost, "/v1/files", mw.FormDataContentType(), &form, &file)
	var batch struct{ ID string }
	call(http.MethodPost, "/v1/batches", "application/json",
		strings.NewReader(fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, file.ID)), &batch)

	cfg := DefaultConfig()
	cfg.PollInterval = 20 * time.Millisecond
	d := New(pool, cfg, ucfg, logger)
	require.NoError(t, d.Start(ctx))
	// Stopped before the pool is closed, also when the test fails early: a running dispatcher
	// holds connections that the pool's close would wait for.
	running := true
	stopDaemon := func() {
		if !running {
			return
		}
		running = false
		stop, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, d.Stop(stop))
	}
	t.Cleanup(stopDaemon)
	var ended struct {
		Status       string
		OutputFileID *string `json:"output_file_id"`
		ErrorFileID  *string `json:"error_file_id"`
	}
	require.Eventually(t, func() bool {
		call(http.MethodGet, "/v1/batches/"+batch.ID, "", nil, &ended)
		return ended.Status == "completed"
	}, 30*time.Second, 20*time.Millisecond)
	stopDaemon()
	require.NotNil(t, ended.OutputFileID)
	require.NotNil(t, ended.ErrorFileID)
	holding := tablesHolding(t, pool, marker)
	require.Contains(t, strings.Join(holding, " "), "file_lines.data", "the marker is found where it is")
	require.Contains(t, strings.Join(holding, " "), "requests.result")

	var deleted struct {
		ID      string
		Object  string
		Deleted bool
	}
	call(http.MethodDelete, "/v1/files/"+file.ID, "", nil, nil)
	call(http.MethodDelete, "/v1/batches/"+batch.ID, "", nil, &deleted)
	require.Equal(t, batch.ID, deleted.ID)
	require.Equal(t, "batch", deleted.Object)
	require.True(t, deleted.Deleted)
	d.janitor(ctx)
	require.Empty(t, tablesHolding(t, pool, marker), "no table holds any byte of the file or the batch")
	var batches, requests int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM batches").Scan(&batches))
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM requests").Scan(&requests))
	require.Zero(t, batches)
	require.Zero(t, requests)
}
