package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/volleyhq/volley/internal/pgcluster"
)

// database is the database Volley and the ceiling runs use in the throwaway cluster.
const database = "volley"

// env is what every scenario shares: a throwaway PostgreSQL cluster with Volley's schema, freshly
// built volley and mockllm binaries, an API key, and a connection for housekeeping between runs.
type env struct {
	log        *slog.Logger
	quick      bool
	runs       int
	statements bool // see options.statements

	workDir   string // binaries and generated input files
	pgDir     string // the cluster's data directory
	cluster   *pgcluster.Cluster
	dsn       string
	db        *pgx.Conn
	volleyBin string
	mockBin   string
	riverBin  string // built on first use
	apiKey    string

	// output is the output file of the last batch a dispatch scenario ran, which the download
	// scenario reads; nil when there is none (or it was removed since).
	output *batchOutput

	machine  machineInfo
	settings []pgSetting
}

// setup starts the cluster, builds volley, creates an API key (which also applies Volley's
// migrations) and gathers what the report says about the machine. On error, whatever was started
// is stopped again.
func setup(ctx context.Context, log *slog.Logger, opts options) (_ *env, err error) {
	e := &env{log: log, quick: opts.quick, runs: opts.runs, statements: opts.statements}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.workDir, err = os.MkdirTemp("", "volleybench-"); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	if err := e.buildBinaries(ctx); err != nil {
		return nil, err
	}
	if err := e.startCluster(ctx); err != nil {
		return nil, err
	}
	if err := e.createKey(ctx); err != nil {
		return nil, err
	}
	if e.db, err = pgx.Connect(ctx, e.dsn); err != nil {
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	if e.statements {
		if _, err := e.db.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
			return nil, fmt.Errorf("pg_stat_statements: %w", err)
		}
	}
	if e.settings, err = serverSettings(ctx, e.db); err != nil {
		return nil, err
	}
	if e.machine, err = describeMachine(ctx, e.db, e.pgDir); err != nil {
		return nil, err
	}
	log.Info("environment ready", "postgres", e.machine.postgres, "cluster", e.pgDir, "filesystem", e.machine.filesystem)
	return e, nil
}

// close stops the cluster and removes every temporary file.
func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if e.db != nil {
		_ = e.db.Close(ctx)
	}
	if e.cluster != nil {
		if err := e.cluster.Stop(ctx); err != nil {
			e.log.Error("stop PostgreSQL", "error", err.Error())
		}
	}
	for _, dir := range []string{e.pgDir, e.workDir} {
		if dir != "" {
			if err := os.RemoveAll(dir); err != nil {
				e.log.Warn("remove temporary directory", "dir", dir, "error", err.Error())
			}
		}
	}
}

// buildBinaries compiles ./cmd/volley and ./internal/tools/cmd/mockllm from the module this program belongs to.
func (e *env) buildBinaries(ctx context.Context) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	binDir := filepath.Join(e.workDir, "bin")
	e.log.Info("building volley and mockllm", "module", root)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", binDir+string(os.PathSeparator), "./cmd/volley", "./internal/tools/cmd/mockllm")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/volley ./internal/tools/cmd/mockllm: %w\n%s", err, out)
	}
	e.volleyBin = filepath.Join(binDir, "volley")
	e.mockBin = filepath.Join(binDir, "mockllm")
	return nil
}

// moduleRoot is the directory holding go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run volleybench inside the Volley module (go run ./internal/tools/cmd/volleybench)")
	}
	return filepath.Dir(mod), nil
}

// startCluster starts a throwaway cluster with PostgreSQL's default durability settings: fsync,
// synchronous_commit and full_page_writes stay on, as on a production machine.
func (e *env) startCluster(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "volleybench-pg-")
	if err != nil {
		return fmt.Errorf("cluster directory: %w", err)
	}
	e.pgDir = dir
	e.log.Info("starting PostgreSQL", "data_dir", dir)
	var settings map[string]string
	if e.statements {
		settings = map[string]string{"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track_planning": "on"}
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{
		DataDir:   dir,
		Database:  database,
		Ephemeral: true,
		Logger:    e.log.With("component", "pgcluster"),
		Settings:  settings,
	})
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	e.cluster = c
	e.dsn = c.DSN(database)
	return nil
}

// volleyEnv is the environment of every volley process: this process's without any Volley
// settings, plus the cluster's DSN, quiet JSON logs and extra.
func (e *env) volleyEnv(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "DATABASE_URL" || strings.HasPrefix(k, "VOLLEY_") {
			continue
		}
		out = append(out, kv)
	}
	out = append(out,
		"DATABASE_URL="+e.dsn,
		"VOLLEY_DATA_DIR="+filepath.Join(e.workDir, "volley-data"),
		"VOLLEY_LOG_FORMAT=json",
		"VOLLEY_LOG_LEVEL=warn",
	)
	return append(out, extra...)
}

// createKey runs `volley keys create`, which also applies the migrations.
func (e *env) createKey(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, e.volleyBin, "keys", "create", "--owner", "bench")
	cmd.Env = e.volleyEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("volley keys create: %w\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	key := strings.TrimSpace(lines[len(lines)-1])
	if key == "" || strings.ContainsAny(key, " \t") {
		return fmt.Errorf("volley keys create: no key on the last line of its output %q", stdout.String())
	}
	e.apiKey = key
	return nil
}

// exec runs housekeeping SQL on the benchmark's own connection.
func (e *env) exec(ctx context.Context, sql string) error {
	if _, err := e.db.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// quiesce empties the tables a run writes and forces a checkpoint, so that every timed run starts
// from an empty table and does not pay for the previous run's dirty pages.
func (e *env) quiesce(ctx context.Context, tables ...string) error {
	for _, t := range tables {
		if err := e.exec(ctx, "TRUNCATE "+pgx.Identifier{t}.Sanitize()); err != nil {
			return err
		}
	}
	return e.exec(ctx, "CHECKPOINT")
}

// logStatements logs, with -statements, the statements that took the server's time since the last
// call, and starts counting afresh.
func (e *env) logStatements(ctx context.Context, label string) {
	if !e.statements {
		return
	}
	rows, err := e.db.Query(ctx, `SELECT calls, total_exec_time, total_plan_time, rows, shared_blks_dirtied, wal_fpi, wal_bytes::bigint, left(regexp_replace(query, '\s+', ' ', 'g'), 120)
		FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 12`)
	if err != nil {
		e.log.Warn("pg_stat_statements", "error", err.Error())
		return
	}
	defer rows.Close()
	for rows.Next() {
		var calls, n, dirtied, fpi, walBytes int64
		var exec, plan float64
		var query string
		if err := rows.Scan(&calls, &exec, &plan, &n, &dirtied, &fpi, &walBytes, &query); err != nil {
			e.log.Warn("pg_stat_statements", "error", err.Error())
			return
		}
		e.log.Info("statement", "run", label, "calls", calls, "exec_ms", fmt.Sprintf("%.0f", exec), "plan_ms", fmt.Sprintf("%.0f", plan),
			"mean_ms", fmt.Sprintf("%.3f", (exec+plan)/float64(max(calls, 1))), "rows", n,
			"blocks_dirtied", dirtied, "wal_fpi", fpi, "wal_mb", fmt.Sprintf("%.1f", float64(walBytes)/(1<<20)), "query", query)
	}
	rows.Close()
	if _, err := e.db.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
		e.log.Warn("pg_stat_statements reset", "error", err.Error())
	}
}
