package pgcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// serverUserName is the system account PostgreSQL runs as when this process is root. Tests
// replace it.
var serverUserName = "postgres"

// serverUser is the account the PostgreSQL processes run as.
type serverUser struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
	home   string
	// switchUser is true when this process is root and starts PostgreSQL programs as another user.
	switchUser bool
}

// lookupServerUser returns the current user, or the postgres system user when running as root.
func lookupServerUser() (serverUser, error) {
	if os.Geteuid() != 0 {
		u := serverUser{uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}
		if cur, err := user.Current(); err == nil {
			u.name, u.home = cur.Username, cur.HomeDir
		}
		return u, nil
	}
	u, err := user.Lookup(serverUserName)
	if err != nil {
		return serverUser{}, fmt.Errorf("pgcluster: PostgreSQL refuses to run as root and this process is root,"+
			" but there is no %q system user to run it as (%v): create one (e.g. `useradd --system"+
			" --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres`), run volley as a non-root"+
			" user, or set DATABASE_URL to use an existing PostgreSQL server", serverUserName, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return serverUser{}, fmt.Errorf("pgcluster: user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	if uid == 0 {
		return serverUser{}, fmt.Errorf("pgcluster: user %s has uid 0, and PostgreSQL refuses to run as root", u.Username)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return serverUser{}, fmt.Errorf("pgcluster: user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	su := serverUser{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir, switchUser: true}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(su.groups, uint32(g)) {
				su.groups = append(su.groups, uint32(g))
			}
		}
	}
	return su, nil
}

// credential is what child processes run with; nil means this process's own identity.
func (u serverUser) credential() *syscall.Credential {
	if !u.switchUser {
		return nil
	}
	return &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: u.groups}
}

// chown hands path to the server user when it differs from this process's user.
func (u serverUser) chown(path string) error {
	if !u.switchUser {
		return nil
	}
	if err := os.Lchown(path, int(u.uid), int(u.gid)); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// canSearch reports whether the server user may traverse the directory described by fi.
func (u serverUser) canSearch(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == u.uid:
		return perm&0o100 != 0
	case st.Gid == u.gid || slices.Contains(u.groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// checkSearchable verifies that the server user can reach dir: it must be able to traverse dir and
// every directory above it. It returns an error naming the first directory (from the root down)
// that it cannot traverse. Without a user switch there is nothing to check.
func (u serverUser) checkSearchable(dir string) error {
	if !u.switchUser {
		return nil
	}
	var chain []string
	for p := dir; ; p = filepath.Dir(p) {
		chain = append(chain, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for _, p := range slices.Backward(chain) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if !u.canSearch(fi) {
			return &unreachableError{user: u.name, dir: p, mode: fi.Mode().Perm()}
		}
	}
	return nil
}

// unreachableError says that the server user cannot traverse dir.
type unreachableError struct {
	user string
	dir  string
	mode fs.FileMode
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("pgcluster: PostgreSQL runs as the %q user (this process is root), which cannot"+
		" enter directory %s (mode %v): allow it (e.g. `chmod o+x %s`), choose a data directory it can"+
		" reach (e.g. under /var/lib), run volley as a non-root user, or set DATABASE_URL",
		e.user, e.dir, e.mode, e.dir)
}

// relocationBase is where a root process keeps the clusters of data directories the server user
// cannot reach. Tests replace it.
var relocationBase = "/var/lib/volley/pg"

// locationNote is the file left in such a data directory to say where its cluster lives.
const locationNote = "CLUSTER_LOCATION"

// placeCluster prepares the directory the cluster lives in and returns it. That is dataDir itself
// unless this process is root and the server user cannot traverse a directory above dataDir (the
// usual case for a checkout in /root): the cluster then lives in relocationBase, in a directory
// named after a hash of dataDir so that every process given dataDir agrees on it, and dataDir (made
// for this process alone, its parents' modes untouched) holds a note naming it; noteDir is then
// dataDir. A cluster that already lives in dataDir is never moved.
func placeCluster(dataDir string, u serverUser) (clusterDir, noteDir string, err error) {
	err = ensureDataDir(dataDir, u)
	var unreachable *unreachableError
	if err == nil || !errors.As(err, &unreachable) {
		return dataDir, "", err
	}
	if _, statErr := os.Stat(filepath.Join(dataDir, pgDataDirName, "PG_VERSION")); statErr == nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(dataDir))
	clusterDir = filepath.Join(relocationBase, hex.EncodeToString(sum[:8]))
	if err := ensureDataDir(clusterDir, u); err != nil {
		return "", "", fmt.Errorf("pgcluster: %s is out of the %s user's reach and so is the fallback: %w",
			dataDir, u.name, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", "", fmt.Errorf("pgcluster: %w", err)
	}
	note := fmt.Sprintf("The %s user, which PostgreSQL runs as, cannot enter %s,\n"+
		"so the embedded cluster of this data directory lives in:\n%s\n", u.name, unreachable.dir, clusterDir)
	if err := os.WriteFile(filepath.Join(dataDir, locationNote), []byte(note), 0o600); err != nil {
		return "", "", fmt.Errorf("pgcluster: %w", err)
	}
	return clusterDir, dataDir, nil
}

// ensureDataDir creates dir, and any missing parent, for the cluster. Existing parents are only
// checked: the server user must be able to traverse them. Directories created here, and dir itself
// which belongs to the cluster, are made traversable (0711) when the server runs as another user.
func ensureDataDir(dir string, u serverUser) error {
	var missing []string
	existing := dir
	for {
		_, err := os.Stat(existing)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pgcluster: %w", err)
		}
		missing = append(missing, existing)
		parent := filepath.Dir(existing)
		if parent == existing {
			return fmt.Errorf("pgcluster: %w", err)
		}
		existing = parent
	}
	if len(missing) == 0 {
		// dir exists: its parents are the user's, dir itself is ours.
		if err := u.checkSearchable(filepath.Dir(dir)); err != nil {
			return err
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("pgcluster: data directory %s is not a directory", dir)
		}
		if !u.canSearch(fi) {
			if err := os.Chmod(dir, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("pgcluster: make data directory reachable by %s: %w", u.name, err)
			}
		}
		return nil
	}
	if err := u.checkSearchable(existing); err != nil {
		return err
	}
	mode := os.FileMode(0o700)
	if u.switchUser {
		mode = 0o711
	}
	for _, p := range slices.Backward(missing) {
		if err := os.Mkdir(p, mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if err := os.Chmod(p, mode); err != nil { // independent of the umask
			return fmt.Errorf("pgcluster: %w", err)
		}
	}
	return nil
}

// ensureServerDir creates dir (mode 0700) if needed and hands it to the server user.
func ensureServerDir(dir string, u serverUser) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return u.chown(dir)
}

// sunPathMax is the longest socket path the system accepts: sun_path less its NUL (107 bytes on
// Linux, 103 on macOS and the BSDs).
var sunPathMax = len(syscall.RawSockaddrUnix{}.Path) - 1

// socketName is the file name of the server's socket for port.
func socketName(port int) string { return ".s.PGSQL." + strconv.Itoa(port) }

// usableSocketDir reports whether dir can hold the server's socket: short enough, and free of the
// characters that would need quoting in unix_socket_directories or a DSN.
func usableSocketDir(dir string, port int) bool {
	if len(filepath.Join(dir, socketName(port))) > sunPathMax {
		return false
	}
	for _, r := range dir {
		if r <= ' ' || r == ',' || r == '"' || r == '\'' || r == '\\' || r == 0x7f {
			return false
		}
	}
	return true
}

// tempSocketDir is the fallback socket directory for a cluster whose own path is too long: a short
// directory under the system temporary directory, named after a hash of the data directory so that
// every process using that data directory agrees on it.
func tempSocketDir(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return filepath.Join(os.TempDir(), "volley-pg-"+hex.EncodeToString(sum[:8]))
}

// ensureTempSocketDir creates (0700, owned by the server user) or validates the fallback socket
// directory. As it lives in a shared directory, an existing one is only accepted if it is a real
// directory owned by the server user.
func ensureTempSocketDir(dir string, u serverUser) error {
	if err := u.checkSearchable(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("pgcluster: create socket directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("pgcluster: socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("pgcluster: socket directory %s is not a directory; remove it", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && st.Uid != u.uid {
		if !u.switchUser || st.Uid != uint32(os.Geteuid()) {
			return fmt.Errorf("pgcluster: socket directory %s belongs to uid %d, not to %d; remove it", dir, st.Uid, u.uid)
		}
		if err := u.chown(dir); err != nil { // created just now by this (root) process
			return err
		}
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("pgcluster: socket directory: %w", err)
		}
	}
	return nil
}

// fileLock is an exclusive flock(2) on a file.
type fileLock struct{ f *os.File }

// lockFile takes an exclusive lock on path, creating the file if needed, and waits for it until
// ctx ends.
func lockFile(ctx context.Context, path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: open lock file: %w", err)
	}
	var tick *time.Ticker
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &fileLock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("pgcluster: lock %s: %w", path, err)
		}
		if tick == nil {
			tick = time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("pgcluster: waiting for lock %s: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// unlock releases the lock.
func (l *fileLock) unlock() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
}
