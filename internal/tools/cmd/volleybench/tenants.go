package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// The tenants scenario: one backlog, from one owner or spread over many.
const (
	tenantBatches     = 400
	tenantBatchLines  = 300
	tenantLimit       = 256
	tenantMinRatio    = 0.8
	tenantCreateConns = 4
)

func tenantsScenario() scenario {
	total := tenantBatches * tenantBatchLines
	return scenario{
		name: "tenants",
		summary: fmt.Sprintf("`tenants`: %s pending zero-latency requests (%d batches of %d; %d of %d under `-quick`) at "+
			"`VOLLEY_MODEL_CONCURRENCY=%d`, all from one owner, then the same backlog spread over %d owners, one "+
			"batch each.", thousands(int64(total)), tenantBatches, tenantBatchLines, 40, tenantBatchLines,
			tenantLimit, tenantBatches),
		method: "Tenants: every run starts from empty `requests` and `batches`; a `volley serve` with " +
			"`VOLLEY_DISPATCH=false` creates the batches from one uploaded 300-line file and stops. The batches are then " +
			"given their owners in SQL (`bench` for all of them, or one owner per batch, with the same `UPDATE` of " +
			"`batches` and `requests` either way, so both backlogs have the same rows), then " +
			"`VACUUM ANALYZE requests` and `CHECKPOINT`. A fresh mockllm at zero latency and a fresh `volley serve` dispatch " +
			"the backlog; the clock runs from the first upstream call the mock counts to the moment every batch reads " +
			"`completed` (polled in SQL every 20 ms). Every request must be completed, none failed. The two cases alternate.",
		targets: []string{fmt.Sprintf("Tenants: the backlog spread over %d owners dispatches at least %.1f× as fast as "+
			"from one owner.", tenantBatches, tenantMinRatio)},
		run: func(ctx context.Context, e *env) ([]row, error) { return e.tenants(ctx) },
	}
}

type tenantRun struct {
	requests int
	total    time.Duration // first upstream call → every batch completed
	peakConc int64
}

func (r tenantRun) rate() float64 { return float64(r.requests) / r.total.Seconds() }

func (e *env) tenants(ctx context.Context) ([]row, error) {
	batches := tenantBatches
	if e.quick {
		batches = 40
	}
	in, err := writeDispatchInput(e.workDir, "tenants", tenantBatchLines)
	if err != nil {
		return nil, err
	}
	defer os.Remove(in.path)
	var fileID string
	defer func() {
		if fileID != "" {
			e.removeInputFile(ctx, fileID)
		}
	}()
	var one, many []tenantRun
	rows := func() []row {
		if len(one) == 0 || len(many) == 0 {
			return nil
		}
		r1 := float64(one[0].requests) / median(collect(one, func(r tenantRun) time.Duration { return r.total })).Seconds()
		rn := float64(many[0].requests) / median(collect(many, func(r tenantRun) time.Duration { return r.total })).Seconds()
		return []row{
			{scenario: "tenants", measure: "one owner", result: fmt.Sprintf("%s req/s", thousands(int64(r1))),
				detail: fmt.Sprintf("runs: %s req/s; mock peak concurrency %s", ratesText(collect(one, tenantRun.rate)),
					joinInts(collect(one, func(r tenantRun) int64 { return r.peakConc })))},
			{scenario: "tenants", measure: fmt.Sprintf("%d owners", batches), result: fmt.Sprintf("%s req/s", thousands(int64(rn))),
				detail: fmt.Sprintf("runs: %s req/s; mock peak concurrency %s", ratesText(collect(many, tenantRun.rate)),
					joinInts(collect(many, func(r tenantRun) int64 { return r.peakConc })))},
			{scenario: "tenants", measure: "spread / one owner", result: fmt.Sprintf("%.2f×", rn/r1),
				target: fmt.Sprintf("≥ %.1f×", tenantMinRatio), verdict: check(rn/r1 >= tenantMinRatio), detail: "medians"},
		}
	}
	for i := range e.runs {
		for _, spread := range []bool{false, true} {
			r, err := e.tenantRun(ctx, in, &fileID, batches, spread)
			if err != nil {
				return rows(), fmt.Errorf("run %d (spread %v): %w", i+1, spread, err)
			}
			e.logStatements(ctx, fmt.Sprintf("tenants %d spread=%v", i+1, spread))
			if spread {
				many = append(many, r)
			} else {
				one = append(one, r)
			}
			e.log.Info("run done", "scenario", "tenants", "run", i+1, "spread", spread, "total", r.total.Round(time.Millisecond),
				"req_s", fmt.Sprintf("%.0f", r.rate()), "load", loadAverage())
		}
	}
	return rows(), nil
}

// tenantRun queues batches copies of the input file's batch, gives them one owner or one each,
// and times their dispatch.
func (e *env) tenantRun(ctx context.Context, in dispatchInput, fileID *string, batches int, spread bool) (r tenantRun, err error) {
	r.requests = batches * in.lines
	if err := e.resetBatches(ctx); err != nil {
		return r, err
	}
	if err := e.queueBatches(ctx, in, fileID, batches); err != nil {
		return r, err
	}
	owner := "'bench'"
	if spread {
		owner = "'tenant-' || row_number() OVER (ORDER BY id)"
	}
	for _, sql := range []string{
		"WITH o AS (SELECT id, " + owner + " AS owner FROM batches) UPDATE batches b SET owner = o.owner FROM o WHERE b.id = o.id",
		"UPDATE requests r SET owner = b.owner FROM batches b WHERE r.batch_id = b.id",
		"VACUUM ANALYZE requests",
		"CHECKPOINT",
	} {
		if err := e.exec(ctx, sql); err != nil {
			return r, err
		}
	}
	mock, err := e.startMock(ctx, 0)
	if err != nil {
		return r, err
	}
	defer func() {
		if serr := mock.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	runCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	watchCtx, stopWatch := context.WithCancel(runCtx)
	defer stopWatch()
	firstCall := mock.watchFirstCall(watchCtx, firstCallPoll)
	p, err := e.startVolley(ctx,
		"VOLLEY_UPSTREAM_URL="+mock.upstreamURL(),
		"VOLLEY_MODEL_CONCURRENCY="+strconv.Itoa(tenantLimit),
	)
	if err != nil {
		return r, err
	}
	defer func() {
		if serr := p.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	tick := time.NewTicker(batchPoll)
	defer tick.Stop()
	for {
		var done, completed, failed int64
		if err := e.db.QueryRow(runCtx, "SELECT count(*) FILTER (WHERE status = 'completed'), coalesce(sum(completed), 0), "+
			"coalesce(sum(failed), 0) FROM batches").Scan(&done, &completed, &failed); err != nil {
			return r, fmt.Errorf("poll batches: %w", err)
		}
		if failed > 0 {
			return r, fmt.Errorf("%d requests failed", failed)
		}
		if done == int64(batches) {
			if completed != int64(r.requests) {
				return r, fmt.Errorf("%d requests completed, want %d", completed, r.requests)
			}
			break
		}
		select {
		case <-runCtx.Done():
			return r, fmt.Errorf("%d of %d batches completed after 10 minutes", done, batches)
		case <-tick.C:
		}
	}
	end := time.Now()
	stopWatch()
	first := <-firstCall
	if first.IsZero() {
		return r, errors.New("the first upstream call was not seen")
	}
	r.total = end.Sub(first)
	st, err := mock.stats(ctx)
	if err != nil {
		return r, err
	}
	r.peakConc = st.Models[dispatchModel].PeakConcurrency
	if st.TotalCalls < int64(r.requests) {
		return r, fmt.Errorf("mockllm saw %d calls for %d requests", st.TotalCalls, r.requests)
	}
	return r, nil
}

// queueBatches creates batches batches of the input file with a volley serve that does not
// dispatch, uploading the file first if fileID is empty.
func (e *env) queueBatches(ctx context.Context, in dispatchInput, fileID *string, batches int) (err error) {
	// The upstream is never called: it only makes the model known to the create's checks.
	p, err := e.startVolley(ctx, "VOLLEY_DISPATCH=false", "VOLLEY_UPSTREAM_URL=http://127.0.0.1:9/v1")
	if err != nil {
		return err
	}
	defer func() {
		if serr := p.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	c := newAPIClient(p.baseURL, e.apiKey)
	if *fileID == "" {
		f, err := c.uploadFile(ctx, in.path)
		if err != nil {
			return fmt.Errorf("upload input: %w", err)
		}
		*fileID = f.ID
	}
	var wg sync.WaitGroup
	errs := make([]error, tenantCreateConns)
	next := make(chan struct{}, batches)
	for range batches {
		next <- struct{}{}
	}
	close(next)
	for w := range tenantCreateConns {
		wg.Go(func() {
			for range next {
				if _, err := c.createBatch(ctx, *fileID); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
