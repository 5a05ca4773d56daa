package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/upstream"
)

// withRoutes routes models m1 and m2 (and only them) to an upstream that is never called.
func withRoutes(t *testing.T) *upstream.Router {
	t.Helper()
	cfg, err := upstream.Parse([]byte(`upstreams:
  u:
    url: http://127.0.0.1:9/v1
models:
  - name: m1
    upstream: u
    concurrency: 2
  - name: m2
    upstream: u
    concurrency: 2
`), "test.yaml", func(string) string { return "" })
	require.NoError(t, err)
	return upstream.NewRouter(cfg)
}

func setupBatches(t *testing.T) *fixture {
	f := setup(t)
	f.server.router = withRoutes(t)
	return f
}

func (f *fixture) postJSON(path, key, body string) (int, []byte) {
	f.t.Helper()
	status, _, b := f.do(http.MethodPost, path, key, strings.NewReader(body), http.Header{"Content-Type": {"application/json"}})
	return status, b
}

type batchJSON struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	Status        string            `json:"status"`
	Model         *string           `json:"model"`
	CreatedAt     int64             `json:"created_at"`
	ExpiresAt     int64             `json:"expires_at"`
	InProgressAt  *int64            `json:"in_progress_at"`
	CancellingAt  *int64            `json:"cancelling_at"`
	OutputFileID  *string           `json:"output_file_id"`
	ErrorFileID   *string           `json:"error_file_id"`
	Metadata      map[string]string `json:"metadata"`
	RequestCounts struct {
		Total, Completed, Failed int
	} `json:"request_counts"`
}

func (f *fixture) createBatch(key, body string) batchJSON {
	f.t.Helper()
	status, b := f.postJSON("/v1/batches", key, body)
	require.Equal(f.t, http.StatusOK, status, string(b))
	var out batchJSON
	require.NoError(f.t, json.Unmarshal(b, &out))
	return out
}

func TestCreateBatchRejectsBadInput(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	good := f.uploadOK(f.alice, lines(3)).ID
	mixed := f.uploadOK(f.alice, line("a")+"\n"+strings.Replace(line("b"), "/v1/chat/completions", "/v1/embeddings", 1)+"\n").ID
	unroutable := f.uploadOK(f.alice, line("a")+"\n"+strings.Replace(line("b"), `"m1"`, `"gpt-unknown"`, 1)+"\n").ID
	bobs := f.uploadOK(f.bob, lines(1)).ID
	req := func(fileID, endpoint, window, extra string) string {
		return fmt.Sprintf(`{"input_file_id":%q,"endpoint":%q,"completion_window":%q%s}`, fileID, endpoint, window, extra)
	}
	many := map[string]string{}
	for i := 0; i < 17; i++ {
		many[fmt.Sprint("k", i)] = "v"
	}
	manyJSON, _ := json.Marshal(many)
	cases := []struct {
		name, body, code, param, message string
	}{
		{"not json", `{"input_file_id":`, "invalid_json", "", "could not parse the JSON body"},
		{"missing file", `{"endpoint":"/v1/chat/completions","completion_window":"24h"}`, "missing_required_parameter", "input_file_id", "'input_file_id'"},
		{"missing endpoint", req(good, "", "24h", ""), "missing_required_parameter", "endpoint", "'endpoint'"},
		{"bad endpoint", req(good, "/v1/images/generations", "24h", ""), "invalid_value", "endpoint", "'/v1/chat/completions'"},
		{"missing window", req(good, "/v1/chat/completions", "", ""), "missing_required_parameter", "completion_window", "'completion_window'"},
		{"bad window", req(good, "/v1/chat/completions", "1d", ""), "invalid_value", "completion_window", "'1d'"},
		{"window too long", req(good, "/v1/chat/completions", "169h", ""), "invalid_value", "completion_window", "between '1m' and '168h'"},
		{"too much metadata", req(good, "/v1/chat/completions", "24h", `,"metadata":`+string(manyJSON)), "invalid_value", "metadata", "at most 16"},
		{"metadata value too long", req(good, "/v1/chat/completions", "24h", `,"metadata":{"k":"`+strings.Repeat("v", 513)+`"}`), "invalid_value", "metadata", "longer than 512"},
		{"output expiry anchor", req(good, "/v1/chat/completions", "24h", `,"output_expires_after":{"anchor":"now","seconds":3600}`), "invalid_value", "output_expires_after.anchor", "'created_at'"},
		{"output expiry seconds", req(good, "/v1/chat/completions", "24h", `,"output_expires_after":{"anchor":"created_at","seconds":5}`), "invalid_value", "output_expires_after.seconds", "3600"},
		{"unknown service tier", req(good, "/v1/chat/completions", "24h", `,"service_tier":"lowest"`), "invalid_value", "service_tier", "'lowest'. Supported values are 'auto', 'default', 'flex' and 'background'"},
		{"unknown file", req("file-nope", "/v1/chat/completions", "24h", ""), "invalid_input_file", "input_file_id", "No such File object: file-nope"},
		{"another owner's file", req(bobs, "/v1/chat/completions", "24h", ""), "invalid_input_file", "input_file_id", "No such File object"},
		{"url mismatch", req(mixed, "/v1/chat/completions", "24h", ""), "url_mismatch", "endpoint", "Line 2: url '/v1/embeddings'"},
		{"metadata value null", req(good, "/v1/chat/completions", "24h", `,"metadata":{"a":"x","k":null}`), "invalid_value", "metadata", "the value of 'k' must be a string, got null"},
		{"metadata value a number", req(good, "/v1/chat/completions", "24h", `,"metadata":{"k":1}`), "invalid_value", "metadata", "got a number"},
		{"metadata value an object", req(good, "/v1/chat/completions", "24h", `,"metadata":{"k":{}}`), "invalid_value", "metadata", "got an object"},
		{"a 10 KB file id", req("file-"+strings.Repeat("f", 10_000), "/v1/chat/completions", "24h", ""), "invalid_input_file", "input_file_id", "No such File object: file-fff"},
		{"unroutable model", req(unroutable, "/v1/chat/completions", "24h", ""), "model_not_found", "input_file_id", "Line 2: model 'gpt-unknown'"},
	}
	for _, tc := range cases {
		status, body := f.postJSON("/v1/batches", f.alice, tc.body)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", tc.name, body)
		e := decodeEnvelope(t, body)
		require.Equal(t, tc.code, strOrEmpty(e.Error.Code), "%s: %s", tc.name, e.Error.Message)
		require.Equal(t, tc.param, strOrEmpty(e.Error.Param), "%s: %s", tc.name, e.Error.Message)
		require.Contains(t, e.Error.Message, tc.message, tc.name)
		require.Less(t, len(e.Error.Message), 400, "%s: a long value is not echoed whole", tc.name)
	}
	var batches, requests int
	require.NoError(t, f.pool.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM batches), (SELECT count(*) FROM requests)").Scan(&batches, &requests))
	require.Zero(t, batches, "no refused batch is stored")
	require.Zero(t, requests, "no request of a refused batch is stored")
}

func TestCreateBatchAndCancelIt(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	fileID := f.uploadOK(f.alice, lines(3)+"\n").ID
	b := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"90m","metadata":{"team":"ml"}}`, fileID))
	require.Equal(t, "in_progress", b.Status)
	require.Equal(t, "batch", b.Object)
	require.Equal(t, b.CreatedAt+90*60, b.ExpiresAt)
	require.Equal(t, "m1", *b.Model)
	require.Equal(t, 3, b.RequestCounts.Total, "blank lines are not requests")
	require.Equal(t, map[string]string{"team": "ml"}, b.Metadata)
	require.Nil(t, b.OutputFileID)

	// Another owner can neither see nor cancel it.
	for _, r := range [][2]string{{http.MethodGet, "/v1/batches/" + b.ID}, {http.MethodPost, "/v1/batches/" + b.ID + "/cancel"}} {
		status, _, body := f.do(r[0], r[1], f.bob, nil, nil)
		require.Equal(t, http.StatusNotFound, status, r)
		require.Equal(t, "No batch found with id '"+b.ID+"'.", decodeEnvelope(t, body).Error.Message)
	}
	status, _, body := f.do(http.MethodGet, "/v1/batches", f.bob, nil, nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `"data":[]`)

	// No daemon runs here, so cancelling ends every request at once; Python's empty JSON body is fine.
	status, _, body = f.do(http.MethodPost, "/v1/batches/"+b.ID+"/cancel", f.alice, nil, http.Header{"Content-Type": {"application/json"}})
	require.Equal(t, http.StatusOK, status, string(body))
	var c batchJSON
	require.NoError(t, json.Unmarshal(body, &c))
	require.Equal(t, "cancelling", c.Status)
	require.NotNil(t, c.CancellingAt)
	require.Equal(t, 3, c.RequestCounts.Failed, "pending requests are settled at once")
	status, _, _ = f.do(http.MethodPost, "/v1/batches/"+b.ID+"/cancel", f.alice, nil, nil)
	require.Equal(t, http.StatusOK, status, "cancelling twice is fine")
}

// A batch may use several models (beyond OpenAI); its model field is then null.
func TestABatchOverSeveralModels(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	content := line("a") + "\n" + strings.Replace(line("b"), `"model":"m1"`, `"model":"m2"`, 1) + "\n"
	b := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"1h"}`, f.uploadOK(f.alice, content).ID))
	require.Nil(t, b.Model)
	require.Equal(t, 2, b.RequestCounts.Total)
	require.Equal(t, b.CreatedAt+3600, b.ExpiresAt)
	var models []string
	rows, err := f.pool.Query(t.Context(), "SELECT model FROM requests WHERE batch_id = $1 ORDER BY line", b.ID)
	require.NoError(t, err)
	for rows.Next() {
		var m string
		require.NoError(t, rows.Scan(&m))
		models = append(models, m)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"m1", "m2"}, models, "each request keeps its own model")
}

func TestListBatchesRejectsBadLimits(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	for _, q := range []string{"?limit=0", "?limit=101", "?limit=x", "?limit=%zz", "?after=x&limit=%4"} {
		status, _, body := f.do(http.MethodGet, "/v1/batches"+q, f.alice, nil, nil)
		require.Equal(t, http.StatusBadRequest, status, q)
		require.Equal(t, "limit", strOrEmpty(decodeEnvelope(t, body).Error.Param), q)
	}
	status, _, body := f.do(http.MethodGet, "/v1/batches/batch_nope", f.alice, nil, nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, "batch_id", strOrEmpty(decodeEnvelope(t, body).Error.Param))
}

func TestDeletingAnInputFileKeepsWhatARunningBatchReads(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	fileID := f.uploadOK(f.alice, lines(2)).ID
	b := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, fileID))
	status, _, _ := f.do(http.MethodDelete, "/v1/files/"+fileID, f.alice, nil, nil)
	require.Equal(t, http.StatusOK, status)
	status, _, _ = f.do(http.MethodGet, "/v1/files/"+fileID, f.alice, nil, nil)
	require.Equal(t, http.StatusNotFound, status, "the file is gone for its owner at once")
	_, lineRows := f.rowCounts()
	require.Equal(t, 2, lineRows, "the running batch still reads its lines")

	// A batch can no longer be made from it.
	status, body := f.postJSON("/v1/batches", f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, fileID))
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "invalid_input_file", strOrEmpty(decodeEnvelope(t, body).Error.Code))
	_ = b
}

// Regression: the generated JSON decoder stops after the first value, so trailing data was accepted.
func TestJSONBodiesWithTrailingDataAreRefused(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	fileID := f.uploadOK(f.alice, lines(1)).ID
	for _, body := range []string{
		fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"} this is not JSON`, fileID),
		fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}{}`, fileID),
		`{"input_file_id":` + strings.Repeat("[", 10000),
	} {
		status, b := f.postJSON("/v1/batches", f.alice, body)
		require.Equal(t, http.StatusBadRequest, status, string(b))
		require.Equal(t, "invalid_json", strOrEmpty(decodeEnvelope(t, b).Error.Code))
	}
	status, b := f.postJSON("/v1/responses", f.alice, `{"model":"m1","input":"hi","background":true} trailing`)
	require.Equal(t, http.StatusBadRequest, status, string(b))
	var n int
	require.NoError(t, f.pool.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM batches) + (SELECT count(*) FROM responses)").Scan(&n))
	require.Zero(t, n)
}

// Regression: ids holding a NUL byte or invalid UTF-8 made PostgreSQL refuse the lookup, which
// answered 500.
func TestUnstorableIDsAreClientErrors(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	for _, path := range []string{"/v1/files/%00", "/v1/files/%ff", "/v1/files/%00/content", "/v1/batches/%00", "/v1/batches/%ff",
		"/v1/responses/%00", "/v1/files?after=%00", "/v1/batches?after=%ff"} {
		status, _, body := f.do(http.MethodGet, path, f.alice, nil, nil)
		require.Contains(t, []int{http.StatusBadRequest, http.StatusNotFound}, status, "%s: %s", path, body)
		decodeEnvelope(t, body)
	}
	// A filename with invalid UTF-8 is cleaned, not refused.
	status, body := f.upload(f.alice, false, part{name: "purpose", content: "batch"}, part{name: "file", filename: "ab\xffc.jsonl", content: lines(1)})
	require.Equal(t, http.StatusOK, status, string(body))
	var got fileJSON
	require.NoError(t, jsonUnmarshal(body, &got))
	require.Equal(t, "ab\uFFFDc.jsonl", got.Filename)
}

// A request running when its batch is cancelled must never be sent again, even when it comes back
// to the queue (its replica stopped or was declared dead before recording it).
func TestACancelledBatchsRunningRequestsAreNotClaimedAgain(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	ctx := t.Context()
	fileID := f.uploadOK(f.alice, lines(3)).ID
	b := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, fileID))

	q := dbsqlc.New(f.pool)
	claimFor := func(daemonID int64) []dbsqlc.RequestClaimRow {
		c, err := db.ClaimRequests(ctx, f.pool, dbsqlc.RequestClaimParams{DaemonID: daemonID, DefaultLimit: 10, MaxClaim: 2, FreshSeconds: 60})
		require.NoError(t, err)
		return c.Rows
	}
	first, err := q.DaemonRegister(ctx, dbsqlc.DaemonRegisterParams{Host: "a", Pid: 1})
	require.NoError(t, err)
	require.Len(t, claimFor(first), 2, "two requests running, one pending")

	status, _, body := f.do(http.MethodPost, "/v1/batches/"+b.ID+"/cancel", f.alice, nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))

	handed, err := q.DaemonHandBack(ctx, &first)
	require.NoError(t, err)
	require.EqualValues(t, 2, handed, "the running requests are back in the queue")
	second, err := q.DaemonRegister(ctx, dbsqlc.DaemonRegisterParams{Host: "b", Pid: 2})
	require.NoError(t, err)
	require.Empty(t, claimFor(second), "no request of a cancelled batch is claimed again")
}
