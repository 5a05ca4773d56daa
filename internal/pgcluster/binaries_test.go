package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeInstall creates dir holding scripts named like the PostgreSQL programs, whose postgres
// reports versionText.
func fakeInstall(t *testing.T, dir, versionText string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, name := range requiredBinaries {
		script := "#!/bin/sh\nexit 0\n"
		if name == "postgres" {
			script = fmt.Sprintf("#!/bin/sh\necho 'postgres (PostgreSQL) %s'\n", versionText)
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755))
	}
}

// isolateSearch empties PATH and points the search at patterns.
func isolateSearch(t *testing.T, patterns ...string) {
	t.Setenv("PATH", "")
	saved := searchPatterns
	searchPatterns = patterns
	t.Cleanup(func() { searchPatterns = saved })
}

func TestFindBinariesNone(t *testing.T) {
	root := t.TempDir()
	isolateSearch(t, filepath.Join(root, "postgresql", "*", "bin"), filepath.Join(root, "bin"))

	_, err := FindBinaries()
	require.Error(t, err)
	require.ErrorIs(t, err, ErrNoBinaries)
	msg := err.Error()
	for _, want := range []string{
		"no PostgreSQL server binaries found", "PATH", "pg_config --bindir", filepath.Join(root, "bin"),
		">= 14", "apt-get install postgresql", "brew install postgresql@16", "DATABASE_URL",
	} {
		require.Contains(t, msg, want)
	}
}

func TestFindBinariesNewestFirst(t *testing.T) {
	root := t.TempDir()
	fakeInstall(t, filepath.Join(root, "postgresql", "9.6", "bin"), "9.6.24")
	fakeInstall(t, filepath.Join(root, "postgresql", "14", "bin"), "14.11")
	fakeInstall(t, filepath.Join(root, "postgresql", "16", "bin"), "16.2 (Debian 16.2-1)")
	// Incomplete: newest, but lacks programs.
	require.NoError(t, os.MkdirAll(filepath.Join(root, "postgresql", "17", "bin"), 0o755))
	isolateSearch(t, filepath.Join(root, "postgresql", "*", "bin"))

	dir, err := FindBinaries()
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "postgresql", "16", "bin"), dir)

	// An existing cluster pins the major version.
	dir, major, err := findBinaries(14)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "postgresql", "14", "bin"), dir)
	require.Equal(t, 14, major)

	_, _, err = findBinaries(15)
	require.ErrorIs(t, err, ErrNoBinaries)
	require.Contains(t, err.Error(), "PostgreSQL 15")
}

func TestFindBinariesTooOld(t *testing.T) {
	root := t.TempDir()
	fakeInstall(t, filepath.Join(root, "postgresql", "13", "bin"), "13.4")
	isolateSearch(t, filepath.Join(root, "postgresql", "*", "bin"))

	_, err := FindBinaries()
	require.ErrorIs(t, err, ErrNoBinaries)
	require.Contains(t, err.Error(), "PostgreSQL 13.4 is older than 14")
}

func TestFindBinariesPathAndPGConfig(t *testing.T) {
	root := t.TempDir()
	onPath := filepath.Join(root, "onpath")
	fakeInstall(t, onPath, "15.1")
	viaConfig := filepath.Join(root, "viaconfig")
	fakeInstall(t, viaConfig, "17.0")
	configDir := filepath.Join(root, "config")
	require.NoError(t, os.MkdirAll(configDir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(configDir, "pg_config"),
		[]byte("#!/bin/sh\necho "+viaConfig+"\n"), 0o755))
	isolateSearch(t)

	t.Setenv("PATH", configDir)
	dir, err := FindBinaries()
	require.NoError(t, err)
	require.Equal(t, viaConfig, dir)

	// PATH comes before pg_config.
	t.Setenv("PATH", onPath+string(filepath.ListSeparator)+configDir)
	dir, err = FindBinaries()
	require.NoError(t, err)
	require.Equal(t, onPath, dir)
}

func TestParseVersion(t *testing.T) {
	for out, want := range map[string]version{
		"postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n": {major: 15, minor: 18, text: "15.18"},
		"postgres (PostgreSQL) 17devel":                          {major: 17, text: "17"},
		"postgres (PostgreSQL) 9.6.24":                           {major: 9, minor: 6, text: "9.6"},
	} {
		got, err := parseVersion(out)
		require.NoError(t, err, out)
		require.Equal(t, want, got, out)
	}
	_, err := parseVersion("something else")
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrNoBinaries))
}

func TestPathVersion(t *testing.T) {
	require.Equal(t, 15, pathVersion("/usr/lib/postgresql/15/bin").major)
	require.Equal(t, 16, pathVersion("/opt/homebrew/opt/postgresql@16/bin").major)
	require.Equal(t, -1, pathVersion("/opt/homebrew/opt/postgresql/bin").major)
}
