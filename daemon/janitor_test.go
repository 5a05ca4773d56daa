package daemon

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/tools/testdb"
	"github.com/volleyhq/volley/internal/upstream"
)

func TestJanitorRemovesExpiredAndUnusedFiles(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	running := seed(t, pool, "alice", "m", 2) // a running batch reads its input file
	var runningFile string
	require.NoError(t, pool.QueryRow(ctx, "SELECT input_file_id FROM batches WHERE id = $1", running).Scan(&runningFile))
	_, err := pool.Exec(ctx, `INSERT INTO files (id, owner, filename, purpose, bytes, line_count, created_at, expires_at, deleted_at) VALUES
		($1, 'alice', 'a.jsonl', 'batch', 1, 2, now(), now() + interval '1 day', now()),
		('file-expired', 'alice', 'b.jsonl', 'batch', 1, 1, now() - interval '2 days', now() - interval '1 day', NULL)`, runningFile)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO file_lines (file_id, line, data) VALUES ('file-expired', 1, $1)`, []byte("\n"))
	require.NoError(t, err)

	d := New(pool, DefaultConfig(), &upstream.Config{DefaultConcurrency: 1}, slog.New(slog.DiscardHandler))
	d.janitor(ctx)

	var expiredDeleted bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT deleted_at IS NOT NULL FROM files WHERE id = 'file-expired'").Scan(&expiredDeleted))
	require.True(t, expiredDeleted, "an expired file is deleted")
	lines := func(id string) (n int) {
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM file_lines WHERE file_id = $1", id).Scan(&n))
		return n
	}
	require.Zero(t, lines("file-expired"), "and its lines removed")
	require.Equal(t, 2, lines(runningFile), "a deleted file's lines stay while a running batch reads them")

	_, err = pool.Exec(ctx, "UPDATE batches SET status = 'cancelling' WHERE id = $1", running)
	require.NoError(t, err)
	_, err = dbsqlc.New(pool).BatchSettlePending(ctx, running)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE batches SET status = 'cancelled' WHERE id = $1", running)
	require.NoError(t, err)
	d.janitor(ctx)
	require.Zero(t, lines(runningFile), "then go once the batch has ended")
}

// An ending batch settles the requests that come back to the queue after it began to end (a
// replica's lease ran out, a retry was recorded): no claim takes them, so without that the batch
// would never finish.
func TestEndingBatchesSettleRequestsThatComeBackLater(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, end, status, code string
	}{
		{"expired", "UPDATE batches SET expires_at = now() - interval '1 second' WHERE id = $1", "expired", "batch_expired"},
		{"cancelled", "UPDATE batches SET status = 'cancelling', cancelling_at = now() WHERE id = $1", "cancelled", "batch_cancelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := testdb.New(t)
			ctx := t.Context()
			q := dbsqlc.New(pool)
			batchID := seed(t, pool, "alice", "m", 3)
			gone := register(t, q)
			require.Len(t, claim(t, pool, gone, 10, 10), 3)

			_, err := pool.Exec(ctx, tc.end, batchID)
			require.NoError(t, err)
			if tc.name == "expired" {
				_, err = pool.Exec(ctx, "UPDATE requests SET deadline = now() - interval '1 second' WHERE batch_id = $1", batchID)
			} else {
				err = q.BatchEndRunning(ctx, batchID) // as the cancel does
			}
			require.NoError(t, err)
			d := New(pool, DefaultConfig(), &upstream.Config{DefaultConcurrency: 10}, slog.New(slog.DiscardHandler))
			d.settleBatches(ctx) // the batch begins to end while its requests run elsewhere
			b, err := q.BatchGet(ctx, dbsqlc.BatchGetParams{ID: batchID, Owner: "alice"})
			require.NoError(t, err)
			require.Contains(t, []string{"in_progress", "cancelling"}, b.Status, "not settled while its requests run")

			// Their replica goes away without recording them: they return to the queue.
			handed, err := q.DaemonHandBack(ctx, &gone)
			require.NoError(t, err)
			require.EqualValues(t, 3, handed)
			require.Empty(t, claim(t, pool, register(t, q), 10, 10), "no claim takes them")

			d.settleBatches(ctx)
			b, err = q.BatchGet(ctx, dbsqlc.BatchGetParams{ID: batchID, Owner: "alice"})
			require.NoError(t, err)
			require.Equal(t, tc.status, b.Status)
			require.EqualValues(t, 3, b.Failed)
			require.NotNil(t, b.ErrorFileID)
			var codes []string
			rows, err := pool.Query(ctx, "SELECT convert_from(result, 'UTF8')::json->'error'->>'code' FROM requests WHERE batch_id = $1", batchID)
			require.NoError(t, err)
			for rows.Next() {
				var c string
				require.NoError(t, rows.Scan(&c))
				codes = append(codes, c)
			}
			require.NoError(t, rows.Err())
			require.Equal(t, []string{tc.code, tc.code, tc.code}, codes)
		})
	}
}

// The results of an ended batch are its output and error files' content: they go once both files
// are gone, and not before.
func TestJanitorRemovesTheResultsOfBatchesWhoseFilesAreGone(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := t.Context()
	requests := func(batchID string) (n int) {
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM requests WHERE batch_id = $1", batchID).Scan(&n))
		return n
	}
	end := func(batchID, outputDeleted, errorDeleted string) {
		t.Helper()
		_, err := pool.Exec(ctx, `INSERT INTO files (id, owner, filename, purpose, bytes, line_count, created_at, expires_at, deleted_at, batch_id) VALUES
			($1 || '-out', 'alice', 'o.jsonl', 'batch_output', 1, 1, now(), now() + interval '1 day', `+outputDeleted+`, $1),
			($1 || '-err', 'alice', 'e.jsonl', 'batch_error', 1, 1, now(), now() + interval '1 day', `+errorDeleted+`, $1)`, batchID)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `UPDATE batches SET status = 'completed', output_file_id = $1 || '-out', error_file_id = $1 || '-err' WHERE id = $1`, batchID)
		require.NoError(t, err)
	}
	bothGone := seed(t, pool, "alice", "m", 2)
	end(bothGone, "now()", "now()")
	oneLeft := seed(t, pool, "alice", "m", 2)
	end(oneLeft, "now()", "NULL")
	running := seed(t, pool, "alice", "m", 2)

	d := New(pool, DefaultConfig(), &upstream.Config{DefaultConcurrency: 1}, slog.New(slog.DiscardHandler))
	d.janitor(ctx)
	require.Zero(t, requests(bothGone), "both files gone: the results go")
	require.Equal(t, 2, requests(oneLeft), "the error file still reads them")
	require.Equal(t, 2, requests(running))
	var removedAt *time.Time
	require.NoError(t, pool.QueryRow(ctx, "SELECT results_removed_at FROM batches WHERE id = $1", bothGone).Scan(&removedAt))
	require.NotNil(t, removedAt)
	b, err := dbsqlc.New(pool).BatchGet(ctx, dbsqlc.BatchGetParams{ID: bothGone, Owner: "alice"})
	require.NoError(t, err)
	require.EqualValues(t, 2, b.Total, "the batch and its counts stay")

	_, err = pool.Exec(ctx, "UPDATE files SET expires_at = now() - interval '1 second' WHERE id = $1 || '-err'", oneLeft)
	require.NoError(t, err)
	d.janitor(ctx)
	require.Zero(t, requests(oneLeft), "an expired file is gone too")
}

// Deleted responses go for good, with their requests, once nothing of them runs.
func TestJanitorRemovesDeletedResponses(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := t.Context()
	q := dbsqlc.New(pool)
	add := func(id, state string, deleted bool) {
		t.Helper()
		var reqID *int64
		if state != "" {
			rid, err := q.ResponseRequestInsert(ctx, dbsqlc.ResponseRequestInsertParams{Owner: "alice", Model: "m", Body: []byte(`{}`), Deadline: time.Now().Add(time.Hour), ResponseID: &id})
			require.NoError(t, err)
			_, err = pool.Exec(ctx, "UPDATE requests SET state = $2 WHERE id = $1", rid, state)
			require.NoError(t, err)
			reqID = &rid
		}
		mode := "background"
		if state == "" {
			mode = "sync"
		}
		require.NoError(t, q.ResponseInsert(ctx, dbsqlc.ResponseInsertParams{ID: id, Owner: "alice", Model: "m", Mode: mode, RequestID: reqID, Params: []byte(`{}`), CreatedAt: time.Now()}))
		if deleted {
			_, err := q.ResponseMarkDeleted(ctx, dbsqlc.ResponseMarkDeletedParams{ID: id, Owner: "alice"})
			require.NoError(t, err)
		}
	}
	add("resp_done", "completed", true)
	add("resp_sync", "", true)
	add("resp_running", "running", true)
	add("resp_kept", "completed", false)

	d := New(pool, DefaultConfig(), &upstream.Config{DefaultConcurrency: 1}, slog.New(slog.DiscardHandler))
	d.janitor(ctx)
	var responses []string
	rows, err := pool.Query(ctx, "SELECT id FROM responses ORDER BY id")
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		responses = append(responses, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"resp_kept", "resp_running"}, responses, "a deleted response still running waits")
	var requests int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM requests").Scan(&requests))
	require.Equal(t, 2, requests, "the removed responses' requests went with them")
}

func TestJanitorExpiresUploadsAndRemovesTheirParts(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO uploads (id, owner, filename, purpose, mime_type, bytes, created_at, expires_at) VALUES
		('upload_old', 'alice', 'a.jsonl', 'batch', 'text/jsonl', 3, now() - interval '2 hours', now() - interval '1 hour'),
		('upload_new', 'alice', 'b.jsonl', 'batch', 'text/jsonl', 3, now(), now() + interval '1 hour')`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO upload_parts (id, upload_id, bytes, created_at) VALUES
		('part_old', 'upload_old', 3, now()), ('part_new', 'upload_new', 3, now())`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO upload_chunks (part_id, seq, data) VALUES ('part_old', 0, 'abc'), ('part_new', 0, 'abc')`)
	require.NoError(t, err)

	d := New(pool, DefaultConfig(), &upstream.Config{DefaultConcurrency: 1}, slog.New(slog.DiscardHandler))
	d.janitor(ctx)

	status := func(id string) (s string) {
		require.NoError(t, pool.QueryRow(ctx, "SELECT status FROM uploads WHERE id = $1", id).Scan(&s))
		return s
	}
	chunks := func(part string) (n int) {
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM upload_chunks WHERE part_id = $1", part).Scan(&n))
		return n
	}
	require.Equal(t, "expired", status("upload_old"))
	require.Zero(t, chunks("part_old"), "an expired upload's parts are removed")
	require.Equal(t, "pending", status("upload_new"))
	require.Equal(t, 1, chunks("part_new"), "a pending upload keeps its parts")
}
