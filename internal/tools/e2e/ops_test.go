package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/testdb"
)

type daemonsJSON struct {
	Data []struct {
		ID        int64  `json:"id"`
		Pid       int    `json:"pid"`
		Status    string `json:"status"`
		Completed int64  `json:"completed"`
	} `json:"data"`
}

// Two replicas, one killed: the daemons list shows it dead once its lease lapses, and the other
// running. Plain keys do not see the route; the official SDK lists the models.
func TestDaemonsListShowsAKilledReplicaDead(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "5ms")
	dsn := testdb.DSN(t)
	env := dispatchEnv(t, m, 4)
	first := startReplica(t, dsn, env...)
	second := startReplica(t, dsn, env...)
	admin, ok := first.adminKey("ops")
	require.True(t, ok, "volley keys create --admin")
	plain := first.key("alice")

	status, body := first.api(http.MethodGet, "/v1/daemons", plain, "", nil)
	require.Equal(t, http.StatusNotFound, status, string(body))

	statusOf := func() map[int]string {
		var d daemonsJSON
		status, body := first.api(http.MethodGet, "/v1/daemons", admin, "", &d)
		require.Equal(t, http.StatusOK, status, string(body))
		out := map[int]string{}
		for _, x := range d.Data {
			out[x.Pid] = x.Status
		}
		return out
	}
	require.Equal(t, map[int]string{first.proc.Pid(): "running", second.proc.Pid(): "running"}, statusOf())
	second.proc.Signal(syscall.SIGKILL)
	_, exited := second.proc.Wait(10 * time.Second)
	require.True(t, exited)
	require.Eventually(t, func() bool { return statusOf()[second.proc.Pid()] == "dead" }, 20*time.Second, 100*time.Millisecond,
		"dead once its lease (2s) lapses")
	require.Equal(t, "running", statusOf()[first.proc.Pid()])
	require.NoError(t, first.proc.Stop(t.Context()))

	// The stopped one is stopped, as the survivor's database says.
	third := startReplica(t, dsn, env...)
	var d daemonsJSON
	status, body = third.api(http.MethodGet, "/v1/daemons", admin, "", &d)
	require.Equal(t, http.StatusOK, status, string(body))
	got := map[int]string{}
	for _, x := range d.Data {
		got[x.Pid] = x.Status
	}
	require.Equal(t, "stopped", got[first.proc.Pid()])
	require.Equal(t, "dead", got[second.proc.Pid()])
	require.Equal(t, "running", got[third.proc.Pid()])
}

func TestModelsListWithTheSDK(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-models", "llama-3-8b,qwen-2-7b")
	path := filepath.Join(t.TempDir(), "volley.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`upstreams:
  local:
    url: %s
    api_key: upstream-secret
models:
  - name: llama-3-8b
    upstream: local
  - name: "*"
    upstream: local
`, m.v1())), 0o600))
	v := startVolley(t, "VOLLEY_CONFIG="+path)
	c := v.clientAs(t, "alice")
	page, err := c.Models.List(ctx(t))
	require.NoError(t, err)
	// llama-3-8b has a route of its own; the catch-all adds what its upstream lists.
	var ids []string
	for _, model := range page.Data {
		ids = append(ids, model.ID)
		require.Equal(t, "local", model.OwnedBy)
		require.NotZero(t, model.Created)
	}
	require.Equal(t, []string{"llama-3-8b", "qwen-2-7b"}, ids)
}
