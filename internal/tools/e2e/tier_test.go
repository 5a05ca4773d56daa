package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/stretchr/testify/require"
)

// A background batch runs within its share of the limit while nothing else of its model waits;
// a batch created meanwhile on the same model is claimed ahead of every background request
// still pending, and the background batch resumes once it is all running.
func TestBackgroundTierYieldsToDeadlineWork(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "150ms")
	v := startVolley(t, append(dispatchEnv(t, m, 4), "VOLLEY_BACKGROUND_SHARE=0.5")...)
	alice, bob := v.clientAs(t, "alice"), v.clientAs(t, "bob")

	lines, _ := manyLines("low", "shared", 40)
	low, err := alice.Batches.New(ctx(t), openai.BatchNewParams{
		InputFileID: uploadLines(t, alice, lines...), Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: "24h",
	}, option.WithJSONSet("service_tier", "background"))
	require.NoError(t, err)
	require.Equal(t, `"background"`, low.JSON.ExtraFields["service_tier"].Raw())
	waitBatch(t, alice, low.ID, 30*time.Second, func(b *openai.Batch) bool { return b.RequestCounts.Completed >= 6 })
	require.Equal(t, 2, m.stats().Models["shared"].PeakConcurrency, "alone, the background batch holds half the limit")

	lines, ids := manyLines("std", "shared", 12)
	std := createBatch(t, bob, uploadLines(t, bob, lines...), "24h")
	_, has := std.JSON.ExtraFields["service_tier"]
	require.False(t, has, "a batch created without a tier shows none")
	std = waitBatch(t, bob, std.ID, 60*time.Second, terminal)
	require.Equal(t, openai.BatchStatusCompleted, std.Status)
	checkExactlyOnce(t, bob, std, ids)
	low = waitBatch(t, alice, low.ID, 60*time.Second, terminal)
	require.Equal(t, openai.BatchStatusCompleted, low.Status)
	require.EqualValues(t, 40, low.RequestCounts.Completed)
	require.LessOrEqual(t, m.stats().Models["shared"].PeakConcurrency, 4)

	// When each request was claimed, to the microsecond.
	conn, err := pgx.Connect(context.Background(), v.dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var before, during, after int
	require.NoError(t, conn.QueryRow(ctx(t), `
		WITH s AS (SELECT min(claimed_at) AS first, max(claimed_at) AS last FROM requests WHERE batch_id = $1)
		SELECT count(*) FILTER (WHERE r.claimed_at < s.first), count(*) FILTER (WHERE r.claimed_at > s.first AND r.claimed_at < s.last),
		       count(*) FILTER (WHERE r.claimed_at > s.last)
		FROM requests r CROSS JOIN s WHERE r.batch_id = $2`, std.ID, low.ID).Scan(&before, &during, &after))
	require.Zero(t, during, "no background request was claimed while the other batch had requests waiting")
	require.Positive(t, before)
	require.Positive(t, after, "the background batch resumed")
}

// A background response is queued like any background response, and its tier, Volley's own,
// is not sent upstream; asked for without background mode, it is refused.
func TestBackgroundTierResponses(t *testing.T) {
	t.Parallel()
	m := startMock(t)
	v := startVolley(t, dispatchEnv(t, m, 4)...)
	key := v.key("alice")
	c := v.client(key)
	r, err := c.Responses.New(ctx(t), responses.ResponseNewParams{
		Model: "m", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello")},
		Background: openai.Bool(true), ServiceTier: "background",
	})
	require.NoError(t, err)
	require.Equal(t, responses.ResponseStatusQueued, r.Status)
	require.EqualValues(t, "background", r.ServiceTier)
	deadline := time.Now().Add(20 * time.Second)
	for r.Status != responses.ResponseStatusCompleted {
		require.True(t, time.Now().Before(deadline), "the response completes; it is %s", r.Status)
		time.Sleep(20 * time.Millisecond)
		r, err = c.Responses.Get(ctx(t), r.ID, responses.ResponseGetParams{})
		require.NoError(t, err)
	}
	// The mock refuses tiers OpenAI does not know, as OpenAI does: the answer shows that the
	// tier did not go upstream.
	require.Equal(t, "echo: hello", r.OutputText())
	require.EqualValues(t, "background", r.ServiceTier, "the object keeps the tier it was created with")
	require.Equal(t, 1, m.stats().Models["m"].Calls)

	status, body := v.api(http.MethodPost, "/v1/responses", key, `{"model":"m","input":"hi","service_tier":"background"}`, nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, string(body), `"param":"service_tier"`)
	require.Contains(t, string(body), "'background': true")
}
