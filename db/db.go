// Package db owns Volley's PostgreSQL schema and access: embedded goose migrations, the sqlc
// queries in dbsqlc, the connection pool, transactions, and the one place where database errors are
// translated into the errors the rest of the program understands.
package db

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/volleyhq/volley/db/dbsqlc"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// ErrNotFound is returned when a row that was asked for does not exist.
var ErrNotFound = errors.New("not found")

// ErrUnavailable is returned when the database cannot be reached or did not answer in time.
var ErrUnavailable = errors.New("database unavailable")

// ErrInvalidText is returned when a value holds text PostgreSQL cannot store: a NUL character or
// bytes that are not UTF-8. No stored object can be named by such text.
var ErrInvalidText = errors.New("text the database cannot store")

// ConflictError is returned when a write violates a unique constraint.
type ConflictError struct {
	Constraint string
}

func (e *ConflictError) Error() string { return "conflict on " + e.Constraint }

// Translate maps driver errors onto ErrNotFound, *ConflictError and ErrUnavailable, wrapping the
// original so that it can still be logged. Other errors are returned unchanged.
func Translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return fmt.Errorf("%w: %w", &ConflictError{Constraint: pgErr.ConstraintName}, err)
		case "22021", "22P05":
			return fmt.Errorf("%w: %w", ErrInvalidText, err)
		case "57P01", "57P02", "57P03", "53300":
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// PoolConfig tunes the connection pool.
type PoolConfig struct {
	MaxConns int32
	// StatementTimeout bounds every statement on the server side; zero leaves the server default.
	StatementTimeout time.Duration
}

// Connect opens a pool on dsn and checks that the database answers.
func Connect(ctx context.Context, dsn string, pc PoolConfig) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if pc.MaxConns > 0 {
		cfg.MaxConns = pc.MaxConns
	}
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 15 * time.Second
	cfg.ShouldPing = shouldPing
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if pc.StatementTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(pc.StatementTimeout.Milliseconds())
	}
	// Volley's statements are short and run constantly. JIT compilation would cost more than it
	// saves, and a cached generic plan of the claim or record statement can be orders of magnitude
	// slower than one planned for the actual parameters, so every execution gets a fresh plan.
	for k, v := range map[string]string{"jit": "off", "plan_cache_mode": "force_custom_plan"} {
		if _, ok := cfg.ConnConfig.RuntimeParams[k]; !ok {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "volley"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// WithTx runs fn inside a transaction, committing when fn returns nil and rolling back otherwise.
// The error returned is already translated.
func WithTx(ctx context.Context, pool *pgxpool.Pool, fn func(tx Tx, q *dbsqlc.Queries) error) error {
	return WithBoundedTx(ctx, pool, 0, fn)
}

// Bound limits ctx to d from now, as Bounded does for each statement; zero leaves ctx as it is.
func Bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// WithBoundedTx is WithTx with every statement, the BEGIN and COMMIT included, limited to d as
// Bounded does (zero: no limit), so that a database that does not answer fails the transaction in
// time instead of holding its caller.
func WithBoundedTx(ctx context.Context, pool *pgxpool.Pool, d time.Duration, fn func(tx Tx, q *dbsqlc.Queries) error) error {
	beginCtx, cancel := Bound(ctx, d)
	tx, err := pool.Begin(beginCtx)
	cancel()
	if err != nil {
		return Translate(fmt.Errorf("begin: %w", err))
	}
	defer func() {
		// Rollback after a commit is a no-op; with a cancelled ctx it still releases the connection.
		rbCtx, cancel := Bound(context.WithoutCancel(ctx), d)
		defer cancel()
		_ = tx.Rollback(rbCtx)
	}()
	if err := fn(tx, dbsqlc.New(Bounded(tx, d))); err != nil {
		return Translate(err)
	}
	commitCtx, cancel := Bound(ctx, d)
	defer cancel()
	if err := tx.Commit(commitCtx); err != nil {
		return Translate(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// Tx is the transaction handed to WithTx callbacks.
type Tx = pgx.Tx
