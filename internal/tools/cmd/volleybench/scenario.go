package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// scenario is one benchmark. To add one, write a function returning a scenario and list it in
// scenarios.
type scenario struct {
	name string
	// summary says, in Markdown, what this scenario's input is; it goes into the report.
	summary string
	// method explains, in Markdown, how the scenario measures. Scenarios of one kind share it, and
	// the report prints each distinct method once.
	method string
	// targets are the Markdown paragraphs explaining the scenario's targets; the report prints
	// each distinct one once.
	targets []string
	// run measures on the shared environment and returns the table rows. Rows made before an
	// error are reported along with it.
	run func(ctx context.Context, e *env) ([]row, error)
}

// scenarios are every benchmark, in the order they run. The uploads come first, as they empty
// file_lines; download reads the output file dispatch-zero-latency leaves behind, which
// dispatch-2s-latency removes.
var scenarios = []scenario{
	uploadScenario(uploadSpec{
		name: "upload-100mb", lines: 50_000, lineBytes: 2_000, quickLines: 400,
	}),
	uploadScenario(uploadSpec{
		name: "upload-200mb", lines: 50_000, lineBytes: 4_000, quickLines: 400,
		maxFileBytes: 210_000_000, // Volley's default limit is 200,000,000 bytes
	}),
	zeroLatencyScenario(),
	downloadScenario(),
	latencyScenario(),
	shortLatencyScenario(),
	riverCallScenario(256),
	riverCallScenario(4_000),
	riverNoopScenario(),
	tenantsScenario(),
	claimScaleScenario(),
	replicasScenario(1),
	replicasScenario(2),
	replicasScenario(3),
	bigAnswersScenario(),
	metricsScrapeScenario(),
	browseScenario(),
	adaptiveScenario(),
}

func scenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}

// selectScenarios returns the scenarios named in only, in their usual order; none means all.
func selectScenarios(only []string) ([]scenario, error) {
	if len(only) == 0 {
		return scenarios, nil
	}
	for _, name := range only {
		if !slices.Contains(scenarioNames(), name) {
			return nil, fmt.Errorf("-only: unknown scenario %q (known: %s)", name, strings.Join(scenarioNames(), ", "))
		}
	}
	var out []scenario
	for _, s := range scenarios {
		if slices.Contains(only, s.name) {
			out = append(out, s)
		}
	}
	return out, nil
}

// verdict is the outcome of checking a row against its target.
type verdict string

const (
	noTarget verdict = ""
	pass     verdict = "PASS"
	fail     verdict = "FAIL"
)

func check(ok bool) verdict {
	if ok {
		return pass
	}
	return fail
}

// row is one line of the results table: one measure of one scenario.
type row struct {
	scenario string
	measure  string
	result   string
	target   string  // e.g. "≥ 60%"; empty when the row is informational
	verdict  verdict // against target
	detail   string  // e.g. the individual runs
}

func errorRow(scenario string, err error) row {
	return row{scenario: scenario, measure: "error", result: err.Error(), verdict: fail}
}
