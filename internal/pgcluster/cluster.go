// Package pgcluster runs a private PostgreSQL cluster on the local machine, for when Volley is not
// given a DATABASE_URL.
//
// Start finds the machine's PostgreSQL server programs (see FindBinaries), initialises a cluster in
// Options.DataDir on first use and starts it listening only on a Unix socket (no TCP port). The
// cluster is kept across restarts. Several processes may use the same data directory: the first
// to call Start starts the server and owns it, the others attach to the running server, and only
// the owner's Stop stops it. An exclusive lock on a file in the data directory serialises Start
// and Stop between processes.
//
// PostgreSQL refuses to run as root. When this process is root, the PostgreSQL programs run as the
// "postgres" system user, which must exist. When that user cannot reach the data directory (a
// checkout in /root, mode 0700), the cluster lives instead in a directory under /var/lib/volley
// named after a hash of the data directory's path, so every volley command given the same data
// directory finds the same cluster; the data directory then holds only a note saying where.
//
// Layout of the data directory:
//
//	data/             the cluster (PGDATA)
//	log/postgres.log  the server's output
//	run/              the server's socket directory, unless its path is too long for a socket
//	cluster.lock      the lock file
package pgcluster

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// superuser is the bootstrap superuser created by initdb; clients connect as it.
	superuser       = "postgres"
	defaultDatabase = "volley"
	defaultPort     = 5432

	pgDataDirName = "data"
	initDirName   = "data.init"
	runDirName    = "run"
	logDirName    = "log"
	logFileName   = "postgres.log"
	lockFileName  = "cluster.lock"

	// defaultTimeout bounds starting, attaching and stopping when the context has no deadline.
	defaultTimeout = 2 * time.Minute
	// logTailLines is how much of the server log a start failure quotes.
	logTailLines = 20
)

// defaultSettings are the server settings used unless Options.Settings overrides them.
var defaultSettings = map[string]string{
	"max_connections": "200",
	"shared_buffers":  "128MB",
	// The socket directory itself is private (0700); root may connect whatever the mode.
	"unix_socket_permissions": "0770",
}

// managedSettings are set by the package and cannot be overridden.
var managedSettings = []string{"listen_addresses", "unix_socket_directories", "port"}

var settingNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_.]*$`)

// Options configure Start.
type Options struct {
	// DataDir is the directory the cluster lives in (Volley passes $VOLLEY_DATA_DIR/pg). It is
	// created if missing. When this process is root, the postgres user must be able to traverse
	// every existing directory above it.
	DataDir string
	// BinDir holds the PostgreSQL programs. Empty means FindBinaries.
	BinDir string
	// Database is created if missing once the server runs. Empty means "volley".
	Database string
	// Settings are extra server settings, such as {"fsync": "off"}, passed as -c options when this
	// call starts the server (a server found running keeps its own). They override the defaults
	// (max_connections=200, shared_buffers=128MB, unix_socket_permissions=0770);
	// listen_addresses, unix_socket_directories and port are managed by the package.
	Settings map[string]string
	// Ephemeral makes Stop remove DataDir after stopping the server, for throwaway clusters. It
	// has no effect on a Cluster that attached to a server started by someone else.
	Ephemeral bool
	// Logger receives progress messages. Nil discards them.
	Logger *slog.Logger
}

// Cluster is a running local PostgreSQL server, either started by this Cluster (Owned) or found
// running on the same data directory.
type Cluster struct {
	dataDir   string
	pgData    string
	binDir    string
	logFile   string
	socketDir string
	port      int
	database  string
	// noteDir is the data directory the caller named when the cluster had to live elsewhere
	// (see placeCluster); it holds only a note saying where.
	noteDir   string
	ephemeral bool
	user      serverUser
	env       []string
	log       *slog.Logger

	// tempSocketDir is set when the socket directory is the package's directory under os.TempDir.
	tempSocketDir bool

	mu      sync.Mutex
	owned   bool
	stopped bool
}

// Start makes sure the cluster in opts.DataDir exists and runs, and that opts.Database exists in
// it. If a server is already running on that data directory, the returned Cluster uses it without
// owning it; otherwise Start starts one, which the Cluster owns and its Stop stops. Without a
// deadline on ctx, Start gives up after two minutes.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.DataDir == "" {
		return nil, errors.New("pgcluster: Options.DataDir is empty")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: data directory: %w", err)
	}
	database := cmp.Or(opts.Database, defaultDatabase)
	if strings.HasPrefix(database, "-") || strings.ContainsRune(database, 0) {
		return nil, fmt.Errorf("pgcluster: invalid database name %q", database)
	}
	settings, err := serverSettings(opts.Settings)
	if err != nil {
		return nil, err
	}
	u, err := lookupServerUser()
	if err != nil {
		return nil, err
	}
	dataDir, noteDir, err := placeCluster(dataDir, u)
	if err != nil {
		return nil, err
	}
	if noteDir != "" && opts.Logger != nil {
		opts.Logger.Info("the postgres user cannot reach the data directory; the embedded cluster lives elsewhere",
			"data_dir", noteDir, "cluster_dir", dataDir)
	}
	binDir, err := chooseBinDir(opts.BinDir, clusterMajor(filepath.Join(dataDir, pgDataDirName)))
	if err != nil {
		return nil, err
	}
	if resolved, err := filepath.EvalSymlinks(dataDir); err == nil {
		dataDir = resolved
	}

	c := &Cluster{
		dataDir:   dataDir,
		pgData:    filepath.Join(dataDir, pgDataDirName),
		binDir:    binDir,
		logFile:   filepath.Join(dataDir, logDirName, logFileName),
		port:      defaultPort,
		database:  database,
		noteDir:   noteDir,
		ephemeral: opts.Ephemeral,
		user:      u,
		env:       childEnv(u),
		log:       cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}

	lock, err := lockFile(ctx, filepath.Join(dataDir, lockFileName))
	if err != nil {
		return nil, err
	}
	defer lock.unlock()

	if err := c.prepareDirs(); err != nil {
		return nil, err
	}
	if err := c.initIfNeeded(ctx); err != nil {
		return nil, err
	}
	running, err := c.findRunning(ctx)
	if err != nil {
		return nil, err
	}
	if running {
		c.log.Info("using running embedded PostgreSQL", "data_dir", c.pgData, "socket_dir", c.socketDir)
	} else if err := c.start(ctx, settings); err != nil {
		return nil, err
	}
	if err := c.ensureDatabase(ctx, database); err != nil {
		if c.owned {
			c.stopQuietly()
		}
		return nil, err
	}
	return c, nil
}

// DSN returns a keyword/value connection string for database over the Unix socket, such as
// "host=/path/run port=5432 user=postgres dbname=volley sslmode=disable". An empty database means
// Options.Database.
func (c *Cluster) DSN(database string) string {
	database = cmp.Or(database, c.database)
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		dsnQuote(c.socketDir), c.port, superuser, dsnQuote(database))
}

// SocketDir is the directory holding the server's Unix socket.
func (c *Cluster) SocketDir() string { return c.socketDir }

// BinDir is the directory of the PostgreSQL programs in use.
func (c *Cluster) BinDir() string { return c.binDir }

// Owned reports whether this Cluster started the server, and so stops it in Stop.
func (c *Cluster) Owned() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.owned
}

// Stop stops the server (fast shutdown: open sessions are disconnected) and waits for it to exit,
// if this Cluster started it; for an attached Cluster it does nothing. An Ephemeral cluster's data
// directory is removed afterwards. Calling Stop again does nothing.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || !c.owned {
		c.stopped = true
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	lock, err := lockFile(ctx, filepath.Join(c.dataDir, lockFileName))
	if err != nil {
		return err
	}
	defer lock.unlock()

	c.log.Info("stopping embedded PostgreSQL", "data_dir", c.pgData)
	if _, err := c.run(ctx, "pg_ctl", "stop", "-D", c.pgData, "-m", "fast", "-w", "-t", timeoutSeconds(ctx), "-s"); err != nil {
		if st := c.postmaster(); st.state == pmRunning {
			return fmt.Errorf("pgcluster: stop PostgreSQL: %w", err)
		}
		c.log.Warn("embedded PostgreSQL was already stopped", "data_dir", c.pgData)
	}
	c.stopped = true
	if c.ephemeral {
		if err := os.RemoveAll(c.dataDir); err != nil {
			return fmt.Errorf("pgcluster: remove data directory: %w", err)
		}
		if c.tempSocketDir {
			_ = os.RemoveAll(c.socketDir)
		}
		if c.noteDir != "" {
			_ = os.RemoveAll(c.noteDir)
		}
	}
	return nil
}

// chooseBinDir returns binDir after checking its version, or finds the programs. wantMajor is the
// major version of an existing cluster, or zero.
func chooseBinDir(binDir string, wantMajor int) (string, error) {
	if binDir == "" {
		dir, _, err := findBinaries(wantMajor)
		return dir, err
	}
	if !hasBinaries(binDir) {
		return "", fmt.Errorf("pgcluster: %s lacks one of %s", binDir, strings.Join(requiredBinaries, ", "))
	}
	v, err := serverVersion(binDir)
	if err != nil {
		return "", fmt.Errorf("pgcluster: %s: %w", binDir, err)
	}
	if v.major < MinMajorVersion {
		return "", fmt.Errorf("pgcluster: %s holds PostgreSQL %s; version %d or later is required", binDir, v.text, MinMajorVersion)
	}
	if wantMajor != 0 && v.major != wantMajor {
		return "", fmt.Errorf("pgcluster: %s holds PostgreSQL %s, but the cluster was created by PostgreSQL %d", binDir, v.text, wantMajor)
	}
	return binDir, nil
}

// clusterMajor returns the major version recorded in an existing cluster, or zero.
func clusterMajor(pgData string) int {
	b, err := os.ReadFile(filepath.Join(pgData, "PG_VERSION"))
	if err != nil {
		return 0
	}
	v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return v
}

// serverSettings merges the defaults with extra and validates the names.
func serverSettings(extra map[string]string) (map[string]string, error) {
	settings := maps.Clone(defaultSettings)
	for name, value := range extra {
		key := strings.ToLower(name)
		if !settingNameRE.MatchString(key) {
			return nil, fmt.Errorf("pgcluster: invalid setting name %q", name)
		}
		if slices.Contains(managedSettings, key) {
			return nil, fmt.Errorf("pgcluster: setting %q is managed by pgcluster", name)
		}
		if strings.ContainsRune(value, 0) {
			return nil, fmt.Errorf("pgcluster: invalid value for setting %q", name)
		}
		settings[key] = value
	}
	return settings, nil
}

// prepareDirs creates the log and socket directories, owned by the server user.
func (c *Cluster) prepareDirs() error {
	if err := ensureServerDir(filepath.Dir(c.logFile), c.user); err != nil {
		return err
	}
	c.socketDir = filepath.Join(c.dataDir, runDirName)
	if usableSocketDir(c.socketDir, c.port) {
		return ensureServerDir(c.socketDir, c.user)
	}
	c.socketDir = tempSocketDir(c.dataDir)
	c.tempSocketDir = true
	if !usableSocketDir(c.socketDir, c.port) {
		return fmt.Errorf("pgcluster: no usable socket directory: %s is too long for a Unix socket", c.socketDir)
	}
	return ensureTempSocketDir(c.socketDir, c.user)
}

// initIfNeeded creates the cluster unless it exists. initdb runs in a scratch directory that is
// renamed into place, so a crash half-way leaves no half-made cluster behind.
func (c *Cluster) initIfNeeded(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.pgData, "PG_VERSION")); err == nil {
		return nil
	}
	entries, err := os.ReadDir(c.pgData)
	switch {
	case err == nil && len(entries) > 0:
		return fmt.Errorf("pgcluster: %s is not empty but holds no PostgreSQL cluster (no PG_VERSION); move it away", c.pgData)
	case err == nil:
		if err := os.Remove(c.pgData); err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("pgcluster: %w", err)
	}

	scratch := filepath.Join(c.dataDir, initDirName)
	if err := os.RemoveAll(scratch); err != nil {
		return fmt.Errorf("pgcluster: remove leftover %s: %w", scratch, err)
	}
	if err := ensureServerDir(scratch, c.user); err != nil {
		return err
	}
	c.log.Info("initialising embedded PostgreSQL cluster", "data_dir", c.pgData, "bin_dir", c.binDir, "user", c.user.name)
	args := []string{"-D", scratch, "-U", superuser, "--auth-local=trust", "--auth-host=reject",
		"--encoding=UTF8", "--locale=C", "--no-instructions"}
	if c.ephemeral {
		args = append(args, "--no-sync")
	}
	if _, err := c.run(ctx, "initdb", args...); err != nil {
		_ = os.RemoveAll(scratch)
		return fmt.Errorf("pgcluster: initialise cluster: %w", err)
	}
	if err := os.Rename(scratch, c.pgData); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// findRunning reports whether a server already runs on the cluster and, if so, points the Cluster
// at its socket. A server that is starting up is waited for. A postmaster.pid left by a crash is
// left for the server to replace, or removed when its PID now belongs to another process (which
// would make the server refuse to start).
func (c *Cluster) findRunning(ctx context.Context) (bool, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st := c.postmaster()
		switch st.state {
		case pmNone, pmDead:
			return false, st.err
		case pmStale:
			c.log.Warn("removing stale postmaster.pid", "data_dir", c.pgData, "pid", st.info.pid, "reason", st.reason)
			if err := os.Remove(filepath.Join(c.pgData, "postmaster.pid")); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, fmt.Errorf("pgcluster: remove stale postmaster.pid: %w", err)
			}
			// The socket's lock file names the same PID and would stop the server just as well.
			for _, dir := range []string{st.info.socketDir, c.socketDir} {
				if err := removeStaleSocketLock(dir, st.info.port, st.info.pid); err != nil {
					return false, err
				}
			}
			return false, nil
		}
		if st.info.ready() {
			if st.info.socketDir == "" {
				return false, fmt.Errorf("pgcluster: PostgreSQL (pid %d) runs on %s without a Unix socket; stop it (pg_ctl stop -D %s)",
					st.info.pid, c.pgData, c.pgData)
			}
			if c.isReady(ctx, st.info.socketDir, st.info.port) {
				c.socketDir, c.port = st.info.socketDir, st.info.port
				c.tempSocketDir = false
				return true, nil
			}
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("pgcluster: PostgreSQL (pid %d) runs on %s but does not accept connections on %s (status %q): %w\n%s",
				st.info.pid, c.pgData, st.info.socketDir, st.info.status, ctx.Err(), c.logTail())
		case <-tick.C:
		}
	}
}

// start starts the server with settings and waits until it accepts connections.
func (c *Cluster) start(ctx context.Context, settings map[string]string) error {
	all := maps.Clone(settings)
	all["listen_addresses"] = ""
	all["unix_socket_directories"] = c.socketDir
	all["port"] = strconv.Itoa(c.port)
	var opts []string
	for _, k := range slices.Sorted(maps.Keys(all)) {
		opts = append(opts, "-c "+shellQuote(k+"="+all[k]))
	}
	c.log.Info("starting embedded PostgreSQL", "data_dir", c.pgData, "socket_dir", c.socketDir, "log", c.logFile, "user", c.user.name)
	_, err := c.run(ctx, "pg_ctl", "start", "-D", c.pgData, "-l", c.logFile, "-w", "-t", timeoutSeconds(ctx), "-s",
		"-o", strings.Join(opts, " "))
	if err != nil {
		// pg_ctl may have given up waiting on a server that still comes up.
		if st := c.postmaster(); st.state == pmRunning {
			c.owned = true
			c.stopQuietly()
		}
		return fmt.Errorf("pgcluster: start PostgreSQL on %s: %w\n%s", c.pgData, err, c.logTail())
	}
	c.owned = true
	return nil
}

// stopQuietly stops an owned server after a failure, ignoring errors.
func (c *Cluster) stopQuietly() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = c.run(ctx, "pg_ctl", "stop", "-D", c.pgData, "-m", "immediate", "-w", "-s")
	c.owned = false
}

// isReady reports whether a server accepts connections on socketDir.
func (c *Cluster) isReady(ctx context.Context, socketDir string, port int) bool {
	_, err := c.run(ctx, "pg_isready", "-h", socketDir, "-p", strconv.Itoa(port), "-U", superuser, "-d", "postgres", "-t", "5", "-q")
	return err == nil
}

// ensureDatabase creates database unless it exists.
func (c *Cluster) ensureDatabase(ctx context.Context, database string) error {
	out, err := c.run(ctx, "createdb", "-h", c.socketDir, "-p", strconv.Itoa(c.port), "-U", superuser, "-w", database)
	if err != nil && !strings.Contains(out, "already exists") {
		return fmt.Errorf("pgcluster: create database %q: %w", database, err)
	}
	if err == nil {
		c.log.Info("created database", "database", database)
	}
	return nil
}

// run runs a PostgreSQL program from the bin directory as the server user and returns its
// combined output.
func (c *Cluster) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dataDir
	cmd.Env = c.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.user.credential()}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The server writes to its log file, never to these pipes; this only guards against a hang.
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if err != nil {
		if text != "" {
			return text, fmt.Errorf("%s: %w: %s", name, err, text)
		}
		return text, fmt.Errorf("%s: %w", name, err)
	}
	return text, nil
}

// logTail returns the end of the server log, for error messages.
func (c *Cluster) logTail() string {
	tail := tailLines(c.logFile, logTailLines)
	if tail == "" {
		return "(nothing in " + c.logFile + ")"
	}
	return "last lines of " + c.logFile + ":\n" + tail
}

// tailLines returns up to n last lines of the file at path.
func tailLines(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	const window = 64 << 10
	offset := max(0, fi.Size()-window)
	buf := make([]byte, fi.Size()-offset)
	if _, err := f.ReadAt(buf, offset); err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if offset > 0 && len(lines) > 1 {
		lines = lines[1:] // partial first line
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// childEnv is the environment of the PostgreSQL programs: this process's, without the libpq
// (PG*) and locale variables that would change their behaviour, and with the server user's home
// when switching user.
func childEnv(u serverUser) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "PG"), strings.HasPrefix(k, "LC_"), k == "LANG", k == "LANGUAGE":
			continue
		case u.switchUser && (k == "HOME" || k == "USER" || k == "LOGNAME"):
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C")
	if u.switchUser {
		env = append(env, "HOME="+cmp.Or(u.home, "/"), "USER="+u.name, "LOGNAME="+u.name)
	}
	return env
}

// timeoutSeconds is the -t argument of pg_ctl: what is left of ctx's deadline.
func timeoutSeconds(ctx context.Context) string {
	d := defaultTimeout
	if deadline, ok := ctx.Deadline(); ok {
		d = time.Until(deadline)
	}
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// shellQuote quotes s for /bin/sh, through which pg_ctl passes its -o options.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// dsnQuote quotes a value of a keyword/value connection string when needed.
func dsnQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\r'\\=") {
		return s
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
