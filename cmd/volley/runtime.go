package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

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

// poolCloseBound is how long closing the pool may take. Closing waits for connections still in use
// and, for connections broken by a cancelled query, for pgx's clean-up, which asks the server to
// cancel and may wait up to 15 s each for a server that does not answer. By then nothing is left to
// save: PostgreSQL rolls back whatever a vanished connection had open, so the process exits and its
// sockets close with it.
const poolCloseBound = 3 * time.Second

func (d *database) close(ctx context.Context) {
	if d.pool != nil {
		closed := make(chan struct{})
		go func() {
			d.pool.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(poolCloseBound):
			d.logger.Warn("database connections did not close in time; leaving them to the operating system",
				"bound", poolCloseBound.String())
		}
	}
	if d.cluster != nil {
		if err := d.cluster.Stop(context.WithoutCancel(ctx)); err != nil {
			d.logger.Error("stop embedded postgres", "error", err.Error())
		}
	}
}
