package db

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

func migrationProvider(pool *pgxpool.Pool, logger *slog.Logger) (*goose.Provider, func() error, error) {
	sqlDB := stdlib.OpenDBFromPool(pool)
	fsys, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		return nil, nil, fmt.Errorf("migrations fs: %w", err)
	}
	// The session lock (pg_advisory_lock on one connection) lets any number of replicas start at
	// once: one applies the migrations, the others wait and then find nothing left to do.
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, nil, fmt.Errorf("migration lock: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true)}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, fsys, opts...)
	if err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("migration provider: %w", err)
	}
	return p, sqlDB.Close, nil
}

// Migrate applies every pending migration under the Postgres session lock and returns the schema
// version the database is at afterwards.
func Migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) (int64, error) {
	p, closeDB, err := migrationProvider(pool, logger)
	if err != nil {
		return 0, err
	}
	defer closeDB()
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("apply migrations: %w", err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// MigrationsPending reports whether the database lacks migrations this binary knows about.
func MigrationsPending(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	p, closeDB, err := migrationProvider(pool, nil)
	if err != nil {
		return false, err
	}
	defer closeDB()
	return p.HasPending(ctx)
}
