package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/apikey"
	"github.com/volleyhq/volley/internal/upstream"
)

func (f *fixture) newAdminKey(owner string) string {
	key, hash, display := apikey.New()
	_, err := dbsqlc.New(f.pool).APIKeyInsert(context.Background(), dbsqlc.APIKeyInsertParams{Owner: owner, KeyHash: hash, KeyPrefix: display, Admin: true})
	require.NoError(f.t, err)
	return key
}

func TestAdminKeysReadEveryOwnerPlainKeysDoNot(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	ops := f.newAdminKey("ops")
	ctx := context.Background()
	b := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, f.uploadOK(f.alice, lines(2)).ID))
	_, err := f.pool.Exec(ctx, `INSERT INTO daemons (host, pid, started_at, heartbeat_at) VALUES ('live', 1, now(), now()), ('silent', 2, now() - interval '1 hour', now() - interval '1 hour')`)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `INSERT INTO daemons (host, pid, heartbeat_at, stopped_at) VALUES ('gone', 3, now(), now())`)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `INSERT INTO daemons (host, pid, heartbeat_at, stopped_at, declared_dead, completed, failed) VALUES ('rescued', 4, now() - interval '1 hour', now(), true, 7, 2)`)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `UPDATE requests SET state = 'running', daemon_id = (SELECT id FROM daemons WHERE host = 'live') WHERE batch_id = $1 AND line = 1`, b.ID)
	require.NoError(t, err)

	// The admin route does not exist for plain keys.
	for _, key := range []string{f.alice, f.bob} {
		status, body := f.getJSON("/v1/daemons", key, nil)
		require.Equal(t, http.StatusNotFound, status, string(body))
		decodeEnvelope(t, body)
	}
	var daemons struct {
		Object string `json:"object"`
		Data   []struct {
			Host      string `json:"host"`
			Pid       int    `json:"pid"`
			Status    string `json:"status"`
			InFlight  int64  `json:"in_flight"`
			Completed int64  `json:"completed"`
			Failed    int64  `json:"failed"`
			StoppedAt *int64 `json:"stopped_at"`
		} `json:"data"`
	}
	status, body := f.getJSON("/v1/daemons", ops, &daemons)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Len(t, daemons.Data, 4)
	got := map[string]string{}
	for _, d := range daemons.Data {
		got[d.Host] = d.Status
		switch d.Host {
		case "live":
			require.Equal(t, int64(1), d.InFlight)
			require.Nil(t, d.StoppedAt)
		case "rescued":
			require.Equal(t, int64(7), d.Completed)
			require.Equal(t, int64(2), d.Failed)
		}
	}
	require.Equal(t, map[string]string{"live": "running", "silent": "dead", "gone": "stopped", "rescued": "dead"}, got)

	// owner= reads another owner's lists with an admin key only.
	var list struct {
		Data []batchJSON `json:"data"`
	}
	status, body = f.getJSON("/v1/batches?owner=alice", ops, &list)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Len(t, list.Data, 1)
	require.Equal(t, b.ID, list.Data[0].ID)
	f.getJSON("/v1/batches", ops, &list)
	require.Empty(t, list.Data, "without owner=, the admin's own")
	var reqs requestListJSON
	status, body = f.getJSON("/v1/batches/"+b.ID+"/requests?owner=alice", ops, &reqs)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Len(t, reqs.Data, 2)
	var files struct {
		Data []fileJSON `json:"data"`
	}
	status, body = f.getJSON("/v1/files?owner=alice", ops, &files)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Len(t, files.Data, 1)
	for _, path := range []string{"/v1/batches?owner=alice", "/v1/files?owner=alice", "/v1/batches/" + b.ID + "/requests?owner=alice"} {
		status, body := f.getJSON(path, f.bob, nil)
		require.Equal(t, http.StatusBadRequest, status, path)
		e := decodeEnvelope(t, body)
		require.Equal(t, "owner", strOrEmpty(e.Error.Param))
		require.Contains(t, e.Error.Message, "needs an admin key")
	}
	// Even an admin's owner is bounded, as the spec says.
	status, body = f.getJSON("/v1/batches?owner="+strings.Repeat("o", 257), ops, nil)
	require.Equal(t, http.StatusBadRequest, status, string(body))
	require.Equal(t, "owner", strOrEmpty(decodeEnvelope(t, body).Error.Param))
	// Read-only: an admin key cannot act on another owner's batch.
	status, body = f.postJSON("/v1/batches/"+b.ID+"/cancel", ops, "")
	require.Equal(t, http.StatusNotFound, status, string(body))
}

func TestListModels(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	var models struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Created int64  `json:"created"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	status, body := f.getJSON("/v1/models", f.alice, &models)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, "list", models.Object)
	require.Len(t, models.Data, 2)
	for i, m := range []string{"m1", "m2"} {
		require.Equal(t, m, models.Data[i].ID)
		require.Equal(t, "model", models.Data[i].Object)
		require.Equal(t, "u", models.Data[i].OwnedBy)
		require.NotZero(t, models.Data[i].Created)
	}
	status, _ = f.getJSON("/v1/models", "", nil)
	require.Equal(t, http.StatusUnauthorized, status)
}

// With a catch-all route, the models its upstream lists are Volley's too; the answer is kept a
// while, and an upstream that fails leaves the list to what was last known.
func TestListModelsAsksTheCatchAllUpstream(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var failing atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if failing.Load() || r.URL.Path != "/v1/models" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"object":"list","data":[{"id":"qwen-2"},{"id":"m1"},{"id":"llama-3"}]}`))
	}))
	t.Cleanup(up.Close)
	cfg, err := upstream.Parse([]byte(fmt.Sprintf(`upstreams:
  own:
    url: http://127.0.0.1:9/v1
  pool:
    url: %s/v1
models:
  - name: m1
    upstream: own
    concurrency: 2
  - name: "*"
    upstream: pool
    concurrency: 7
`, up.URL)), "test.yaml", func(string) string { return "" })
	require.NoError(t, err)
	f := setup(t)
	f.server.router = upstream.NewRouter(cfg)
	f.server.client = upstream.NewClient(cfg, nil)
	clock := time.Now()
	f.server.catchAll.now = func() time.Time { return clock }

	type listed struct {
		ID               string `json:"id"`
		OwnedBy          string `json:"owned_by"`
		ConcurrencyLimit int    `json:"concurrency_limit"`
	}
	list := func() []listed {
		var models struct {
			Data []listed `json:"data"`
		}
		status, body := f.getJSON("/v1/models", f.alice, &models)
		require.Equal(t, http.StatusOK, status, string(body))
		return models.Data
	}
	want := []listed{{"m1", "own", 2}, {"qwen-2", "pool", 7}, {"llama-3", "pool", 7}}
	require.Equal(t, want, list(), "m1 is listed once, under its own route")
	require.Equal(t, want, list())
	require.Equal(t, int32(1), calls.Load(), "the answer is kept")

	failing.Store(true)
	clock = clock.Add(catchAllModelsTTL)
	require.Equal(t, want, list(), "a failing upstream leaves the last list")
	require.Equal(t, int32(2), calls.Load())
	clock = clock.Add(catchAllModelsRetry - time.Millisecond)
	list()
	require.Equal(t, int32(2), calls.Load(), "a failure is not asked again at once")
	failing.Store(false)
	clock = clock.Add(time.Millisecond)
	list()
	require.Equal(t, int32(3), calls.Load())

	// A server that never had an answer lists the routes of its own.
	failing.Store(true)
	f.server.catchAll = catchAllModels{}
	require.Equal(t, want[:1], list())
}

func TestQueueDeadlineWindows(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	ops := f.newAdminKey("ops")
	mk := func(key, window string, n int) batchJSON {
		return f.createBatch(key, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":%q}`, f.uploadOK(key, lines(n)).ID, window))
	}
	mk(f.alice, "1h", 2)
	mk(f.alice, "24h", 3)
	mk(f.bob, "90m", 4)
	overdue := mk(f.bob, "1h", 1)
	_, err := f.pool.Exec(context.Background(), `UPDATE requests SET deadline = now() - interval '1 minute' WHERE batch_id = $1`, overdue.ID)
	require.NoError(t, err)

	type queue struct {
		Scope string `json:"windows_scope"`
		Data  []struct {
			Model     string `json:"model"`
			Pending   int64  `json:"pending"`
			OwnPend   int64  `json:"own_pending"`
			Deadlines []struct {
				Window  string `json:"window"`
				Pending int64  `json:"pending"`
			} `json:"deadline_windows"`
		} `json:"data"`
	}
	windows := func(key, query string) (string, map[string]int64) {
		var q queue
		status, body := f.getJSON("/v1/queue"+query, key, &q)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Len(t, q.Data, 1)
		require.Equal(t, int64(10), q.Data[0].Pending)
		out := map[string]int64{}
		var order []string
		for _, w := range q.Data[0].Deadlines {
			out[w.Window] = w.Pending
			order = append(order, w.Window)
		}
		out["#"+fmt.Sprint(order)] = 1
		return q.Scope, out
	}
	scope, got := windows(f.alice, "")
	require.Equal(t, "own", scope)
	require.Equal(t, map[string]int64{"overdue": 0, "within_1h": 2, "within_24h": 3, "later": 0, "#[overdue within_1h within_24h later]": 1}, got)
	scope, got = windows(ops, "")
	require.Equal(t, "all", scope, "an admin key sees everyone's")
	require.Equal(t, map[string]int64{"overdue": 1, "within_1h": 2, "within_24h": 7, "later": 0, "#[overdue within_1h within_24h later]": 1}, got)
	_, got = windows(ops, "?windows=2h,12h")
	require.Equal(t, map[string]int64{"overdue": 1, "within_2h": 6, "within_12h": 0, "later": 3, "#[overdue within_2h within_12h later]": 1}, got)

	for _, c := range []struct{ query, message string }{
		{"?windows=soon", "'soon' is not a positive duration"},
		{"?windows=-1h", "not a positive duration"},
		{"?windows=24h,1h", "ascending"},
		{"?windows=1m,2m,3m,4m,5m,6m,7m,8m,9m", "at most 8"},
	} {
		status, body := f.getJSON("/v1/queue"+c.query, f.alice, nil)
		require.Equal(t, http.StatusBadRequest, status, c.query)
		e := decodeEnvelope(t, body)
		require.Equal(t, "windows", strOrEmpty(e.Error.Param), c.query)
		require.Contains(t, e.Error.Message, c.message, c.query)
	}
}
