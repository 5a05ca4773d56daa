package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// requirePostgres skips the test when PostgreSQL is not installed, except in CI where it must be.
func requirePostgres(t *testing.T) {
	t.Helper()
	if _, err := FindBinaries(); err != nil {
		if errors.Is(err, ErrNoBinaries) && os.Getenv("CI") == "" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
}

// testDataDir returns a not yet existing cluster directory in a fresh temporary directory. As
// root, the temporary directories (0700) are opened to the postgres user.
func testDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		tmp := filepath.Clean(os.TempDir())
		for p := dir; p != tmp && p != filepath.Dir(p); p = filepath.Dir(p) {
			require.NoError(t, os.Chmod(p, 0o711))
		}
	}
	return filepath.Join(dir, "pg")
}

func testOptions(t *testing.T, dataDir string) Options {
	return Options{
		DataDir:  dataDir,
		Settings: map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// start starts a cluster and stops it at the end of the test.
func start(t *testing.T, ctx context.Context, opts Options) *Cluster {
	t.Helper()
	c, err := Start(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return c
}

// queryString runs sql on a new connection and returns the single text value it yields.
func queryString(ctx context.Context, dsn, sql string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		return "", err
	}
	return s, nil
}

func exec1(t *testing.T, ctx context.Context, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

func postmasterPID(t *testing.T, c *Cluster) int {
	t.Helper()
	info, err := readPIDFile(c.pgData)
	require.NoError(t, err)
	require.Positive(t, info.pid)
	return info.pid
}

func TestLifecycle(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	ctx := testContext(t)
	dataDir := testDataDir(t)

	owner := start(t, ctx, testOptions(t, dataDir))
	require.True(t, owner.Owned())
	require.Equal(t, filepath.Join(dataDir, "run"), owner.SocketDir())
	require.NotEmpty(t, owner.BinDir())

	one, err := queryString(ctx, owner.DSN(""), "SELECT 1::text")
	require.NoError(t, err)
	require.Equal(t, "1", one)
	db, err := queryString(ctx, owner.DSN(""), "SELECT current_database()")
	require.NoError(t, err)
	require.Equal(t, "volley", db)
	for setting, want := range map[string]string{
		"listen_addresses": "", "fsync": "off", "max_connections": "200", "shared_buffers": "128MB",
		"server_encoding": "UTF8", "lc_collate": "C",
	} {
		got, err := queryString(ctx, owner.DSN("postgres"), "SHOW "+setting)
		require.NoError(t, err)
		require.Equal(t, want, got, setting)
	}
	if os.Geteuid() == 0 {
		fi, err := os.Stat(filepath.Join(dataDir, "data", "postmaster.pid"))
		require.NoError(t, err)
		require.Equal(t, uint32(lookupUID(t, "postgres")), fi.Sys().(*syscall.Stat_t).Uid, "server runs as postgres")
	}
	exec1(t, ctx, owner.DSN(""), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
	log, err := os.ReadFile(filepath.Join(dataDir, "log", "postgres.log"))
	require.NoError(t, err)
	require.Contains(t, string(log), "database system is ready to accept connections")

	// A second Start attaches to the running server.
	attached := start(t, ctx, testOptions(t, dataDir))
	require.False(t, attached.Owned())
	require.Equal(t, owner.DSN(""), attached.DSN(""))
	require.NoError(t, attached.Stop(ctx))
	_, err = queryString(ctx, owner.DSN(""), "SELECT 1::text")
	require.NoError(t, err, "stopping an attached cluster must leave the server running")

	// The owner's Stop stops it.
	require.NoError(t, owner.Stop(ctx))
	require.NoError(t, owner.Stop(ctx), "Stop twice")
	_, err = queryString(ctx, owner.DSN(""), "SELECT 1::text")
	require.Error(t, err)
	_, err = os.Stat(filepath.Join(dataDir, "data", "postmaster.pid"))
	require.ErrorIs(t, err, os.ErrNotExist)

	// Starting again restarts the kept cluster.
	again := start(t, ctx, testOptions(t, dataDir))
	require.True(t, again.Owned())
	v, err := queryString(ctx, again.DSN(""), "SELECT v FROM kept")
	require.NoError(t, err)
	require.Equal(t, "still here", v)
	require.NoError(t, again.Stop(ctx))
}

func lookupUID(t *testing.T, name string) int {
	t.Helper()
	out, err := exec.Command("id", "-u", name).Output()
	require.NoError(t, err)
	uid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err)
	return uid
}

func TestConcurrentStart(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	ctx := testContext(t)
	dataDir := testDataDir(t)

	const n = 3
	clusters := make([]*Cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { clusters[i], errs[i] = Start(ctx, testOptions(t, dataDir)) })
	}
	wg.Wait()
	var owner *Cluster
	for i, c := range clusters {
		require.NoError(t, errs[i])
		t.Cleanup(func() { _ = c.Stop(context.Background()) })
		if c.Owned() {
			require.Nil(t, owner, "more than one owner")
			owner = c
		}
	}
	require.NotNil(t, owner, "no owner")
	for _, c := range clusters {
		_, err := queryString(ctx, c.DSN(""), "SELECT 1::text")
		require.NoError(t, err)
	}
	for _, c := range clusters {
		if c != owner {
			require.NoError(t, c.Stop(ctx))
		}
	}
	require.NoError(t, owner.Stop(ctx))
}

// TestStalePIDFile restarts a cluster whose postmaster.pid names a dead process, and one whose PID
// was reused by an unrelated process.
func TestStalePIDFile(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	ctx := testContext(t)
	dataDir := testDataDir(t)
	pidPath := filepath.Join(dataDir, "data", "postmaster.pid")

	c := start(t, ctx, testOptions(t, dataDir))
	content, err := os.ReadFile(pidPath)
	require.NoError(t, err)
	require.NoError(t, c.Stop(ctx))

	withPID := func(pid int) []byte {
		_, rest, _ := strings.Cut(string(content), "\n")
		return []byte(strconv.Itoa(pid) + "\n" + rest)
	}

	// A PID that no longer exists.
	gone := exec.Command("true")
	require.NoError(t, gone.Run())
	require.NoError(t, os.WriteFile(pidPath, withPID(gone.Process.Pid), 0o600))
	require.NoError(t, c.user.chown(pidPath))
	c = start(t, ctx, testOptions(t, dataDir))
	require.True(t, c.Owned())
	_, err = queryString(ctx, c.DSN(""), "SELECT 1::text")
	require.NoError(t, err)
	require.NoError(t, c.Stop(ctx))

	if runtime.GOOS != "linux" {
		return // telling a reused PID apart needs /proc
	}
	// A live process that is not the server: this test.
	require.NoError(t, os.WriteFile(pidPath, withPID(os.Getpid()), 0o600))
	require.NoError(t, c.user.chown(pidPath))
	c = start(t, ctx, testOptions(t, dataDir))
	require.True(t, c.Owned())
	_, err = queryString(ctx, c.DSN(""), "SELECT 1::text")
	require.NoError(t, err)
	require.NoError(t, c.Stop(ctx))
}

// TestCrash restarts a cluster whose server was killed.
func TestCrash(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	ctx := testContext(t)
	dataDir := testDataDir(t)

	opts := testOptions(t, dataDir)
	delete(opts.Settings, "synchronous_commit") // commits must survive the crash
	c := start(t, ctx, opts)
	exec1(t, ctx, c.DSN(""), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('committed')")
	pid := postmasterPID(t, c)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) || procState(pid) == 'Z'
	}, 30*time.Second, 20*time.Millisecond)

	restarted := start(t, ctx, opts)
	require.True(t, restarted.Owned())
	v, err := queryString(ctx, restarted.DSN(""), "SELECT v FROM kept")
	require.NoError(t, err)
	require.Equal(t, "committed", v)
	require.NoError(t, restarted.Stop(ctx))
	require.NoError(t, c.Stop(ctx), "the killed owner's Stop finds nothing to stop")
}

// TestLongPathEphemeral puts the socket under the temporary directory when the data directory's
// path is too long for a socket, and removes everything on Stop of an ephemeral cluster.
func TestLongPathEphemeral(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	ctx := testContext(t)
	dataDir := filepath.Join(testDataDir(t), strings.Repeat("d", 60), strings.Repeat("e", 60))

	opts := testOptions(t, dataDir)
	opts.Ephemeral = true
	opts.Database = "other db"
	c := start(t, ctx, opts)
	require.True(t, c.Owned())
	require.Equal(t, filepath.Clean(os.TempDir()), filepath.Dir(c.SocketDir()))
	require.LessOrEqual(t, len(filepath.Join(c.SocketDir(), ".s.PGSQL.5432")), 107)
	fi, err := os.Stat(c.SocketDir())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	db, err := queryString(ctx, c.DSN(""), "SELECT current_database()")
	require.NoError(t, err)
	require.Equal(t, "other db", db)

	attached := start(t, ctx, opts)
	require.False(t, attached.Owned())
	require.Equal(t, c.SocketDir(), attached.SocketDir())
	require.NoError(t, attached.Stop(ctx))
	_, err = os.Stat(dataDir)
	require.NoError(t, err, "an attached ephemeral cluster removes nothing")

	require.NoError(t, c.Stop(ctx))
	_, err = os.Stat(dataDir)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(c.SocketDir())
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestStartFailureQuotesLog(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	ctx := testContext(t)
	opts := testOptions(t, testDataDir(t))
	opts.Settings["shared_buffers"] = "no-such-size"

	_, err := Start(ctx, opts)
	require.Error(t, err)
	require.Contains(t, err.Error(), "last lines of")
	require.Contains(t, err.Error(), "shared_buffers")
}

func TestInvalidSettings(t *testing.T) {
	for name, settings := range map[string]map[string]string{
		"managed": {"listen_addresses": "*"},
		"name":    {"fsync; rm": "off"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Start(t.Context(), Options{DataDir: t.TempDir(), Settings: settings})
			require.Error(t, err)
		})
	}
}

// As root, a data directory the postgres user cannot reach (a checkout in /root, mode 0700) gets
// its cluster under relocationBase; every Start given that data directory finds the same cluster,
// and the modes above the data directory are left as they were.
func TestRootUnreachableParentRelocates(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root switches to the postgres user")
	}
	requirePostgres(t)
	ctx := testContext(t)
	saved := relocationBase
	relocationBase = testDataDir(t)
	t.Cleanup(func() { relocationBase = saved })

	closed := filepath.Join(filepath.Dir(testDataDir(t)), "closed")
	require.NoError(t, os.Mkdir(closed, 0o700))
	dataDir := filepath.Join(closed, "volley", "pg")

	owner := start(t, ctx, testOptions(t, dataDir))
	require.True(t, owner.Owned())
	require.True(t, strings.HasPrefix(owner.SocketDir(), relocationBase), "socket in %s", owner.SocketDir())
	exec1(t, ctx, owner.DSN(""), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('found')")

	fi, err := os.Stat(closed)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "the closed directory keeps its mode")
	note, err := os.ReadFile(filepath.Join(dataDir, locationNote))
	require.NoError(t, err)
	require.Contains(t, string(note), relocationBase)
	require.Contains(t, string(note), "cannot enter "+closed)

	// Another process given the same data directory (volley keys, volley migrate) attaches to it.
	attached := start(t, ctx, testOptions(t, dataDir))
	require.False(t, attached.Owned())
	v, err := queryString(ctx, attached.DSN(""), "SELECT v FROM kept")
	require.NoError(t, err)
	require.Equal(t, "found", v)
	require.NoError(t, attached.Stop(ctx))
	require.NoError(t, owner.Stop(ctx))

	// Restarted, it is the same cluster still.
	again := start(t, ctx, testOptions(t, dataDir))
	require.True(t, again.Owned())
	v, err = queryString(ctx, again.DSN(""), "SELECT v FROM kept")
	require.NoError(t, err)
	require.Equal(t, "found", v)
	require.NoError(t, again.Stop(ctx))
}

// A cluster that already lives in a data directory the postgres user can no longer reach is not
// moved: Start says which directory to open instead.
func TestRootUnreachableExistingClusterStays(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root switches to the postgres user")
	}
	requirePostgres(t)
	ctx := testContext(t)
	saved := relocationBase
	relocationBase = testDataDir(t)
	t.Cleanup(func() { relocationBase = saved })

	dataDir := testDataDir(t)
	c := start(t, ctx, testOptions(t, dataDir))
	require.NoError(t, c.Stop(ctx))
	parent := filepath.Dir(dataDir)
	require.NoError(t, os.Chmod(parent, 0o700))

	_, err := Start(ctx, testOptions(t, dataDir))
	require.Error(t, err)
	require.Contains(t, err.Error(), fmt.Sprintf("cannot enter directory %s ", parent))
	entries, err := os.ReadDir(filepath.Dir(relocationBase))
	require.NoError(t, err)
	for _, e := range entries {
		require.NotEqual(t, filepath.Base(relocationBase), e.Name(), "nothing is created in the fallback")
	}
}

func TestRootWithoutPostgresUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root switches to the postgres user")
	}
	saved := serverUserName
	serverUserName = "volley-no-such-user"
	t.Cleanup(func() { serverUserName = saved })

	_, err := Start(t.Context(), Options{DataDir: t.TempDir()})
	require.Error(t, err)
	for _, want := range []string{`"volley-no-such-user" system user`, "non-root", "DATABASE_URL"} {
		require.Contains(t, err.Error(), want)
	}
}

func TestDSNQuote(t *testing.T) {
	c := &Cluster{socketDir: "/tmp/run", port: 5432, database: "volley"}
	require.Equal(t, "host=/tmp/run port=5432 user=postgres dbname=volley sslmode=disable", c.DSN(""))
	require.Equal(t, `host=/tmp/run port=5432 user=postgres dbname='it\'s x' sslmode=disable`, c.DSN("it's x"))
	cfg, err := pgx.ParseConfig(c.DSN("it's x"))
	require.NoError(t, err)
	require.Equal(t, "it's x", cfg.Database)
	require.Equal(t, "/tmp/run", cfg.Host)
}
