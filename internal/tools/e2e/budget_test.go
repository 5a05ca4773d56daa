package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// With 1 MB answers and an 8 MiB byte budget, the dispatcher keeps about eight calls in flight,
// though the model's limit would allow forty, and every request still completes.
func TestByteBudgetBoundsCallsInFlight(t *testing.T) {
	t.Parallel()
	const limit, answer, n = 40, 1_000_000, 60
	m := startMock(t, "-latency", "200ms", "-pad-bytes", "1000000")
	v := startVolley(t, append(dispatchEnv(t, m, limit), "VOLLEY_MAX_INFLIGHT_BYTES=8388608")...)
	c := v.clientAs(t, "alice")
	lines, _ := manyLines("big", "big", n)
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")
	b = waitBatch(t, c, b.ID, time.Minute, terminal)
	require.Equal(t, "completed", string(b.Status))
	require.Equal(t, int64(n), b.RequestCounts.Completed)

	st := m.stats()
	t.Logf("peak concurrency %d", st.Models["big"].PeakConcurrency)
	require.LessOrEqual(t, st.Models["big"].PeakConcurrency, (8<<20)/answer, "no more calls than the budget holds answers")
	require.GreaterOrEqual(t, st.Models["big"].PeakConcurrency, 2, "the budget still lets calls overlap")

	results := readResults(t, c, b.OutputFileID)
	require.Len(t, results, n, "every answer is stored")
}
