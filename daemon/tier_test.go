package daemon

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/tools/testdb"
)

// seedBackground queues n requests of the background tier for owner and model.
func seedBackground(t *testing.T, pool *pgxpool.Pool, owner, model string, n int) string {
	t.Helper()
	id := seed(t, pool, owner, model, n)
	_, err := pool.Exec(t.Context(), "UPDATE requests SET background = true WHERE batch_id = $1", id)
	require.NoError(t, err)
	return id
}

func claimShare(t *testing.T, pool *pgxpool.Pool, daemonID int64, limit int, share float64) map[string]int {
	t.Helper()
	c := claimRound(t, pool, dbsqlc.RequestClaimParams{
		DaemonID: daemonID, DefaultLimit: int32(limit), MaxClaim: 100, FreshSeconds: 60, BackgroundShare: share,
	})
	per := map[string]int{}
	for _, r := range c.Rows {
		per[*r.BatchID]++
	}
	return per
}

// requireQueuesExact checks the queue counters against the pending requests they count.
func requireQueuesExact(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	var off int
	require.NoError(t, pool.QueryRow(t.Context(), `
		SELECT count(*) FROM queues q FULL JOIN (
			SELECT model, owner, count(*) FILTER (WHERE state = 'pending') AS p,
			       count(*) FILTER (WHERE state = 'pending' AND background) AS pb
			FROM requests GROUP BY model, owner
		) c USING (model, owner)
		WHERE (q.pending, q.pending_background) IS DISTINCT FROM (c.p, c.pb)
		  AND NOT (c.model IS NULL AND q.pending = 0)`).Scan(&off))
	require.Zero(t, off, "queue counters that differ from the requests")
}

func TestBackgroundYieldsToDeadlineWork(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	me := register(t, dbsqlc.New(pool))
	low := seedBackground(t, pool, "alice", "m", 20)
	mine := seedBackground(t, pool, "bob", "m", 5)
	std := seed(t, pool, "bob", "m", 3)
	requireQueuesExact(t, pool)

	require.Equal(t, map[string]int{std: 3}, claimShare(t, pool, me, 10, 0.5),
		"deadline work waits: only it is claimed, though background requests of the same owner are due sooner")
	requireQueuesExact(t, pool)
	got := claimShare(t, pool, me, 10, 0.5)
	require.Equal(t, 5, got[low]+got[mine], "nothing else waits: background work runs, within half the limit")
	require.Empty(t, claimShare(t, pool, me, 10, 0.5), "the background share is used up, though 2 slots are free")
	requireQueuesExact(t, pool)

	// New deadline work is claimed ahead of the background requests still pending.
	late := seed(t, pool, "carol", "m", 4)
	require.Equal(t, map[string]int{late: 2}, claimShare(t, pool, me, 10, 0.5))
	_, err := pool.Exec(t.Context(), "UPDATE requests SET state = 'completed', daemon_id = NULL, result = '{}' WHERE batch_id = $1 AND state = 'running'", std)
	require.NoError(t, err)
	require.Equal(t, map[string]int{late: 2}, claimShare(t, pool, me, 10, 0.5), "the slots freed go to deadline work")
	requireQueuesExact(t, pool)
	require.Empty(t, claimShare(t, pool, me, 10, 0.5))
}

func TestBackgroundHoldsAtLeastOneSlot(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	me := register(t, dbsqlc.New(pool))
	low := seedBackground(t, pool, "alice", "m", 5)
	require.Equal(t, map[string]int{low: 1}, claimShare(t, pool, me, 3, 0.1), "a share under one slot still runs one")
	require.Empty(t, claimShare(t, pool, me, 3, 0.1))
	require.Equal(t, map[string]int{low: 3}, claimShare(t, pool, me, 4, 1), "a share of 1 may use the whole limit")
}
