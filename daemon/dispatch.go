package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/tidwall/sjson"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/responses"
	"github.com/volleyhq/volley/internal/upstream"
)

// dispatch claims work whenever this replica has room and the queue has work, until ctx ends.
func (d *Daemon) dispatch(ctx context.Context) {
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	for {
		room := min(d.cfg.MaxInFlight-int(d.inFlight.Load()), d.budget.room())
		full := false
		if room > 0 && !d.fenced.Load() {
			n, err := d.claim(ctx, min(room, d.cfg.ClaimBatch))
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				d.logger.Warn("claim failed", "error", err.Error())
			default:
				full = n == min(room, d.cfg.ClaimBatch)
			}
		}
		if full {
			continue // there may be more right away
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-poll.C:
		}
	}
}

// claim takes up to n requests and starts a call for each.
func (d *Daemon) claim(ctx context.Context, n int) (int, error) {
	start := time.Now()
	aheadModels, ahead := d.ahead.plan(start, d.gate.returns())
	c, err := db.ClaimRequests(ctx, d.pool, dbsqlc.RequestClaimParams{
		DaemonID:       d.id.Load(),
		Models:         d.limits.models,
		Limits:         d.limits.limits,
		DefaultLimit:   d.limits.defaultLimit,
		MaxClaim:       int32(n),
		AheadModels:    aheadModels,
		Ahead:          ahead,
		FreshSeconds:   d.freshLease().Seconds(),
		TrickleSeconds: d.cfg.TrickleInterval.Seconds(),
		FallbackModels: d.limits.fallbackModels, FallbackDefault: d.limits.fallbackDefault,
		RampFraction: d.cfg.RampFraction, RampHorizonSeconds: d.cfg.RampFraction * maxWindow.Seconds(),
		BackgroundShare: d.cfg.BackgroundShare,
		// Waiting calls need a fresh allowance even once their model has nothing pending.
		Locked: d.gate.waiting(),
	})
	// Rounds that committed before an error hold requests running under this replica: they are
	// started all the same. The allowances come first, so that none of them starts under an
	// allowance older than the claim that took it.
	for model, allow := range c.Allowance {
		d.gate.setAllowance(model, allow)
	}
	for model, l := range c.Limits {
		if route, ok := d.router.Route(model); ok && route.Adaptive != nil {
			d.adapt.learn(model, l)
		}
	}
	if len(c.Rows) > 0 {
		d.cfg.Metrics.Claim(len(c.Rows), time.Since(start))
		d.ahead.claimed(time.Since(start))
	}
	for i := range c.Rows {
		d.startCall(c.Rows[i])
	}
	if err != nil {
		return len(c.Rows), fmt.Errorf("claim: %w", err)
	}
	return len(c.Rows), nil
}

// startCall registers a claimed request as in flight and runs it.
func (d *Daemon) startCall(row dbsqlc.RequestClaimRow) {
	ctx, cancel := context.WithCancelCause(d.runCtx)
	ctx, cancelDeadline := context.WithDeadline(ctx, row.Deadline)
	d.mu.Lock()
	d.running[row.ID] = &call{cancel: cancel}
	if key := groupOf(row); key != "" {
		set := d.byBatch[key]
		if set == nil {
			set = make(map[int64]bool)
			d.byBatch[key] = set
		}
		set[row.ID] = true
	}
	d.mu.Unlock()
	d.inFlight.Add(1)
	d.budget.sent(len(row.Body))
	d.workers.Add(1)
	go func() {
		defer d.workers.Done()
		defer d.inFlight.Add(-1)
		defer cancel(nil)
		defer cancelDeadline()
		defer d.forget(row)
		d.run(ctx, row)
	}()
}

func (d *Daemon) forget(row dbsqlc.RequestClaimRow) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.running, row.ID)
	if key := groupOf(row); key != "" {
		if set := d.byBatch[key]; set != nil {
			delete(set, row.ID)
			if len(set) == 0 {
				delete(d.byBatch, key)
			}
		}
	}
}

// groupOf is what a request is aborted with: its batch, or the response it answers.
func groupOf(row dbsqlc.RequestClaimRow) string {
	switch {
	case row.BatchID != nil:
		return *row.BatchID
	case row.ResponseID != nil:
		return *row.ResponseID
	}
	return ""
}

// run sends one request and records what came of it.
func (d *Daemon) run(ctx context.Context, row dbsqlc.RequestClaimRow) {
	res := result{id: row.ID, attempt: row.Attempt, failures: row.Failures, batchID: row.BatchID, responseID: row.ResponseID}
	// held is what this call holds of the byte budget until its result is handed to the writer,
	// which holds the rendered line until it is written; a call that records nothing gives it back.
	held, recorded := len(row.Body), false
	defer func() {
		if !recorded {
			d.budget.release(held)
		}
	}()
	record := func() {
		res.held = len(res.line)
		d.budget.held.Add(int64(res.held - held))
		recorded = true
		d.rec.add(res)
	}
	route, ok := d.router.Route(row.Model)
	if !ok {
		d.budget.answered(held, held)
		res.finish("failed", failureLine(row, "model_not_found", fmt.Sprintf("No upstream is configured for model '%s'.", row.Model)))
		d.finished(row.Model, res.state)
		record()
		return
	}
	// A request claimed ahead waits for a call of its model to return; one whose batch is
	// cancelled or whose window ends meanwhile is never sent, and one waiting when the replica
	// stops goes back to the queue.
	var out upstream.Outcome
	if err := d.gate.acquire(ctx, row.Model); err != nil {
		if errors.Is(err, errHandBack) {
			return
		}
		out.Err = err
	} else {
		d.cfg.Metrics.InFlight(row.Model, 1)
		epoch := d.adapt.epoch(row.Model)
		target, body, fallback := route, row.Body, false
		if route.Fallback != nil && (row.Ramped || escalates(route, row.Deadline)) {
			target, body, fallback = fallbackOf(route, row.Model, row.Body)
		}
		sent := time.Now()
		out = d.client.Send(upstream.WithCall(ctx, callOf(row)), target, row.Url, body)
		if out.StatusCode != 0 {
			res.servedUpstream, res.servedModel, res.servedFallback = target.Upstream.Name, target.Model, fallback
		}
		if route.Adaptive != nil && !fallback { // the fallback's answers say nothing of the model's upstream
			d.adapt.observe(ctx, route, row.Model, epoch, out, d.gate.full(row.Model))
		}
		if out.StatusCode == 0 && out.ErrCode != "" && d.cfg.ClaimAhead > 0 {
			// A call that timed out or lost its connection may still be running upstream until the
			// server notices: a request claimed ahead would otherwise take its slot at once.
			time.Sleep(unansweredGrace)
		}
		d.gate.release(row.Model)
		d.cfg.Metrics.InFlight(row.Model, -1)
		d.cfg.Metrics.UpstreamCall(row.Model, target.Upstream.Name, out.StatusCode, time.Since(sent))
	}
	held += len(out.Body)
	d.budget.answered(len(row.Body), held)
	defer func() { d.observe(row, res, out) }()
	switch cause := context.Cause(ctx); {
	case out.StatusCode >= 200 && out.StatusCode < 300:
		res.usage = usageOf(out.Body)
		res.finish("completed", answerLine(row, out))
	case errors.Is(cause, errHandBack):
		return // Stop hands the request back to the queue
	case errors.Is(cause, errCancelled):
		res.finish("cancelled", failureLine(row, "batch_cancelled", "This request was not completed because the batch was cancelled."))
	case errors.Is(cause, errRequestCancelled):
		res.finish("cancelled", failureLine(row, "request_cancelled", "This request was cancelled before it completed."))
	case errors.Is(cause, errExpired), errors.Is(cause, context.DeadlineExceeded) && out.StatusCode == 0:
		res.finish("expired", failureLine(row, "batch_expired", "This request could not be executed before the completion window expired."))
	case d.runCtx.Err() != nil:
		return // the replica is going away without a grace period; its lease will be rescued
	case out.Retryable && d.retryable(row, route, out, &res):
		res.state = "pending"
	default:
		res.failures++
		if out.StatusCode != 0 {
			res.finish("failed", answerLine(row, out))
			break
		}
		code, msg := noAnswer(out)
		res.finish("failed", failureLine(row, code, msg))
	}
	record()
}

// unansweredGrace is how long the slot of a call that got no answer stays taken before a
// request claimed ahead may use it.
const unansweredGrace = 50 * time.Millisecond

// escalates reports whether a request due at deadline goes to its model's fallback: the route
// has one and escalate_before, and the deadline is nearer than that.
func escalates(route upstream.Route, deadline time.Time) bool {
	return route.Fallback != nil && route.EscalateBefore > 0 && time.Until(deadline) < route.EscalateBefore
}

// fallbackOf is the route and body of a request of model sent to its route's fallback: the
// fallback's upstream, under the model's own limit, timeout and retry policy, with the body's
// "model" replaced when the fallback names another.
func fallbackOf(route upstream.Route, model string, body []byte) (upstream.Route, []byte, bool) {
	fb := route.Fallback
	target := route
	target.Upstream, target.Model = fb.Upstream, model
	if fb.Model != "" && fb.Model != model {
		target.Model = fb.Model
		if b, err := sjson.SetBytes(slices.Clone(body), "model", fb.Model); err == nil {
			body = b
		}
	}
	return target, body, true
}

// noAnswer describes a call that got no usable answer.
func noAnswer(out upstream.Outcome) (code, message string) {
	code, message = out.ErrCode, "The upstream could not be reached"
	switch code {
	case "":
		code = upstream.ErrCodeUnreachable
	case upstream.ErrCodeTimeout:
		message = "The upstream did not answer in time"
	case upstream.ErrCodeResponseTooLarge:
		message = "The upstream's answer was too large to store"
	}
	if out.Err != nil {
		message += ": " + out.Err.Error()
	}
	return code, message + "."
}

// answerLine renders what the upstream answered: a batch's output or error line, or a response's
// final object (under Volley's id) or error.
func answerLine(row dbsqlc.RequestClaimRow, out upstream.Outcome) []byte {
	if row.ResponseID != nil {
		if out.StatusCode >= 200 && out.StatusCode < 300 {
			return responses.WithID(out.Body, *row.ResponseID)
		}
		return responses.FromUpstreamError(out.StatusCode, out.Body)
	}
	reqID := out.RequestID
	if reqID == "" {
		reqID = fmt.Sprintf("req_%d_%d", row.ID, row.Attempt)
	}
	return renderResponse(deref(row.BatchID), deref32(row.Line), deref(row.CustomID), out.StatusCode, reqID, out.Body)
}

// failureLine renders a request that got no usable answer.
func failureLine(row dbsqlc.RequestClaimRow, code, message string) []byte {
	if row.ResponseID != nil {
		return responses.Failure(code, message)
	}
	return renderError(deref(row.BatchID), deref32(row.Line), deref(row.CustomID), code, message)
}

// retryable decides whether a transient failure is tried again, and when.
func (d *Daemon) retryable(row dbsqlc.RequestClaimRow, route upstream.Route, out upstream.Outcome, res *result) bool {
	policy := d.retry
	if route.Retry != nil {
		policy = *route.Retry // the model's own
	}
	failures := int(row.Failures) + 1
	if failures >= policy.MaxAttempts {
		return false
	}
	wait := policy.Backoff(failures, out.RetryAfter, d.jitter)
	at := time.Now().Add(wait)
	if !at.Before(row.Deadline) {
		return false
	}
	res.failures = int32(failures)
	res.notBefore = at
	d.logger.Debug("retrying", "request", row.ID, "status", out.StatusCode, "failures", failures, "wait", wait.String())
	return true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func deref32(n *int32) int32 {
	if n == nil {
		return 0
	}
	return *n
}

// callOf identifies a claimed request to its upstream.
func callOf(row dbsqlc.RequestClaimRow) upstream.Call {
	c := upstream.Call{CustomID: deref(row.CustomID), Attempt: row.Attempt}
	switch {
	case row.BatchID != nil:
		c.BatchID = *row.BatchID
		c.RequestID = lineID(c.BatchID, deref32(row.Line))
	case row.ResponseID != nil:
		c.ResponseID = *row.ResponseID
		c.RequestID = c.ResponseID
	}
	return c
}

// observe records in the metrics what became of a call.
func (d *Daemon) observe(row dbsqlc.RequestClaimRow, res result, out upstream.Outcome) {
	switch res.state {
	case "":
		// handed back or abandoned: nothing became of it yet
	case "pending":
		reason := out.ErrCode
		if out.StatusCode != 0 {
			reason = strconv.Itoa(out.StatusCode)
		}
		d.cfg.Metrics.Retry(reason)
	default:
		d.finished(row.Model, res.state)
	}
}

// finished counts a request this replica ended, in the metrics and in its own totals.
func (d *Daemon) finished(model, state string) {
	d.cfg.Metrics.Finished(model, state)
	if state == "completed" {
		d.completed.Add(1)
	} else {
		d.failed.Add(1)
	}
}
