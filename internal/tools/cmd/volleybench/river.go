package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// riverVersion is the River release internal/tools/riverbench is pinned to (its go.mod).
const riverVersion = "v0.51.2"

// riverDatabase is the database of the cluster River's tables live in.
const riverDatabase = "river"

// riverLines is the number of requests (jobs) of the River comparisons.
const riverLines = 20_000

// riverFetchCooldown is River's FetchCooldown in every run: its minimum, where River is fastest.
// At its default of 100 ms a client fetches at most MaxWorkers jobs ten times a second (about
// 2,400 jobs/s at 256 workers on this machine, no-op or not).
const riverFetchCooldown = time.Millisecond

// riverMinRatio is the least Volley rate over River's, doing the same job at the same limit.
const riverMinRatio = 1.0

// buildRiver compiles internal/tools/riverbench, a module of its own, into the work directory.
func (e *env) buildRiver(ctx context.Context) error {
	if e.riverBin != "" {
		return nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	bin := filepath.Join(e.workDir, "bin", "riverbench")
	e.log.Info("building riverbench", "river", riverVersion)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(root, "internal", "tools", "riverbench")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build internal/tools/riverbench: %w\n%s", err, out)
	}
	if err := e.exec(ctx, "CREATE DATABASE "+riverDatabase); err != nil {
		return err
	}
	e.riverBin = bin
	return nil
}

// riverRun is one run of riverbench.
type riverRun struct {
	Jobs          int     `json:"jobs"`
	Seconds       float64 `json:"seconds"`
	InsertSeconds float64 `json:"insert_seconds"`
	Completed     int     `json:"completed"`
	calls         int64
	peakConc      int64
}

func (r riverRun) rate() float64 { return float64(r.Jobs) / r.Seconds }

// runRiver works the input file with River: mode call (POST each body to a fresh mockllm and
// record the answer) or noop, with workers workers.
func (e *env) runRiver(ctx context.Context, in dispatchInput, mode string, workers int) (r riverRun, err error) {
	if err := e.buildRiver(ctx); err != nil {
		return r, err
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
	if err := e.exec(ctx, "CHECKPOINT"); err != nil {
		return r, err
	}
	cmd := exec.CommandContext(ctx, e.riverBin, "-dsn", e.cluster.DSN(riverDatabase), "-upstream", mock.baseURL,
		"-input", in.path, "-mode", mode, "-workers", strconv.Itoa(workers),
		"-fetch-cooldown", riverFetchCooldown.String())
	cmd.Env = os.Environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return r, fmt.Errorf("riverbench -mode %s: %w\n%s", mode, err, truncate(stderr.String(), 2000))
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return r, fmt.Errorf("riverbench output %q: %w", stdout.String(), err)
	}
	st, err := mock.stats(ctx)
	if err != nil {
		return r, err
	}
	r.calls, r.peakConc = st.TotalCalls, st.Models[dispatchModel].PeakConcurrency
	if mode == "call" && r.calls < int64(in.lines) {
		return r, fmt.Errorf("mockllm saw %d calls for %d River jobs", r.calls, in.lines)
	}
	if r.Completed != in.lines {
		return r, fmt.Errorf("River completed %d of %d jobs", r.Completed, in.lines)
	}
	return r, nil
}

// riverCallScenario compares Volley and River working the same requests at one limit: Volley as
// one batch at VOLLEY_MODEL_CONCURRENCY=limit, River with MaxWorkers=limit, alternating runs.
func riverCallScenario(limit int) scenario {
	name := fmt.Sprintf("river-call-%d", limit)
	spec := dispatchSpec{name: name, lines: riverLines, quickLines: 1_000, concurrency: limit, quickConcurrency: limit}
	return scenario{
		name: name,
		summary: fmt.Sprintf("`%s`: %s zero-latency chat requests, limit %d: Volley as one batch with "+
			"`VOLLEY_MODEL_CONCURRENCY=%d`, and River %s (`internal/tools/riverbench`) working the same lines as jobs "+
			"that each POST the body to mockllm and record the answer with `river.RecordOutput`, %d workers.",
			name, thousands(riverLines), limit, limit, riverVersion, limit),
		method:  riverMethod,
		targets: []string{riverTarget},
		run: func(ctx context.Context, e *env) ([]row, error) {
			return e.compareRiver(ctx, spec, "call", limit)
		},
	}
}

// riverNoopScenario measures River working no-op jobs: the queue's own ceiling.
func riverNoopScenario() scenario {
	const workers = 256
	spec := dispatchSpec{name: "river-noop", lines: riverLines, quickLines: 1_000, concurrency: workers, quickConcurrency: workers}
	return scenario{
		name: "river-noop",
		summary: fmt.Sprintf("`river-noop`: River %s working %s jobs that do nothing, %d workers: the queue's own "+
			"ceiling; Volley's row is its rate at limit %d (measured again in this scenario).",
			riverVersion, thousands(riverLines), workers, workers),
		method: riverMethod,
		run: func(ctx context.Context, e *env) ([]row, error) {
			return e.compareRiver(ctx, spec, "noop", workers)
		},
	}
}

// compareRiver runs Volley (a batch of spec's size at the limit) and River (mode, limit workers)
// alternately and reports both rates and their ratio.
func (e *env) compareRiver(ctx context.Context, spec dispatchSpec, mode string, limit int) ([]row, error) {
	lines, _ := spec.size(e.quick)
	in, err := writeDispatchInput(e.workDir, spec.name, lines)
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
	var volley []dispatchRun
	var river []riverRun
	riverMeasure := "River, jobs that POST and record the answer"
	if mode == "noop" {
		riverMeasure = "River, no-op jobs"
	}
	rows := func() []row {
		if len(volley) == 0 || len(river) == 0 {
			return nil
		}
		vr := collect(volley, dispatchRun.rate)
		rr := collect(river, riverRun.rate)
		v := float64(lines) / median(collect(volley, func(r dispatchRun) time.Duration { return r.total })).Seconds()
		rv := float64(lines) / median(collect(river, func(r riverRun) float64 { return r.Seconds }))
		ratio := v / rv
		out := []row{
			{scenario: spec.name, measure: riverMeasure, result: fmt.Sprintf("%s jobs/s", thousands(int64(rv))),
				detail: fmt.Sprintf("runs: %s jobs/s; insert %s; %d workers; mock peak concurrency %s",
					ratesText(rr), secondsList(collect(river, func(r riverRun) float64 { return r.InsertSeconds })),
					limit, joinInts(collect(river, func(r riverRun) int64 { return r.peakConc })))},
			{scenario: spec.name, measure: fmt.Sprintf("Volley, one batch at limit %d", limit),
				result: fmt.Sprintf("%s req/s", thousands(int64(v))),
				detail: fmt.Sprintf("runs: %s req/s; mock peak concurrency %s", ratesText(vr),
					joinInts(collect(volley, func(r dispatchRun) int64 { return r.peakConc })))},
		}
		ratioRow := row{scenario: spec.name, measure: "Volley / River", result: fmt.Sprintf("%.2f×", ratio),
			detail: "medians, same run, same cluster, same mockllm"}
		if mode == "call" {
			ratioRow.target = fmt.Sprintf("≥ %.1f×", riverMinRatio)
			ratioRow.verdict = check(ratio >= riverMinRatio)
		}
		return append(out, ratioRow)
	}
	for i := range e.runs {
		v, err := spec.runOnce(ctx, e, in, &fileID, limit)
		if err != nil {
			return rows(), fmt.Errorf("Volley run %d: %w", i+1, err)
		}
		volley = append(volley, v)
		r, err := e.runRiver(ctx, in, mode, limit)
		if err != nil {
			return rows(), fmt.Errorf("River run %d: %w", i+1, err)
		}
		river = append(river, r)
		e.log.Info("run done", "scenario", spec.name, "run", i+1, "volley_req_s", fmt.Sprintf("%.0f", v.rate()),
			"river_jobs_s", fmt.Sprintf("%.0f", r.rate()), "load", loadAverage())
	}
	return rows(), nil
}

func secondsList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f s", x)
	}
	return strings.Join(parts, ", ")
}

const riverMethod = "River: `internal/tools/riverbench`, a module of its own pinned to River " + riverVersion +
	" (so Volley's `go.mod` does not carry it), built by the benchmark, runs River's migrations in a database " +
	"`river` of the same cluster and empties `river_job` before each run. Its client has River's defaults but " +
	"`MaxWorkers` and `FetchCooldown`, set to River's minimum of 1 ms (at its default of 100 ms a client fetches at " +
	"most `MaxWorkers` jobs ten times a second: about 2,400 jobs/s at 256 workers on this machine, no-op or not). The clock starts before `InsertManyFast` of every job (inserting is timed, as Volley's batch " +
	"create is) and stops when the client's subscription has seen every job completed; the table must then count " +
	"every job completed, each with its recorded output. Volley's runs are those of the dispatch scenarios, on " +
	"the same input file; Volley and River alternate, each with a fresh mockllm at zero latency."

var riverTarget = fmt.Sprintf("River comparison: Volley, from create to completed, at least %.1f× the rate of River "+
	"doing the same job (POST each request, record the answer) at the same limit, in the same run.", riverMinRatio)
