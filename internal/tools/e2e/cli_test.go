package e2e

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/testproc"
)

// The embedded cluster: the CLI works on it whether or not volley serve is running.
func TestCommandsShareTheEmbeddedCluster(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(testproc.Binaries(t), "volley")
	// The cluster's user (postgres, when tests run as root) must be able to reach the directory.
	dir, err := os.MkdirTemp("", "volley-cli-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o711))
	env := []string{"DATABASE_URL=", "VOLLEY_DATA_DIR=" + filepath.Join(dir, "data"), "VOLLEY_LOG_FORMAT=json"}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(cmd.Environ(), env...)
		out, err := cmd.Output()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			t.Fatalf("volley %v: %v\n%s", args, err, exitErr.Stderr)
		}
		require.NoError(t, err)
		return string(out)
	}
	lastLine := func(out string) string {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return strings.TrimSpace(lines[len(lines)-1])
	}

	require.Contains(t, run("migrate"), "migrations applied")
	alice := lastLine(run("keys", "create", "--owner", "alice")) // serve is not running

	serve := testproc.Start(t, "volley", bin, []string{"serve"}, append(env, "VOLLEY_ADDR=127.0.0.1:0"), testproc.VolleyReady)
	bob := lastLine(run("keys", "create", "--owner", "bob", "--name", "ci")) // serve is running
	require.Contains(t, run("migrate"), "migrations applied", "migrate works beside a running serve")
	client := func(key string) openai.Client {
		return openai.NewClient(option.WithBaseURL(serve.URL), option.WithAPIKey(key), option.WithMaxRetries(0))
	}
	for _, key := range []string{alice, bob} {
		c := client(key)
		_, err := c.Files.List(ctx(t), openai.FileListParams{})
		require.NoError(t, err)
	}

	list := run("keys", "list")
	require.Contains(t, list, "alice")
	require.Contains(t, list, "bob")
	require.NotContains(t, list, bob, "keys are never shown again")
	id := regexp.MustCompile(`(?m)^(\d+)\s+bob\s`).FindStringSubmatch(list)
	require.NotNil(t, id, list)
	require.Contains(t, run("keys", "revoke", id[1]), "revoked")
	revoked := client(bob)
	_, err = revoked.Files.List(ctx(t), openai.FileListParams{})
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusUnauthorized, apiErr.StatusCode)

	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, serve.Stop(stopCtx), "SIGTERM stops serve and its cluster cleanly")
	require.Contains(t, run("keys", "list"), "alice", "the data outlives the server")
}

func TestCommandErrorsAreClear(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(testproc.Binaries(t), "volley")
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"keys", "create"}, nil, "--owner is required"},
		{[]string{"keys", "revoke", "abc"}, []string{"DATABASE_URL=postgres://127.0.0.1:1/x"}, "not a key id"},
		{[]string{"frobnicate"}, nil, "unknown command"},
		{[]string{"serve"}, []string{"VOLLEY_MAX_FILE_LINES=many"}, "VOLLEY_MAX_FILE_LINES"},
		{[]string{"serve"}, []string{"DATABASE_URL=postgres://127.0.0.1:1/x", "VOLLEY_CONFIG=/nonexistent/volley.yaml"}, "VOLLEY_CONFIG"},
		{[]string{"serve"}, []string{"DATABASE_URL=postgres://127.0.0.1:1/x", "VOLLEY_UPSTREAM_URL=ftp://x"}, "VOLLEY_UPSTREAM_URL"},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = append(cmd.Environ(), tc.env...)
		out, err := cmd.CombinedOutput()
		require.Error(t, err, "%v", tc.args)
		require.Contains(t, string(out), tc.want, "%v", tc.args)
	}
}
