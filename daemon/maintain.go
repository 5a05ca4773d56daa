package daemon

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/volleyhq/volley/db/dbsqlc"
)

// Notification channels shared with the API: work arrived; a batch's in-flight calls must stop.
const (
	channelWork  = "volley_work"
	channelAbort = "volley_abort"
)

// listen holds one connection that LISTENs for notifications, reconnecting when it drops.
func (d *Daemon) listen(ctx context.Context) {
	for ctx.Err() == nil {
		if err := d.listenOnce(ctx); err != nil && ctx.Err() == nil {
			d.logger.Warn("notification listener lost its connection; polling until it is back", "error", err.Error())
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (d *Daemon) listenOnce(ctx context.Context) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A LISTEN connection is never handed back to the pool for others to use.
	defer destroy(conn)
	q := dbsqlc.New(conn)
	if err := q.DaemonListen(ctx); err != nil {
		return err
	}
	if err := q.DaemonListenAbort(ctx); err != nil {
		return err
	}
	d.poke() // anything that arrived while we were not listening
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch n.Channel {
		case channelWork:
			d.poke()
		case channelAbort:
			d.onAbort(ctx, n.Payload)
		}
	}
}

func destroy(conn *pgxpool.Conn) {
	_ = conn.Conn().Close(context.Background())
	conn.Release()
}

// onAbort handles "cancelled <batch>" or "expired <batch>": it aborts this replica's calls of that
// batch and settles the batch if nothing of it runs anywhere any more.
func (d *Daemon) onAbort(ctx context.Context, payload string) {
	reason, batchID, ok := strings.Cut(payload, " ")
	if !ok {
		return
	}
	if reason == "lines" {
		if n := d.abortCancelledLines(ctx, batchID); n > 0 {
			d.logger.Info("aborting cancelled requests", "batch_id", batchID, "requests", n)
		}
		d.finalize(ctx, batchID)
		return
	}
	cause := errCancelled
	if reason == "expired" {
		cause = errExpired
	}
	if n := d.abortBatch(batchID, cause); n > 0 {
		d.logger.Info("aborting in-flight requests", "batch_id", batchID, "reason", reason, "requests", n)
	}
	d.finalize(ctx, batchID)
}

// beat renews this replica's lease until ctx ends. It runs until the very end of Stop, so that a
// long grace period does not look like a dead replica. When heartbeats fail for longer than
// freshLease (the database is unreachable or stalled), the replica fences itself: it aborts its
// calls and stops claiming, so that its requests are never sent twice at once when another replica
// rescues them.
func (d *Daemon) beat(ctx context.Context) {
	tick := time.NewTicker(d.cfg.HeartbeatInterval)
	defer tick.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if d.heartbeat(ctx) {
			lastOK = time.Now()
			if d.fenced.Load() {
				d.unfence(ctx)
			}
			continue
		}
		if time.Since(lastOK) > d.freshLease() && !d.fenced.Swap(true) {
			d.logger.Error("no heartbeat for too long; aborting in-flight calls until the database answers",
				"since_last_heartbeat", time.Since(lastOK).String(), "in_flight", d.inFlight.Load())
			d.abortAll(errHandBack)
		}
	}
}

// unfence hands back what the fenced replica had claimed, once its aborted calls have returned, and
// lets it claim again.
func (d *Daemon) unfence(ctx context.Context) {
	if d.inFlight.Load() > 0 {
		d.abortAll(errHandBack) // claimed before the fence took effect; they return at once
		return                  // try again at the next heartbeat
	}
	id := d.id.Load()
	n, err := d.q.DaemonHandBack(ctx, &id)
	if err != nil {
		d.logger.Warn("hand back after a lapse", "error", err.Error())
		return
	}
	d.fenced.Store(false)
	d.logger.Info("heartbeat restored; claiming again", "handed_back", n)
	d.poke()
}

// maintain rescues the work of dead replicas, expires and settles batches and responses, and
// removes expired files, each on its own period.
func (d *Daemon) maintain(ctx context.Context) {
	tick := time.NewTicker(min(d.cfg.HeartbeatInterval, time.Second))
	defer tick.Stop()
	var lastRescue, lastJanitor time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		if now.Sub(lastRescue) >= d.cfg.LeaseTimeout/3 {
			lastRescue = now
			if n, err := d.q.DaemonsRescue(ctx, d.cfg.LeaseTimeout.Seconds()); err != nil {
				d.logger.Warn("rescue", "error", err.Error())
			} else if n > 0 {
				d.logger.Warn("returned requests of stopped replicas to the queue", "requests", n)
				d.poke()
			}
		}
		d.settleBatches(ctx)
		if now.Sub(lastJanitor) >= d.cfg.JanitorInterval {
			lastJanitor = now
			d.janitor(ctx)
		}
	}
}

// heartbeat renews this replica's lease and reports whether it could. A replica that finds itself
// declared dead (it stalled longer than the lease) has lost its requests to others: it aborts its
// calls, whose results could no longer be recorded anyway, and carries on under a new identity.
func (d *Daemon) heartbeat(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, max(d.cfg.HeartbeatInterval, time.Second))
	defer cancel()
	n, err := d.q.DaemonHeartbeat(ctx, dbsqlc.DaemonHeartbeatParams{ID: d.id.Load(), Completed: d.completed.Load(), Failed: d.failed.Load()})
	if err != nil {
		d.logger.Warn("heartbeat", "error", err.Error())
		return false
	}
	if n == 1 {
		return true
	}
	d.logger.Error("this replica was declared dead after missing heartbeats; aborting its calls and re-registering")
	d.abortAll(errHandBack)
	id, err := d.q.DaemonRegister(ctx, dbsqlc.DaemonRegisterParams{Host: hostname(), Pid: int32(pid())})
	if err != nil {
		d.logger.Error("re-register", "error", err.Error())
		return false
	}
	d.id.Store(id)
	return true
}

// settleBatches expires batches past their window, aborts the calls of ending batches, and
// finalizes batches whose requests are all terminal.
func (d *Daemon) settleBatches(ctx context.Context) {
	expiring, err := d.q.BatchMarkExpiring(ctx)
	if err != nil {
		d.logger.Warn("expire batches", "error", err.Error())
		return
	}
	for _, id := range expiring {
		d.logger.Info("batch window passed", "batch_id", id)
		_ = d.q.BatchNotifyAbort(ctx, "expired "+id)
	}
	ending, err := d.q.BatchesEnding(ctx)
	if err != nil {
		d.logger.Warn("list ending batches", "error", err.Error())
		return
	}
	for _, b := range ending {
		// Settled on every tick, not once: a request can come back to the queue after the batch
		// began to end (its replica's lease ran out, a retry was recorded), and no claim takes it.
		if _, err := d.q.BatchSettlePending(ctx, b.ID); err != nil {
			d.logger.Warn("settle pending requests", "batch_id", b.ID, "error", err.Error())
		}
		cause := errCancelled
		if b.Status == "in_progress" {
			cause = errExpired
		}
		d.abortBatch(b.ID, cause)
	}
	// Requests a user cancelled while they ran and that came back to the queue since.
	if batches, err := d.q.RequestsCancelRequestedBatches(ctx); err != nil {
		d.logger.Warn("list cancelled requests", "error", err.Error())
	} else {
		for _, id := range batches {
			if _, err := d.q.RequestsCancelPending(ctx, dbsqlc.RequestsCancelPendingParams{BatchID: id, CustomIds: []string{}}); err != nil {
				d.logger.Warn("settle cancelled requests", "batch_id", id, "error", err.Error())
			}
		}
	}
	if expired, err := d.q.ResponsesExpire(ctx); err != nil {
		d.logger.Warn("expire responses", "error", err.Error())
	} else if len(expired) > 0 {
		_ = d.q.ResponsesNotifyDone(ctx, expired)
	}
	settled, err := d.q.BatchesSettled(ctx)
	if err != nil {
		d.logger.Warn("list settled batches", "error", err.Error())
		return
	}
	for _, id := range settled {
		d.finalize(ctx, id)
	}
}

// janitor marks expired files deleted, removes the lines of deleted input files that no running
// batch reads any more, the results of ended batches whose output and error files are both gone,
// deleted responses, and the parts of uploads left pending past their hour.
// Retention of the model availability log: events older than availabilityRetention go, except
// each model's latest availabilityKeep, so that pruning never changes a model's state.
// The history of adaptive limits keeps limitChangesRetention, and each model's latest move.
const (
	availabilityRetention = 30 * 24 * time.Hour
	availabilityKeep      = 100
	limitChangesRetention = 24 * time.Hour
)

func (d *Daemon) janitor(ctx context.Context) {
	if n, err := d.q.ModelAvailabilityPrune(ctx, dbsqlc.ModelAvailabilityPruneParams{
		OlderThanSeconds: availabilityRetention.Seconds(), Keep: availabilityKeep}); err != nil {
		d.logger.Warn("prune model availability events", "error", err.Error())
	} else if n > 0 {
		d.logger.Info("pruned model availability events", "events", n)
	}
	if _, err := d.q.ModelLimitChangesPrune(ctx, limitChangesRetention.Seconds()); err != nil {
		d.logger.Warn("prune the history of adaptive limits", "error", err.Error())
	}
	if _, err := d.q.ModelTrickleExpire(ctx, max(d.cfg.TrickleInterval, time.Hour).Seconds()); err != nil {
		d.logger.Warn("expire trickle marks", "error", err.Error())
	}
	if n, err := d.q.UploadsExpire(ctx); err != nil {
		d.logger.Warn("expire uploads", "error", err.Error())
	} else if n > 0 {
		d.logger.Info("removed the parts of expired uploads", "parts", n)
	}
	ids, err := d.q.FilesJanitor(ctx)
	if err != nil {
		d.logger.Warn("janitor", "error", err.Error())
		return
	}
	for _, id := range ids {
		if err := d.q.FileLinesDelete(ctx, id); err != nil {
			d.logger.Warn("remove file lines", "file_id", id, "error", err.Error())
		}
	}
	removed, err := d.q.BatchResultsRemove(ctx)
	if err != nil {
		d.logger.Warn("remove results of batches whose files are gone", "error", err.Error())
	} else if removed > 0 {
		d.logger.Info("removed results of batches whose files are gone", "requests", removed)
	}
	if n, err := d.q.BatchesDeletedRemove(ctx); err != nil {
		d.logger.Warn("remove deleted batches", "error", err.Error())
	} else if n > 0 {
		d.logger.Info("removed deleted batches", "requests", n)
	}
	if n, err := d.q.ResponsesRemoveDeleted(ctx); err != nil {
		d.logger.Warn("remove deleted responses", "error", err.Error())
	} else if n > 0 {
		d.logger.Info("removed deleted responses", "requests", n)
	}
}
