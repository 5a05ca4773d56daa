package chaos

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
)

// RollingParams size the rolling-restart scenario.
type RollingParams struct {
	Replicas int
	Requests int
	Models   []Model
	Latency  time.Duration
	// StartAt is the fraction of the batch done before the first SIGTERM; after each replica is
	// back, the next waits until another Step of the batch is done.
	StartAt, Step float64
	Grace         time.Duration
	Timeout       time.Duration
}

// RollingFull is the size `make chaos` runs.
func RollingFull() RollingParams {
	return RollingParams{Replicas: 3, Requests: 50_000, Models: []Model{{Name: "roll-a", Limit: 32}, {Name: "roll-b", Limit: 32, Adaptive: true}},
		Latency: 20 * time.Millisecond, StartAt: 0.1, Step: 0.1, Grace: 10 * time.Second, Timeout: 5 * time.Minute}
}

// RollingReduced is the size the package's tests run.
func RollingReduced() RollingParams {
	return RollingParams{Replicas: 3, Requests: 3_000, Models: []Model{{Name: "roll-a", Limit: 8}, {Name: "roll-b", Limit: 8, Adaptive: true}},
		Latency: 20 * time.Millisecond, StartAt: 0.1, Step: 0.1, Grace: 10 * time.Second, Timeout: 45 * time.Second}
}

// RunRolling restarts every replica in turn (SIGTERM, wait for the exit, start again) while a
// batch runs, against an upstream without faults: every duplicate call it sees comes from the
// restarts.
func RunRolling(ctx context.Context, h *Harness, p RollingParams) *Result {
	res := newResult("rolling-restart", "Rolling restart")
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	res.Load = []string{fmt.Sprintf("%d replicas, one batch of %s chat completions (%s), upstream latency %s, no upstream faults",
		p.Replicas, fmtInt(int64(p.Requests)), describeModels(p.Models), p.Latency)}
	res.Held = fmt.Sprintf("%d replicas, %s-request batch", p.Replicas, fmtInt(int64(p.Requests)))
	res.Injected = "SIGTERM and restart of each replica in turn"
	res.Faults = []string{fmt.Sprintf("each replica in turn gets SIGTERM (VOLLEY_SHUTDOWN_GRACE=%s), is waited for and started again; "+
		"the first at %.0f%% of the batch, the next after another %.0f%% is done", p.Grace, 100*p.StartAt, 100*p.Step)}

	e, err := h.NewEnv(ctx, res.Name, EnvOptions{Replicas: p.Replicas, Models: p.Models, ShutdownGrace: p.Grace,
		Mock: MockOptions{Latency: p.Latency, MaxConcurrency: sumLimits(p.Models)}})
	if err != nil {
		return res.Fail(err)
	}
	defer e.Close()
	sub, err := e.SubmitBatch(ctx, "rolling", "rr", p.Requests, p.Models)
	if err != nil {
		return res.Fail(err)
	}
	key, in, batch := sub.Key, sub.Input, sub.Batch
	w := &Watcher{Env: e, Key: key}
	runStart := time.Now()
	deadline := runStart.Add(p.Timeout)
	reach := func(fraction float64) error {
		want := int64(fraction * float64(p.Requests))
		_, err := w.Wait(ctx, batch.ID, time.Until(deadline), func(b *openai.Batch) bool {
			return b.RequestCounts.Completed+b.RequestCounts.Failed >= want || Terminal(b)
		}, nil)
		return err
	}
	if err := reach(p.StartAt); err != nil {
		return res.Fail(err)
	}
	var shutdowns []string
	var restartedWhileRunning int
	for i, r := range e.Replicas {
		b, err := w.Get(ctx, batch.ID)
		if err == nil && !Terminal(b) {
			restartedWhileRunning++
		}
		took, code, err := r.Terminate(p.Grace + 20*time.Second)
		res.Check(r.Name()+": SIGTERM ends it cleanly", err == nil && code == 0 && took <= p.Grace+5*time.Second,
			"exit code %d after %s%s", code, fmtDur(took), errSuffix(err))
		shutdowns = append(shutdowns, fmt.Sprintf("%s %s", r.Name(), fmtDur(took)))
		if err := r.Start(ctx); err != nil {
			return res.Fail(err)
		}
		h.logf("%s: %s restarted (shutdown took %s)", res.Name, r.Name(), fmtDur(took))
		if i < len(e.Replicas)-1 {
			if err := reach(p.StartAt + float64(i+1)*p.Step); err != nil {
				return res.Fail(err)
			}
		}
	}
	res.Check("every restart happened while the batch ran", restartedWhileRunning == len(e.Replicas),
		"%d of %d restarts began before the batch ended", restartedWhileRunning, len(e.Replicas))
	final, err := w.Wait(ctx, batch.ID, time.Until(deadline), Terminal, nil)
	elapsed := time.Since(runStart)
	if err != nil {
		return res.Fail(err)
	}
	st, err := verifyRun(ctx, res, e, e.Replicas[0], key, final, in.IDs, p.Models, CheckLimit)
	if err != nil {
		return res.Fail(err)
	}
	res.Target("requests sent upstream twice (mock duplicate_calls)", fmtInt(st.DuplicateCalls), "0", st.DuplicateCalls == 0)
	res.Metric("upstream calls", "%s for %s requests", fmtInt(st.TotalCalls), fmtInt(int64(p.Requests)))
	res.Metric("SIGTERM to exit", "%s", strings.Join(shutdowns, ", "))
	res.Metric("batch duration", "%s (%.0f requests/s)", fmtDur(elapsed), float64(p.Requests)/elapsed.Seconds())
	res.Metric("polls that failed (replica restarting)", "%d", w.Errors)
	return res
}
