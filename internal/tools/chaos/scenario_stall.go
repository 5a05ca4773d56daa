package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/openai/openai-go/v3"
)

// StallParams size the database-stall scenario.
type StallParams struct {
	Replicas int
	Requests int
	Models   []Model
	Latency  time.Duration
	// FreezeAt is the fraction of the batch done when PostgreSQL is frozen for FreezeFor.
	FreezeAt  float64
	FreezeFor time.Duration
	Timeout   time.Duration
}

// StallFull is the size `make chaos` runs.
func StallFull() StallParams {
	return StallParams{Replicas: 3, Requests: 20_000, Models: []Model{{Name: "stall-m", Limit: 64}}, Latency: 20 * time.Millisecond,
		FreezeAt: 0.3, FreezeFor: 40 * time.Second, Timeout: 5 * time.Minute}
}

// StallReduced is the size the package's tests run.
func StallReduced() StallParams {
	return StallParams{Replicas: 2, Requests: 2_000, Models: []Model{{Name: "stall-m", Limit: 16}}, Latency: 20 * time.Millisecond,
		FreezeAt: 0.3, FreezeFor: 35 * time.Second, Timeout: time.Minute}
}

// The replicas' shutdown grace in the stall scenario, and how long after SIGTERM a replica must
// be gone whatever the database does: the grace, the recorder's 10s limit on writing its last
// results, 5s to hand its requests back, 3s to close the pool, and 2s of slack. The freeze
// outlasts SIGTERM by more than that, so a replica that waits for the database instead fails the
// check.
const (
	stallGrace     = 2 * time.Second
	stallExitBound = stallGrace + 20*time.Second
	termAfter      = time.Second
)

// CheckStallLimit names the stall scenario's check of the upstream's peak concurrency.
const CheckStallLimit = CheckLimit + ", across the stall"

// CheckTermWhileFrozen names the check of a SIGTERM sent while the database is frozen.
const CheckTermWhileFrozen = "SIGTERM while the database is frozen: the replica exits within its grace period and 20s, before the thaw"

// How quickly the replicas must notice and get over an outage.
const (
	readyzNoticeWithin = 5 * time.Second
	recoverWithin      = 30 * time.Second
	apiCallBound       = 90 * time.Second
	// apiUnavailableWithin is how soon an API call made while the database is frozen must be
	// answered 503: Volley's default VOLLEY_DB_TIMEOUT (15s), plus slack for pgx to give up on the
	// connection.
	apiUnavailableWithin = 20 * time.Second
	readyzProbeInterval  = 250 * time.Millisecond
)

// probeLog is what the probes of one replica saw.
type probeLog struct {
	mu          sync.Mutex
	readyz      []timedAnswer
	healthzBad  []string
	healthzMax  time.Duration
	recoveredAt time.Time
	apiCall     timedAnswer
}

type timedAnswer struct {
	start time.Time
	Answer
}

// RunStall freezes PostgreSQL (SIGSTOP to the postmaster and its children) in the middle of a
// batch for longer than the replicas' timeouts, then thaws it.
func RunStall(ctx context.Context, h *Harness, p StallParams) *Result {
	res := newResult("db-stall", "Database stalls")
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	res.Load = []string{fmt.Sprintf("%d replicas, one batch of %s chat completions (%s), upstream latency %s",
		p.Replicas, fmtInt(int64(p.Requests)), describeModels(p.Models), p.Latency)}
	res.Held = fmt.Sprintf("%d replicas, %s-request batch", p.Replicas, fmtInt(int64(p.Requests)))
	res.Injected = fmt.Sprintf("PostgreSQL frozen (SIGSTOP) for %s; SIGTERM to a replica meanwhile", p.FreezeFor)
	res.Faults = []string{
		fmt.Sprintf("PostgreSQL frozen (SIGSTOP to the postmaster and every child) for %s at %.0f%% of the batch, then thawed (SIGCONT); "+
			"longer than /readyz's 2s ping budget, the pool's 10s connect timeout and the 3s lease", p.FreezeFor, 100*p.FreezeAt),
		fmt.Sprintf("one more replica (VOLLEY_SHUTDOWN_GRACE=%s, like the others) gets SIGTERM %s into the freeze, and is started again after the thaw", stallGrace, termAfter),
	}

	e, err := h.NewEnv(ctx, res.Name, EnvOptions{Replicas: p.Replicas + 1, Models: p.Models, ShutdownGrace: stallGrace,
		Mock: MockOptions{Latency: p.Latency, MaxConcurrency: sumLimits(p.Models)}})
	if err != nil {
		return res.Fail(err)
	}
	defer e.Close()
	sub, err := e.SubmitBatch(ctx, "stall", "st", p.Requests, p.Models)
	if err != nil {
		return res.Fail(err)
	}
	key, in, batch := sub.Key, sub.Input, sub.Batch
	w := &Watcher{Env: e, Key: key}
	runStart := time.Now()
	target := int64(p.FreezeAt * float64(p.Requests))
	if _, err := w.Wait(ctx, batch.ID, p.Timeout, func(b *openai.Batch) bool {
		return b.RequestCounts.Completed+b.RequestCounts.Failed >= target || Terminal(b)
	}, nil); err != nil {
		return res.Fail(err)
	}

	frozenProcs, err := e.PG.Freeze()
	if err != nil {
		e.PG.Thaw()
		return res.Fail(fmt.Errorf("freeze PostgreSQL: %w", err))
	}
	freezeAt := time.Now()
	h.logf("%s: PostgreSQL frozen (%d processes) for %s", res.Name, frozenProcs, p.FreezeFor)
	probeCtx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	client := newHTTPClient(8)
	defer client.CloseIdleConnections()
	observed, victim := e.Replicas[:p.Replicas], e.Replicas[p.Replicas]
	logs := make([]*probeLog, len(observed))
	var probes sync.WaitGroup
	var thawAt time.Time
	var thawMu sync.Mutex
	thawed := func() (time.Time, bool) {
		thawMu.Lock()
		defer thawMu.Unlock()
		return thawAt, !thawAt.IsZero()
	}
	// SIGTERM to one replica while the database is frozen.
	var termTook time.Duration
	var termCode int
	var termErr error
	var termDone sync.WaitGroup
	termDone.Add(1)
	go func() {
		defer termDone.Done()
		time.Sleep(termAfter) // the schedule of the fault
		termTook, termCode, termErr = victim.Terminate(p.FreezeFor + time.Minute)
	}()
	for i, r := range observed {
		pl := &probeLog{}
		logs[i] = pl
		probes.Add(3)
		go func() { // /readyz until it is ready again after the thaw
			defer probes.Done()
			deadline := freezeAt.Add(p.FreezeFor + recoverWithin + 10*time.Second)
			for probeCtx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				a := do(probeCtx, client, http.MethodGet, r.Root()+"/readyz", "", nil, nil, 5*time.Second)
				pl.mu.Lock()
				pl.readyz = append(pl.readyz, timedAnswer{t0, a})
				if at, ok := thawed(); ok && t0.After(at) && a.Status == http.StatusOK {
					pl.recoveredAt = time.Now()
					pl.mu.Unlock()
					return
				}
				pl.mu.Unlock()
				time.Sleep(readyzProbeInterval) // probe interval
			}
		}()
		go func() { // /healthz while frozen
			defer probes.Done()
			for probeCtx.Err() == nil {
				if _, ok := thawed(); ok {
					return
				}
				a := do(probeCtx, client, http.MethodGet, r.Root()+"/healthz", "", nil, nil, 2*time.Second)
				pl.mu.Lock()
				pl.healthzMax = max(pl.healthzMax, a.Took)
				if a.Err != nil && probeCtx.Err() == nil || a.Err == nil && a.Status != http.StatusOK {
					pl.healthzBad = append(pl.healthzBad, a.String())
				}
				pl.mu.Unlock()
				time.Sleep(readyzProbeInterval) // probe interval
			}
		}()
		go func() { // one API call made while frozen: it must be answered 503 before the thaw
			defer probes.Done()
			t0 := time.Now()
			a := do(probeCtx, client, http.MethodGet, r.BaseURL()+"/batches/"+batch.ID, key, nil, nil, apiCallBound)
			pl.mu.Lock()
			pl.apiCall = timedAnswer{t0, a}
			pl.mu.Unlock()
		}()
	}
	select {
	case <-ctx.Done():
	case <-time.After(p.FreezeFor): // the outage's length is the schedule
	}
	thawMu.Lock()
	thawAt = time.Now()
	thawMu.Unlock()
	e.PG.Thaw()
	h.logf("%s: PostgreSQL thawed", res.Name)

	termDone.Wait()
	termEnd := freezeAt.Add(termAfter + termTook)
	res.Check(CheckTermWhileFrozen, termErr == nil && termTook <= stallExitBound && termEnd.Before(thawAt),
		"exit code %d %s after SIGTERM (bound %s), %s", termCode, fmtDur(termTook), stallExitBound, relativeToThaw(termEnd, thawAt)+errSuffix(termErr))
	res.Metric("SIGTERM while frozen", "exit code %d after %s, %s", termCode, fmtDur(termTook), relativeToThaw(termEnd, thawAt))
	if err := victim.Start(ctx); err != nil {
		return res.Fail(err)
	}

	// Progress after the thaw: the first poll that shows more requests done than at the thaw.
	var doneAtThaw int64 = -1
	var resumedAt time.Time
	final, waitErr := w.Wait(ctx, batch.ID, p.Timeout, Terminal, func(b *openai.Batch) {
		done := b.RequestCounts.Completed + b.RequestCounts.Failed
		if doneAtThaw < 0 {
			doneAtThaw = done
		} else if resumedAt.IsZero() && done > doneAtThaw {
			resumedAt = time.Now()
		}
	})
	elapsed := time.Since(runStart)
	probesDone := make(chan struct{})
	go func() { probes.Wait(); close(probesDone) }()
	select {
	case <-probesDone:
	case <-time.After(apiCallBound + 10*time.Second):
	}
	stopProbes()
	<-probesDone
	if waitErr != nil {
		return res.Fail(waitErr)
	}

	// The outage as each replica reported it.
	for i, r := range observed {
		pl := logs[i]
		pl.mu.Lock()
		var first503 time.Duration = -1
		var okWhileFrozen []string
		var maxTook time.Duration
		for _, a := range pl.readyz {
			if a.start.Before(thawAt) {
				maxTook = max(maxTook, a.Took)
			}
			if a.Status == http.StatusServiceUnavailable && first503 < 0 && a.start.Before(thawAt) {
				first503 = a.start.Add(a.Took).Sub(freezeAt)
			}
			if a.Status == http.StatusOK && a.start.After(freezeAt.Add(100*time.Millisecond)) && a.start.Add(a.Took).Before(thawAt) {
				okWhileFrozen = append(okWhileFrozen, fmtDur(a.start.Sub(freezeAt)))
			}
		}
		sample, envErr := pl.readyzSample(thawAt)
		detail := fmt.Sprintf("first 503 %s after the freeze (must be ≤ %s), then 503 until the thaw: %s", fmtDur(first503), readyzNoticeWithin,
			strings.TrimSpace(clip(string(sample.Body), 120)))
		if len(okWhileFrozen) > 0 {
			detail += fmt.Sprintf("; but 200 at %v into the freeze", okWhileFrozen)
		}
		if envErr != nil {
			detail += "; " + envErr.Error()
		}
		res.Check(r.Name()+": /readyz reports the outage", first503 >= 0 && first503 <= readyzNoticeWithin && len(okWhileFrozen) == 0 && envErr == nil, "%s", detail)
		res.Metric(r.Name()+" /readyz while frozen", "first 503 after %s, slowest answer %s", fmtDur(first503), fmtDur(maxTook))
		res.Check(r.Name()+": /healthz answers while frozen", len(pl.healthzBad) == 0, "%d bad answers, slowest answer %s%s",
			len(pl.healthzBad), fmtDur(pl.healthzMax), errSuffix(errors.Join(errs(first(pl.healthzBad, 3))...)))
		recovered := !pl.recoveredAt.IsZero()
		rec := time.Duration(-1)
		if recovered {
			rec = pl.recoveredAt.Sub(thawAt)
		}
		res.Check(r.Name()+": ready again after the thaw", recovered && rec <= recoverWithin, "ready %s after the thaw (must be ≤ %s)", fmtDur(rec), recoverWithin)
		api := pl.apiCall
		apiEnd := api.start.Add(api.Took)
		_, apiErr := api.envelope(http.StatusServiceUnavailable)
		apiOK := apiErr == nil && api.Took <= apiUnavailableWithin && apiEnd.Before(thawAt)
		res.Check(r.Name()+": an API call made while frozen is answered 503 while the database is still frozen", apiOK,
			"HTTP %d after %s (must be 503 within %s), %s%s", api.Status, fmtDur(api.Took), apiUnavailableWithin, relativeToThaw(apiEnd, thawAt), errSuffix(apiErr))
		res.Metric(r.Name()+" GET /v1/batches/{id} sent as the freeze began", "HTTP %d after %s (%s)", api.Status, fmtDur(api.Took), relativeToThaw(apiEnd, thawAt))
		pl.mu.Unlock()
	}
	resumed := !resumedAt.IsZero()
	res.Check("claims resume by themselves after the thaw", resumed && resumedAt.Sub(thawAt) <= recoverWithin || final.Status == openai.BatchStatusCompleted && doneAtThaw == int64(p.Requests),
		"first progress %s after the thaw", fmtDur(resumedAt.Sub(thawAt)))
	if resumed {
		res.Metric("thaw to first progress", "%s", fmtDur(resumedAt.Sub(thawAt)))
	}
	live := e.Live()
	res.Check("every replica still running", len(live) == len(e.Replicas), "%d of %d running", len(live), len(e.Replicas))
	if len(live) == 0 {
		return res.Fail(fmt.Errorf("no replica running at the end"))
	}
	if _, err := verifyRun(ctx, res, e, live[0], key, final, in.IDs, p.Models, CheckStallLimit); err != nil {
		return res.Fail(err)
	}
	res.Metric("batch duration", "%s including the %s freeze", fmtDur(elapsed), p.FreezeFor)
	res.Metric("frozen processes", "%d (postmaster and children)", frozenProcs)
	res.Note("An API call that needs the database waits for it at most VOLLEY_DB_TIMEOUT (15s by default) per statement, then answers 503 with the error envelope, which the SDKs retry; /readyz, with its 2s ping budget, reports the outage sooner.")
	res.Note("A freeze longer than the lease makes the replicas declare each other dead when the database comes back; requests whose results were not yet written are then sent again, so upstream duplicates here are expected (at-least-once delivery), while results stay exactly-once.")
	return res
}

// relativeToThaw says when t was relative to the thaw.
func relativeToThaw(t, thawAt time.Time) string {
	if t.Before(thawAt) {
		return fmtDur(thawAt.Sub(t)) + " before the thaw"
	}
	return fmtDur(t.Sub(thawAt)) + " after the thaw"
}

// readyzSample checks that a 503 /readyz answered during the outage is JSON.
func (pl *probeLog) readyzSample(thawAt time.Time) (Answer, error) {
	for _, a := range pl.readyz {
		if a.Status == http.StatusServiceUnavailable && a.start.Before(thawAt) {
			if !strings.HasPrefix(a.ContentType, "application/json") || !strings.Contains(string(a.Body), "not ready") {
				return a.Answer, fmt.Errorf("503 body: %s", a.Answer)
			}
			return a.Answer, nil
		}
	}
	return Answer{}, nil
}

// errs turns messages into errors.
func errs(msgs []string) []error {
	out := make([]error, len(msgs))
	for i, m := range msgs {
		out[i] = errors.New(m)
	}
	return out
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
