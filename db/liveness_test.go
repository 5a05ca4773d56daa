package db

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/pgcluster"
)

// Once a restarted PostgreSQL accepts connections, no statement fails because of a pooled
// connection the restart broke: each such connection is recognised by what the server left on it
// and replaced before use, however recently it was used.
func TestPoolSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "volley-restart-pg-")
	require.NoError(t, err)
	opts := pgcluster.Options{DataDir: dir, Settings: map[string]string{"fsync": "off"}}
	cluster, err := pgcluster.Start(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = cluster.Stop(stop)
		_ = os.RemoveAll(dir)
	})

	pool, err := Connect(ctx, cluster.DSN(""), PoolConfig{MaxConns: 4})
	require.NoError(t, err)
	defer pool.Close()
	// Four connections, each used just now.
	var held []func()
	for range 4 {
		c, err := pool.Acquire(ctx)
		require.NoError(t, err)
		_, err = c.Exec(ctx, "SELECT 1")
		require.NoError(t, err)
		held = append(held, c.Release)
	}
	for _, release := range held {
		release()
	}
	idle := pool.AcquireAllIdle(ctx)
	require.Len(t, idle, 4)
	for _, c := range idle {
		require.False(t, shouldPing(ctx, pgxShouldPing(c.Conn(), 0)), "a healthy connection used just now is not pinged")
		c.Release()
	}

	require.NoError(t, cluster.Stop(ctx))
	cluster, err = pgcluster.Start(ctx, opts)
	require.NoError(t, err)

	// Every pooled connection now carries the old server's goodbye, and is pinged however fresh.
	idle = pool.AcquireAllIdle(ctx)
	require.Len(t, idle, 4)
	for _, c := range idle {
		require.Eventually(t, func() bool { return shouldPing(ctx, pgxShouldPing(c.Conn(), 0)) },
			10*time.Second, 5*time.Millisecond, "a connection the restart broke is recognised")
		c.Release()
	}
	for i := range 20 {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT $1::int", i).Scan(&n), "statement %d after the restart", i)
		require.Equal(t, i, n)
	}
}

func pgxShouldPing(c *pgx.Conn, idle time.Duration) pgxpool.ShouldPingParams {
	return pgxpool.ShouldPingParams{Conn: c, IdleDuration: idle}
}

// The peek at an idle connection does not wait for a read another goroutine has pending on it, as
// pgconn's background reader may have on a connection back in the pool.
func TestPendingInputDoesNotWaitForAnotherRead(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	server := <-accepted
	defer server.Close()
	reading := make(chan struct{})
	go func() {
		close(reading)
		_, _ = c.Read(make([]byte, 1)) // blocks: the server sends nothing until the end
	}()
	<-reading
	done := make(chan bool, 1)
	go func() { done <- pendingInput(c) }()
	select {
	case pending := <-done:
		require.False(t, pending, "nothing was sent")
	case <-time.After(10 * time.Second):
		t.Fatal("pendingInput waited for the other goroutine's read")
	}
	_, err = server.Write([]byte("x"))
	require.NoError(t, err)
}
