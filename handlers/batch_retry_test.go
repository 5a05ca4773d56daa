package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// endedBatch is a batch of five lines of alice's that ended completed with r1 completed, r2 and
// r3 failed, r4 expired and r5 cancelled.
func endedBatch(t *testing.T, f *fixture) batchJSON {
	b := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"2h","metadata":{"team":"ml"}}`, f.uploadOK(f.alice, lines(5)).ID))
	_, err := f.pool.Exec(context.Background(), `
		UPDATE requests SET state = (ARRAY['completed','failed','failed','expired','cancelled'])[line], finished_at = now(),
		       result = convert_to('{}'||E'\n', 'UTF8')
		WHERE batch_id = $1`, b.ID)
	require.NoError(t, err)
	_, err = f.pool.Exec(context.Background(), `UPDATE batches SET status = 'completed', completed = 1, failed = 4, completed_at = now() WHERE id = $1`, b.ID)
	require.NoError(t, err)
	return b
}

func (f *fixture) batchLines(id string) (out []string) {
	f.t.Helper()
	var page requestListJSON
	status, body := f.getJSON("/v1/batches/"+id+"/requests", f.alice, &page)
	require.Equal(f.t, http.StatusOK, status, string(body))
	for _, r := range page.Data {
		require.Equal(f.t, "pending", r.Status)
		out = append(out, fmt.Sprintf("%d:%s", r.Line, r.CustomID))
	}
	return out
}

func TestRetryBatchMakesANewBatchOfTheChosenLines(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	old := endedBatch(t, f)
	cases := []struct {
		name, body string
		want       []string
		window     string
		metadata   map[string]string
	}{
		{"default: every line that did not complete", "", []string{"2:req-2", "3:req-3", "4:req-4", "5:req-5"}, "2h", map[string]string{"team": "ml"}},
		{"empty object", "{}", []string{"2:req-2", "3:req-3", "4:req-4", "5:req-5"}, "2h", map[string]string{"team": "ml"}},
		{"failed only", `{"statuses":["failed"]}`, []string{"2:req-2", "3:req-3"}, "2h", map[string]string{"team": "ml"}},
		{"named lines whatever their state", `{"custom_ids":["req-1","req-4"],"completion_window":"24h"}`, []string{"1:req-1", "4:req-4"}, "24h", map[string]string{"team": "ml"}},
		{"named and filtered", `{"custom_ids":["req-1","req-4"],"statuses":["expired"],"metadata":{"run":"2"}}`, []string{"4:req-4"}, "2h", map[string]string{"run": "2"}},
	}
	for _, c := range cases {
		status, body := f.postJSON("/v1/batches/"+old.ID+"/retry", f.alice, c.body)
		require.Equal(t, http.StatusOK, status, "%s: %s", c.name, body)
		var nb batchJSON
		require.NoError(t, json.Unmarshal(body, &nb))
		require.NotEqual(t, old.ID, nb.ID)
		require.Equal(t, "in_progress", nb.Status, c.name)
		require.Equal(t, len(c.want), nb.RequestCounts.Total, c.name)
		require.Equal(t, c.want, f.batchLines(nb.ID), c.name)
		c.metadata["volley_retry_of"] = old.ID
		require.Equal(t, c.metadata, nb.Metadata, c.name)
		require.Equal(t, nb.CreatedAt+map[string]int64{"2h": 7200, "24h": 86400}[c.window], nb.ExpiresAt, c.name)
		require.Equal(t, "m1", *nb.Model)
	}
	// The old batch is as it was.
	var again batchJSON
	f.getJSON("/v1/batches/"+old.ID, f.alice, &again)
	require.Equal(t, "completed", again.Status)
	require.Equal(t, 1, again.RequestCounts.Completed)
	require.Equal(t, 4, again.RequestCounts.Failed)
}

func TestRetryBatchRefusals(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	old := endedBatch(t, f)
	running := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, f.uploadOK(f.alice, lines(2)).ID))
	allDone := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, f.uploadOK(f.alice, lines(2)).ID))
	_, err := f.pool.Exec(context.Background(), `UPDATE requests SET state = 'completed' WHERE batch_id = $1`, allDone.ID)
	require.NoError(t, err)
	_, err = f.pool.Exec(context.Background(), `UPDATE batches SET status = 'completed' WHERE id = $1`, allDone.ID)
	require.NoError(t, err)
	gone := endedBatch(t, f)
	var goneFile string
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT input_file_id FROM batches WHERE id = $1`, gone.ID).Scan(&goneFile))
	status, _, body := f.do(http.MethodDelete, "/v1/files/"+goneFile, f.alice, nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))

	cases := []struct {
		name, batch, key, body string
		status                 int
		code, param, message   string
	}{
		{"running batch", running.ID, f.alice, "", 400, "invalid_state", "", "status 'in_progress'"},
		{"nothing to retry", allDone.ID, f.alice, "", 400, "nothing_to_retry", "", "no line to retry in state 'failed', 'expired', 'cancelled'"},
		{"nothing in that state", old.ID, f.alice, `{"custom_ids":["req-1"],"statuses":["failed"]}`, 400, "nothing_to_retry", "", "no line to retry"},
		{"unknown state", old.ID, f.alice, `{"statuses":["pending"]}`, 400, "invalid_value", "statuses", "Invalid 'statuses': 'pending'"},
		{"no state", old.ID, f.alice, `{"statuses":[]}`, 400, "invalid_value", "statuses", "at least one"},
		{"unknown custom_id", old.ID, f.alice, `{"custom_ids":["req-1","nope"]}`, 400, "invalid_value", "custom_ids", "no request with custom_id 'nope'"},
		{"empty custom_id", old.ID, f.alice, `{"custom_ids":[""]}`, 400, "invalid_value", "custom_ids", "never empty"},
		{"bad window", old.ID, f.alice, `{"completion_window":"1w"}`, 400, "invalid_value", "completion_window", "Invalid 'completion_window'"},
		{"too much metadata", old.ID, f.alice, `{"metadata":{"a":"1","b":"1","c":"1","d":"1","e":"1","f":"1","g":"1","h":"1","i":"1","j":"1","k":"1","l":"1","m":"1","n":"1","o":"1","p":"1"}}`, 400, "invalid_value", "metadata", "17 pairs"},
		{"input file deleted", gone.ID, f.alice, "", 400, "invalid_input_file", "", "was deleted or has expired"},
		{"not JSON", old.ID, f.alice, `{"statuses":`, 400, "", "", ""},
		{"other owner", old.ID, f.bob, "", 404, "", "batch_id", "No batch found"},
	}
	var before int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM requests`).Scan(&before))
	for _, c := range cases {
		status, body := f.postJSON("/v1/batches/"+c.batch+"/retry", c.key, c.body)
		require.Equal(t, c.status, status, "%s: %s", c.name, body)
		e := decodeEnvelope(t, body)
		if c.code != "" {
			require.Equal(t, c.code, strOrEmpty(e.Error.Code), c.name)
		}
		require.Equal(t, c.param, strOrEmpty(e.Error.Param), c.name)
		require.Contains(t, e.Error.Message, c.message, c.name)
	}
	var after, batches int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM requests`).Scan(&after))
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM batches`).Scan(&batches))
	require.Equal(t, before, after, "nothing was written")
	require.Equal(t, 4, batches)
}

// A retry of a background batch is a background batch, its requests of the background tier.
func TestRetryKeepsTheServiceTier(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	for _, tier := range []string{"background", "flex", ""} {
		extra := ""
		if tier != "" {
			extra = fmt.Sprintf(`,"service_tier":%q`, tier)
		}
		b := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"2h"%s}`, f.uploadOK(f.alice, lines(2)).ID, extra))
		_, err := f.pool.Exec(t.Context(), `UPDATE requests SET state = 'failed', finished_at = now(), result = '{}' WHERE batch_id = $1`, b.ID)
		require.NoError(t, err)
		_, err = f.pool.Exec(t.Context(), `UPDATE batches SET status = 'completed', failed = 2, completed_at = now() WHERE id = $1`, b.ID)
		require.NoError(t, err)
		status, body := f.postJSON("/v1/batches/"+b.ID+"/retry", f.alice, "")
		require.Equal(t, http.StatusOK, status, string(body))
		var nb map[string]any
		require.NoError(t, json.Unmarshal(body, &nb))
		if tier == "" {
			require.NotContains(t, nb, "service_tier", "a batch made without a tier shows none")
		} else {
			require.Equal(t, tier, nb["service_tier"])
		}
		rows, err := f.pool.Query(t.Context(), `SELECT background FROM requests WHERE batch_id = ANY ($1) ORDER BY id`, []string{b.ID, nb["id"].(string)})
		require.NoError(t, err)
		background, err := pgx.CollectRows(rows, pgx.RowTo[bool])
		require.NoError(t, err)
		want := tier == "background"
		require.Equal(t, []bool{want, want, want, want}, background, tier)
	}
}
