package main

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// Closing the database must not wait for a connection that is never given back (one stuck on a
// database that does not answer): the process exits all the same.
func TestClosingTheDatabaseIsBounded(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	held, err := pool.Acquire(context.Background())
	require.NoError(t, err)
	defer held.Release()

	var logs bytes.Buffer
	d := &database{pool: pool, logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	closed := make(chan struct{})
	go func() {
		d.close(context.Background())
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("closing the database waited for the connection still in use")
	}
	require.Contains(t, logs.String(), "database connections did not close in time")
}
