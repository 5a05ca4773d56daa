package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/testdb"
)

func manyLines(prefix, model string, n int) (lines, ids []string) {
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		lines, ids = append(lines, reqLine(id, model, "")), append(ids, id)
	}
	return lines, ids
}

func TestTwoReplicasNeverExceedTheModelLimit(t *testing.T) {
	t.Parallel()
	t.Run("none claimed ahead", func(t *testing.T) { twoReplicasWithinTheLimit(t, "VOLLEY_CLAIM_AHEAD=0") })
	t.Run("claiming ahead", func(t *testing.T) { twoReplicasWithinTheLimit(t) })
}

func twoReplicasWithinTheLimit(t *testing.T, extra ...string) {
	t.Parallel()
	const limit = 4
	m := startMock(t, "-latency", "30ms", "-max-concurrency", fmt.Sprint(limit))
	dsn := testdb.DSN(t)
	env := append(dispatchEnv(t, m, limit), extra...)
	a := startReplica(t, dsn, env...)
	startReplica(t, dsn, env...)
	c := a.client(a.key("alice"))
	lines, ids := manyLines("r", "limited", 300)
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")
	b = waitBatch(t, c, b.ID, time.Minute, terminal)
	require.Equal(t, openai.BatchStatusCompleted, b.Status)
	checkExactlyOnce(t, c, b, ids)
	st := m.stats()
	require.Zero(t, st.Violations, "the mock never saw more than %d concurrent calls", limit)
	require.LessOrEqual(t, st.Models["limited"].PeakConcurrency, limit)
	require.Equal(t, limit, st.Models["limited"].PeakConcurrency, "the limit is used in full")
	require.Equal(t, 300, st.TotalCalls)
}

func TestKilledReplicaLosesNothing(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "50ms")
	dsn := testdb.DSN(t)
	env := dispatchEnv(t, m, 8)
	victim := startReplica(t, dsn, env...)
	c := victim.clientAs(t, "alice")
	lines, ids := manyLines("k", "m", 400)
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")
	waitBatch(t, c, b.ID, 30*time.Second, func(b *openai.Batch) bool { return b.RequestCounts.Completed >= 50 })
	victim.proc.Signal(syscall.SIGKILL)
	_, exited := victim.proc.Wait(10 * time.Second)
	require.True(t, exited)

	survivor := startReplica(t, dsn, env...)
	ca := survivor.clientAs(t, "alice")
	final := waitBatch(t, ca, b.ID, time.Minute, terminal)
	require.Equal(t, openai.BatchStatusCompleted, final.Status)
	out, errs := checkExactlyOnce(t, ca, final, ids)
	require.Len(t, out, 400)
	require.Empty(t, errs)
	// Delivery is at-least-once: what the replica held when it died may have been sent twice, but
	// never more than that. It held at most its calls in flight (the limit) and, with claims ahead,
	// the requests it had claimed past the limit (at most the limit again): an answered call's
	// slot starts a request claimed ahead before its answer is written, and an answer not yet
	// written is sent again.
	require.LessOrEqual(t, m.stats().TotalCalls, 400+2*8)
}

func TestSIGTERMHandsBackInFlightWork(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "3s")
	dsn := testdb.DSN(t)
	env := append(dispatchEnv(t, m, 6), "VOLLEY_SHUTDOWN_GRACE=500ms")
	first := startReplica(t, dsn, env...)
	c := first.clientAs(t, "alice")
	lines, ids := manyLines("g", "m", 12)
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")
	require.Eventually(t, func() bool { return m.stats().Models["m"].Calls >= 6 }, 20*time.Second, 20*time.Millisecond)

	first.proc.Signal(syscall.SIGTERM)
	err, exited := first.proc.Wait(20 * time.Second)
	require.True(t, exited, "SIGTERM ends the process")
	require.NoError(t, err, "a clean exit")
	require.Contains(t, first.proc.Logs(), `"handed_back":6`)

	second := startReplica(t, dsn, env...)
	c = second.clientAs(t, "alice")
	final := waitBatch(t, c, b.ID, time.Minute, terminal)
	require.Equal(t, openai.BatchStatusCompleted, final.Status)
	out, _ := checkExactlyOnce(t, c, final, ids)
	require.Len(t, out, 12)
}

func TestOwnersShareAModelFairly(t *testing.T) {
	t.Parallel()
	const limit = 4
	m := startMock(t, "-latency", "40ms")
	v := startVolley(t, dispatchEnv(t, m, limit)...)
	big, small := v.clientAs(t, "big"), v.clientAs(t, "small")
	bigLines, _ := manyLines("big", "shared", 400)
	smallLines, _ := manyLines("small", "shared", 40)
	bigFile, smallFile := uploadLines(t, big, bigLines...), uploadLines(t, small, smallLines...)

	// The big batch is created first, so its deadline is earlier: without fairness it would hold
	// every slot until it was done.
	bigBatch := createBatch(t, big, bigFile, "24h")
	smallBatch := createBatch(t, small, smallFile, "24h")
	waitBatch(t, small, smallBatch.ID, time.Minute, terminal)
	bigNow, err := big.Batches.Get(ctx(t), bigBatch.ID)
	require.NoError(t, err)
	// With an even split, the big owner completes about as many requests as the small one while
	// the small batch runs (40). Tolerance: from half that to twice that, plus the slots in
	// flight. Without fairness it would be about 400; a starved big owner would have next to none.
	t.Logf("big batch had %d completed when the small batch finished", bigNow.RequestCounts.Completed)
	require.LessOrEqual(t, bigNow.RequestCounts.Completed, int64(2*40+limit))
	require.GreaterOrEqual(t, bigNow.RequestCounts.Completed, int64(40/2), "the big owner is not starved either")
	waitBatch(t, big, bigBatch.ID, time.Minute, terminal)
}
