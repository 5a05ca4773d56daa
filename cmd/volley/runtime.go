package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lmittmann/tint"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/internal/config"
	"github.com/volleyhq/volley/internal/pgcluster"
)

// newLogger writes colourful text to a terminal and JSON lines anywhere else.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(tint.NewHandler(w, &tint.Options{Level: cfg.LogLevel}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel}))
}

// database is a connected, migrated pool and what is needed to release it.
type database struct {
	pool    *pgxpool.Pool
	cluster *pgcluster.Cluster
	logger  *slog.Logger
}

// openDatabase connects to DATABASE_URL or, without it, to the embedded cluster (started if it is
// not running already), and applies migrations.
func openDatabase(ctx context.Context, cfg config.Config, logger *slog.Logger, maxConns int32) (*database, error) {
	d := &database{logger: logger}
	dsn := cfg.DatabaseURL
	if dsn == "" {
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: cfg.PGDataDir(), Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("embedded postgres: %w", err)
		}
		d.cluster = cluster
		dsn = cluster.DSN("volley")
	}
	pool, err := db.Connect(ctx, dsn, db.PoolConfig{MaxConns: maxConns})
	if err != nil {
		d.close(ctx)
		return nil, err
	}
	d.pool = pool
	version, err := db.Migrate(ctx, pool, logger)
	if err != nil {
		d.close(ctx)
		return nil, err
	}
	logger.Debug("schema migrated", "version", version)
	return d, nil
}

func (d *database) close(ctx context.Context) {
	if d.pool != nil {
		d.pool.Close()
	}
	if d.cluster != nil {
		if err := d.cluster.Stop(context.WithoutCancel(ctx)); err != nil {
			d.logger.Error("stop embedded postgres", "error", err.Error())
		}
	}
}
