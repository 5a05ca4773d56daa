package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/webhooks"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/testdb"
)

// webhookEnv lets deliveries reach the receivers, which listen on 127.0.0.1, and retries quickly.
func webhookEnv() []string {
	return []string{"VOLLEY_WEBHOOK_ALLOW_PRIVATE=true", "VOLLEY_WEBHOOK_BACKOFF=50ms", "VOLLEY_WEBHOOK_TIMEOUT=2s"}
}

// event is one request a receiver verified with the Go SDK's webhooks.Unwrap.
type event struct {
	webhookID string
	typ       string
	batchID   string
	answered  int
}

// receiver is a real HTTP endpoint, verifying every delivery with webhooks.Unwrap and answering
// answer(webhook-id, n) to the n-th request of each webhook-id. It refuses what does not verify.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(id string, n int) int
	hold   chan struct{} // when not nil, requests wait for it to close before they are answered

	mu       sync.Mutex
	secret   string
	events   []event
	perID    map[string]int
	inFlight map[string]int
	overlaps int
	refused  []string
}

func newReceiver(t *testing.T, answer func(id string, n int) int) *receiver {
	r := &receiver{t: t, answer: answer, perID: map[string]int{}, inFlight: map[string]int{}}
	if r.answer == nil {
		r.answer = func(string, int) int { return http.StatusOK }
	}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/volley/events" }

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = s
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	secret := r.secret
	r.mu.Unlock()
	c := openai.NewClient(option.WithAPIKey("unused"), option.WithWebhookSecret(secret))
	ev, err := c.Webhooks.Unwrap(body, req.Header)
	if err != nil {
		r.mu.Lock()
		r.refused = append(r.refused, err.Error())
		r.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	r.perID[id]++
	n := r.perID[id]
	if r.inFlight[id] > 0 {
		r.overlaps++
	}
	r.inFlight[id]++
	hold := r.hold
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight[id]--
		r.mu.Unlock()
	}()
	if hold != nil {
		select {
		case <-hold:
		case <-req.Context().Done():
			return
		}
	}
	status := r.answer(id, n)
	r.mu.Lock()
	r.events = append(r.events, event{webhookID: id, typ: ev.Type, batchID: ev.Data.ID, answered: status})
	if ev.ID != id {
		r.refused = append(r.refused, "webhook-id "+id+" is not the event id "+ev.ID)
	}
	r.mu.Unlock()
	w.WriteHeader(status)
}

// delivered returns, per batch id, the events answered 2xx.
func (r *receiver) delivered() map[string][]event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]event{}
	for _, e := range r.events {
		if e.answered >= 200 && e.answered < 300 {
			out[e.batchID] = append(out[e.batchID], e)
		}
	}
	return out
}

func (r *receiver) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

func newEndpoint(t *testing.T, c openai.Client, r *receiver, types ...string) *webhooks.WebhookEndpointWithSecret {
	t.Helper()
	e, err := c.Webhooks.New(ctx(t), webhooks.WebhookNewParams{Name: "receiver", URL: r.url(), EventTypes: types})
	require.NoError(t, err)
	r.setSecret(e.SigningSecret)
	return e
}

type deliveryList struct {
	Data []struct {
		ID        string  `json:"id"`
		EventType string  `json:"event_type"`
		Status    string  `json:"status"`
		Attempts  int     `json:"attempts"`
		LastError *string `json:"last_error"`
	} `json:"data"`
}

func deliveries(t *testing.T, c openai.Client, endpointID string) deliveryList {
	t.Helper()
	var out deliveryList
	require.NoError(t, c.Get(ctx(t), "webhook_endpoints/"+endpointID+"/deliveries", nil, &out))
	return out
}

// Every way a batch ends reaches the owner's subscribed endpoints, signed so that the Go SDK
// verifies it, through a receiver that fails three times before it takes each event, with two
// replicas delivering and neither ever sending one event while the other does.
func TestBatchWebhooksForEveryEnding(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "300ms")
	dsn := testdb.DSN(t)
	env := append(dispatchEnv(t, m, 2), webhookEnv()...)
	a := startReplica(t, dsn, env...)
	startReplica(t, dsn, env...)
	alice, bob := a.clientAs(t, "alice"), a.clientAs(t, "bob")

	flaky := newReceiver(t, func(_ string, n int) int {
		if n <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	all := newEndpoint(t, alice, flaky, "batch.completed", "batch.failed", "batch.expired", "batch.cancelled")
	onlyCancelled := newReceiver(t, nil)
	newEndpoint(t, alice, onlyCancelled, "batch.cancelled")
	bobs := newReceiver(t, nil)
	newEndpoint(t, bob, bobs, "batch.completed", "batch.failed", "batch.expired", "batch.cancelled")

	completedLines, _ := manyLines("c", "fast", 3)
	completed := createBatch(t, alice, uploadLines(t, alice, completedLines...), "24h")
	cancelledLines, _ := manyLines("x", "slow", 30)
	cancelled := createBatch(t, alice, uploadLines(t, alice, cancelledLines...), "24h")
	_, err := alice.Batches.Cancel(ctx(t), cancelled.ID)
	require.NoError(t, err)
	// 500 requests of 300 ms, two at a time, cannot finish in the one-minute window.
	expiredLines, _ := manyLines("e", "crawl", 500)
	expired := createBatch(t, alice, uploadLines(t, alice, expiredLines...), "1m")
	// Volley validates batches when they are created, so none ends as failed: test sends one.
	res, err := alice.Webhooks.Test(ctx(t), all.ID, webhooks.WebhookTestParams{EventType: "batch.failed"})
	require.NoError(t, err)
	require.EqualValues(t, http.StatusServiceUnavailable, res.StatusCode, "the receiver's first answer for that event")
	require.True(t, res.Success)

	want := map[string]string{completed.ID: "batch.completed", cancelled.ID: "batch.cancelled", expired.ID: "batch.expired"}
	for id := range want {
		waitBatch(t, alice, id, 100*time.Second, terminal)
	}
	require.Eventually(t, func() bool { return len(flaky.delivered()) == 3 }, 30*time.Second, 20*time.Millisecond)
	got := flaky.delivered()
	for batchID, typ := range want {
		require.Len(t, got[batchID], 1, "%s delivered once", typ)
		ev := got[batchID][0]
		require.Equal(t, typ, ev.typ)
		var tries []event
		for _, e := range flaky.all() {
			if e.batchID == batchID {
				tries = append(tries, e)
			}
		}
		require.Len(t, tries, 4, "%s: three refusals, then the delivery", typ)
		for _, e := range tries {
			require.Equal(t, ev.webhookID, e.webhookID, "%s: every attempt has the same webhook-id", typ)
		}
	}
	// The receiver has each event; the delivery's own record follows once the sender has committed it.
	var list deliveryList
	require.Eventually(t, func() bool {
		list = deliveries(t, alice, all.ID)
		if len(list.Data) != 3 {
			return false
		}
		for _, d := range list.Data {
			if d.Status != "succeeded" {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "every delivery recorded as succeeded")
	for _, d := range list.Data {
		require.Equal(t, "succeeded", d.Status, d.ID)
		require.Equal(t, 4, d.Attempts, d.ID)
		require.Nil(t, d.LastError, d.ID)
	}

	require.Eventually(t, func() bool { return len(onlyCancelled.delivered()) == 1 }, 30*time.Second, 20*time.Millisecond)
	require.Len(t, onlyCancelled.delivered()[cancelled.ID], 1, "an endpoint gets only the types it subscribed to")
	require.Empty(t, bobs.all(), "another owner's endpoint hears nothing of alice's batches")
	flaky.mu.Lock()
	defer flaky.mu.Unlock()
	require.Zero(t, flaky.overlaps, "no event was sent by both replicas at once")
	require.Empty(t, flaky.refused, "every delivery verified")
}

// A replica killed after the batch ended but before the receiver took its event: another replica
// delivers it, with the same webhook-id, and the receiver takes it once.
func TestBatchWebhookSurvivesAKilledReplica(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "10ms")
	dsn := testdb.DSN(t)
	env := append(dispatchEnv(t, m, 4), webhookEnv()...)
	victim := startReplica(t, dsn, env...)
	c := victim.clientAs(t, "alice")
	r := newReceiver(t, nil)
	r.hold = make(chan struct{})
	e := newEndpoint(t, c, r, "batch.completed")

	lines, _ := manyLines("k", "m", 5)
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")
	waitBatch(t, c, b.ID, 30*time.Second, terminal)
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.perID) == 1
	}, 20*time.Second, 10*time.Millisecond, "the first attempt is under way")
	victim.proc.Signal(syscall.SIGKILL)
	_, exited := victim.proc.Wait(10 * time.Second)
	require.True(t, exited)
	r.mu.Lock()
	close(r.hold)
	r.hold = nil
	r.mu.Unlock()

	survivor := startReplica(t, dsn, env...)
	c = survivor.clientAs(t, "alice")
	require.Eventually(t, func() bool { return len(r.delivered()[b.ID]) == 1 }, 30*time.Second, 20*time.Millisecond)
	// The receiver has the event; the delivery's own record follows once the sender has committed it.
	var list deliveryList
	require.Eventually(t, func() bool {
		list = deliveries(t, c, e.ID)
		return len(list.Data) == 1 && list.Data[0].Status == "succeeded"
	}, 30*time.Second, 20*time.Millisecond, "the delivery recorded as succeeded")
	require.Equal(t, 2, list.Data[0].Attempts, "the dead replica's attempt, then the survivor's")
	got := r.delivered()[b.ID]
	require.Equal(t, list.Data[0].ID, got[0].webhookID)
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Equal(t, 2, r.perID[got[0].webhookID], "sent twice, taken once")
	require.Empty(t, r.refused, "every attempt verified")
}

// By default an endpoint may not point at a private address: the receiver here is on 127.0.0.1.
func TestWebhookEndpointOnAPrivateAddressIsRefusedByDefault(t *testing.T) {
	t.Parallel()
	v := startVolley(t)
	c := v.clientAs(t, "alice")
	r := newReceiver(t, nil)
	_, err := c.Webhooks.New(ctx(t), webhooks.WebhookNewParams{Name: "local", URL: r.url(), EventTypes: []string{"batch.completed"}})
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
	require.Equal(t, "invalid_url", apiErr.Code)
	require.Equal(t, "url", apiErr.Param)
	require.Contains(t, apiErr.Message, "VOLLEY_WEBHOOK_ALLOW_PRIVATE")
	list, err := c.Webhooks.List(ctx(t), webhooks.WebhookListParams{})
	require.NoError(t, err)
	require.Empty(t, list.Data)
	require.Empty(t, r.all())
}
