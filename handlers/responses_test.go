package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db/dbsqlc"
)

func TestCreateResponseRejectsBadInput(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	for _, tc := range []struct{ name, body, code, param, message string }{
		{"not an object", `[1]`, "invalid_json", "", "JSON object"},
		{"not json", `{"model":`, "invalid_json", "", "could not parse"},
		{"missing model", `{"input":"hi"}`, "missing_required_parameter", "model", "'model'"},
		{"model not a string", `{"model":7,"input":"hi"}`, "invalid_value", "model", "non-empty string"},
		{"unroutable model", `{"model":"nope","input":"hi"}`, "model_not_found", "model", "'nope'"},
		{"background stream", `{"model":"m1","input":"hi","background":true,"stream":true}`, "unsupported_value", "stream", "background"},
		{"metadata value null", `{"model":"m1","input":"hi","background":true,"metadata":{"k":null}}`, "invalid_value", "metadata", "must be a string, got null"},
		{"a 10 KB model name", `{"model":"` + strings.Repeat("m", 10_000) + `","input":"hi"}`, "model_not_found", "model", "'mmm"},
		{"background tier, synchronous", `{"model":"m1","input":"hi","service_tier":"background"}`, "unsupported_value", "service_tier", "'background': true"},
		{"flex stream", `{"model":"m1","input":"hi","service_tier":"flex","stream":true}`, "unsupported_value", "stream", "flex"},
		{"background options not an object", `{"model":"m1","input":"hi","background":true,"background_options":"24h"}`, "invalid_type", "background_options", "must be an object"},
		{"completion window not a string", `{"model":"m1","input":"hi","background":true,"background_options":{"completion_window":24}}`, "invalid_type", "background_options.completion_window", "must be a string"},
		{"bad completion window", `{"model":"m1","input":"hi","background":true,"background_options":{"completion_window":"1d"}}`, "invalid_value", "background_options.completion_window", "Invalid 'background_options.completion_window': '1d'"},
		{"bad completion window, synchronous", `{"model":"m1","input":"hi","background_options":{"completion_window":""}}`, "invalid_value", "background_options.completion_window", "Invalid 'background_options.completion_window': ''"},
		{"completion window too long", `{"model":"m1","input":"hi","service_tier":"flex","background_options":{"completion_window":"169h"}}`, "invalid_value", "background_options.completion_window", "between '1m' and '168h'"},
	} {
		status, body := f.postJSON("/v1/responses", f.alice, tc.body)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", tc.name, body)
		e := decodeEnvelope(t, body)
		require.Equal(t, tc.code, strOrEmpty(e.Error.Code), "%s: %s", tc.name, e.Error.Message)
		require.Equal(t, tc.param, strOrEmpty(e.Error.Param), tc.name)
		require.Contains(t, e.Error.Message, tc.message, tc.name)
		require.Less(t, len(e.Error.Message), 400, "%s: a long value is not echoed whole", tc.name)
	}
	var n int
	require.NoError(t, f.pool.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM responses) + (SELECT count(*) FROM requests)").Scan(&n))
	require.Zero(t, n, "nothing stored for a refused response")
}

func TestQueuedResponseSkeletonAndQueueDepth(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	status, body := f.postJSON("/v1/responses", f.alice, `{"model":"m1","input":"hi","background":true,"instructions":"be brief","metadata":{"k":"v"}}`)
	require.Equal(t, http.StatusOK, status, string(body))
	var r map[string]any
	require.NoError(t, json.Unmarshal(body, &r))
	require.Equal(t, "queued", r["status"])
	require.Equal(t, []any{}, r["output"])
	require.Nil(t, r["usage"])
	require.Nil(t, r["error"])
	require.Equal(t, "be brief", r["instructions"])
	require.Equal(t, map[string]any{"k": "v"}, r["metadata"])
	require.Equal(t, "m1", r["model"])
	require.Equal(t, true, r["background"])
	id := r["id"].(string)

	var sent []byte
	require.NoError(t, f.pool.QueryRow(t.Context(), "SELECT body FROM requests WHERE response_id = $1", id).Scan(&sent))
	require.NotContains(t, string(sent), "background", "the upstream gets the body without background")

	fileID := f.uploadOK(f.alice, lines(3)).ID
	f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, fileID))
	for _, tc := range []struct {
		key      string
		own      int
		everyone int
	}{{f.alice, 4, 4}, {f.bob, 0, 4}} {
		status, _, body = f.do(http.MethodGet, "/v1/queue", tc.key, nil, nil)
		require.Equal(t, http.StatusOK, status)
		var q struct {
			Data []struct {
				Model      string `json:"model"`
				Pending    int    `json:"pending"`
				OwnPending int    `json:"own_pending"`
				Limit      *int   `json:"limit"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(body, &q))
		require.Len(t, q.Data, 1)
		require.Equal(t, "m1", q.Data[0].Model)
		require.NotNil(t, q.Data[0].Limit)
		require.Equal(t, 2, *q.Data[0].Limit, "the model's limit, as its route sets it")
		require.Equal(t, tc.everyone, q.Data[0].Pending, "batch requests and background responses together")
		require.Equal(t, tc.own, q.Data[0].OwnPending)
	}

	// A model no route serves any more has no limit to show.
	router := f.server.router
	f.server.router = nil
	status, _, body = f.do(http.MethodGet, "/v1/queue", f.alice, nil, nil)
	f.server.router = router
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `"limit":null`)

	// Streaming a stored response is refused; unknown ids are 404 with the response's wording.
	status, _, body = f.do(http.MethodGet, "/v1/responses/"+id+"?stream=true", f.alice, nil, nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "stream", strOrEmpty(decodeEnvelope(t, body).Error.Param))
	for _, r := range [][2]string{{http.MethodGet, ""}, {http.MethodPost, "/cancel"}, {http.MethodDelete, ""}} {
		status, _, body = f.do(r[0], "/v1/responses/resp_nope"+r[1], f.alice, nil, nil)
		require.Equal(t, http.StatusNotFound, status, r)
		e := decodeEnvelope(t, body)
		require.Equal(t, "Response with id 'resp_nope' not found.", e.Error.Message)
		require.Equal(t, "response_id", strOrEmpty(e.Error.Param))
	}

	// Deleting a queued response stops it.
	status, _, body = f.do(http.MethodDelete, "/v1/responses/"+id, f.alice, nil, nil)
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, fmt.Sprintf(`{"id":%q,"object":"response","deleted":true}`, id), string(body))
	var state string
	require.NoError(t, f.pool.QueryRow(t.Context(), "SELECT state FROM requests WHERE response_id = $1", id).Scan(&state))
	require.Equal(t, "cancelled", state)
}

// A flex call waits for the daemon's notification, not for its next look at the database.
func TestFlexCallIsWokenByTheNotification(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	f.server.flexRecheck = time.Hour // only the notification can end the wait
	ctx := t.Context()
	type answer struct {
		status int
		body   []byte
	}
	got := make(chan answer, 1)
	go func() {
		status, body := f.postJSON("/v1/responses", f.alice, `{"model":"m1","input":"hi","service_tier":"flex"}`)
		got <- answer{status, body}
	}()
	var id string
	require.Eventually(t, func() bool {
		return f.pool.QueryRow(ctx, "SELECT id FROM responses WHERE mode = 'flex'").Scan(&id) == nil
	}, 10*time.Second, 10*time.Millisecond)

	// What the daemon does when the upstream answers: store the object, then notify.
	_, err := f.pool.Exec(ctx, `UPDATE requests SET state = 'completed', finished_at = now(), result = $2
		WHERE response_id = $1`, id, []byte(`{"id":"`+id+`","object":"response","status":"completed","output":[]}`))
	require.NoError(t, err)
	require.NoError(t, dbsqlc.New(f.pool).ResponsesNotifyDone(ctx, []string{id}))

	select {
	case a := <-got:
		require.Equal(t, http.StatusOK, a.status, string(a.body))
		var r map[string]any
		require.NoError(t, json.Unmarshal(a.body, &r))
		require.Equal(t, id, r["id"])
		require.Equal(t, "completed", r["status"])
	case <-time.After(30 * time.Second):
		t.Fatal("the flex call was not woken by the notification")
	}
}

// A flex call that outwaits VOLLEY_FLEX_WAIT answers with the response as it stands.
func TestFlexCallAnswersAsItStandsAfterItsWait(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	f.server.cfg.FlexWait = 200 * time.Millisecond
	status, body := f.postJSON("/v1/responses", f.alice, `{"model":"m1","input":"hi","service_tier":"flex"}`)
	require.Equal(t, http.StatusOK, status, string(body))
	var r map[string]any
	require.NoError(t, json.Unmarshal(body, &r))
	require.Equal(t, "queued", r["status"], "no daemon runs here")
	require.Equal(t, false, r["background"])
	require.Equal(t, []any{}, r["output"])

	// It can be fetched later like any stored response.
	status, _, body = f.do(http.MethodGet, "/v1/responses/"+r["id"].(string), f.alice, nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
}

// background_options.completion_window sets a queued response's deadline, as completion_window
// sets a batch's; the options are not sent upstream, and other options are accepted.
func TestQueuedResponseBackgroundOptions(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	for _, tc := range []struct {
		body   string
		window time.Duration
	}{
		{`{"model":"m1","input":"hi","background":true,"background_options":{"completion_window":"90m"}}`, 90 * time.Minute},
		{`{"model":"m1","input":"hi","background":true,"background_options":{"some_future_option":true}}`, 24 * time.Hour},
		{`{"model":"m1","input":"hi","background":true,"background_options":null}`, 24 * time.Hour},
	} {
		status, body := f.postJSON("/v1/responses", f.alice, tc.body)
		require.Equal(t, http.StatusOK, status, string(body))
		var r struct {
			ID        string `json:"id"`
			CreatedAt int64  `json:"created_at"`
		}
		require.NoError(t, json.Unmarshal(body, &r))
		var sent []byte
		var deadline time.Time
		require.NoError(t, f.pool.QueryRow(t.Context(), "SELECT body, deadline FROM requests WHERE response_id = $1", r.ID).Scan(&sent, &deadline))
		require.NotContains(t, string(sent), "background", tc.body)
		require.WithinDuration(t, time.Unix(r.CreatedAt, 0).Add(tc.window), deadline, 2*time.Second, tc.body)
	}
}
