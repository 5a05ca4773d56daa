package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"
)

// fallbackSetup starts two mocks, the model llama's own upstream (local) and its fallback
// (cloud, which knows it as cloud-llama), and a volley routing llama to local with route's extra
// YAML lines and env.
func fallbackSetup(t *testing.T, route string, env ...string) (local, cloud *mock, v *volley) {
	t.Helper()
	local = startMock(t, "-latency", "5ms")
	cloud = startMock(t, "-latency", "5ms")
	path := filepath.Join(t.TempDir(), "volley.yaml")
	yaml := fmt.Sprintf(`upstreams:
  local:
    url: %s
    api_key: upstream-secret
  cloud:
    url: %s
    api_key: upstream-secret
models:
  - name: llama
    upstream: local
    concurrency: 8
    fallback: {upstream: cloud, model: cloud-llama}
%s`, local.v1(), cloud.v1(), route)
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return local, cloud, startVolley(t, append([]string{"VOLLEY_CONFIG=" + path, "VOLLEY_POLL_INTERVAL=100ms"}, env...)...)
}

// A model with a fallback and escalate_before sends the requests whose deadline is nearer than
// that to the fallback, under the fallback's model name, and only those: a batch of a 1-hour
// window escalates with escalate_before 2h, one of a 24-hour window does not. The output lines
// carry the model the upstream answered as, and the request view says who answered.
func TestEscalateBeforeSendsNearDeadlinesToTheFallback(t *testing.T) {
	t.Parallel()
	local, cloud, v := fallbackSetup(t, "    escalate_before: 2h\n")
	key := v.key("alice")
	c := v.client(key)

	urgentLines, urgentIDs := manyLines("urgent", "llama", 20)
	urgent := createBatch(t, c, uploadLines(t, c, urgentLines...), "1h")
	urgent = waitBatch(t, c, urgent.ID, time.Minute, terminal)
	require.Equal(t, openai.BatchStatusCompleted, urgent.Status)
	out, _ := checkExactlyOnce(t, c, urgent, urgentIDs)
	for id, l := range out {
		var body struct {
			Model string `json:"model"`
		}
		require.NoError(t, json.Unmarshal(l.Response.Body, &body), id)
		require.Equal(t, "cloud-llama", body.Model, "the fallback answered under its own model name")
	}
	require.Equal(t, 20, cloud.stats().Models["cloud-llama"].Calls)
	require.Zero(t, local.stats().TotalCalls, "nothing near its deadline waited for the model's own upstream")

	relaxedLines, relaxedIDs := manyLines("relaxed", "llama", 20)
	relaxed := createBatch(t, c, uploadLines(t, c, relaxedLines...), "24h")
	relaxed = waitBatch(t, c, relaxed.ID, time.Minute, terminal)
	require.Equal(t, openai.BatchStatusCompleted, relaxed.Status)
	checkExactlyOnce(t, c, relaxed, relaxedIDs)
	require.Equal(t, 20, local.stats().Models["llama"].Calls)
	require.Equal(t, 20, cloud.stats().TotalCalls, "a deadline a day away is not escalated")

	type served struct {
		ServedBy *struct {
			Upstream string `json:"upstream"`
			Model    string `json:"model"`
			Fallback bool   `json:"fallback"`
		} `json:"served_by"`
	}
	var one served
	status, body := v.api(http.MethodGet, "/v1/batches/"+urgent.ID+"/requests/"+url.PathEscape(urgentIDs[3]), key, "", &one)
	require.Equal(t, http.StatusOK, status, string(body))
	require.NotNil(t, one.ServedBy)
	require.Equal(t, "cloud", one.ServedBy.Upstream)
	require.Equal(t, "cloud-llama", one.ServedBy.Model)
	require.True(t, one.ServedBy.Fallback)
	var page struct {
		Data []served `json:"data"`
	}
	status, body = v.api(http.MethodGet, "/v1/batches/"+relaxed.ID+"/requests?limit=5", key, "", &page)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Len(t, page.Data, 5)
	for _, r := range page.Data {
		require.NotNil(t, r.ServedBy)
		require.Equal(t, "local", r.ServedBy.Upstream)
		require.Equal(t, "llama", r.ServedBy.Model)
		require.False(t, r.ServedBy.Fallback)
	}
}

// A model that is not live holds its requests until they enter their deadline ramp, the last
// part of their window; then its fallback answers them, and the batch completes inside its
// window. Here the ramp is the last 99.5% of a ten-minute window: it begins three seconds in.
func TestRampSendsWaitingRequestsToTheFallback(t *testing.T) {
	t.Parallel()
	local, cloud, v := fallbackSetup(t, "", "VOLLEY_FALLBACK_RAMP=0.995", "VOLLEY_MODEL_TRICKLE_INTERVAL=0")
	adminKey, ok := v.adminKey("ops")
	require.True(t, ok)
	ops := v.client(adminKey)
	var ev map[string]any
	require.NoError(t, ops.Post(ctx(t), "models/llama/availability", map[string]string{"state": "coming"}, &ev))

	key := v.key("alice")
	c := v.client(key)
	lines, ids := manyLines("cold", "llama", 20)
	b := createBatch(t, c, uploadLines(t, c, lines...), "10m")
	created := time.Now()
	require.Zero(t, cloud.stats().TotalCalls+local.stats().TotalCalls, "before the ramp nothing is sent")
	b = waitBatch(t, c, b.ID, time.Minute, terminal)
	require.Equal(t, openai.BatchStatusCompleted, b.Status)
	require.GreaterOrEqual(t, time.Since(created), 2*time.Second, "held until the ramp began")
	out, _ := checkExactlyOnce(t, c, b, ids)
	require.Len(t, out, 20)
	require.Zero(t, local.stats().TotalCalls, "the model's own upstream is not live")
	require.Equal(t, 20, cloud.stats().Models["cloud-llama"].Calls)

	var one struct {
		ServedBy *struct {
			Upstream string `json:"upstream"`
			Fallback bool   `json:"fallback"`
		} `json:"served_by"`
	}
	status, body := v.api(http.MethodGet, "/v1/batches/"+b.ID+"/requests/"+url.PathEscape(ids[0]), key, "", &one)
	require.Equal(t, http.StatusOK, status, string(body))
	require.NotNil(t, one.ServedBy)
	require.Equal(t, "cloud", one.ServedBy.Upstream)
	require.True(t, one.ServedBy.Fallback)
}

// Without a fallback, a model that is not live keeps its requests waiting to the end of their
// window: the batch expires, every line a batch_expired error, and nothing is sent upstream.
func TestComingModelWithoutFallbackExpires(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "5ms")
	v := startVolley(t, append(dispatchEnv(t, m, 8), "VOLLEY_MODEL_TRICKLE_INTERVAL=0")...)
	adminKey, ok := v.adminKey("ops")
	require.True(t, ok)
	ops := v.client(adminKey)
	var ev map[string]any
	require.NoError(t, ops.Post(ctx(t), "models/cold/availability", map[string]string{"state": "coming"}, &ev))

	c := v.clientAs(t, "alice")
	lines, ids := manyLines("wait", "cold", 10)
	b := createBatch(t, c, uploadLines(t, c, lines...), "1m")
	b = waitBatch(t, c, b.ID, 2*time.Minute, terminal)
	require.Equal(t, openai.BatchStatusExpired, b.Status)
	_, errs := checkExactlyOnce(t, c, b, ids)
	require.Len(t, errs, 10)
	for id, l := range errs {
		require.NotNil(t, l.Error, id)
		require.Equal(t, "batch_expired", l.Error.Code, id)
	}
	require.Zero(t, m.stats().TotalCalls)
}
