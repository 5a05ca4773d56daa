package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go/v3"
)

// ReplicaChaosParams size the replica-chaos scenario.
type ReplicaChaosParams struct {
	Replicas int
	Requests int
	Models   []Model
	Mock     MockOptions
	// A random replica is killed (SIGKILL) and started again every KillMin to KillMax.
	KillMin, KillMax time.Duration
	// PGRestartAt is the fraction of the batch done when PostgreSQL is crashed and restarted
	// (0: never); PGDowntime is how long it stays down.
	PGRestartAt float64
	PGDowntime  time.Duration
	Timeout     time.Duration
}

// chaosFaults are the upstream faults of the replica-chaos scenario.
func chaosFaults() MockOptions {
	return MockOptions{Latency: 20 * time.Millisecond, FailStatus: "500:0.05", RateLimitRate: 0.02,
		ResetRate: 0.01, HangRate: 0.005}
}

// ReplicaChaosFull is the size `make chaos` runs.
func ReplicaChaosFull() ReplicaChaosParams {
	return ReplicaChaosParams{
		Replicas: 3, Requests: 50_000,
		Models: []Model{{Name: "chaos-a", Limit: 24}, {Name: "chaos-b", Limit: 40, Adaptive: true}},
		Mock:   chaosFaults(), KillMin: 3 * time.Second, KillMax: 6 * time.Second,
		PGRestartAt: 0.4, PGDowntime: 3 * time.Second, Timeout: 10 * time.Minute,
	}
}

// ReplicaChaosReduced is the size the package's tests run.
func ReplicaChaosReduced() ReplicaChaosParams {
	return ReplicaChaosParams{
		Replicas: 3, Requests: 3_000,
		Models: []Model{{Name: "chaos-a", Limit: 8}, {Name: "chaos-b", Limit: 12, Adaptive: true}},
		Mock:   chaosFaults(), KillMin: 1500 * time.Millisecond, KillMax: 2500 * time.Millisecond,
		PGRestartAt: 0.3, PGDowntime: time.Second, Timeout: 45 * time.Second,
	}
}

func sumLimits(models []Model) int {
	n := 0
	for _, m := range models {
		n += m.Limit
	}
	return n
}

func describeModels(models []Model) string {
	parts := make([]string, len(models))
	for i, m := range models {
		parts[i] = fmt.Sprintf("%s ≤ %d", m.Name, m.Limit)
	}
	return strings.Join(parts, ", ")
}

// RunReplicaChaos runs one batch on several replicas while a killer SIGKILLs random replicas and
// PostgreSQL is crashed once, against an upstream that fails, throttles, resets and hangs.
func RunReplicaChaos(ctx context.Context, h *Harness, p ReplicaChaosParams) *Result {
	res := newResult("replica-chaos", "Replica chaos")
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()

	mockOpts := p.Mock
	mockOpts.MaxConcurrency = sumLimits(p.Models)
	res.Load = []string{
		fmt.Sprintf("%d replicas, one batch of %s chat completions over %d models (%s)",
			p.Replicas, fmtInt(int64(p.Requests)), len(p.Models), describeModels(p.Models)),
	}
	res.Held = fmt.Sprintf("%d replicas, %s-request batch", p.Replicas, fmtInt(int64(p.Requests)))
	res.Injected = fmt.Sprintf("upstream 5%% 500, 2%% 429, 1%% resets, 0.5%% hangs; SIGKILL of a replica every %s–%s; PostgreSQL crashed once", p.KillMin, p.KillMax)
	res.Faults = append(mockOpts.Describe(),
		fmt.Sprintf("SIGKILL of a random replica every %s–%s, started again at once", p.KillMin, p.KillMax))
	if p.PGRestartAt > 0 {
		res.Faults = append(res.Faults, fmt.Sprintf("PostgreSQL crashed (immediate shutdown) at %.0f%% of the batch, down %s, then restarted",
			100*p.PGRestartAt, p.PGDowntime))
	}

	e, err := h.NewEnv(ctx, res.Name, EnvOptions{Replicas: p.Replicas, Mock: mockOpts, Models: p.Models})
	if err != nil {
		return res.Fail(err)
	}
	defer e.Close()
	sub, err := e.SubmitBatch(ctx, "chaos", "rc", p.Requests, p.Models)
	if err != nil {
		return res.Fail(err)
	}
	key, in, batch := sub.Key, sub.Input, sub.Batch
	h.logf("%s: batch %s of %d requests created", res.Name, batch.ID, p.Requests)
	runStart := time.Now()

	// The killer.
	killCtx, stopKiller := context.WithCancel(ctx)
	var kills, restartFailures atomic.Int64
	var killerDone sync.WaitGroup
	killerDone.Add(1)
	go func() {
		defer killerDone.Done()
		for {
			wait := p.KillMin + time.Duration(rand.Int64N(int64(p.KillMax-p.KillMin)+1))
			select {
			case <-killCtx.Done():
				return
			case <-time.After(wait): // the killer's schedule
			}
			r := e.Replicas[rand.IntN(len(e.Replicas))]
			if !r.Running() {
				continue
			}
			r.Kill()
			kills.Add(1)
			if err := r.Start(context.WithoutCancel(killCtx)); err != nil {
				restartFailures.Add(1)
				h.logf("%s: restart of %s failed: %v", res.Name, r.Name(), err)
			}
		}
	}()

	// PostgreSQL's crash, once, from the progress callback.
	var pgOnce sync.Once
	var pgWG sync.WaitGroup
	var pgErr error
	var pgStarted time.Time
	var pgTook time.Duration
	w := &Watcher{Env: e, Key: key}
	lastLog := time.Now()
	progress := func(b *openai.Batch) {
		done := b.RequestCounts.Completed + b.RequestCounts.Failed
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			h.logf("%s: %d/%d done, %d kills so far", res.Name, done, b.RequestCounts.Total, kills.Load())
		}
		if p.PGRestartAt > 0 && float64(done) >= p.PGRestartAt*float64(p.Requests) {
			pgOnce.Do(func() {
				pgWG.Add(1)
				go func() {
					defer pgWG.Done()
					h.logf("%s: crashing PostgreSQL at %d/%d", res.Name, done, p.Requests)
					pgStarted = time.Now()
					pgErr = e.PG.Restart(ctx, p.PGDowntime)
					pgTook = time.Since(pgStarted)
				}()
			})
		}
	}
	final, waitErr := w.Wait(ctx, batch.ID, p.Timeout, Terminal, progress)
	elapsed := time.Since(runStart)
	stopKiller()
	killerDone.Wait()
	pgWG.Wait()
	if waitErr != nil {
		return res.Fail(waitErr)
	}
	if pgErr != nil {
		return res.Fail(fmt.Errorf("restart PostgreSQL: %w", pgErr))
	}
	if p.PGRestartAt > 0 && pgStarted.IsZero() {
		res.Check("PostgreSQL restarted mid-run", false, "the batch ended before %.0f%% was reached", 100*p.PGRestartAt)
	}

	live := e.Live()
	if len(live) == 0 {
		return res.Fail(fmt.Errorf("no replica running at the end"))
	}
	st, err := verifyRun(ctx, res, e, live[0], key, final, in.IDs, p.Models, CheckLimit)
	if err != nil {
		return res.Fail(err)
	}
	faultRetries := st.FaultAnswers()
	res.UpstreamDuplicates = max(st.DuplicateCalls-faultRetries, 0) // beyond the retries of injected faults
	res.Check("no replica failed to restart", restartFailures.Load() == 0, "%d failed restarts", restartFailures.Load())
	res.Check("replicas were killed while the batch ran", kills.Load() > 0, "%d kills", kills.Load())

	res.Metric("batch duration", "%s (%.0f requests/s)", fmtDur(elapsed), float64(p.Requests)/elapsed.Seconds())
	res.Metric("replica kills", "%d", kills.Load())
	if !pgStarted.IsZero() {
		res.Metric("PostgreSQL down (crash to accepting connections again)", "%s", fmtDur(pgTook))
	}
	res.Metric("upstream calls", "%s for %s requests: %s answered with an injected fault (retried), %s duplicate bodies in all",
		fmtInt(st.TotalCalls), fmtInt(int64(p.Requests)), fmtInt(faultRetries), fmtInt(st.DuplicateCalls))
	res.Metric("upstream statuses", "%s; %d resets, %d hangs", formatStatus(st.StatusCounts), st.Resets, st.Hangs)
	res.Metric("peak concurrency per model", "%s", formatPeaks(p.Models, st))
	res.Metric("polls that failed (replica down, database down)", "%d", w.Errors)
	res.Note("Upstream duplicate sends beyond fault retries are calls in flight on a replica when it was killed (or whose result it had not yet recorded): delivery upstream is at-least-once, results exactly-once.")
	return res
}

// checkBatch records the common checks of a finished batch.
func checkBatch(res *Result, prefix string, b *openai.Batch, v Verification) {
	res.Check(prefix+"the batch completed", b.Status == openai.BatchStatusCompleted, "%s: status %s", b.ID, b.Status)
	res.Check(prefix+"every custom_id exactly once in the results", v.Lost == 0 && v.Duplicated == 0 && v.Unknown == 0,
		"lost %d, duplicated %d, unknown %d", v.Lost, v.Duplicated, v.Unknown)
	res.Check(prefix+"each answer belongs to its own request", v.Mismatched == 0, "%d output lines answer another request", v.Mismatched)
	problems := "total, completed and failed equal the lines; bytes equal the downloads"
	if len(v.Problems) > 0 {
		problems = strings.Join(v.Problems, "; ")
	}
	res.Check(prefix+"request_counts and file sizes match the files", len(v.Problems) == 0, "%s", problems)
}

// CheckLimit names the check of the upstream's peak concurrency per model.
const CheckLimit = "peak upstream concurrency per model within its limit"

// checkModelPeaks checks the upstream's peak concurrency of each model against its limit.
func checkModelPeaks(res *Result, name string, models []Model, st MockStats) {
	var over []string
	for _, m := range models {
		if peak := st.Models[m.Name].PeakConcurrency; peak > int64(m.Limit) {
			over = append(over, fmt.Sprintf("%s peaked at %d > %d", m.Name, peak, m.Limit))
		}
	}
	detail := "peaks " + formatPeaks(models, st)
	if len(over) > 0 {
		detail = strings.Join(over, ", ")
	}
	res.Check(name, len(over) == 0 && st.Violations == 0,
		"%s; %d violations counted by the upstream", detail, st.Violations)
}

// checkAnswered checks that every request of a batch got an answer (no error line).
func checkAnswered(res *Result, prefix string, v Verification) {
	detail := "no error lines"
	if v.ErrorLines > 0 {
		detail = fmt.Sprintf("%d error lines: %s", v.ErrorLines, formatCounts(v.ErrorCodes))
	}
	res.Check(prefix+"every request answered", v.ErrorLines == 0, "%s", detail)
}

// checkReplicaHealth checks that no replica crashed on its own.
func checkReplicaHealth(res *Result, e *Env) {
	var panics, errs int64
	messages := map[string]int{}
	for _, r := range e.Replicas {
		p, n, _ := r.Totals()
		panics += p
		errs += n
		for k, v := range r.Messages() {
			messages[k] += v
		}
	}
	res.Check("no panic in any replica", panics == 0, "%d panic lines", panics)
	if errs > 0 {
		res.Note("The replicas logged %d lines at level ERROR: %s.", errs, formatMessages(messages))
	}
}

func formatPeaks(models []Model, st MockStats) string {
	parts := make([]string, len(models))
	for i, m := range models {
		parts[i] = fmt.Sprintf("%s %d/%d", m.Name, st.Models[m.Name].PeakConcurrency, m.Limit)
	}
	return strings.Join(parts, ", ")
}

func formatStatus(m map[string]int64) string {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c["HTTP "+k] = int(v)
	}
	return formatCounts(c)
}

// formatMessages lists log messages with their counts, most frequent first.
func formatMessages(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%q ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
