package handlers

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDeleteBatch(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	running := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, f.uploadOK(f.alice, lines(3)).ID))
	ended := endedBatch(t, f)
	ctx := context.Background()
	_, err := f.pool.Exec(ctx, `INSERT INTO files (id, owner, filename, purpose, bytes, line_count, created_at, batch_id)
		VALUES ('file-out', 'alice', 'o.jsonl', 'batch_output', 3, 1, now(), $1)`, ended.ID)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `UPDATE batches SET output_file_id = 'file-out' WHERE id = $1`, ended.ID)
	require.NoError(t, err)

	// Another owner's batch is not found, and stays.
	status, _, body := f.do(http.MethodDelete, "/v1/batches/"+running.ID, f.bob, nil, nil)
	require.Equal(t, http.StatusNotFound, status, string(body))
	require.Equal(t, "batch_id", strOrEmpty(decodeEnvelope(t, body).Error.Param))

	for _, b := range []batchJSON{running, ended} {
		status, _, body = f.do(http.MethodDelete, "/v1/batches/"+b.ID, f.alice, nil, nil)
		require.Equal(t, http.StatusOK, status, string(body))
		require.JSONEq(t, fmt.Sprintf(`{"id":%q,"object":"batch","deleted":true}`, b.ID), string(body))
		for _, path := range []string{"/v1/batches/" + b.ID, "/v1/batches/" + b.ID + "/requests", "/v1/batches/" + b.ID + "/requests/req-1"} {
			status, _ := f.getJSON(path, f.alice, nil)
			require.Equal(t, http.StatusNotFound, status, path)
		}
		status, _, body = f.do(http.MethodDelete, "/v1/batches/"+b.ID, f.alice, nil, nil)
		require.Equal(t, http.StatusNotFound, status, "deleting twice: %s", body)
		status, body = f.postJSON("/v1/batches/"+b.ID+"/cancel", f.alice, "")
		require.Equal(t, http.StatusNotFound, status, string(body))
		status, body = f.postJSON("/v1/batches/"+b.ID+"/retry", f.alice, "")
		require.Equal(t, http.StatusNotFound, status, string(body))
	}
	var list struct {
		Data []batchJSON `json:"data"`
	}
	f.getJSON("/v1/batches", f.alice, &list)
	require.Empty(t, list.Data, "absent from lists")
	status, _ = f.getJSON("/v1/files/file-out", f.alice, nil)
	require.Equal(t, http.StatusNotFound, status, "its output file went with it")

	// The running batch was cancelled first: nothing of it will be claimed.
	var st string
	var pending int
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT status FROM batches WHERE id = $1`, running.ID).Scan(&st))
	require.Equal(t, "cancelling", st)
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM requests WHERE batch_id = $1 AND state = 'pending'`, running.ID).Scan(&pending))
	require.Zero(t, pending)
}
