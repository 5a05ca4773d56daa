package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MinMajorVersion is the oldest PostgreSQL major version the package runs.
const MinMajorVersion = 14

// ErrNoBinaries reports that no usable PostgreSQL server installation was found. Errors returned by
// FindBinaries and Start wrap it together with instructions for fixing the machine.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries found")

// requiredBinaries must all be present in one directory for it to count as an installation.
var requiredBinaries = []string{"postgres", "initdb", "pg_ctl", "pg_isready", "createdb"}

// searchPatterns are the glob patterns tried after PATH and pg_config, in order. Within one pattern,
// directories carrying a higher version number in their name come first. Tests replace it.
var searchPatterns = []string{
	"/usr/lib/postgresql/*/bin",         // Debian, Ubuntu
	"/usr/pgsql-*/bin",                  // PGDG packages on RHEL and Fedora
	"/opt/homebrew/opt/postgresql*/bin", // Homebrew on Apple silicon
	"/usr/local/opt/postgresql*/bin",    // Homebrew on Intel
	"/opt/homebrew/bin",
	"/usr/local/bin",
}

// FindBinaries returns the directory holding the PostgreSQL server programs (postgres, initdb,
// pg_ctl, pg_isready and createdb) of a PostgreSQL at least MinMajorVersion. It looks in every
// directory on PATH, then in `pg_config --bindir`, then in the usual install locations of Debian,
// RHEL and Homebrew, newest version first. If none is found, the error wraps ErrNoBinaries and
// says how to install PostgreSQL.
func FindBinaries() (string, error) {
	dir, _, err := findBinaries(0)
	return dir, err
}

// findBinaries returns the first suitable installation. When wantMajor is not zero, only an
// installation of that major version is accepted (an existing cluster can only be run by the major
// version that created it).
func findBinaries(wantMajor int) (dir string, major int, err error) {
	var skipped []string
	for _, cand := range candidateDirs() {
		if !hasBinaries(cand) {
			continue
		}
		v, err := serverVersion(cand)
		switch {
		case err != nil:
			skipped = append(skipped, fmt.Sprintf("%s (%v)", cand, err))
		case v.major < MinMajorVersion:
			skipped = append(skipped, fmt.Sprintf("%s (PostgreSQL %s is older than %d)", cand, v.text, MinMajorVersion))
		case wantMajor != 0 && v.major != wantMajor:
			skipped = append(skipped, fmt.Sprintf("%s (PostgreSQL %s, but the cluster needs %d)", cand, v.text, wantMajor))
		default:
			return cand, v.major, nil
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pgcluster: %v", ErrNoBinaries)
	if wantMajor != 0 {
		fmt.Fprintf(&b, " for PostgreSQL %d", wantMajor)
	}
	fmt.Fprintf(&b, " (searched PATH, `pg_config --bindir`, %s for %s)",
		strings.Join(searchPatterns, ", "), strings.Join(requiredBinaries, ", "))
	if len(skipped) > 0 {
		fmt.Fprintf(&b, "; not usable: %s", strings.Join(skipped, "; "))
	}
	want := fmt.Sprintf(">= %d", MinMajorVersion)
	if wantMajor != 0 {
		want = strconv.Itoa(wantMajor)
	}
	fmt.Fprintf(&b, "; install PostgreSQL %s (e.g. `apt-get install postgresql` or `brew install postgresql@16`)"+
		" and put its bin directory on PATH, or set DATABASE_URL to use an existing PostgreSQL server", want)
	return "", 0, &binariesError{msg: b.String()}
}

// binariesError carries the full message and unwraps to ErrNoBinaries.
type binariesError struct{ msg string }

func (e *binariesError) Error() string { return e.msg }
func (e *binariesError) Unwrap() error { return ErrNoBinaries }

// candidateDirs lists, without duplicates, the directories that may hold the server programs.
func candidateDirs() []string {
	var dirs []string
	add := func(d string) {
		if d == "" || !filepath.IsAbs(d) {
			return
		}
		d = filepath.Clean(d)
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		add(d)
	}
	add(pgConfigBinDir())
	for _, pattern := range searchPatterns {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			continue
		}
		slices.SortStableFunc(matches, func(a, b string) int {
			return compareVersions(pathVersion(b), pathVersion(a))
		})
		for _, m := range matches {
			add(m)
		}
	}
	return dirs
}

// pgConfigBinDir asks pg_config, if it is on PATH, where the binaries live.
func pgConfigBinDir() string {
	path, err := exec.LookPath("pg_config")
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--bindir").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// hasBinaries reports whether dir holds every required program as an executable file.
func hasBinaries(dir string) bool {
	for _, name := range requiredBinaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

var (
	versionOutputRE = regexp.MustCompile(`\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?`)
	pathVersionRE   = regexp.MustCompile(`(\d+)(?:\.(\d+))?`)
)

// version is a PostgreSQL version as printed by `postgres --version`.
type version struct {
	major, minor int
	text         string
}

// serverVersion runs `postgres --version` from dir.
func serverVersion(dir string) (version, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return version{}, fmt.Errorf("postgres --version: %w", err)
	}
	return parseVersion(string(out))
}

func parseVersion(out string) (version, error) {
	m := versionOutputRE.FindStringSubmatch(out)
	if m == nil {
		return version{}, fmt.Errorf("unrecognised output of postgres --version: %q", strings.TrimSpace(out))
	}
	v := version{text: strings.TrimPrefix(m[0], "(PostgreSQL)")}
	v.text = strings.TrimSpace(v.text)
	v.major, _ = strconv.Atoi(m[1])
	if m[2] != "" {
		v.minor, _ = strconv.Atoi(m[2])
	}
	return v, nil
}

// pathVersion extracts the version number carried by an install directory's name, such as 15 in
// /usr/lib/postgresql/15/bin or 16 in /opt/homebrew/opt/postgresql@16/bin. Names without one sort
// last.
func pathVersion(binDir string) version {
	m := pathVersionRE.FindStringSubmatch(filepath.Base(filepath.Dir(binDir)))
	if m == nil {
		return version{major: -1}
	}
	v := version{text: m[0]}
	v.major, _ = strconv.Atoi(m[1])
	if m[2] != "" {
		v.minor, _ = strconv.Atoi(m[2])
	}
	return v
}

func compareVersions(a, b version) int {
	if c := a.major - b.major; c != 0 {
		return c
	}
	return a.minor - b.minor
}
