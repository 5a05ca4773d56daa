// Package e2e drives real volley serve (and mockllm) processes with the official openai-go SDK,
// exactly as a user would.
package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/testdb"
	"github.com/volleyhq/volley/internal/tools/testproc"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// volley is one running server on a database of the test's own.
type volley struct {
	t    *testing.T
	bin  string
	dsn  string
	proc *testproc.Proc
}

func startVolley(t *testing.T, env ...string) *volley {
	t.Helper()
	return startReplica(t, testdb.DSN(t), env...)
}

// startReplica starts a volley serve process on an existing database.
func startReplica(t *testing.T, dsn string, env ...string) *volley {
	t.Helper()
	bin := testproc.Binaries(t)
	v := &volley{t: t, bin: bin, dsn: dsn}
	env = append([]string{"DATABASE_URL=" + dsn, "VOLLEY_ADDR=127.0.0.1:0", "VOLLEY_LOG_FORMAT=json", "VOLLEY_DATA_DIR=" + t.TempDir()}, env...)
	v.proc = testproc.Start(t, "volley", filepath.Join(bin, "volley"), []string{"serve"}, env, testproc.VolleyReady)
	return v
}

var lastLine = regexp.MustCompile(`(?m)^(\S+)\s*$`)

// key makes an API key with the volley CLI, as an operator would.
func (v *volley) key(owner string) string {
	v.t.Helper()
	cmd := exec.Command(filepath.Join(v.bin, "volley"), "keys", "create", "--owner", owner)
	cmd.Env = append(cmd.Environ(), "DATABASE_URL="+v.dsn, "VOLLEY_LOG_FORMAT=json")
	out, err := cmd.Output()
	require.NoError(v.t, err)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	key := strings.TrimSpace(lines[len(lines)-1])
	require.True(v.t, strings.HasPrefix(key, "sk-volley-"), "last line is the key: %q", out)
	return key
}

func (v *volley) client(key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(v.proc.URL), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func ctx(t *testing.T) context.Context { return t.Context() }

// clientAs returns a client with a fresh key of owner.
func (v *volley) clientAs(t *testing.T, owner string) openai.Client {
	t.Helper()
	return v.client(v.key(owner))
}
