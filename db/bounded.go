package db

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/volleyhq/volley/db/dbsqlc"
)

// Bounded returns conn with every statement limited to d from when it is sent (or less, when the
// caller's context ends sooner). The limit is kept by the client, so it holds when the server does
// not answer at all, which a server-side statement_timeout cannot promise; an expired statement
// fails with an error that Translate reports as ErrUnavailable. Rows stay readable until closed.
func Bounded(conn dbsqlc.DBTX, d time.Duration) dbsqlc.DBTX {
	if d <= 0 {
		return conn
	}
	return bounded{conn: conn, d: d}
}

type bounded struct {
	conn dbsqlc.DBTX
	d    time.Duration
}

func (b bounded) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	ctx, cancel := Bound(ctx, b.d)
	defer cancel()
	return b.conn.Exec(ctx, sql, args...)
}

func (b bounded) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	ctx, cancel := Bound(ctx, b.d)
	rows, err := b.conn.Query(ctx, sql, args...)
	if err != nil {
		cancel()
		return nil, err
	}
	return &boundedRows{Rows: rows, cancel: cancel}, nil
}

func (b bounded) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	ctx, cancel := Bound(ctx, b.d)
	return &boundedRow{row: b.conn.QueryRow(ctx, sql, args...), cancel: cancel}
}

// boundedRows releases the statement's deadline when the rows are closed.
type boundedRows struct {
	pgx.Rows
	cancel context.CancelFunc
}

func (r *boundedRows) Close() {
	r.Rows.Close()
	r.cancel()
}

// Next closes the rows itself once they are read to the end (as pgx does), so the deadline is
// released then too.
func (r *boundedRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.cancel()
	return false
}

// boundedRow releases the statement's deadline once the row is scanned.
type boundedRow struct {
	row    pgx.Row
	cancel context.CancelFunc
}

func (r *boundedRow) Scan(dest ...any) error {
	defer r.cancel()
	return r.row.Scan(dest...)
}
