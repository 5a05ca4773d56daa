package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
)

// The claim-scale scenario: claims of 1,000 on a small and on a huge backlog.
const (
	claimSize        = 1_000
	claimSamples     = 50
	claimLimit       = 4_000 // per model: a claim may always take its full 1,000
	claimMaxP99      = 20 * time.Millisecond
	claimMaxSlowdown = 2.0
	claimFreshLines  = 2_000
)

// backlog is a queue of pending requests filled in SQL.
type backlog struct {
	name           string
	pending        int
	owners, models int
}

func (b backlog) label() string {
	return fmt.Sprintf("%s pending, %s owners × %d models", thousands(int64(b.pending)), thousands(int64(b.owners)), b.models)
}

func claimScaleScenario() scenario {
	small := backlog{name: "small", pending: 10_000, owners: 10, models: 1}
	huge := backlog{name: "huge", pending: 5_000_000, owners: 10_000, models: 20}
	return scenario{
		name: "claim-scale",
		summary: fmt.Sprintf("`claim-scale`: claims of %s on a backlog of %s, then of %s (every owner has "+
			"requests for every model; 50,000 and 1,000 owners × 2 models under `-quick`), and a fresh batch of %s requests "+
			"submitted on top of each.", thousands(claimSize), small.label(), huge.label(), thousands(claimFreshLines)),
		method: "Claim scale: the backlog is written straight into `requests` with one `INSERT … SELECT` over " +
			"`generate_series` (small bodies stored in the row, no batch), then `VACUUM ANALYZE requests` and `CHECKPOINT`. " +
			"The claims are timed through Volley's own code, `db.ClaimRound` (the models' claim locks, the " +
			"`RequestClaim` statement and the allowance read) as the dispatcher calls it, for a registered replica, with " +
			"`DefaultLimit` " + thousands(claimLimit) + " and `MaxClaim` " + thousands(claimSize) + ": " +
			strconv.Itoa(claimSamples) + " claims, each in its own transaction, rolled back, so every claim " +
			"sees the same backlog. Then a fresh mockllm (zero latency) and `volley serve` " +
			"(`VOLLEY_MODEL_CONCURRENCY=" + strconv.Itoa(claimLimit) + "`) start, a batch of " + thousands(claimFreshLines) +
			" requests of another owner and model is created on top, and its rate from create to completed is " +
			"measured while the backlog is worked too.",
		targets: []string{fmt.Sprintf("Claim scale: a claim of %s in under %s (p99) on the huge backlog, and within %.0f× of "+
			"its time (p99) on the small one.", thousands(claimSize), millis([]time.Duration{claimMaxP99}), claimMaxSlowdown)},
		run: func(ctx context.Context, e *env) ([]row, error) {
			if e.quick {
				huge = backlog{name: "huge", pending: 50_000, owners: 1_000, models: 2}
			}
			var rows []row
			var smallP99 time.Duration
			for _, b := range []backlog{small, huge} {
				r, p99, err := e.claimScale(ctx, b, smallP99)
				rows = append(rows, r...)
				if err != nil {
					return rows, fmt.Errorf("%s backlog: %w", b.name, err)
				}
				smallP99 = p99
			}
			return rows, nil
		},
	}
}

// claimScale fills the backlog, times claims on it and dispatches a fresh batch on top. smallP99
// is the small backlog's p99 (zero while measuring it).
func (e *env) claimScale(ctx context.Context, b backlog, smallP99 time.Duration) ([]row, time.Duration, error) {
	if err := e.resetBatches(ctx); err != nil {
		return nil, 0, err
	}
	started := time.Now()
	if _, err := e.db.Exec(ctx, `
		INSERT INTO requests (owner, model, url, body, deadline)
		SELECT 'owner-' || (g % $2), 'model-' || ((g / $2) % $3), '/v1/chat/completions',
		       convert_to('{"model":"model-' || ((g / $2) % $3) || '","messages":[{"role":"user","content":"hi ' || g || '"}]}', 'UTF8'),
		       now() + interval '23 hours' + g * interval '1 millisecond'
		FROM generate_series(0, $1 - 1) g`, b.pending, b.owners, b.models); err != nil {
		return nil, 0, fmt.Errorf("fill: %w", err)
	}
	for _, sql := range []string{"VACUUM ANALYZE requests", "VACUUM ANALYZE queues", "CHECKPOINT"} {
		if err := e.exec(ctx, sql); err != nil {
			return nil, 0, err
		}
	}
	fill := time.Since(started)
	e.log.Info("backlog filled", "backlog", b.label(), "took", fill.Round(time.Millisecond))

	times, err := e.timeClaims(ctx)
	if err != nil {
		return nil, 0, err
	}
	slices.Sort(times)
	p50, p99 := times[len(times)/2], times[(len(times)*99+99)/100-1]
	scenarioName := "claim-scale"
	rows := []row{
		{scenario: scenarioName, measure: b.label() + ": fill", result: seconds(fill.Round(time.Millisecond)),
			detail: "INSERT … SELECT generate_series, VACUUM ANALYZE, CHECKPOINT"},
		{scenario: scenarioName, measure: b.label() + ": claim of " + thousands(claimSize) + " p50", result: millisText(p50),
			detail: fmt.Sprintf("%d claims; fastest %s, slowest %s", len(times), millisText(times[0]), millisText(times[len(times)-1]))},
	}
	p99Row := row{scenario: scenarioName, measure: b.label() + ": claim p99", result: millisText(p99)}
	if smallP99 > 0 {
		ratio := float64(p99) / float64(smallP99)
		p99Row.target = "< " + millisText(claimMaxP99)
		p99Row.verdict = check(p99 < claimMaxP99)
		rows = append(rows, p99Row, row{scenario: scenarioName, measure: "claim p99, huge / small backlog",
			result: fmt.Sprintf("%.1f×", ratio), target: fmt.Sprintf("≤ %.0f×", claimMaxSlowdown), verdict: check(ratio <= claimMaxSlowdown)})
	} else {
		rows = append(rows, p99Row)
	}
	rate, err := e.freshBatchOnTop(ctx)
	if err != nil {
		return rows, p99, err
	}
	return append(rows, row{scenario: scenarioName, measure: b.label() + ": fresh batch on top",
		result: fmt.Sprintf("%s req/s", thousands(int64(rate))),
		detail: fmt.Sprintf("%s requests, another owner and model, create → completed", thousands(claimFreshLines))}), p99, nil
}

func millisText(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
}

// timeClaims times claimSamples claim rounds through db.ClaimRound, each rolled back. On these
// backlogs one round takes the whole claim.
func (e *env) timeClaims(ctx context.Context) ([]time.Duration, error) {
	pool, err := pgxpool.New(ctx, e.dsn)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	q := dbsqlc.New(pool)
	daemonID, err := q.DaemonRegister(ctx, dbsqlc.DaemonRegisterParams{Host: "volleybench", Pid: int32(os.Getpid())})
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	defer func() { _ = q.DaemonStop(context.WithoutCancel(ctx), daemonID) }()
	p := dbsqlc.RequestClaimParams{DaemonID: daemonID, DefaultLimit: claimLimit, MaxClaim: claimSize, FreshSeconds: 600}
	var times []time.Duration
	for i := range claimSamples + 1 {
		// A claim needs a fresh lease, and on a large backlog the claims outlast one.
		if _, err := q.DaemonHeartbeat(ctx, dbsqlc.DaemonHeartbeatParams{ID: daemonID}); err != nil {
			return nil, fmt.Errorf("heartbeat: %w", err)
		}
		start := time.Now()
		tx, err := pool.Begin(ctx)
		if err != nil {
			return nil, err
		}
		c, err := db.ClaimRound(ctx, dbsqlc.New(tx), p)
		took := time.Since(start)
		if rerr := tx.Rollback(ctx); rerr != nil && !errors.Is(rerr, pgx.ErrTxClosed) {
			return nil, rerr
		}
		if err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		}
		if len(c.Rows) != claimSize {
			return nil, fmt.Errorf("a claim took %d requests, want %d", len(c.Rows), claimSize)
		}
		if i > 0 { // the first one warms the connection and the plan cache
			times = append(times, took)
		}
	}
	return times, nil
}

// freshBatchOnTop dispatches a batch of claimFreshLines requests while the backlog waits too,
// and returns its rate from create to completed.
func (e *env) freshBatchOnTop(ctx context.Context) (rate float64, err error) {
	in, err := writeDispatchInput(e.workDir, "claim-scale", claimFreshLines)
	if err != nil {
		return 0, err
	}
	defer os.Remove(in.path)
	spec := dispatchSpec{name: "claim-scale", lines: claimFreshLines, concurrency: claimLimit, onTop: true}
	var fileID string
	defer func() {
		if fileID != "" {
			e.removeInputFile(ctx, fileID)
		}
	}()
	r, err := spec.runOnce(ctx, e, in, &fileID, claimLimit)
	if err != nil {
		return 0, err
	}
	return r.rate(), nil
}
