package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// scrapeEvery is how often metrics-scrape reads /metrics: ten times a second, far more often than
// any Prometheus is set to.
const scrapeEvery = 100 * time.Millisecond

// scrapeMinRatio is the least share of its throughput the dispatcher may keep while scraped.
const scrapeMinRatio = 0.98

// metricsScrapeScenario measures what being scraped costs the dispatcher: the zero-latency batch,
// alternately without and with a reader of /metrics every 100 ms, and the ratio of the rates.
func metricsScrapeScenario() scenario {
	spec := dispatchSpec{name: "metrics-scrape", lines: 50_000, quickLines: 1_000, concurrency: 4_000, quickConcurrency: 4_000}
	return scenario{
		name: spec.name,
		summary: fmt.Sprintf("`%s`: one batch of %s zero-latency requests (%s under `-quick`) at `VOLLEY_MODEL_CONCURRENCY=%d`, "+
			"run alternately as is and while `GET /metrics` (on the API port) is read every %s to the end.",
			spec.name, thousands(int64(spec.lines)), thousands(int64(spec.quickLines)), spec.concurrency, scrapeEvery),
		method: dispatchMethod,
		targets: []string{fmt.Sprintf("Metrics: scraped ten times a second, the dispatcher keeps at least %.0f%% of its "+
			"throughput (medians of the runs with and without, same run).", 100*scrapeMinRatio)},
		run: func(ctx context.Context, e *env) ([]row, error) {
			scraped := spec
			scraped.scrape = scrapeEvery
			plain, with, err := e.alternate(ctx, spec, scraped, func(r dispatchRun) error {
				if r.scrapeErrors > 0 {
					return fmt.Errorf("%d of %d scrapes failed", r.scrapeErrors, r.scrapes)
				}
				return nil
			})
			if len(plain) == 0 || len(with) == 0 {
				return nil, err
			}
			p := median(collect(plain, dispatchRun.rate))
			w := median(collect(with, dispatchRun.rate))
			ratio := w / p
			return []row{
				{scenario: spec.name, measure: "not scraped", result: fmt.Sprintf("%s req/s", thousands(int64(p))),
					detail: "runs: " + ratesText(collect(plain, dispatchRun.rate)) + " req/s"},
				{scenario: spec.name, measure: fmt.Sprintf("scraped every %s", scrapeEvery), result: fmt.Sprintf("%s req/s", thousands(int64(w))),
					detail: fmt.Sprintf("runs: %s req/s; scrapes %s, failed %s", ratesText(collect(with, dispatchRun.rate)),
						joinInts(collect(with, func(r dispatchRun) int64 { return r.scrapes })),
						joinInts(collect(with, func(r dispatchRun) int64 { return r.scrapeErrors })))},
				{scenario: spec.name, measure: "scraped / not scraped", result: fmt.Sprintf("%.3f", ratio),
					target: fmt.Sprintf("≥ %.2f", scrapeMinRatio), verdict: check(ratio >= scrapeMinRatio),
					detail: "medians, same run"},
			}, err
		},
	}
}

// scrapeMetrics reads url every interval until ctx ends, and returns how many reads there were and
// how many failed (an error, a status other than 200, or a body without Volley's metrics).
func scrapeMetrics(ctx context.Context, url string, interval time.Duration) [2]int64 {
	client := &http.Client{Timeout: 10 * time.Second}
	var n, failed int64
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return [2]int64{n, failed}
		case <-t.C:
		}
		n++
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				failed++
			}
			continue
		}
		body, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("volley_build_info")) {
			failed++
		}
	}
}
