package chaos

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/volleyhq/volley/internal/pgcluster"
)

// Postgres is a throwaway PostgreSQL cluster the suites may crash, restart and freeze.
type Postgres struct {
	dir     string
	pgData  string
	logFile string
	cluster *pgcluster.Cluster
	cred    *syscall.Credential

	mu     sync.Mutex
	frozen []int
}

// StartPostgres initialises and starts a cluster in dir. synchronous_commit stays on whatever
// durable says, so that a crash of the server never loses a committed row; durable=false turns
// fsync off, which only an operating-system crash could notice.
func StartPostgres(ctx context.Context, dir string, durable bool) (*Postgres, error) {
	settings := map[string]string{"max_connections": "300", "synchronous_commit": "on"}
	if !durable {
		settings["fsync"] = "off"
		settings["full_page_writes"] = "off"
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{
		DataDir: dir, Ephemeral: true, Settings: settings, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err
	}
	resolved := dir
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		resolved = r
	}
	pg := &Postgres{
		dir: resolved, pgData: filepath.Join(resolved, "data"), logFile: filepath.Join(resolved, "log", "postgres.log"),
		cluster: c,
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			_ = c.Stop(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("look up the postgres user: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return pg, nil
}

// DSN is the connection string of the volley database.
func (pg *Postgres) DSN() string { return pg.cluster.DSN("volley") }

// Stop thaws the server if it is frozen, stops it and removes its directory.
func (pg *Postgres) Stop(ctx context.Context) error {
	pg.Thaw()
	return pg.cluster.Stop(ctx)
}

// pgCtl runs pg_ctl as the server's user.
func (pg *Postgres) pgCtl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(pg.cluster.BinDir(), "pg_ctl"), args...)
	cmd.Dir = pg.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Crash stops the server the way a crash would (immediate shutdown: no checkpoint, recovery from
// the WAL at the next start).
func (pg *Postgres) Crash(ctx context.Context) error {
	return pg.pgCtl(ctx, "stop", "-D", pg.pgData, "-m", "immediate", "-w", "-t", "60", "-s")
}

// Start starts the stopped server again with the options it last ran with (postmaster.opts),
// on the same socket, and waits until it accepts connections.
func (pg *Postgres) Start(ctx context.Context) error {
	// restart on a stopped server starts it with the options recorded in postmaster.opts.
	return pg.pgCtl(ctx, "restart", "-D", pg.pgData, "-l", pg.logFile, "-w", "-t", "120", "-s")
}

// Restart crashes the server, leaves it down for downtime, and starts it again.
func (pg *Postgres) Restart(ctx context.Context, downtime time.Duration) error {
	if err := pg.Crash(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-time.After(downtime): // the outage's length is the schedule, not a synchronisation
	}
	return pg.Start(context.WithoutCancel(ctx))
}

// postmasterPID reads the server's PID from postmaster.pid.
func (pg *Postgres) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(pg.pgData, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("postmaster.pid: bad pid %q", first)
	}
	return pid, nil
}

// Processes are the postmaster and its children.
func (pg *Postgres) Processes() ([]int, error) {
	pm, err := pg.postmasterPID()
	if err != nil {
		return nil, err
	}
	return append([]int{pm}, childrenOf(pm)...), nil
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces, so look after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) >= 2 {
			if ppid, err := strconv.Atoi(fields[1]); err == nil && ppid == pid {
				out = append(out, child)
			}
		}
	}
	return out
}

// Freeze stops the postmaster and every child with SIGSTOP: connections stay open, nothing
// answers. It returns how many processes were frozen.
func (pg *Postgres) Freeze() (int, error) {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	pm, err := pg.postmasterPID()
	if err != nil {
		return 0, err
	}
	// The postmaster first, so it forks nothing new; then its children until none is left running.
	if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
		return 0, fmt.Errorf("SIGSTOP postmaster %d: %w", pm, err)
	}
	pg.frozen = append(pg.frozen[:0], pm)
	for round := 0; round < 5; round++ {
		added := false
		for _, c := range childrenOf(pm) {
			if slices.Contains(pg.frozen, c) {
				continue
			}
			if syscall.Kill(c, syscall.SIGSTOP) == nil {
				pg.frozen = append(pg.frozen, c)
				added = true
			}
		}
		if !added {
			break
		}
	}
	return len(pg.frozen), nil
}

// Thaw continues every frozen process.
func (pg *Postgres) Thaw() {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if len(pg.frozen) == 0 {
		return
	}
	pm := pg.frozen[0]
	for _, pid := range pg.frozen[1:] {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	for _, c := range childrenOf(pm) {
		_ = syscall.Kill(c, syscall.SIGCONT)
	}
	_ = syscall.Kill(pm, syscall.SIGCONT)
	pg.frozen = nil
}

// Version is the server's version string.
func (pg *Postgres) Version(ctx context.Context) string {
	conn, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		return "unknown"
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "unknown"
	}
	return v
}

// Query runs one statement returning a single integer (for the suites' own checks).
func (pg *Postgres) QueryInt(ctx context.Context, sql string, args ...any) (int64, error) {
	conn, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var v int64
	err = conn.QueryRow(ctx, sql, args...).Scan(&v)
	return v, err
}
