package webhook

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/metrics"
)

// Config tunes delivery.
type Config struct {
	// RetryFor is how long after its event a delivery is retried before it fails for good.
	RetryFor time.Duration
	// Timeout bounds one attempt, from connecting to the answer's headers.
	Timeout time.Duration
	// Backoff is the delay before the first retry; it doubles with each failure up to MaxBackoff,
	// and each delay is drawn from its upper half at random (jitter).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Concurrency is how many deliveries one replica makes at once.
	Concurrency int
	// PollInterval is how often due deliveries are looked for.
	PollInterval time.Duration
	// AllowPrivate lets deliveries reach private and loopback addresses.
	AllowPrivate bool
	// AllowHosts, when not empty, are the only hosts deliveries go to.
	AllowHosts []string
	// Keep is how long events and their deliveries stay listed once nothing is left to send.
	Keep time.Duration
	// Metrics counts attempts; nil counts nothing.
	Metrics *metrics.Metrics
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		RetryFor:     24 * time.Hour,
		Timeout:      15 * time.Second,
		Backoff:      5 * time.Second,
		MaxBackoff:   time.Hour,
		Concurrency:  16,
		PollInterval: time.Second,
		Keep:         30 * 24 * time.Hour,
	}
}

// leaseMargin is how long a claim outlives its attempt's timeout: the attempt is abandoned before
// the lease ends, so a delivery is never made by two replicas at once, clocks and round trips
// included.
const leaseMargin = 5 * time.Second

// pruneInterval is how often old events are removed.
const pruneInterval = time.Hour

// Worker claims due deliveries from the database and makes them. Any number of replicas may run
// one: a delivery is claimed by one of them at a time.
type Worker struct {
	cfg    Config
	q      *dbsqlc.Queries
	sender *Sender
	logger *slog.Logger

	stop     context.CancelFunc // stops claiming
	abort    context.CancelFunc // aborts attempts under way
	done     chan struct{}
	inFlight sync.WaitGroup
	slots    chan struct{}
}

// New returns a worker over pool; call Start to run it.
func New(pool *pgxpool.Pool, cfg Config, logger *slog.Logger) *Worker {
	return &Worker{cfg: cfg, q: dbsqlc.New(pool), sender: NewSender(cfg.Timeout, cfg.AllowPrivate, cfg.AllowHosts), logger: logger,
		slots: make(chan struct{}, max(cfg.Concurrency, 1))}
}

// Start runs the worker until Stop.
func (w *Worker) Start(ctx context.Context) error {
	claimCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	sendCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	w.stop, w.abort, w.done = stop, abort, make(chan struct{})
	go w.run(claimCtx, sendCtx)
	return nil
}

// Stop stops claiming, lets attempts under way finish until ctx is done, then aborts the rest,
// which go back to the queue at once.
func (w *Worker) Stop(ctx context.Context) error {
	w.stop()
	<-w.done
	finished := make(chan struct{})
	go func() { w.inFlight.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		w.abort()
		<-finished
	}
	w.abort()
	return nil
}

func (w *Worker) run(ctx, sendCtx context.Context) {
	defer close(w.done)
	poll := time.NewTicker(w.cfg.PollInterval)
	defer poll.Stop()
	lastPrune := time.Time{}
	for {
		full := w.claim(ctx, sendCtx)
		if time.Since(lastPrune) > pruneInterval {
			lastPrune = time.Now()
			w.prune(ctx)
		}
		if full {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
}

// claim takes as many due deliveries as there are free slots and starts them. It reports whether
// it filled every slot it asked for, when more may be waiting.
func (w *Worker) claim(ctx, sendCtx context.Context) bool {
	free := cap(w.slots) - len(w.slots)
	if free == 0 || ctx.Err() != nil {
		return false
	}
	rows, err := w.q.WebhookDeliveryClaim(ctx, dbsqlc.WebhookDeliveryClaimParams{
		MaxRows:      int32(free),
		LeaseSeconds: (w.cfg.Timeout + leaseMargin).Seconds(),
	})
	if err != nil {
		if ctx.Err() == nil {
			w.logger.Warn("claim webhook deliveries", "error", db.Translate(err).Error())
		}
		return false
	}
	for _, row := range rows {
		w.slots <- struct{}{}
		w.inFlight.Add(1)
		go func() {
			defer func() { <-w.slots; w.inFlight.Done() }()
			w.deliver(sendCtx, row)
		}()
	}
	return len(rows) == free
}

func (w *Worker) deliver(ctx context.Context, row dbsqlc.WebhookDeliveryClaimRow) {
	log := w.logger.With("event_id", row.EventID, "endpoint_id", row.EndpointID, "attempt", row.Attempt)
	body, err := Body(row.EventID, row.Type, row.EventCreatedAt, row.Data)
	var out Outcome
	if err != nil {
		out = Outcome{Err: "cannot render the event: " + err.Error()}
	} else {
		secrets := []string{row.Secret}
		if row.PreviousSecret != "" {
			secrets = append(secrets, row.PreviousSecret)
		}
		out = w.sender.Send(ctx, Message{URL: row.Url, ID: row.EventID, Body: body, Secrets: secrets})
	}
	retry := w.backoff(int(row.Attempt))
	if ctx.Err() != nil {
		retry = 0 // stopped: another replica may take it at once
	}
	params := dbsqlc.WebhookDeliveryRecordParams{
		EndpointID: row.EndpointID, EventID: row.EventID, Attempt: row.Attempt,
		Succeeded: out.OK(), RetrySeconds: retry.Seconds(), RetryForSeconds: w.cfg.RetryFor.Seconds(),
	}
	if out.Status != 0 {
		status := int32(out.Status)
		params.Status = &status
	}
	if !out.OK() {
		params.Error = &out.Err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	state, err := w.q.WebhookDeliveryRecord(rctx, params)
	switch err = db.Translate(err); {
	case errors.Is(err, db.ErrNotFound):
		w.cfg.Metrics.WebhookAttempt("lost")
		log.Info("webhook delivery outcome not recorded: the endpoint is gone or a later attempt owns it")
	case err != nil:
		w.cfg.Metrics.WebhookAttempt("lost")
		log.Warn("record webhook delivery", "error", err.Error())
	case out.OK():
		w.cfg.Metrics.WebhookAttempt("delivered")
		log.Info("webhook delivered", "status", out.Status)
	case state == "failed":
		w.cfg.Metrics.WebhookAttempt("failed")
		log.Warn("webhook delivery failed for good", "error", out.Err)
	default:
		w.cfg.Metrics.WebhookAttempt("retry")
		log.Info("webhook delivery failed; will retry", "error", out.Err, "retry_in", retry.String())
	}
}

// backoff is the delay after the attempt-th failure: Backoff doubled per earlier failure, at most
// MaxBackoff, drawn from the upper half of that at random.
func (w *Worker) backoff(attempt int) time.Duration {
	d := w.cfg.Backoff
	for i := 1; i < attempt && d < w.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.cfg.MaxBackoff)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

func (w *Worker) prune(ctx context.Context) {
	n, err := w.q.WebhookEventsPrune(ctx, w.cfg.Keep.Seconds())
	if err != nil {
		if ctx.Err() == nil {
			w.logger.Warn("prune webhook events", "error", db.Translate(err).Error())
		}
		return
	}
	if n > 0 {
		w.logger.Info("pruned webhook events", "events", n)
	}
}
