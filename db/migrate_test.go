package db_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/internal/tools/testdb"
)

// Replicas starting together migrate one at a time under the session lock: every one of them
// succeeds, at the same version, and each migration is applied once.
func TestReplicasMigratingAtOnce(t *testing.T) {
	t.Parallel()
	dsn := testdb.EmptyDSN(t)
	const replicas = 4
	versions := make([]int64, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := db.Connect(context.Background(), dsn, db.PoolConfig{MaxConns: 4})
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			versions[i], errs[i] = db.Migrate(context.Background(), pool, nil)
		}()
	}
	wg.Wait()
	for i := range replicas {
		require.NoError(t, errs[i], "replica %d", i)
		require.Equal(t, versions[0], versions[i])
	}
	require.Positive(t, versions[0])

	pool, err := db.Connect(t.Context(), dsn, db.PoolConfig{MaxConns: 2})
	require.NoError(t, err)
	defer pool.Close()
	var applied, distinct int
	var newest int64
	require.NoError(t, pool.QueryRow(t.Context(),
		"SELECT count(*), count(DISTINCT version_id), max(version_id) FROM goose_db_version WHERE version_id > 0").Scan(&applied, &distinct, &newest))
	require.Equal(t, distinct, applied, "no migration applied twice")
	require.EqualValues(t, versions[0], newest, "migration numbers may have gaps")
	pending, err := db.MigrationsPending(t.Context(), pool)
	require.NoError(t, err)
	require.False(t, pending)
}
