package e2e

import (
	"bytes"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/testproc"
)

// chromiumPath is the browser the dashboard tests drive: Debian's chromium, never a downloaded one.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	const p = "/usr/bin/chromium"
	if _, err := os.Stat(p); err != nil {
		t.Fatal("the dashboard tests need Chromium (apt-get install chromium); .ci/run installs it")
	}
	return p
}

// uitestDir makes sure the browser test suite has its pinned playwright-core (a no-op once .ci/run
// or an earlier run installed it) and returns its directory.
func uitestDir(t *testing.T) string {
	t.Helper()
	root, err := testproc.ModuleRoot()
	require.NoError(t, err)
	dir := filepath.Join(root, "internal", "tools", "uitest")
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("the dashboard tests need Node.js 20 or later; .ci/run installs it")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "npm ci:\n%s", out)
	}
	return dir
}

// TestDashboard runs the Playwright suite in internal/tools/uitest: headless Chromium signs in to a
// real volley serve, uploads files, runs batches against mockllm, retries, cancels and downloads.
// With SCREENSHOT_DIR set (make screenshots) it also writes a screenshot of every page there.
func TestDashboard(t *testing.T) {
	t.Parallel()
	browser := chromiumPath(t)
	dir := uitestDir(t)
	m := startMock(t, "-latency", "150ms", "-latency-jitter", "100ms")
	v := startVolley(t, dispatchEnv(t, m, 4)...)
	u, err := url.Parse(v.proc.URL)
	require.NoError(t, err)
	env := []string{"VOLLEY_ORIGIN=" + u.Scheme + "://" + u.Host, "VOLLEY_KEY=" + v.key("alice"), "CHROMIUM=" + browser}
	// Without admin keys in this volley, the admin page is the one test skipped.
	skipped := "ℹ skipped 1"
	if admin, ok := v.adminKey("ops"); ok {
		env = append(env, "VOLLEY_ADMIN_KEY="+admin)
		skipped = "ℹ skipped 0"
	}
	cmd := exec.Command("node", "--test", "--test-reporter=spec", "--test-concurrency=1", "dashboard.test.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Log(out.String())
	require.NoError(t, err, "the dashboard suite failed")
	require.Contains(t, out.String(), "ℹ fail 0")
	require.NotContains(t, out.String(), "ℹ pass 0")
	require.Contains(t, out.String(), skipped)
}

// adminKey makes an admin key with `volley keys create --admin`; false when this volley has no admin
// keys (the flag is refused), so that the suite checks that their controls are hidden instead.
func (v *volley) adminKey(owner string) (string, bool) {
	v.t.Helper()
	cmd := exec.Command(filepath.Join(v.bin, "volley"), "keys", "create", "--owner", owner, "--admin")
	cmd.Env = append(cmd.Environ(), "DATABASE_URL="+v.dsn, "VOLLEY_LOG_FORMAT=json")
	out, err := cmd.Output()
	if err != nil {
		return "", false
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	key := strings.TrimSpace(lines[len(lines)-1])
	require.True(v.t, strings.HasPrefix(key, "sk-volley-"), "last line is the key: %q", out)
	return key, true
}
