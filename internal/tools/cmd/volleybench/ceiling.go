package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ceilingTable has file_lines' definition (columns, primary key, storage) and receives the same
// rows through psql's \copy: what PostgreSQL alone needs to store an upload.
const ceilingTable = "ceiling_lines"

// ensureCeilingTable creates ceilingTable like file_lines and returns the columns both are
// written with.
func (e *env) ensureCeilingTable(ctx context.Context) ([]copyColumn, error) {
	sql := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (LIKE file_lines INCLUDING ALL)", ceilingTable)
	if err := e.exec(ctx, sql); err != nil {
		return nil, err
	}
	return fileLinesColumns(ctx, e.db)
}

// fileLinesColumns lists file_lines' columns and their types, in table order.
func fileLinesColumns(ctx context.Context, db *pgx.Conn) ([]copyColumn, error) {
	rows, err := db.Query(ctx, `SELECT attname, atttypid FROM pg_attribute
		WHERE attrelid = 'file_lines'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)
	if err != nil {
		return nil, fmt.Errorf("columns of file_lines: %w", err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (copyColumn, error) {
		var c copyColumn
		err := r.Scan(&c.name, &c.oid)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("columns of file_lines: %w", err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("file_lines has no columns: are Volley's migrations applied?")
	}
	return cols, nil
}

var copyTag = regexp.MustCompile(`(?m)^COPY (\d+)$`)

// ceilingCopy loads the dataset's COPY file into ceilingTable with psql's \copy and returns how
// long psql took, start to exit.
func (e *env) ceilingCopy(ctx context.Context, d dataset) (time.Duration, error) {
	if strings.ContainsRune(d.copyPath, '\'') {
		return 0, fmt.Errorf("COPY file path %q contains a quote", d.copyPath)
	}
	cols := make([]string, len(d.columns))
	for i, c := range d.columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	meta := fmt.Sprintf(`\copy %s (%s) FROM '%s' WITH (FORMAT binary)`, ceilingTable, strings.Join(cols, ", "), d.copyPath)
	cmd := exec.CommandContext(ctx, filepath.Join(e.cluster.BinDir(), "psql"),
		"-X", "-v", "ON_ERROR_STOP=1", "-d", e.dsn, "-c", meta)
	cmd.Env = withoutLibpqEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("psql %s: %w\n%s", meta, err, stderr.String())
	}
	m := copyTag.FindStringSubmatch(stdout.String())
	if m == nil {
		return 0, fmt.Errorf("psql \\copy: no COPY tag in its output %q", stdout.String())
	}
	if n, _ := strconv.Atoi(m[1]); n != d.lines {
		return 0, fmt.Errorf("psql \\copy stored %d rows, want %d", n, d.lines)
	}
	return elapsed, nil
}

// withoutLibpqEnv is this process's environment without the PG* variables that would redirect
// or reconfigure psql.
func withoutLibpqEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			out = append(out, kv)
		}
	}
	return out
}
