package webhook

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/ids"
	"github.com/volleyhq/volley/internal/metrics"
	"github.com/volleyhq/volley/internal/tools/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// delivery is what a receiver saw of one request.
type delivery struct {
	id, timestamp, signature string
	body                     []byte
	verified                 error
}

// receiver is a real HTTP endpoint that verifies every delivery with the Go SDK and answers with
// what respond returns for the n-th request (1-based) of each webhook-id.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	secret  atomic.Value // string
	respond func(id string, n int) int
	hold    chan struct{} // when set, each request waits on it

	mu       sync.Mutex
	got      []delivery
	perID    map[string]int
	inFlight map[string]int
	overlap  int // times a webhook-id arrived while another request of it was in flight
}

func newReceiver(t *testing.T, respond func(id string, n int) int) *receiver {
	r := &receiver{t: t, respond: respond, perID: map[string]int{}, inFlight: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get("webhook-id")
	secret, _ := r.secret.Load().(string)
	d := delivery{id: id, timestamp: req.Header.Get("webhook-timestamp"), signature: req.Header.Get("webhook-signature"),
		body: body, verified: unwrap(r.t, secret, body, req.Header)}
	r.mu.Lock()
	r.got = append(r.got, d)
	r.perID[id]++
	n := r.perID[id]
	if r.inFlight[id] > 0 {
		r.overlap++
	}
	r.inFlight[id]++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight[id]--
		r.mu.Unlock()
	}()
	if r.hold != nil {
		select {
		case <-r.hold:
		case <-req.Context().Done():
			return
		}
	}
	w.WriteHeader(r.respond(id, n))
	_, _ = io.WriteString(w, "receiver says hi")
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// seed registers an endpoint at url for owner and n events for it, as a batch ending would.
func seed(t *testing.T, pool *pgxpool.Pool, url string, n int) (endpointID, secret string, events []string) {
	t.Helper()
	ctx := context.Background()
	endpointID, now := ids.New("whe_")
	secret = NewSecret()
	_, err := dbsqlc.New(pool).WebhookEndpointInsert(ctx, dbsqlc.WebhookEndpointInsertParams{
		ID: endpointID, Owner: "alice", Name: "test", Url: url, EventTypes: EventTypes, Secret: secret, CreatedAt: now,
	})
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		ev, _ := ids.New("evt_")
		_, err := pool.Exec(ctx, `INSERT INTO webhook_events (id, owner, type, data, created_at) VALUES ($1, 'alice', 'batch.completed', jsonb_build_object('id', $2::text), now());
			`, ev, fmt.Sprintf("batch_%d", i))
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `INSERT INTO webhook_deliveries (endpoint_id, event_id) VALUES ($1, $2)`, endpointID, ev)
		require.NoError(t, err)
		events = append(events, ev)
	}
	return endpointID, secret, events
}

type deliveryRow struct {
	State     string
	Attempts  int
	LastError *string
	Status    *int32
}

func deliveryState(t *testing.T, pool *pgxpool.Pool, eventID string) deliveryRow {
	t.Helper()
	var d deliveryRow
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT state, attempts, last_error, last_status FROM webhook_deliveries WHERE event_id = $1`, eventID).
		Scan(&d.State, &d.Attempts, &d.LastError, &d.Status))
	return d
}

func testConfig() Config {
	c := DefaultConfig()
	c.AllowPrivate = true // the receiver listens on 127.0.0.1
	c.Backoff = 20 * time.Millisecond
	c.MaxBackoff = 100 * time.Millisecond
	c.PollInterval = 20 * time.Millisecond
	c.Timeout = 2 * time.Second
	return c
}

func startWorker(t *testing.T, pool *pgxpool.Pool, cfg Config) *Worker {
	t.Helper()
	w := New(pool, cfg, testLogger(t))
	require.NoError(t, w.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

func TestFailingReceiverGetsTheEventOnTheFourthAttemptWithTheSameID(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	r := newReceiver(t, func(_ string, n int) int {
		if n <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	_, secret, events := seed(t, pool, r.srv.URL+"/hook", 1)
	r.secret.Store(secret)
	cfg := testConfig()
	cfg.Metrics = metrics.New()
	startWorker(t, pool, cfg)

	require.Eventually(t, func() bool { return deliveryState(t, pool, events[0]).State == "succeeded" }, 20*time.Second, 10*time.Millisecond)
	got := r.deliveries()
	require.Len(t, got, 4)
	for i, d := range got {
		require.Equal(t, events[0], d.id, "attempt %d carries the event id as webhook-id", i+1)
		require.NoError(t, d.verified, "attempt %d verifies with webhooks.Unwrap", i+1)
		require.Equal(t, string(got[0].body), string(d.body), "every attempt sends the same body")
	}
	st := deliveryState(t, pool, events[0])
	require.Equal(t, 4, st.Attempts)
	require.Nil(t, st.LastError)
	require.EqualValues(t, http.StatusNoContent, *st.Status)
	require.Equal(t, map[string]float64{"retry": 3, "delivered": 1}, attemptCounts(t, cfg.Metrics))
}

// attemptCounts reads volley_webhook_attempts_total by outcome.
func attemptCounts(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	families, err := m.Gatherer().Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "volley_webhook_attempts_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			out[metric.GetLabel()[0].GetValue()] = metric.GetCounter().GetValue()
		}
	}
	return out
}

func TestDeliveryFailsForGoodAfterTheRetryWindow(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	r := newReceiver(t, func(string, int) int { return http.StatusInternalServerError })
	_, secret, events := seed(t, pool, r.srv.URL, 1)
	r.secret.Store(secret)
	cfg := testConfig()
	cfg.RetryFor = 300 * time.Millisecond
	startWorker(t, pool, cfg)

	require.Eventually(t, func() bool { return deliveryState(t, pool, events[0]).State == "failed" }, 20*time.Second, 10*time.Millisecond)
	st := deliveryState(t, pool, events[0])
	require.GreaterOrEqual(t, st.Attempts, 2, "it was retried within the window")
	require.Equal(t, "the endpoint answered 500: receiver says hi", *st.LastError)
	n := len(r.deliveries())
	require.Equal(t, st.Attempts, n, "every attempt reached the receiver")
}

func TestTwoWorkersNeverDeliverOneEventAtOnce(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	var calls atomic.Int32
	r := newReceiver(t, func(_ string, n int) int {
		calls.Add(1)
		if n == 1 {
			return http.StatusBadGateway // every event needs a retry, which either worker may take
		}
		return http.StatusOK
	})
	_, secret, events := seed(t, pool, r.srv.URL, 60)
	r.secret.Store(secret)
	cfg := testConfig()
	cfg.Backoff = 10 * time.Millisecond
	cfg.PollInterval = 5 * time.Millisecond
	cfg.Concurrency = 8
	startWorker(t, pool, cfg)
	startWorker(t, pool, cfg)

	require.Eventually(t, func() bool {
		var left int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE state <> 'succeeded'`).Scan(&left))
		return left == 0
	}, 30*time.Second, 20*time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Zero(t, r.overlap, "no event was in flight twice at once")
	for _, ev := range events {
		require.Equal(t, 2, r.perID[ev], "%s: one failure, then one success", ev)
	}
	for _, d := range r.got {
		require.NoError(t, d.verified)
	}
}

// A replica that claimed a delivery and died holds it only until its lease runs out; then another
// delivers it, and the dead claim can no longer record anything.
func TestADeadReplicasClaimIsTakenOverAfterItsLease(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	r := newReceiver(t, func(string, int) int { return http.StatusOK })
	_, secret, events := seed(t, pool, r.srv.URL, 1)
	r.secret.Store(secret)
	q := dbsqlc.New(pool)
	cfg := testConfig()
	cfg.Timeout = 500 * time.Millisecond

	// The replica that dies: it claims and is never heard of again.
	dead, err := q.WebhookDeliveryClaim(context.Background(), dbsqlc.WebhookDeliveryClaimParams{MaxRows: 10, LeaseSeconds: (cfg.Timeout + leaseMargin).Seconds()})
	require.NoError(t, err)
	require.Len(t, dead, 1)
	claimedAt := time.Now()

	startWorker(t, pool, cfg)
	require.Eventually(t, func() bool { return deliveryState(t, pool, events[0]).State == "succeeded" }, 20*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(claimedAt), cfg.Timeout+leaseMargin-time.Second, "not before the lease ran out")
	got := r.deliveries()
	require.Len(t, got, 1, "delivered once")
	require.Equal(t, events[0], got[0].id)
	require.NoError(t, got[0].verified)
	require.Equal(t, 2, deliveryState(t, pool, events[0]).Attempts)

	// The dead claim's late outcome is fenced out.
	_, err = q.WebhookDeliveryRecord(context.Background(), dbsqlc.WebhookDeliveryRecordParams{
		EndpointID: dead[0].EndpointID, EventID: dead[0].EventID, Attempt: dead[0].Attempt,
		Succeeded: false, RetrySeconds: 1, RetryForSeconds: 3600,
	})
	require.Error(t, err)
	require.Equal(t, "succeeded", deliveryState(t, pool, events[0]).State)
}

func TestStopHandsBackADeliveryUnderWayAtOnce(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	r := newReceiver(t, func(string, int) int { return http.StatusOK })
	r.hold = make(chan struct{}) // never answers
	_, secret, events := seed(t, pool, r.srv.URL, 1)
	r.secret.Store(secret)
	cfg := testConfig()
	cfg.Timeout = time.Minute
	w := New(pool, cfg, testLogger(t))
	require.NoError(t, w.Start(context.Background()))
	require.Eventually(t, func() bool { return len(r.deliveries()) == 1 }, 10*time.Second, 10*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.NoError(t, w.Stop(ctx))
	var due bool
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT state = 'pending' AND next_attempt_at <= now() FROM webhook_deliveries WHERE event_id = $1`, events[0]).Scan(&due))
	require.True(t, due, "the interrupted delivery is due again at once, for any replica")
	require.Equal(t, "the delivery was interrupted", *deliveryState(t, pool, events[0]).LastError)
}
