package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Settings and targets of adaptive.
const (
	// adaptiveCapacity is how many calls mockllm serves at once; it refuses the rest with 429.
	adaptiveCapacity = 50
	// adaptiveCeiling is the configured limit, far above what the upstream serves.
	adaptiveCeiling = 400
	adaptiveLatency = 50 * time.Millisecond
	// adaptiveMinIdeal is the least share of the ideal rate (capacity / latency) an adaptive run
	// reaches.
	adaptiveMinIdeal = 0.90
)

// adaptiveRoute routes the benchmark's model to the mock at the ceiling, adapting or not. Retries
// are many and quick for both, so that refused calls come back soon and none runs out of
// attempts: what differs is how often the upstream is asked beyond its capacity.
func adaptiveRoute(adaptive bool) func(string, int) string {
	return func(url string, conc int) string {
		extra := ""
		if adaptive {
			extra = "\n    adaptive: {}"
		}
		return fmt.Sprintf("upstreams:\n  mock:\n    url: %s\nmodels:\n  - name: %s\n    upstream: mock\n    concurrency: %d%s\n"+
			"retry:\n  max_attempts: 100\n  base_delay: 20ms\n  max_delay: 200ms\n", url, dispatchModel, conc, extra)
	}
}

// adaptiveScenario dispatches one batch against an upstream that serves fewer calls than the
// configured limit, at the fixed limit and with the limit adapting, then with two replicas
// adapting one shared limit.
func adaptiveScenario() scenario {
	mockArgs := []string{"-capacity", fmt.Sprint(adaptiveCapacity), "-capacity-mode", "reject", "-retry-after", "0"}
	fixed := dispatchSpec{name: "adaptive", lines: 20_000, quickLines: 500, concurrency: adaptiveCeiling, quickConcurrency: adaptiveCeiling,
		latency: adaptiveLatency, mockArgs: mockArgs, route: adaptiveRoute(false)}
	adaptive := fixed
	adaptive.route = adaptiveRoute(true)
	shared := adaptive
	shared.replicas = 2
	ideal := float64(adaptiveCapacity) / adaptiveLatency.Seconds()
	return scenario{
		name: fixed.name,
		summary: fmt.Sprintf("`%s`: one batch of %s requests (%s under `-quick`) against mockllm serving %d calls at once "+
			"(`-capacity %d -capacity-mode reject`: it answers 429 at once above that, without Retry-After) after %s each; "+
			"the model's configured limit is %d. Run alternately at that fixed limit and with `adaptive: {}` (the "+
			"defaults: min 1, max %d, decrease 0.9, increase 1), then once adapting with two `volley serve` processes. "+
			"Both retry up to 100 times, 20 ms to 200 ms apart, so that no request runs out of attempts. The ideal is "+
			"%s req/s (%d / %s).",
			fixed.name, thousands(int64(fixed.lines)), thousands(int64(fixed.quickLines)), adaptiveCapacity, adaptiveCapacity,
			seconds(adaptiveLatency), adaptiveCeiling, adaptiveCeiling, thousands(int64(ideal)), adaptiveCapacity, seconds(adaptiveLatency)),
		method: dispatchMethod,
		targets: []string{fmt.Sprintf("Adaptive limits: adapting, the batch reaches at least %.0f%% of the ideal rate, and "+
			"the upstream refuses far fewer calls than at the fixed limit (medians, same run).", 100*adaptiveMinIdeal)},
		run: func(ctx context.Context, e *env) ([]row, error) {
			plain, with, err := e.alternate(ctx, fixed, adaptive, func(dispatchRun) error { return nil })
			if len(plain) == 0 || len(with) == 0 {
				return nil, err
			}
			rows := adaptiveRows(fixed.name, plain, with, ideal)
			if err != nil {
				return rows, err
			}
			two, err := shared.runOnceFresh(ctx, e, true)
			if err != nil {
				return rows, fmt.Errorf("two replicas: %w", err)
			}
			rows = append(rows,
				row{scenario: fixed.name, measure: "adapting, 2 replicas", result: fmt.Sprintf("%s req/s", thousands(int64(two.rate()))),
					detail: fmt.Sprintf("%.0f%% of the ideal; %s calls refused; shared effective limit %d after the batch",
						100*two.rate()/ideal, thousands(two.overCapacity), two.effective)})
			// The pipeline's own ceiling: a fixed limit set to exactly what the upstream serves.
			oracle := fixed
			oracle.concurrency, oracle.quickConcurrency = adaptiveCapacity, adaptiveCapacity
			best, err := oracle.runOnceFresh(ctx, e, false)
			if err != nil {
				return rows, fmt.Errorf("fixed at the capacity: %w", err)
			}
			rows = append(rows,
				row{scenario: fixed.name, measure: fmt.Sprintf("fixed limit of %d (the capacity, known)", adaptiveCapacity),
					result: fmt.Sprintf("%s req/s", thousands(int64(best.rate()))),
					detail: fmt.Sprintf("%.0f%% of the ideal; %s calls refused: what dispatch reaches with the limit right from the start",
						100*best.rate()/ideal, thousands(best.overCapacity))})
			return rows, nil
		},
	}
}

func adaptiveRows(name string, plain, with []dispatchRun, ideal float64) []row {
	pr, wr := median(collect(plain, dispatchRun.rate)), median(collect(with, dispatchRun.rate))
	refused := func(r dispatchRun) float64 { return float64(r.overCapacity) }
	pRefused, wRefused := median(collect(plain, refused)), median(collect(with, refused))
	effective := func(r dispatchRun) float64 { return float64(r.effective) }
	return []row{
		{scenario: name, measure: "fixed limit", result: fmt.Sprintf("%s req/s", thousands(int64(pr))),
			detail: fmt.Sprintf("runs: %s req/s; %.0f%% of the ideal", ratesText(collect(plain, dispatchRun.rate)), 100*pr/ideal)},
		{scenario: name, measure: "fixed limit: calls refused", result: thousands(int64(pRefused)),
			detail: "runs: " + countsText(collect(plain, refused))},
		{scenario: name, measure: "adapting", result: fmt.Sprintf("%s req/s", thousands(int64(wr))),
			detail: "runs: " + ratesText(collect(with, dispatchRun.rate)) + " req/s"},
		{scenario: name, measure: "adapting / ideal", result: fmt.Sprintf("%.1f%%", 100*wr/ideal),
			target: fmt.Sprintf("≥ %.0f%%", 100*adaptiveMinIdeal), verdict: check(wr/ideal >= adaptiveMinIdeal),
			detail: fmt.Sprintf("ideal %s req/s", thousands(int64(ideal)))},
		{scenario: name, measure: "adapting: calls refused", result: thousands(int64(wRefused)),
			detail: "runs: " + countsText(collect(with, refused))},
		{scenario: name, measure: "refused, adapting / fixed", result: fmt.Sprintf("%.3f", wRefused/max(pRefused, 1)),
			target: "far below 1", verdict: check(wRefused*10 <= pRefused), detail: "medians; the check asks for a tenth or less"},
		{scenario: name, measure: "effective limit after the batch", result: fmt.Sprintf("%.0f", median(collect(with, effective))),
			detail: fmt.Sprintf("runs: %s; the upstream serves %d", countsText(collect(with, effective)), adaptiveCapacity)},
	}
}

func countsText(vs []float64) string {
	out := ""
	for i, v := range vs {
		if i > 0 {
			out += ", "
		}
		out += thousands(int64(v))
	}
	return out
}

// runOnceFresh uploads the spec's input and dispatches it once; adapts says the model's limit
// adapts, so that it has an effective limit after the batch.
func (s dispatchSpec) runOnceFresh(ctx context.Context, e *env, adapts bool) (dispatchRun, error) {
	lines, conc := s.size(e.quick)
	in, err := writeDispatchInput(e.workDir, s.name+"-fresh", lines)
	if err != nil {
		return dispatchRun{}, err
	}
	defer os.Remove(in.path)
	var fileID string
	defer func() {
		if fileID != "" {
			e.removeInputFile(ctx, fileID)
		}
	}()
	r, err := s.runOnce(ctx, e, in, &fileID, conc)
	if err == nil && adapts && r.effective == 0 {
		err = errors.New("no effective limit after the batch")
	}
	return r, err
}
