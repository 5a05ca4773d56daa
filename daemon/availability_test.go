package daemon

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/tools/testdb"
)

func setAvailability(t *testing.T, q *dbsqlc.Queries, model, state string) {
	t.Helper()
	_, err := q.ModelAvailabilityInsert(t.Context(), dbsqlc.ModelAvailabilityInsertParams{Model: model, State: state})
	require.NoError(t, err)
}

func claimTrickle(t *testing.T, pool *pgxpool.Pool, daemonID int64, trickleSeconds float64) []dbsqlc.RequestClaimRow {
	t.Helper()
	return claimRound(t, pool, dbsqlc.RequestClaimParams{
		DaemonID: daemonID, DefaultLimit: 100, MaxClaim: 100, FreshSeconds: 60, TrickleSeconds: trickleSeconds,
	}).Rows
}

func perOwner(rows []dbsqlc.RequestClaimRow) map[string]int {
	m := map[string]int{}
	for _, r := range rows {
		m[r.Owner+"/"+r.Model]++
	}
	return m
}

// A model marked `coming` holds its requests but for one per owner per trickle interval; other
// models are claimed as usual; marking it live releases the rest at the next claim.
func TestComingModelHoldsItsRequestsButTheTrickle(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	seed(t, pool, "alice", "cold", 5)
	seed(t, pool, "bob", "cold", 5)
	seed(t, pool, "alice", "warm", 2)
	setAvailability(t, q, "cold", "live")
	setAvailability(t, q, "cold", "coming")
	daemonID := register(t, q)

	rows := claimTrickle(t, pool, daemonID, 3600)
	require.Equal(t, map[string]int{"alice/cold": 1, "bob/cold": 1, "alice/warm": 2}, perOwner(rows))
	require.Empty(t, claimTrickle(t, pool, daemonID, 3600), "one per owner per interval")

	// Once the interval has passed, each owner gets one more.
	_, err := pool.Exec(t.Context(), "UPDATE model_trickle SET at = now() - interval '2 hours'")
	require.NoError(t, err)
	require.Equal(t, map[string]int{"alice/cold": 1, "bob/cold": 1}, perOwner(claimTrickle(t, pool, daemonID, 3600)))
	require.Empty(t, claimTrickle(t, pool, daemonID, 3600))

	setAvailability(t, q, "cold", "live")
	require.Equal(t, map[string]int{"alice/cold": 3, "bob/cold": 3}, perOwner(claimTrickle(t, pool, daemonID, 3600)))
}

// With no trickle, and for an `absent` model, nothing goes through.
func TestNotLiveModelWithoutTrickleHoldsEverything(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	seed(t, pool, "alice", "cold", 3)
	seed(t, pool, "alice", "gone", 3)
	setAvailability(t, q, "cold", "coming")
	setAvailability(t, q, "gone", "absent")
	daemonID := register(t, q)
	require.Empty(t, claimTrickle(t, pool, daemonID, 0))
	var pending int
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM requests WHERE state = 'pending'").Scan(&pending))
	require.Equal(t, 6, pending, "held requests stay pending, not failed")
	require.Equal(t, map[string]int{"alice/cold": 1}, perOwner(claimTrickle(t, pool, daemonID, 3600)), "an absent model has no trickle")
}

// Claims across replicas share one trickle.
func TestTrickleIsSharedByReplicas(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	seed(t, pool, "alice", "cold", 5)
	setAvailability(t, q, "cold", "coming")
	a, b := register(t, q), register(t, q)
	require.Len(t, claimTrickle(t, pool, a, 3600), 1)
	require.Empty(t, claimTrickle(t, pool, b, 3600))
}

func TestAvailabilityPruneKeepsTheLatest(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	for _, s := range []string{"coming", "live", "absent", "coming"} {
		setAvailability(t, q, "m", s)
	}
	setAvailability(t, q, "other", "absent")
	_, err := pool.Exec(t.Context(), "UPDATE model_availability_events SET created_at = now() - interval '30 days'")
	require.NoError(t, err)
	n, err := q.ModelAvailabilityPrune(t.Context(), dbsqlc.ModelAvailabilityPruneParams{OlderThanSeconds: 86400, Keep: 2})
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	latest, err := q.ModelAvailabilityLatest(t.Context())
	require.NoError(t, err)
	require.Len(t, latest, 2)
	require.Equal(t, "coming", latest[0].State)
	require.Equal(t, "absent", latest[1].State)
	// Keep 0 still never removes a model's state.
	_, err = q.ModelAvailabilityPrune(t.Context(), dbsqlc.ModelAvailabilityPruneParams{OlderThanSeconds: 86400, Keep: 1})
	require.NoError(t, err)
	latest, err = q.ModelAvailabilityLatest(t.Context())
	require.NoError(t, err)
	require.Len(t, latest, 2)
}
