// Package daemon is Volley's dispatcher. It runs inside every `volley serve` replica, sharing the
// database pool: it claims pending requests within each model's global concurrency limit, sends
// them to their upstream, retries what is transient, records results many at a time, and settles
// batches (finalize, cancel, expire). Replicas coordinate only through the database: claims are
// serialised per model by advisory locks, results are fenced on (running, daemon, attempt), and the work of
// a replica that stops heartbeating goes back to the queue.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/metrics"
	"github.com/volleyhq/volley/internal/upstream"
)

// Config tunes the dispatcher.
type Config struct {
	// MaxInFlight caps the requests this replica runs at once, across models.
	MaxInFlight int
	// MaxInFlightBytes caps the request and answer bytes this replica holds in memory: it claims
	// no more while they would exceed it. Zero means no cap.
	MaxInFlightBytes int64
	// ClaimBatch is the most requests one claim takes.
	ClaimBatch int
	// ClaimAhead is the most requests of a model a claim may take past its limit (and never more
	// than the limit itself): they wait in this replica, ready to start the moment one of its
	// calls returns, so that a call slot is not idle while a result is written and the next claim
	// is made. A claim takes only about as many ahead as the model's calls return while two
	// claims replace them (aheadPlan), and only while no other replica holds requests of the
	// model: what one holds ahead counts against the others' allowances. Zero claims none ahead.
	ClaimAhead int
	// PollInterval is how often the queue is looked at when no notification arrives.
	PollInterval time.Duration
	// HeartbeatInterval is how often this replica says it is alive.
	HeartbeatInterval time.Duration
	// LeaseTimeout is how long a replica may go without heartbeating before its requests are
	// handed to others.
	LeaseTimeout time.Duration
	// FlushInterval is the longest a result waits before it is written; with 0 a write takes the
	// results that finished while the last one ran, without waiting for more.
	FlushInterval time.Duration
	// FlushMax is the most results written in one statement.
	FlushMax int
	// FlushMaxBytes is the most result bytes written in one statement (a single larger result is
	// written alone): the statement's parameters are encoded in one buffer, so this bounds the
	// memory a write takes beside the results themselves.
	FlushMaxBytes int
	// OutputExpiry is how long result files live without output_expires_after.
	OutputExpiry time.Duration
	// JanitorInterval is how often expired files are removed.
	JanitorInterval time.Duration
	// TrickleInterval is how often one request per owner of a `coming` model is let through, so
	// that the model's autoscaler sees demand; zero lets none through.
	TrickleInterval time.Duration
	// RampFraction is the last part of a request's window, its deadline ramp, in which a request
	// of a model that is not live goes to the model's fallback route, if it has one.
	RampFraction float64
	// BackgroundShare is the most of a model's limit that requests of the `background` service
	// tier may hold (at least one slot); they run only while no other request of the model waits.
	BackgroundShare float64
	// Metrics records claims, upstream calls and outcomes; nil records nothing.
	Metrics *metrics.Metrics
}

// DefaultConfig returns the settings used when nothing is configured.
func DefaultConfig() Config {
	return Config{
		MaxInFlight:       20000,
		ClaimBatch:        1000,
		ClaimAhead:        math.MaxInt32,
		PollInterval:      time.Second,
		HeartbeatInterval: 2 * time.Second,
		LeaseTimeout:      15 * time.Second,
		FlushInterval:     5 * time.Millisecond,
		FlushMax:          2000,
		FlushMaxBytes:     8 << 20,
		OutputExpiry:      30 * 24 * time.Hour,
		JanitorInterval:   time.Minute,
		TrickleInterval:   time.Minute,
		RampFraction:      DefaultRampFraction,
		BackgroundShare:   0.5,
	}
}

// DefaultRampFraction is the deadline ramp's part of a window: a day's batch falls back for its
// last six hours, a ten-minute one for its last two and a half minutes.
const DefaultRampFraction = 0.25

// maxWindow is the longest window a request can have (a batch's completion_window): no request
// is further from its deadline than RampFraction of it while in its ramp.
const maxWindow = 168 * time.Hour

// Daemon is one replica's dispatcher.
type Daemon struct {
	pool    *pgxpool.Pool
	q       *dbsqlc.Queries
	cfg     Config
	router  *upstream.Router
	client  *upstream.Client
	retry   upstream.RetryPolicy
	limits  claimLimits
	logger  *slog.Logger
	id      atomic.Int64
	rec     *recorder
	wake    chan struct{}
	workers sync.WaitGroup

	// runCtx is the parent of every upstream call; cancelling it aborts them all (hard stop).
	runCtx    context.Context
	runCancel context.CancelFunc
	stopClaim context.CancelFunc
	loops     sync.WaitGroup
	beating   chan struct{} // closed when the heartbeat loop has ended
	inFlight  atomic.Int64
	budget    *budget
	gate      *gate
	ahead     *aheadPlan
	adapt     *adapter
	// completed and failed count what this process finished, reported with each heartbeat.
	completed, failed atomic.Int64
	// fenced is set while this replica's lease may have lapsed: it claims nothing and has aborted
	// its calls, until a heartbeat succeeds and it has handed its requests back.
	fenced atomic.Bool

	mu       sync.Mutex
	running  map[int64]*call           // in-flight calls by request id
	byBatch  map[string]map[int64]bool // in-flight request ids by batch
	stopping bool

	rndMu sync.Mutex
	rnd   *rand.Rand
}

// call is one request in flight.
type call struct {
	cancel context.CancelCauseFunc
}

type claimLimits struct {
	models       []string
	limits       []int32
	defaultLimit int32
	// fallbackModels have a fallback route; fallbackDefault says the catch-all has one.
	fallbackModels  []string
	fallbackDefault bool
}

// Abort causes: why an in-flight call was cancelled.
var (
	errCancelled = errors.New("batch cancelled")
	errExpired   = errors.New("batch expired")
	errHandBack  = errors.New("replica stopping")
	// errRequestCancelled: a user cancelled this one request of its batch.
	errRequestCancelled = errors.New("request cancelled")
)

// New returns a dispatcher; Start runs it.
func New(pool *pgxpool.Pool, cfg Config, upstreams *upstream.Config, logger *slog.Logger) *Daemon {
	router := upstream.NewRouter(upstreams)
	models, limits, catchAll, hasCatchAll := router.Limits()
	if !hasCatchAll {
		// Requests for a model that lost its route are still claimed, to fail with a clear error
		// rather than wait for their window to pass.
		catchAll = int32(upstreams.DefaultConcurrency)
	}
	d := &Daemon{
		pool:    pool,
		q:       dbsqlc.New(pool),
		cfg:     cfg,
		router:  router,
		client:  upstream.NewClient(upstreams, logger),
		retry:   upstreams.Retry,
		limits:  claimLimits{models: models, limits: limits, defaultLimit: catchAll},
		logger:  logger.With("component", "daemon"),
		wake:    make(chan struct{}, 1),
		budget:  newBudget(cfg.MaxInFlightBytes),
		gate:    newGate(),
		ahead:   newAheadPlan(cfg.ClaimAhead, cfg.FlushInterval),
		running: make(map[int64]*call),
		byBatch: make(map[string]map[int64]bool),
		rnd:     rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))),
	}
	for i, m := range models {
		cfg.Metrics.ModelLimit(m, int(limits[i]))
	}
	d.adapt = newAdapter(d.q, d.gate, cfg.Metrics.EffectiveLimit)
	d.limits.fallbackModels = []string{}
	for _, m := range models {
		if route, _ := router.Route(m); route.Fallback != nil {
			d.limits.fallbackModels = append(d.limits.fallbackModels, m)
		}
	}
	if route, ok := router.CatchAll(); ok {
		d.limits.fallbackDefault = route.Fallback != nil
	}
	d.rec = newRecorder(d)
	return d
}

// Start registers the replica and starts claiming.
func (d *Daemon) Start(ctx context.Context) error {
	id, err := d.q.DaemonRegister(ctx, dbsqlc.DaemonRegisterParams{Host: hostname(), Pid: int32(pid())})
	if err != nil {
		return fmt.Errorf("register daemon: %w", err)
	}
	d.id.Store(id)
	d.logger = d.logger.With("daemon_id", id)
	if err := d.forgetFixedLimits(ctx); err != nil {
		return err
	}
	d.runCtx, d.runCancel = context.WithCancel(context.WithoutCancel(ctx))
	claimCtx, stopClaim := context.WithCancel(d.runCtx)
	d.stopClaim = stopClaim

	d.rec.start(d.runCtx)
	d.goLoop(func() { d.listen(claimCtx) })
	d.goLoop(func() { d.dispatch(claimCtx) })
	d.goLoop(func() { d.maintain(claimCtx) })
	d.beating = make(chan struct{})
	go func() {
		defer close(d.beating)
		d.beat(d.runCtx)
	}()
	d.logger.Info("dispatcher started", "max_in_flight", d.cfg.MaxInFlight)
	return nil
}

// forgetFixedLimits drops the effective limits of models whose limit no longer adapts: they run
// at their configured limit again.
func (d *Daemon) forgetFixedLimits(ctx context.Context) error {
	var p dbsqlc.ModelLimitsForgetParams
	p.Fixed, p.Adaptive = []string{}, []string{}
	for _, m := range d.limits.models {
		if route, _ := d.router.Route(m); route.Adaptive != nil {
			p.Adaptive = append(p.Adaptive, m)
		} else {
			p.Fixed = append(p.Fixed, m)
		}
	}
	if route, ok := d.router.CatchAll(); ok {
		p.AdaptiveDefault = route.Adaptive != nil
	}
	if _, err := d.q.ModelLimitsForget(ctx, p); err != nil {
		return fmt.Errorf("forget fixed limits: %w", err)
	}
	return nil
}

func (d *Daemon) goLoop(f func()) {
	d.loops.Add(1)
	go func() {
		defer d.loops.Done()
		f()
	}()
}

// Stop stops claiming, lets in-flight calls finish until ctx is done, then aborts the rest and
// hands them back to the queue at once, so another replica can take them without waiting for a
// lease to run out.
func (d *Daemon) Stop(ctx context.Context) error {
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
	d.stopClaim()
	d.gate.close()
	d.loops.Wait()

	done := make(chan struct{})
	go func() {
		d.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		d.logger.Warn("grace period over; handing back in-flight requests", "in_flight", d.inFlight.Load())
		d.abortAll(errHandBack)
		<-done
	}
	d.rec.stop()
	// The database may not answer (a partition, a stall): a stop must end all the same. What is
	// not handed back here is rescued by another replica once this one's lease runs out.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	id := d.id.Load()
	handed, err := d.q.DaemonHandBack(bg, &id)
	if err != nil {
		d.logger.Error("hand back requests", "error", err.Error())
	}
	if err := d.q.DaemonStop(bg, id); err != nil {
		d.logger.Error("mark daemon stopped", "error", err.Error())
	}
	if handed > 0 {
		_ = d.q.BatchNotifyWork(bg, "")
	}
	d.runCancel()
	<-d.beating
	d.client.CloseIdle()
	d.logger.Info("dispatcher stopped", "handed_back", handed)
	return err
}

// poke wakes the claim loop.
func (d *Daemon) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// abortAll cancels every in-flight call with cause.
func (d *Daemon) abortAll(cause error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.running {
		c.cancel(cause)
	}
}

// abortBatch cancels the in-flight calls of one batch.
func (d *Daemon) abortBatch(batchID string, cause error) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for id := range d.byBatch[batchID] {
		if c := d.running[id]; c != nil {
			c.cancel(cause)
			n++
		}
	}
	return n
}

// abortCancelledLines cancels this replica's calls of a batch whose requests a user asked to cancel.
func (d *Daemon) abortCancelledLines(ctx context.Context, batchID string) int {
	d.mu.Lock()
	ids := make([]int64, 0, len(d.byBatch[batchID]))
	for id := range d.byBatch[batchID] {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	if len(ids) == 0 {
		return 0
	}
	marked, err := d.q.RequestsCancelRequestedAmong(ctx, ids)
	if err != nil {
		d.logger.Warn("find cancelled requests", "batch_id", batchID, "error", err.Error())
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range marked {
		if c := d.running[id]; c != nil {
			c.cancel(errRequestCancelled)
		}
	}
	return len(marked)
}

// freshLease is how recent this replica's heartbeat must be for it to claim, and how long it
// keeps calls in flight without a successful heartbeat: two thirds of the lease, so that it stops
// before any other replica may declare it dead and take its requests.
func (d *Daemon) freshLease() time.Duration { return d.cfg.LeaseTimeout * 2 / 3 }

func (d *Daemon) jitter() float64 {
	d.rndMu.Lock()
	defer d.rndMu.Unlock()
	return d.rnd.Float64()
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func pid() int { return os.Getpid() }
