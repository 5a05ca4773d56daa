package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/testdb"
)

// adaptiveConfig routes model m to the mock at a ceiling of 64, adapting when adaptive is set,
// with retries quick and many enough that refused calls come back soon and never run out.
func adaptiveConfig(t *testing.T, m *mock, adaptive string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "volley.yaml")
	yaml := fmt.Sprintf(`upstreams:
  mock:
    url: %s
    api_key: upstream-secret
models:
  - name: m
    upstream: mock
    concurrency: 64
%s
retry:
  max_attempts: 100
  base_delay: 20ms
  max_delay: 100ms
`, m.v1(), adaptive)
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return "VOLLEY_CONFIG=" + path
}

// capacityMock serves 8 calls at once and refuses the rest with 429, as a loaded vLLM does.
func capacityMock(t *testing.T) *mock {
	return startMock(t, "-latency", "40ms", "-capacity", "8", "-capacity-mode", "reject", "-retry-after", "0")
}

// runAdaptiveBatch dispatches 400 requests of m through replicas sharing one database and
// returns what the mock saw and the queue's view of m after the batch.
func runAdaptiveBatch(t *testing.T, m *mock, replicas int, env ...string) (mockStats, queueModel, *volley) {
	t.Helper()
	dsn := testdb.DSN(t)
	env = append(env, "VOLLEY_POLL_INTERVAL=100ms", "VOLLEY_LEASE_TIMEOUT=2s")
	first := startReplica(t, dsn, env...)
	for range replicas - 1 {
		startReplica(t, dsn, env...)
	}
	c := first.clientAs(t, "alice")
	lines, ids := manyLines("a", "m", 400)
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")
	// The queue lists a model while it has requests: its last view before the batch ends.
	var seen queueModel
	b = waitBatch(t, c, b.ID, 2*time.Minute, func(b *openai.Batch) bool {
		if q := queueOf(t, first, "alice", "m"); q.Limit != nil {
			seen = q
		}
		return terminal(b)
	})
	require.Equal(t, openai.BatchStatusCompleted, b.Status)
	out, errs := checkExactlyOnce(t, c, b, ids)
	require.Len(t, out, 400)
	require.Empty(t, errs)
	require.NotNil(t, seen.Limit, "the queue listed the model while it ran")
	return m.stats(), seen, first
}

type queueModel struct {
	Model          string `json:"model"`
	Limit          *int   `json:"limit"`
	EffectiveLimit *int   `json:"effective_limit"`
}

func queueOf(t *testing.T, v *volley, owner, model string) queueModel {
	t.Helper()
	var q struct {
		Data []queueModel `json:"data"`
	}
	status, body := v.api(http.MethodGet, "/v1/queue", v.key(owner), "", &q)
	require.Equal(t, http.StatusOK, status, string(body))
	for _, m := range q.Data {
		if m.Model == model {
			return m
		}
	}
	return queueModel{Model: model}
}

// A limit that adapts falls from its ceiling to near what the upstream serves, so that far fewer
// calls are refused than at the fixed limit, and every request completes exactly once; the
// limit it reached is what the queue, the model list and the metrics show.
func TestAdaptiveLimitFollowsTheUpstream(t *testing.T) {
	t.Parallel()
	fixedMock := capacityMock(t)
	fixed, fixedQueue, _ := runAdaptiveBatch(t, fixedMock, 1, adaptiveConfig(t, fixedMock, ""))
	require.Nil(t, fixedQueue.EffectiveLimit, "a fixed limit has no effective limit")

	adaptiveMock := capacityMock(t)
	adapted, q, v := runAdaptiveBatch(t, adaptiveMock, 1, adaptiveConfig(t, adaptiveMock, "    adaptive: {min: 2}"))
	require.NotNil(t, q.EffectiveLimit, "the queue shows the effective limit")
	require.Equal(t, 64, *q.Limit, "the ceiling")
	require.GreaterOrEqual(t, *q.EffectiveLimit, 2)
	require.LessOrEqual(t, *q.EffectiveLimit, 24, "near the 8 the upstream serves, far below the ceiling of 64")

	require.Positive(t, fixed.OverCapacity)
	require.Less(t, adapted.OverCapacity, fixed.OverCapacity/3,
		"refused calls: %d adapting against %d at the fixed limit", adapted.OverCapacity, fixed.OverCapacity)
	t.Logf("refused calls: %d adapting, %d fixed; effective limit %d", adapted.OverCapacity, fixed.OverCapacity, *q.EffectiveLimit)

	var models struct {
		Data []struct {
			ID               string `json:"id"`
			ConcurrencyLimit int    `json:"concurrency_limit"`
			EffectiveLimit   *int   `json:"effective_limit"`
		} `json:"data"`
	}
	status, body := v.api(http.MethodGet, "/v1/models", v.key("alice"), "", &models)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Len(t, models.Data, 1)
	require.Equal(t, 64, models.Data[0].ConcurrencyLimit)
	require.NotNil(t, models.Data[0].EffectiveLimit)
	final := *models.Data[0].EffectiveLimit
	require.GreaterOrEqual(t, final, 2)
	require.LessOrEqual(t, final, 24)

	res, err := http.Get(strings.TrimSuffix(v.proc.URL, "/v1") + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	text, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	g := regexp.MustCompile(`(?m)^volley_model_effective_limit\{model="m"\} (\d+)$`).FindSubmatch(text)
	require.NotNil(t, g, "the gauge is exported")
	n, _ := strconv.Atoi(string(g[1]))
	// The replica's gauge holds the limit as it last read or set it, which a raise made by the
	// same replica after its last claim may have moved past the list's reading.
	require.GreaterOrEqual(t, n, 2)
	require.LessOrEqual(t, n, 24)
}

// Two replicas adapt one shared limit: together they are refused far less often than one
// replica at the fixed limit, and both see the same effective limit.
func TestTwoReplicasShareTheAdaptiveLimit(t *testing.T) {
	t.Parallel()
	m := capacityMock(t)
	adapted, q, _ := runAdaptiveBatch(t, m, 2, adaptiveConfig(t, m, "    adaptive: {min: 2}"))
	require.NotNil(t, q.EffectiveLimit)
	require.LessOrEqual(t, *q.EffectiveLimit, 24)
	// 400 requests at a fixed limit of 64 against 8 slots are refused thousands of times.
	require.Less(t, adapted.OverCapacity, 600, "refused calls with two replicas adapting: %d", adapted.OverCapacity)
}
