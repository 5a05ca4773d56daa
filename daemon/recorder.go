package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/ids"
)

// result is what became of one call, waiting to be written.
type result struct {
	id         int64
	attempt    int32
	failures   int32
	batchID    *string
	responseID *string
	state      string // completed, failed, cancelled, expired; pending for a retry
	line       []byte // the rendered output or error line
	notBefore  time.Time
	usage      usage
	held       int // bytes of the byte budget this result holds until it is written
	// served says which upstream, under which model name, answered (empty: none did), and
	// whether that was the model's fallback.
	servedUpstream, servedModel string
	servedFallback              bool
}

func (r *result) finish(state string, line []byte) {
	r.state, r.line = state, line
}

// recorder writes results many at a time: one statement moves every request and its batch's
// counters, which is what keeps throughput high.
type recorder struct {
	d    *Daemon
	in   chan result
	done chan struct{}
	// quit ends retries of a failing write once a stop has waited long enough.
	quit chan struct{}
	// write writes one statement's results: flush, but for the recorder's own tests.
	write func(ctx context.Context, batch []result)
}

func newRecorder(d *Daemon) *recorder {
	r := &recorder{d: d, in: make(chan result, 4*d.cfg.FlushMax), done: make(chan struct{}), quit: make(chan struct{})}
	r.write = r.flush
	return r
}

func (r *recorder) start(ctx context.Context) {
	go r.loop(ctx)
}

// add queues a result; it blocks when the writer is behind, which slows claiming down with it.
func (r *recorder) add(res result) { r.in <- res }

// stop writes what is queued and returns. A write that keeps failing is given up after a while:
// those requests stay running under this replica and are rescued by another.
func (r *recorder) stop() {
	close(r.in)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		close(r.quit)
		<-r.done
	}
}

func (r *recorder) loop(ctx context.Context) {
	defer close(r.done)
	// A write blocked on a database that does not answer is abandoned when the stop gives up.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	max, maxBytes := r.d.cfg.FlushMax, r.d.cfg.FlushMaxBytes
	if maxBytes <= 0 {
		maxBytes = int(^uint(0) >> 1)
	}
	batch := make([]result, 0, max)
	interval := r.d.cfg.FlushInterval
	for {
		res, ok := <-r.in
		if !ok {
			return
		}
		batch = append(batch[:0], res)
		size := len(res.line)
		// wait ends the gathering of a write; without an interval it is nil, and a write takes
		// what queued while the last one ran.
		var deadline *time.Timer
		var wait <-chan time.Time
		if interval > 0 {
			deadline = time.NewTimer(interval)
			wait = deadline.C
		}
	collect:
		for len(batch) < max && size < maxBytes {
			select {
			case res, ok = <-r.in:
			default:
				if wait == nil {
					break collect
				}
				select {
				case res, ok = <-r.in:
				case <-wait:
					break collect
				}
			}
			if !ok {
				break collect
			}
			if size+len(res.line) > maxBytes {
				// Too large to join this write: it opens the next one.
				r.write(ctx, batch)
				batch = append(batch[:0], res)
				size = len(res.line)
				if deadline != nil {
					deadline.Reset(interval)
				}
				continue
			}
			batch = append(batch, res)
			size += len(res.line)
		}
		if deadline != nil {
			deadline.Stop()
		}
		r.write(ctx, batch)
	}
}

// flush writes a batch of results, retrying while the database is unavailable.
func (r *recorder) flush(ctx context.Context, batch []result) {
	defer func() {
		for _, res := range batch {
			r.d.budget.release(res.held)
		}
	}()
	p := dbsqlc.RequestsRecordParams{DaemonID: r.d.id.Load()}
	for _, res := range batch {
		p.Ids = append(p.Ids, res.id)
		p.Attempts = append(p.Attempts, res.attempt)
		p.States = append(p.States, res.state)
		p.Results = append(p.Results, res.line)
		p.Failures = append(p.Failures, res.failures)
		nb := res.notBefore
		if nb.IsZero() {
			nb = time.Unix(0, 0)
		}
		p.NotBefore = append(p.NotBefore, nb)
		p.InputTokens = append(p.InputTokens, res.usage.input)
		p.CachedTokens = append(p.CachedTokens, res.usage.cached)
		p.OutputTokens = append(p.OutputTokens, res.usage.output)
		p.ReasoningTokens = append(p.ReasoningTokens, res.usage.reasoning)
		p.TotalTokens = append(p.TotalTokens, res.usage.total)
		p.ServedUpstream = append(p.ServedUpstream, res.servedUpstream)
		p.ServedModel = append(p.ServedModel, res.servedModel)
		p.ServedFallback = append(p.ServedFallback, res.servedFallback)
	}
	wait := 50 * time.Millisecond
	for {
		start := time.Now()
		rows, err := r.d.q.RequestsRecord(ctx, p)
		if err == nil {
			r.d.ahead.wrote(time.Since(start))
			for _, row := range rows {
				if row.Settled {
					r.d.finalize(ctx, row.ID)
				}
			}
			r.notifyResponses(ctx, batch)
			r.d.poke()
			return
		}
		r.d.logger.Warn("recording results failed; retrying", "results", len(batch), "error", err.Error())
		select {
		case <-r.quit:
			r.d.logger.Error("giving up recording results; their requests will be rescued", "results", len(batch))
			return
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// notifyResponses wakes the API calls waiting for responses that this write finished.
func (r *recorder) notifyResponses(ctx context.Context, batch []result) {
	var done []string
	for _, res := range batch {
		if res.responseID != nil && res.state != "pending" {
			done = append(done, *res.responseID)
		}
	}
	if len(done) == 0 {
		return
	}
	if err := r.d.q.ResponsesNotifyDone(ctx, done); err != nil {
		r.d.logger.Warn("notify finished responses", "error", err.Error())
	}
}

// finalize settles a batch whose requests are all terminal. It is safe to call more than once
// and from any replica: only the first call finds the batch unsettled.
func (d *Daemon) finalize(ctx context.Context, batchID string) {
	outID, _ := ids.New("file-")
	errID, _ := ids.New("file-")
	eventID, _ := ids.New("evt_")
	b, err := d.q.BatchFinalize(ctx, dbsqlc.BatchFinalizeParams{
		ID: batchID, OutputFileID: outID, ErrorFileID: errID, EventID: eventID,
		DefaultExpirySeconds: int32(d.cfg.OutputExpiry / time.Second),
	})
	if err = db.Translate(err); err != nil {
		if !errors.Is(err, db.ErrNotFound) {
			d.logger.Warn("finalize batch", "batch_id", batchID, "error", err.Error())
		}
		return
	}
	d.cfg.Metrics.BatchEnded(b.Status)
	d.logger.Info("batch finished", "batch_id", b.ID, "status", b.Status, "completed", b.Completed, "failed", b.Failed)
}
