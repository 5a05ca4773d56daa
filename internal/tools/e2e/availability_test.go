package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"
)

// A model marked coming holds its requests but for one per owner per trickle interval; marking it
// live releases them at once: the replica polls only every minute, so the batches completing within
// the wait below shows that the release woke it.
func TestComingModelHoldsRequestsUntilLive(t *testing.T) {
	t.Parallel()
	m := startMock(t)
	env := append(dispatchEnv(t, m, 10), "VOLLEY_MODEL_TRICKLE_INTERVAL=1h", "VOLLEY_POLL_INTERVAL=1m")
	v := startVolley(t, env...)
	adminKey, ok := v.adminKey("ops")
	require.True(t, ok, "volley keys create --admin")
	ops := v.client(adminKey)
	set := func(c openai.Client, state string) error {
		var ev json.RawMessage
		return c.Post(ctx(t), "models/cold/availability", map[string]string{"state": state}, &ev)
	}
	require.NoError(t, set(ops, "coming"))

	owners := map[string]openai.Client{"alice": v.clientAs(t, "alice"), "bob": v.clientAs(t, "bob")}
	require.Error(t, set(owners["alice"], "live"), "only an admin may set availability")
	batches := map[string]string{}
	for owner, c := range owners {
		var lines []string
		for i := range 5 {
			lines = append(lines, reqLine(fmt.Sprintf("%s-%d", owner, i), "cold", ""))
		}
		batches[owner] = createBatch(t, c, uploadLines(t, c, lines...), "24h").ID
	}
	for owner, c := range owners {
		b := waitBatch(t, c, batches[owner], 30*time.Second, func(b *openai.Batch) bool { return b.RequestCounts.Completed >= 1 })
		require.EqualValues(t, 1, b.RequestCounts.Completed, "%s: one request went through the trickle", owner)
		require.Equal(t, openai.BatchStatusInProgress, b.Status)
	}
	require.Equal(t, 2, m.stats().Models["cold"].Calls, "one per owner reached the upstream")

	require.NoError(t, set(ops, "live"))
	for owner, c := range owners {
		b := waitBatch(t, c, batches[owner], 20*time.Second, terminal)
		require.Equal(t, openai.BatchStatusCompleted, b.Status, owner)
		require.EqualValues(t, 5, b.RequestCounts.Completed, owner)
	}
	require.Equal(t, 10, m.stats().Models["cold"].Calls)
}
