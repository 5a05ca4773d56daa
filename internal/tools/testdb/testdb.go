// Package testdb gives tests real PostgreSQL databases: one throwaway cluster per test process
// (started on first use, with fsync off) or the server named by TEST_DATABASE_URL, one migrated
// template database, and a fresh clone of it for every test that asks.
package testdb

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/internal/pgcluster"
)

var (
	once     sync.Once
	initErr  error
	cluster  *pgcluster.Cluster
	tmpDir   string
	adminDSN string // a DSN on the maintenance database
	template string
	cloneMu  sync.Mutex
	seq      atomic.Int64
	dsnFor   func(database string) string
)

// Main runs the package's tests and then stops the cluster it may have started. Use it from
// TestMain in every package whose tests call New.
func Main(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		_ = cluster.Stop(context.Background())
	}
	if tmpDir != "" {
		_ = os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if url := os.Getenv("TEST_DATABASE_URL"); url != "" {
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			return fmt.Errorf("TEST_DATABASE_URL: %w", err)
		}
		adminDSN = url
		dsnFor = func(database string) string { return replaceDatabase(url, cfg.Database, database) }
	} else {
		dir, err := os.MkdirTemp("", "volley-test-pg-")
		if err != nil {
			return err
		}
		tmpDir = dir
		cluster, err = pgcluster.Start(ctx, pgcluster.Options{
			DataDir:   dir,
			Ephemeral: true,
			Settings: map[string]string{
				"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
				"max_connections": "300",
			},
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			return err
		}
		adminDSN = cluster.DSN("postgres")
		dsnFor = cluster.DSN
	}
	template = fmt.Sprintf("volley_template_%d_%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	if err := exec(ctx, adminDSN, "CREATE DATABASE "+template); err != nil {
		return err
	}
	pool, err := db.Connect(ctx, dsnFor(template), db.PoolConfig{MaxConns: 4})
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := db.Migrate(ctx, pool, nil); err != nil {
		return err
	}
	return nil
}

// replaceDatabase swaps the database name in a URL or keyword/value DSN.
func replaceDatabase(dsn, from, to string) string {
	if strings.Contains(dsn, "://") {
		if i := strings.Index(dsn, "/"+from); from != "" && i >= 0 {
			return dsn[:i] + "/" + to + dsn[i+1+len(from):]
		}
		if i := strings.Index(dsn, "?"); i >= 0 {
			return dsn[:i] + to + dsn[i:]
		}
		return strings.TrimRight(dsn, "/") + "/" + to
	}
	return dsn + " dbname=" + to
}

func exec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// DSN creates a fresh database cloned from the migrated template and returns its DSN. The database
// is dropped when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	return create(t, true)
}

// EmptyDSN creates a fresh database without Volley's schema, for tests of migrating itself. It is
// dropped when the test ends.
func EmptyDSN(t testing.TB) string {
	t.Helper()
	return create(t, false)
}

func create(t testing.TB, migrated bool) string {
	t.Helper()
	once.Do(func() { initErr = setup() })
	if initErr != nil {
		t.Fatalf("test database: %v", initErr)
	}
	clause := ""
	if migrated {
		clause = " TEMPLATE " + template
	}
	name := fmt.Sprintf("volley_test_%d_%d", os.Getpid(), seq.Add(1))
	ctx := context.Background()
	cloneMu.Lock()
	err := exec(ctx, adminDSN, "CREATE DATABASE "+name+clause)
	cloneMu.Unlock()
	if err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		if err := exec(context.Background(), adminDSN, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Logf("drop test database: %v", err)
		}
	})
	return dsnFor(name)
}

// New returns a pool on a fresh migrated database of the test's own.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := db.Connect(context.Background(), DSN(t), db.PoolConfig{MaxConns: 10})
	if err != nil {
		t.Fatalf("connect test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
