package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type requestJSON struct {
	Object     string           `json:"object"`
	CustomID   string           `json:"custom_id"`
	Line       int              `json:"line"`
	Model      string           `json:"model"`
	Status     string           `json:"status"`
	Attempts   int              `json:"attempts"`
	CreatedAt  int64            `json:"created_at"`
	StartedAt  *int64           `json:"started_at"`
	FinishedAt *int64           `json:"finished_at"`
	Response   *json.RawMessage `json:"response"`
	Error      *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Body *json.RawMessage `json:"body"`
}

type requestListJSON struct {
	Object  string        `json:"object"`
	Data    []requestJSON `json:"data"`
	FirstID *string       `json:"first_id"`
	LastID  *string       `json:"last_id"`
	HasMore bool          `json:"has_more"`
}

func (f *fixture) getJSON(path, key string, out any) (int, []byte) {
	f.t.Helper()
	status, _, b := f.do(http.MethodGet, path, key, nil, nil)
	if status == http.StatusOK && out != nil {
		require.NoError(f.t, json.Unmarshal(b, out), string(b))
	}
	return status, b
}

// browseFixture is a batch of alice's whose lines have varied custom_ids and two models, with
// some requests given results as the daemon would record them.
func browseFixture(t *testing.T) (*fixture, batchJSON, []string) {
	f := setupBatches(t)
	ids := []string{"a-1", "a_2", "A%3", `b\4`, "b 5/x", "c-6", "ca7", "c_8"}
	var content strings.Builder
	for i, id := range ids {
		model := "m1"
		if i%2 == 1 {
			model = "m2"
		}
		fmt.Fprintf(&content, `{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"n%d"}]}}`+"\n", id, model, i)
	}
	b := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, f.uploadOK(f.alice, content.String()).ID))
	ctx := context.Background()
	_, err := f.pool.Exec(ctx, `UPDATE requests SET state = 'completed', attempt = 1, claimed_at = now(), finished_at = now(),
		result = convert_to('{"id":"batch_req_x","custom_id":"a-1","response":{"status_code":200,"request_id":"req_1","body":{"ok":true}},"error":null}'||E'\n', 'UTF8')
		WHERE batch_id = $1 AND line = 1`, b.ID)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `UPDATE requests SET state = 'failed', attempt = 2, claimed_at = now(), finished_at = now(),
		result = convert_to('{"id":"batch_req_y","custom_id":"a_2","response":null,"error":{"code":"upstream_unreachable","message":"no"}}'||E'\n', 'UTF8')
		WHERE batch_id = $1 AND line = 2`, b.ID)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `UPDATE requests SET state = 'running', attempt = 1, claimed_at = now() WHERE batch_id = $1 AND line = 3`, b.ID)
	require.NoError(t, err)
	return f, b, ids
}

func TestBrowseBatchRequestsPagesInInputOrder(t *testing.T) {
	t.Parallel()
	f, b, ids := browseFixture(t)
	var seen []string
	after := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		var page requestListJSON
		q := "?limit=3"
		if after != "" {
			q += "&after=" + url.QueryEscape(after)
		}
		status, body := f.getJSON("/v1/batches/"+b.ID+"/requests"+q, f.alice, &page)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, "list", page.Object)
		for _, r := range page.Data {
			require.Equal(t, "batch.request", r.Object)
			require.Nil(t, r.Body, "no body without include=body")
			require.Equal(t, b.CreatedAt, r.CreatedAt)
			seen = append(seen, r.CustomID)
		}
		require.Equal(t, page.Data[0].CustomID, *page.FirstID)
		require.Equal(t, page.Data[len(page.Data)-1].CustomID, *page.LastID)
		if !page.HasMore {
			break
		}
		after = *page.LastID
	}
	require.Equal(t, ids, seen)

	var all requestListJSON
	f.getJSON("/v1/batches/"+b.ID+"/requests", f.alice, &all)
	require.Len(t, all.Data, len(ids))
	done := all.Data[0]
	require.Equal(t, "completed", done.Status)
	require.Equal(t, 1, done.Line)
	require.Equal(t, "m1", done.Model)
	require.NotNil(t, done.StartedAt)
	require.NotNil(t, done.FinishedAt)
	require.JSONEq(t, `{"status_code":200,"request_id":"req_1","body":{"ok":true}}`, string(*done.Response))
	require.Nil(t, done.Error)
	failed := all.Data[1]
	require.Equal(t, "failed", failed.Status)
	require.Equal(t, 2, failed.Attempts)
	require.Nil(t, failed.Response)
	require.Equal(t, "upstream_unreachable", failed.Error.Code)
	require.Equal(t, "running", all.Data[2].Status)
	require.Nil(t, all.Data[2].FinishedAt)
	pending := all.Data[3]
	require.Equal(t, "pending", pending.Status)
	require.Nil(t, pending.StartedAt)
	require.Nil(t, pending.Response)
	require.Nil(t, pending.Error)
	require.Zero(t, pending.Attempts)
}

func TestBrowseBatchRequestsFilters(t *testing.T) {
	t.Parallel()
	f, b, _ := browseFixture(t)
	cases := []struct {
		query string
		want  []string
	}{
		{"status=completed", []string{"a-1"}},
		{"status=completed,failed", []string{"a-1", "a_2"}},
		{"status=failed&status=running", []string{"a_2", "A%3"}},
		{"status=pending&model=m2", []string{`b\4`, "c-6", "c_8"}},
		{"model=m1", []string{"a-1", "A%3", "b 5/x", "ca7"}},
		{"search=A", []string{"a-1", "a_2", "A%3", "ca7"}},
		{"search=_", []string{"a_2", "c_8"}},                 // _ is not a wildcard
		{"search=%25", []string{"A%3"}},                      // nor is %
		{"search=" + url.QueryEscape(`\`), []string{`b\4`}},  // nor the escape character
		{"search=" + url.QueryEscape("a%"), []string{"A%3"}}, // case-insensitive, literal
		{"search=c&status=pending&limit=1", []string{"c-6"}},
		{"search=c&status=pending&limit=1&after=c-6", []string{"ca7"}},
		{"search=nothing", nil},
		{"include=body&search=5", []string{"b 5/x"}},
	}
	for _, c := range cases {
		var page requestListJSON
		status, body := f.getJSON("/v1/batches/"+b.ID+"/requests?"+c.query, f.alice, &page)
		require.Equal(t, http.StatusOK, status, "%s: %s", c.query, body)
		var got []string
		for _, r := range page.Data {
			got = append(got, r.CustomID)
		}
		require.Equal(t, c.want, got, c.query)
		if len(c.want) == 0 {
			require.Nil(t, page.FirstID)
			require.Nil(t, page.LastID)
			require.False(t, page.HasMore)
		}
	}
	var withBody requestListJSON
	f.getJSON("/v1/batches/"+b.ID+"/requests?include=body&search=5", f.alice, &withBody)
	require.JSONEq(t, `{"model":"m1","messages":[{"role":"user","content":"n4"}]}`, string(*withBody.Data[0].Body))
	var more requestListJSON
	f.getJSON("/v1/batches/"+b.ID+"/requests?search=c&limit=2", f.alice, &more)
	require.True(t, more.HasMore)
}

func TestRetrieveBatchRequestByCustomID(t *testing.T) {
	t.Parallel()
	f, b, ids := browseFixture(t)
	for i, id := range ids {
		var r requestJSON
		status, body := f.getJSON("/v1/batches/"+b.ID+"/requests/"+url.PathEscape(id), f.alice, &r)
		require.Equal(t, http.StatusOK, status, "%s: %s", id, body)
		require.Equal(t, id, r.CustomID)
		require.Equal(t, i+1, r.Line)
		require.NotNil(t, r.Body, "a single request always carries its body")
		require.JSONEq(t, fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"n%d"}]}`, r.Model, i), string(*r.Body))
	}
	status, body := f.getJSON("/v1/batches/"+b.ID+"/requests/nope", f.alice, nil)
	require.Equal(t, http.StatusNotFound, status)
	e := decodeEnvelope(t, body)
	require.Equal(t, "custom_id", strOrEmpty(e.Error.Param))
	require.Contains(t, e.Error.Message, "no request with custom_id 'nope'")
	// Another owner's batch does not exist for bob.
	status, body = f.getJSON("/v1/batches/"+b.ID+"/requests/a-1", f.bob, nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, "batch_id", strOrEmpty(decodeEnvelope(t, body).Error.Param))
}

func TestBrowseBatchRequestsRejectsBadParameters(t *testing.T) {
	t.Parallel()
	f, b, _ := browseFixture(t)
	cases := []struct {
		name, path, key string
		status          int
		param, message  string
	}{
		{"limit zero", "?limit=0", f.alice, 400, "limit", "between 1 and 1000"},
		{"limit huge", "?limit=1000000000000", f.alice, 400, "limit", "limit"},
		{"limit not a number", "?limit=ten", f.alice, 400, "limit", "limit"},
		{"unknown status", "?status=done", f.alice, 400, "status", "Invalid 'status': 'done'"},
		{"unknown include", "?include=result", f.alice, 400, "include", "The only value is 'body'"},
		{"cursor not in the batch", "?after=zzz", f.alice, 400, "after", "no request with custom_id 'zzz'"},
		{"cursor with metacharacters", "?after=" + url.QueryEscape("%' OR 1=1 --"), f.alice, 400, "after", "no request with custom_id"},
		{"search too long", "?search=" + strings.Repeat("x", 257), f.alice, 400, "search", "at most 256"},
		{"other owner", "", f.bob, 404, "batch_id", "No batch found"},
		{"unknown batch", "", f.alice, 404, "batch_id", "No batch found"},
	}
	for _, c := range cases {
		id := b.ID
		if c.name == "unknown batch" {
			id = "batch_nope"
		}
		status, body := f.getJSON("/v1/batches/"+id+"/requests"+c.path, c.key, nil)
		require.Equal(t, c.status, status, "%s: %s", c.name, body)
		e := decodeEnvelope(t, body)
		require.Equal(t, c.param, strOrEmpty(e.Error.Param), c.name)
		require.Contains(t, e.Error.Message, c.message, c.name)
	}
}
