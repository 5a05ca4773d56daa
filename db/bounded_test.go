package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/tools/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// A statement that outlives the bound fails as ErrUnavailable, whichever way it is sent; one that
// does not is unaffected, and its rows stay readable after the call that sent it returned.
func TestBoundedStatementsFailAsUnavailable(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := t.Context()
	conn := db.Bounded(pool, 200*time.Millisecond)

	_, err := conn.Exec(ctx, "SELECT pg_sleep(30)")
	require.ErrorIs(t, db.Translate(err), db.ErrUnavailable)

	var n int
	err = conn.QueryRow(ctx, "SELECT 1 FROM pg_sleep(30)").Scan(&n)
	require.ErrorIs(t, db.Translate(err), db.ErrUnavailable)

	rows, err := conn.Query(ctx, "SELECT g FROM generate_series(1, 3) g, pg_sleep(30)")
	if err == nil {
		for rows.Next() {
		}
		rows.Close()
		err = rows.Err()
	}
	require.ErrorIs(t, db.Translate(err), db.ErrUnavailable)

	rows, err = conn.Query(ctx, "SELECT g FROM generate_series(1, 3) g")
	require.NoError(t, err)
	var got []int
	for rows.Next() {
		require.NoError(t, rows.Scan(&n))
		got = append(got, n)
	}
	rows.Close()
	require.NoError(t, rows.Err())
	require.Equal(t, []int{1, 2, 3}, got)

	require.NoError(t, conn.QueryRow(ctx, "SELECT 7").Scan(&n))
	require.Equal(t, 7, n)
	require.NoError(t, pool.Ping(ctx), "the pool is usable after statements ran out")
}

func TestBoundedTxRollsBackAStatementThatRunsOut(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := t.Context()
	q := dbsqlc.New(pool)
	held, err := q.APIKeyInsert(ctx, dbsqlc.APIKeyInsertParams{Owner: "held", KeyHash: []byte("h1"), KeyPrefix: "sk-h1"})
	require.NoError(t, err)

	// Another transaction holds the key's row, so revoking it waits for longer than the bound.
	lock, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = lock.Rollback(context.WithoutCancel(ctx)) }()
	_, err = lock.Exec(ctx, "SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE", held.ID)
	require.NoError(t, err)

	err = db.WithBoundedTx(ctx, pool, 200*time.Millisecond, func(_ db.Tx, q *dbsqlc.Queries) error {
		if _, err := q.APIKeyInsert(ctx, dbsqlc.APIKeyInsertParams{Owner: "new", KeyHash: []byte("h2"), KeyPrefix: "sk-h2"}); err != nil {
			return err
		}
		_, err := q.APIKeyRevoke(ctx, held.ID)
		return err
	})
	require.ErrorIs(t, err, db.ErrUnavailable)
	_, err = q.APIKeyGetByHash(ctx, []byte("h2"))
	require.ErrorIs(t, db.Translate(err), db.ErrNotFound, "nothing of the transaction is left")

	require.NoError(t, lock.Rollback(ctx))
	require.NoError(t, db.WithBoundedTx(ctx, pool, 5*time.Second, func(_ db.Tx, q *dbsqlc.Queries) error {
		_, err := q.APIKeyRevoke(ctx, held.ID)
		return err
	}))
	got, err := q.APIKeyGetByHash(ctx, []byte("h1"))
	require.NoError(t, err)
	require.NotNil(t, got.RevokedAt)
}
