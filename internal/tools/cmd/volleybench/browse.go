package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Targets of browse-requests.
const (
	browsePageSize = 100
	browseReaders  = 2
	// browseEvery paces each reader: a page every 100 ms, faster than a person reads.
	browseEvery = 100 * time.Millisecond
	// browseMaxP99 bounds the p99 of a page read while the batch runs.
	browseMaxP99 = 50 * time.Millisecond
	// browseMinRatio is the least share of its throughput the dispatcher keeps while read.
	browseMinRatio = 0.98
)

// browseResult is what the browsers of one run read.
type browseResult struct {
	pages []time.Duration
	err   error
}

// browseRequests has n clients page through the batch's requests, a page of 100 every 100 ms each,
// in input order from the first to the last and then from the first again, until ctx ends, and
// returns each page's time.
func browseRequests(ctx context.Context, c *apiClient, batchID string, n int) browseResult {
	var mu sync.Mutex
	var res browseResult
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			after := ""
			tick := time.NewTicker(browseEvery)
			defer tick.Stop()
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				q := url.Values{"limit": {fmt.Sprint(browsePageSize)}}
				if after != "" {
					q.Set("after", after)
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/batches/"+url.PathEscape(batchID)+"/requests?"+q.Encode(), nil)
				if err != nil {
					return
				}
				var page struct {
					Data    []struct{} `json:"data"`
					LastID  *string    `json:"last_id"`
					HasMore bool       `json:"has_more"`
				}
				began := time.Now()
				err = c.do(req, &page)
				took := time.Since(began)
				mu.Lock()
				switch {
				case err != nil && ctx.Err() == nil && res.err == nil:
					res.err = err
				case err == nil:
					res.pages = append(res.pages, took)
				}
				mu.Unlock()
				if err != nil {
					return
				}
				after = ""
				if page.HasMore && page.LastID != nil {
					after = *page.LastID
				}
			}
		})
	}
	wg.Wait()
	return res
}

// browseScenario measures reading a running batch's requests page by page: the pages' times, and
// the dispatch rate of the same batch with and without the readers.
func browseScenario() scenario {
	spec := dispatchSpec{name: "browse-requests", lines: 100_000, quickLines: 2_000, concurrency: 256, quickConcurrency: 256,
		latency: 20 * time.Millisecond}
	return scenario{
		name: spec.name,
		summary: fmt.Sprintf("`%s`: one batch of %s requests (%s under `-quick`), mockllm at %s, `VOLLEY_MODEL_CONCURRENCY=%d`, "+
			"run alternately as is and while %d clients page through `GET /v1/batches/{id}/requests` (a page of %d "+
			"every %s each, from the first to the last, deep pages included, then again) until it completes.",
			spec.name, thousands(int64(spec.lines)), thousands(int64(spec.quickLines)), seconds(spec.latency), spec.concurrency,
			browseReaders, browsePageSize, browseEvery),
		method: dispatchMethod,
		targets: []string{fmt.Sprintf("Browsing a running batch: page p99 under %s, and the dispatcher keeps at least %.0f%% "+
			"of its throughput while read (medians, same run).", browseMaxP99, 100*browseMinRatio)},
		run: func(ctx context.Context, e *env) ([]row, error) {
			read := spec
			read.browsers = browseReaders
			plain, with, err := e.alternate(ctx, spec, read, func(r dispatchRun) error {
				if r.pageErr != nil {
					return r.pageErr
				}
				if len(r.pages) == 0 {
					return errors.New("the readers read no page")
				}
				return nil
			})
			if len(plain) == 0 || len(with) == 0 {
				return nil, err
			}
			var pages []time.Duration
			for _, r := range with {
				pages = append(pages, r.pages...)
			}
			p50, p99 := percentile(pages, 0.50), percentile(pages, 0.99)
			pr := median(collect(plain, dispatchRun.rate))
			wr := median(collect(with, dispatchRun.rate))
			return []row{
				{scenario: spec.name, measure: "page of 100, p50", result: millisText(p50),
					detail: fmt.Sprintf("%s pages over %d runs", thousands(int64(len(pages))), len(with))},
				{scenario: spec.name, measure: "page of 100, p99", result: millisText(p99),
					target: "< " + millisText(browseMaxP99), verdict: check(p99 < browseMaxP99)},
				{scenario: spec.name, measure: "dispatch, not read", result: fmt.Sprintf("%s req/s", thousands(int64(pr))),
					detail: "runs: " + ratesText(collect(plain, dispatchRun.rate)) + " req/s"},
				{scenario: spec.name, measure: "dispatch, read", result: fmt.Sprintf("%s req/s", thousands(int64(wr))),
					detail: "runs: " + ratesText(collect(with, dispatchRun.rate)) + " req/s"},
				{scenario: spec.name, measure: "read / not read", result: fmt.Sprintf("%.3f", wr/pr),
					target: fmt.Sprintf("≥ %.2f", browseMinRatio), verdict: check(wr/pr >= browseMinRatio), detail: "medians, same run"},
			}, err
		},
	}
}

// percentile is the q-quantile of ds (nearest rank).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
