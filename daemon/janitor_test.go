package daemon

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/testdb"
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

	_, err = dbsqlc.New(pool).BatchSettlePending(ctx, dbsqlc.BatchSettlePendingParams{BatchID: running, State: "cancelled", Code: "batch_cancelled", Message: "x"})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE batches SET status = 'cancelled' WHERE id = $1", running)
	require.NoError(t, err)
	d.janitor(ctx)
	require.Zero(t, lines(runningFile), "then go once the batch has ended")
}
