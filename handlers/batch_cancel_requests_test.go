package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type cancelResultJSON struct {
	Object  string `json:"object"`
	BatchID string `json:"batch_id"`
	Data    []struct {
		CustomID string `json:"custom_id"`
		Result   string `json:"result"`
	} `json:"data"`
}

func TestCancelBatchRequestsEndsOnlyThoseNamed(t *testing.T) {
	t.Parallel()
	f, b, _ := browseFixture(t) // a-1 completed, a_2 failed, A%3 running, the rest pending
	status, body := f.postJSON("/v1/batches/"+b.ID+"/requests/cancel", f.alice, `{"custom_ids":["A%3","b\\4","a-1","a_2","zz","b\\4","c_8"]}`)
	require.Equal(t, http.StatusOK, status, string(body))
	var out cancelResultJSON
	require.NoError(t, json.Unmarshal(body, &out))
	require.Equal(t, "list", out.Object)
	require.Equal(t, b.ID, out.BatchID)
	got := map[string]string{}
	var order []string
	for _, d := range out.Data {
		got[d.CustomID] = d.Result
		order = append(order, d.CustomID)
	}
	require.Equal(t, []string{"A%3", `b\4`, "a-1", "a_2", "zz", "c_8"}, order, "in the order asked, repeats dropped")
	require.Equal(t, map[string]string{"A%3": "cancelling", `b\4`: "cancelled", "a-1": "already_completed", "a_2": "already_failed", "zz": "not_found", "c_8": "cancelled"}, got)

	ctx := context.Background()
	var failed int
	var errBytes, sum int64
	require.NoError(t, f.pool.QueryRow(ctx, "SELECT failed, error_bytes FROM batches WHERE id = $1", b.ID).Scan(&failed, &errBytes))
	require.NoError(t, f.pool.QueryRow(ctx, "SELECT coalesce(sum(length(result)), 0) FROM requests WHERE batch_id = $1 AND state = 'cancelled'", b.ID).Scan(&sum))
	require.Equal(t, 2, failed, "the two pending requests are counted; the fixture's failed row was written without its counter")
	require.Equal(t, sum, errBytes, "error bytes are exact")

	var r requestJSON
	f.getJSON("/v1/batches/"+b.ID+"/requests/c_8", f.alice, &r)
	require.Equal(t, "cancelled", r.Status)
	require.NotNil(t, r.FinishedAt)
	require.Equal(t, "request_cancelled", r.Error.Code)
	var line string
	require.NoError(t, f.pool.QueryRow(ctx, "SELECT convert_from(result, 'UTF8') FROM requests WHERE batch_id = $1 AND custom_id = 'c_8'", b.ID).Scan(&line))
	require.True(t, strings.HasSuffix(line, "}\n"))
	var parsed struct {
		ID       string          `json:"id"`
		CustomID string          `json:"custom_id"`
		Response json.RawMessage `json:"response"`
	}
	require.NoError(t, json.Unmarshal([]byte(line), &parsed))
	require.True(t, strings.HasPrefix(parsed.ID, "batch_req_"))
	require.Equal(t, "c_8", parsed.CustomID)
	require.Equal(t, "null", string(parsed.Response))

	// The running one is marked and can no longer be claimed; the rest of the batch is untouched.
	var marked bool
	var claimable int
	require.NoError(t, f.pool.QueryRow(ctx, "SELECT cancel_requested_at IS NOT NULL FROM requests WHERE batch_id = $1 AND custom_id = 'A%3'", b.ID).Scan(&marked))
	require.True(t, marked)
	require.NoError(t, f.pool.QueryRow(ctx, "SELECT count(*) FROM requests WHERE batch_id = $1 AND state = 'pending' AND deadline > now()", b.ID).Scan(&claimable))
	require.Equal(t, 3, claimable, "b 5/x, c-6 and ca7 still run")
	var st batchJSON
	f.getJSON("/v1/batches/"+b.ID, f.alice, &st)
	require.Equal(t, "in_progress", st.Status)

	// Asking again reports what they are now.
	status, body = f.postJSON("/v1/batches/"+b.ID+"/requests/cancel", f.alice, `{"custom_ids":["c_8"]}`)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `"already_cancelled"`)
}

func TestCancelBatchRequestsRejectsBadInput(t *testing.T) {
	t.Parallel()
	f, b, _ := browseFixture(t)
	ended := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, f.uploadOK(f.alice, lines(2)).ID))
	status, body := f.postJSON("/v1/batches/"+ended.ID+"/cancel", f.alice, "")
	require.Equal(t, http.StatusOK, status, string(body))
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprint("x", i))
	}
	cases := []struct {
		name, batch, key, body string
		status                 int
		code, param, message   string
	}{
		{"no body", b.ID, f.alice, "", 400, "", "", ""},
		{"no ids", b.ID, f.alice, `{"custom_ids":[]}`, 400, "missing_required_parameter", "custom_ids", "at least one"},
		{"missing field", b.ID, f.alice, `{}`, 400, "missing_required_parameter", "custom_ids", "at least one"},
		{"empty id", b.ID, f.alice, `{"custom_ids":["a-1",""]}`, 400, "invalid_value", "custom_ids", "custom_ids[1]"},
		{"too many", b.ID, f.alice, `{"custom_ids":[` + strings.Join(many, ",") + `]}`, 400, "invalid_value", "custom_ids", "at most 1000"},
		{"not a list", b.ID, f.alice, `{"custom_ids":"a-1"}`, 400, "", "", ""},
		{"ended batch", ended.ID, f.alice, `{"custom_ids":["req-1"]}`, 400, "invalid_state", "", "status 'cancell"},
		{"other owner", b.ID, f.bob, `{"custom_ids":["a-1"]}`, 404, "", "batch_id", "No batch found"},
	}
	for _, c := range cases {
		status, body := f.postJSON("/v1/batches/"+c.batch+"/requests/cancel", c.key, c.body)
		require.Equal(t, c.status, status, "%s: %s", c.name, body)
		e := decodeEnvelope(t, body)
		if c.code != "" {
			require.Equal(t, c.code, strOrEmpty(e.Error.Code), c.name)
		}
		require.Equal(t, c.param, strOrEmpty(e.Error.Param), c.name)
		require.Contains(t, e.Error.Message, c.message, c.name)
	}
	var cancelled int
	require.NoError(t, f.pool.QueryRow(context.Background(), "SELECT count(*) FROM requests WHERE batch_id = $1 AND state = 'cancelled'", b.ID).Scan(&cancelled))
	require.Zero(t, cancelled, "nothing was written")
}
