package e2e

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/stretchr/testify/require"
)

func ask(model, text string) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model: model,
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(text)},
	}
}

func waitResponse(t *testing.T, c openai.Client, id string, timeout time.Duration) *responses.Response {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, err := c.Responses.Get(ctx(t), id, responses.ResponseGetParams{})
		require.NoError(t, err)
		if r.Status != responses.ResponseStatusQueued && r.Status != responses.ResponseStatusInProgress {
			return r
		}
		require.True(t, time.Now().Before(deadline), "response %s still %s", id, r.Status)
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

func TestBackgroundResponseLifecycle(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "100ms")
	v := startVolley(t, dispatchEnv(t, m, 4)...)
	c := v.clientAs(t, "alice")

	p := ask("m", "what is volley")
	p.Background = openai.Bool(true)
	r, err := c.Responses.New(ctx(t), p)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(r.ID, "resp_"))
	require.Equal(t, responses.ResponseStatusQueued, r.Status)
	require.Empty(t, r.Output)
	require.True(t, r.Background)

	done := waitResponse(t, c, r.ID, 20*time.Second)
	require.Equal(t, responses.ResponseStatusCompleted, done.Status)
	require.Equal(t, r.ID, done.ID, "the upstream's object carries Volley's id")
	require.Equal(t, "echo: what is volley", done.OutputText())
	require.True(t, done.Background, "a completed background response still says background: true")
	require.Positive(t, done.Usage.TotalTokens)

	// The upstream got the body without background, with the upstream's key.
	require.Equal(t, "Bearer upstream-secret", m.stats().Models["m"].LastAuthorization)

	// Cancelling a finished background response returns it unchanged.
	again, err := c.Responses.Cancel(ctx(t), r.ID)
	require.NoError(t, err)
	require.Equal(t, responses.ResponseStatusCompleted, again.Status)
	require.True(t, again.Background)

	// Another owner sees nothing.
	other := v.clientAs(t, "mallory")
	_, err = other.Responses.Get(ctx(t), r.ID, responses.ResponseGetParams{})
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	_, err = other.Responses.Cancel(ctx(t), r.ID)
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	require.True(t, errors.As(other.Responses.Delete(ctx(t), r.ID), &apiErr))
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)

	require.NoError(t, c.Responses.Delete(ctx(t), r.ID))
	_, err = c.Responses.Get(ctx(t), r.ID, responses.ResponseGetParams{})
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	require.Equal(t, "Response with id '"+r.ID+"' not found.", apiErr.Message)
}

func TestCancelQueuedBackgroundResponse(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "5s")
	v := startVolley(t, dispatchEnv(t, m, 1)...)
	c := v.clientAs(t, "alice")
	var ids []string
	for i := 0; i < 3; i++ {
		p := ask("slow", "q")
		p.Background = openai.Bool(true)
		r, err := c.Responses.New(ctx(t), p)
		require.NoError(t, err)
		ids = append(ids, r.ID)
	}
	// With a limit of 1 and 5 s per call, one runs and the other two wait.
	require.Eventually(t, func() bool { return m.stats().InFlight == 1 }, 20*time.Second, 20*time.Millisecond)
	status := func(id string) responses.ResponseStatus {
		r, err := c.Responses.Get(ctx(t), id, responses.ResponseGetParams{})
		require.NoError(t, err)
		return r.Status
	}
	var running, queued []string
	for _, id := range ids {
		switch status(id) {
		case responses.ResponseStatusInProgress:
			running = append(running, id)
		case responses.ResponseStatusQueued:
			queued = append(queued, id)
		}
	}
	require.Len(t, running, 1)
	require.Len(t, queued, 2)

	// Cancel a queued one and the running one; the other queued one then runs and completes.
	for _, id := range []string{queued[1], running[0]} {
		got, err := c.Responses.Cancel(ctx(t), id)
		require.NoError(t, err)
		require.Equal(t, responses.ResponseStatusCancelled, got.Status, id)
		again, err := c.Responses.Cancel(ctx(t), id)
		require.NoError(t, err, "cancel is idempotent")
		require.Equal(t, responses.ResponseStatusCancelled, again.Status)
	}
	require.Equal(t, responses.ResponseStatusCompleted, waitResponse(t, c, queued[0], 30*time.Second).Status)
	require.Equal(t, responses.ResponseStatusCancelled, status(running[0]), "a cancelled response stays cancelled")
	require.Equal(t, responses.ResponseStatusCancelled, status(queued[1]))
	st := m.stats()
	require.Equal(t, 2, st.TotalCalls, "the cancelled queued response was never sent")
	require.Equal(t, 1, st.Canceled, "the running one was abandoned upstream")
}

func TestFlexAndSynchronousResponses(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "50ms")
	v := startVolley(t, dispatchEnv(t, m, 4)...)
	c := v.clientAs(t, "alice")

	flex := ask("m", "flexible")
	flex.ServiceTier = responses.ResponseNewParamsServiceTierFlex
	r, err := c.Responses.New(ctx(t), flex)
	require.NoError(t, err)
	require.Equal(t, responses.ResponseStatusCompleted, r.Status, "flex answers in one call")
	require.Equal(t, "echo: flexible", r.OutputText())
	require.False(t, r.Background)

	sync, err := c.Responses.New(ctx(t), ask("m", "right now"))
	require.NoError(t, err)
	require.Equal(t, responses.ResponseStatusCompleted, sync.Status)
	require.Equal(t, "echo: right now", sync.OutputText())
	stored, err := c.Responses.Get(ctx(t), sync.ID, responses.ResponseGetParams{})
	require.NoError(t, err)
	require.Equal(t, sync.ID, stored.ID)
	require.Equal(t, "echo: right now", stored.OutputText())
	_, err = c.Responses.Cancel(ctx(t), sync.ID)
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
	require.Contains(t, apiErr.Message, "Only background responses can be cancelled")

	notStored := ask("m", "forget me")
	notStored.Store = openai.Bool(false)
	gone, err := c.Responses.New(ctx(t), notStored)
	require.NoError(t, err)
	_, err = c.Responses.Get(ctx(t), gone.ID, responses.ResponseGetParams{})
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)

	stream := c.Responses.NewStreaming(ctx(t), ask("m", "stream this please"))
	var text strings.Builder
	var completedID string
	events := 0
	for stream.Next() {
		ev := stream.Current()
		events++
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.completed":
			completedID = ev.Response.ID
		}
	}
	require.NoError(t, stream.Err())
	require.Greater(t, events, 3)
	require.Equal(t, "echo: stream this please", text.String())
	require.True(t, strings.HasPrefix(completedID, "resp_"))
	streamed, err := c.Responses.Get(ctx(t), completedID, responses.ResponseGetParams{})
	require.NoError(t, err)
	require.Equal(t, "echo: stream this please", streamed.OutputText())

	bg := ask("m", "x")
	bg.Background = openai.Bool(true)
	bgStream := c.Responses.NewStreaming(ctx(t), bg)
	require.False(t, bgStream.Next())
	require.True(t, errors.As(bgStream.Err(), &apiErr))
	require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
}

func TestFailedResponsesCarryTheUpstreamError(t *testing.T) {
	t.Parallel()
	m := startMock(t)
	v := startVolley(t, dispatchEnv(t, m, 4)...)
	c := v.clientAs(t, "alice")
	p := ask("m", "fail")
	p.Background = openai.Bool(true)
	r, err := c.Responses.New(ctx(t), p, optMock(`{"status":400,"message":"bad prompt","code":"invalid_prompt"}`))
	require.NoError(t, err)
	done := waitResponse(t, c, r.ID, 20*time.Second)
	require.Equal(t, responses.ResponseStatusFailed, done.Status)
	require.Equal(t, "invalid_prompt", string(done.Error.Code))
	require.Equal(t, "bad prompt", done.Error.Message)
	require.Empty(t, done.Output)

	// A synchronous failure is relayed with the upstream's status and envelope.
	_, err = c.Responses.New(ctx(t), ask("m", "fail"), optMock(`{"status":422,"message":"nope"}`))
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, 422, apiErr.StatusCode)
	require.Equal(t, "nope", apiErr.Message)
}

func TestBackgroundResponsesShareTheModelLimitWithBatches(t *testing.T) {
	t.Parallel()
	const limit = 3
	m := startMock(t, "-latency", "60ms", "-max-concurrency", "3")
	v := startVolley(t, dispatchEnv(t, m, limit)...)
	c := v.clientAs(t, "alice")
	lines, ids := manyLines("b", "shared", 150) // about 3 s of work at the limit
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")
	waitBatch(t, c, b.ID, 30*time.Second, func(b *openai.Batch) bool { return b.RequestCounts.Completed > 0 })
	var wg sync.WaitGroup
	respIDs := make([]string, 20)
	for i := range respIDs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := ask("shared", "bg")
			p.Background = openai.Bool(true)
			r, err := c.Responses.New(ctx(t), p)
			if err == nil {
				respIDs[i] = r.ID
			}
		}()
	}
	wg.Wait()
	running, err := c.Batches.Get(ctx(t), b.ID)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusInProgress, running.Status, "the responses queue beside a running batch")
	for _, id := range respIDs {
		require.NotEmpty(t, id)
		require.Equal(t, responses.ResponseStatusCompleted, waitResponse(t, c, id, 30*time.Second).Status)
	}
	final := waitBatch(t, c, b.ID, 30*time.Second, terminal)
	checkExactlyOnce(t, c, final, ids)
	st := m.stats()
	require.Zero(t, st.Violations)
	require.Equal(t, limit, st.Models["shared"].PeakConcurrency, "the limit is reached and never passed")
	require.Equal(t, 170, st.Models["shared"].Calls)
}
