package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Targets of the dispatch scenarios.
const (
	// zeroLatencyMinRate is the least rate of a batch against an upstream that answers at once.
	zeroLatencyMinRate = 10_000
	// latencyMinShare is the least share of the Little's-law throughput (concurrency / latency)
	// a batch should reach when the upstream is slow.
	latencyMinShare = 0.90
)

const (
	// firstCallPoll is how often mockllm's stats are read to see the first upstream call.
	firstCallPoll = time.Millisecond
	// batchPoll is how often the batch is read while it runs.
	batchPoll = 20 * time.Millisecond
	// dispatchMaxFileLines is VOLLEY_MAX_FILE_LINES for the dispatch scenarios, so that 100,000
	// requests fit in one file and one batch (Volley's default is 50,000, as OpenAI's).
	dispatchMaxFileLines = 100_000
	// dispatchModel is the model of every request; Volley routes it to mockllm.
	dispatchModel = "bench"
)

// dispatchSpec describes a dispatch scenario: one batch of small chat requests sent to mockllm.
type dispatchSpec struct {
	name string
	// lines and concurrency (VOLLEY_MODEL_CONCURRENCY), and their values under -quick.
	lines, quickLines             int
	concurrency, quickConcurrency int
	// latency is mockllm's latency for every call.
	latency time.Duration
	// onTop keeps whatever the queue holds: the batch is dispatched on top of it.
	onTop bool
	// replicas is the number of volley serve processes dispatching (0 means 1); the batch is
	// created through the first.
	replicas int
	// mockArgs and volleyEnv are extra mockllm flags and volley settings.
	mockArgs, volleyEnv []string
	// budget is VOLLEY_MAX_INFLIGHT_BYTES when set: peak RSS is checked against it.
	budget int64
	// scrape, when set, is how often GET /metrics is read during the run, as a Prometheus would.
	scrape time.Duration
	// browsers, when set, is how many clients page through the batch's requests while it runs.
	browsers int
	// route, when set, is a YAML configuration (VOLLEY_CONFIG) routing the model to the mock,
	// given the mock's base URL and the concurrency; otherwise VOLLEY_UPSTREAM_URL and
	// VOLLEY_MODEL_CONCURRENCY alone route it.
	route func(upstreamURL string, concurrency int) string
}

func (s dispatchSpec) size(quick bool) (lines, concurrency int) {
	if quick {
		return s.quickLines, s.quickConcurrency
	}
	return s.lines, s.concurrency
}

// zeroLatency is the spec of dispatch-zero-latency, also used by download when it has no output
// file to read.
var zeroLatency = dispatchSpec{
	name: "dispatch-zero-latency", lines: 100_000, quickLines: 1_000,
	concurrency: 4_000, quickConcurrency: 4_000,
}

func zeroLatencyScenario() scenario {
	s := zeroLatency
	return scenario{
		name: s.name,
		summary: fmt.Sprintf("`%s`: one batch of %s requests (%s under `-quick`) against mockllm answering at once, "+
			"with `VOLLEY_MODEL_CONCURRENCY=%d`. A request holds a slot of that limit from its claim to the commit of "+
			"its result, so a claim may take only the slots left by the previous claims' unrecorded requests; at this "+
			"limit every claim can take the dispatcher's full 1,000 requests, so what is measured is the dispatcher, "+
			"not the limit. Its output file is the input of `download`.",
			s.name, thousands(int64(s.lines)), thousands(int64(s.quickLines)), s.concurrency),
		method:  dispatchMethod,
		targets: []string{zeroLatencyTarget},
		run:     s.run,
	}
}

// budgetBaseline is what volley serve may hold beyond its byte budget: its own start-up size, the
// pool, buffers and the garbage collector's headroom.
const budgetBaseline = 128_000_000

// bigAnswersScenario is 2,000 calls in flight answering 1 MB each, under a byte budget.
func bigAnswersScenario() scenario {
	const budget = 256 << 20
	s := dispatchSpec{
		name: "big-answers", lines: 2_000, quickLines: 100, concurrency: 2_000, quickConcurrency: 100,
		latency: time.Second, mockArgs: []string{"-pad-bytes", "1000000"},
		volleyEnv: []string{"VOLLEY_MAX_INFLIGHT_BYTES=" + strconv.Itoa(budget)}, budget: budget,
	}
	return scenario{
		name: s.name,
		summary: fmt.Sprintf("`%s`: one batch of %s requests (%s under `-quick`), `VOLLEY_MODEL_CONCURRENCY=%d`, "+
			"mockllm answering each after 1 s with 1 MB of text (`-pad-bytes 1000000`), and "+
			"`VOLLEY_MAX_INFLIGHT_BYTES=%d` (256 MiB): without the budget all %s answers (2 GB) could be held at once.",
			s.name, thousands(int64(s.lines)), thousands(int64(s.quickLines)), s.concurrency, budget, thousands(int64(s.lines))),
		method:  dispatchMethod,
		targets: []string{"Byte budget: the worst run's peak RSS of `volley serve` at most the budget plus a fixed baseline of 128 MB."},
		run:     s.run,
	}
}

// replicasScenario is zero-latency dispatch by n volley serve processes sharing one database.
func replicasScenario(n int) scenario {
	s := dispatchSpec{
		name: fmt.Sprintf("replicas-%d", n), lines: 50_000, quickLines: 1_000,
		concurrency: 4_000, quickConcurrency: 4_000, replicas: n,
	}
	return scenario{
		name: s.name,
		summary: fmt.Sprintf("`%s`: one batch of %s requests (%s under `-quick`) against mockllm answering at once, "+
			"`VOLLEY_MODEL_CONCURRENCY=%d`, dispatched by %d `volley serve` process(es) on the same database; the "+
			"batch is created through the first, whose peak RSS is reported.",
			s.name, thousands(int64(s.lines)), thousands(int64(s.quickLines)), s.concurrency, n),
		method: dispatchMethod,
		run:    s.run,
	}
}

func latencyScenario() scenario {
	return latencyScenarioOf(dispatchSpec{
		name: "dispatch-2s-latency", lines: 20_000, quickLines: 400,
		concurrency: 2_000, quickConcurrency: 200, latency: 2 * time.Second,
	})
}

// shortLatencyScenario is a slow upstream at a small limit: each slot turns over fifty times a
// second, so the time between an answer and the slot's next call shows.
func shortLatencyScenario() scenario {
	return latencyScenarioOf(dispatchSpec{
		name: "dispatch-20ms-latency", lines: 20_000, quickLines: 400,
		concurrency: 256, quickConcurrency: 256, latency: 20 * time.Millisecond,
	})
}

func latencyScenarioOf(s dispatchSpec) scenario {
	return scenario{
		name: s.name,
		summary: fmt.Sprintf("`%s`: one batch of %s requests (%s under `-quick`) against mockllm answering each "+
			"after %s, with `VOLLEY_MODEL_CONCURRENCY=%d` (%d under `-quick`): at best %s req/s by Little's law, "+
			"%s for the batch.",
			s.name, thousands(int64(s.lines)), thousands(int64(s.quickLines)), seconds(s.latency),
			s.concurrency, s.quickConcurrency,
			thousands(int64(s.idealRate(s.concurrency))), seconds(s.idealWall(s.lines, s.concurrency))),
		method:  dispatchMethod,
		targets: []string{latencyTarget},
		run:     s.run,
	}
}

const dispatchMethod = "Dispatch: the input is a generated JSONL file of small chat-completion requests " +
	"(`{\"custom_id\":\"r-N\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"bench\"," +
	"\"messages\":[{\"role\":\"user\",\"content\":\"hi N\"}],\"max_tokens\":16}}`, about 160 bytes each), " +
	"uploaded once per scenario and made into one batch per run.\n\n" +
	"- Every run starts from empty `requests` and `batches` tables (truncated, the previous runs' output files " +
	"removed, then a `CHECKPOINT`), a fresh `mockllm -addr 127.0.0.1:0 -no-auth -latency L` and a fresh " +
	"`volley serve` with `VOLLEY_UPSTREAM_URL` set to the mock, `VOLLEY_MODEL_CONCURRENCY` as the scenario says and " +
	"`VOLLEY_MAX_FILE_LINES=100000` (Volley's default is 50,000), so that 100,000 requests are one file and one " +
	"batch; `VOLLEY_MAX_FILE_BYTES` keeps its default of 200 MB, far above the files' size.\n" +
	"- The clock starts when `POST /v1/batches` is sent (creating the batch inserts its requests, so that is " +
	"timed) and stops when a `GET /v1/batches/{id}`, sent every 20 ms, answers `completed`, when the output file " +
	"exists; throughput is requests over that time.\n" +
	"- The first upstream call is seen by reading mockllm's `GET /stats` every 1 ms, from just before the create " +
	"until `total_calls` is above zero, and timed from the same start.\n" +
	"- As soon as the create has answered, `ANALYZE requests` runs, inside the timed window (it takes about " +
	"0.1 s), so that for most of the run the claims are planned with statistics that count the batch's pending " +
	"requests, as on a long-lived `requests` table, which autovacuum analyzes again within about a minute of a " +
	"change as large as a batch. Left to autovacuum alone, whether and when such statistics arrive during a run " +
	"is chance, and the plans of the claim and record statements, with the throughput, change when they do. " +
	"The first claims may still be planned before they arrive: the spread of the runs shows how much that " +
	"matters.\n" +
	"- At the end the batch must count every request completed and none failed, and the mock must have received " +
	"at least as many calls as there are requests; calls beyond that are reported as duplicates. Peak RSS is " +
	"`VmHWM` of the `volley serve` process, which served only that run; the mock's peak concurrency is the most " +
	"calls it had in flight for the model."

const downloadMethod = "Download: `GET /v1/files/{id}/content` of the 100,000-line output file of " +
	"`dispatch-zero-latency` (of its last run), read to the end by a client that keeps nothing but counts bytes " +
	"and lines.\n\n" +
	"- `ANALYZE requests` runs once before the downloads, for the reason given for the dispatch scenarios: the " +
	"statistics then know that the batch's requests are completed.\n" +
	"- Each download gets a fresh `volley serve` (with `VOLLEY_DISPATCH=false`: there is nothing to dispatch) " +
	"after a `CHECKPOINT`. RSS before is `VmRSS` after one authenticated request, peak is `VmHWM` after the " +
	"download, growth is the difference.\n" +
	"- The time runs from sending the request to reading the last byte; the rate is in MB of the file per second. " +
	"The bytes and lines read must match the file's, and its first line must be the 200 answer to `r-1`."

var (
	zeroLatencyTarget = fmt.Sprintf("Zero-latency dispatch: at least %s req/s from create to completed. Volley, "+
		"mockllm and PostgreSQL share the cores, and each request is claimed, sent over HTTP, answered, rendered and "+
		"recorded with its result. The `river-*` scenarios compare Volley with River in the same run.",
		thousands(zeroLatencyMinRate))
	latencyTarget = fmt.Sprintf("Dispatch against a slow upstream (2 s, 20 ms): throughput at least %.0f%% of the Little's-law ideal, "+
		"the concurrency limit divided by the latency, and the mock's peak concurrency equal to the limit: the "+
		"dispatcher keeps every slot busy, and never more.", 100*latencyMinShare)
)

func (s dispatchSpec) idealRate(concurrency int) float64 {
	return float64(concurrency) / s.latency.Seconds()
}

func (s dispatchSpec) idealWall(lines, concurrency int) time.Duration {
	return time.Duration(float64(lines) / s.idealRate(concurrency) * float64(time.Second))
}

// dispatchInput is a generated input file of a dispatch scenario.
type dispatchInput struct {
	path  string
	bytes int64
	lines int
}

// writeDispatchInput writes lines small chat requests into dir.
func writeDispatchInput(dir, name string, lines int) (dispatchInput, error) {
	in := dispatchInput{path: filepath.Join(dir, name+".jsonl"), lines: lines}
	f, err := os.Create(in.path)
	if err != nil {
		return in, fmt.Errorf("create input file: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	var b []byte
	for i := 1; i <= lines; i++ {
		n := strconv.Itoa(i)
		b = append(b[:0], `{"custom_id":"r-`...)
		b = append(b, n...)
		b = append(b, `","method":"POST","url":"`+benchURL+`","body":{"model":"`+dispatchModel+`","messages":[{"role":"user","content":"hi `...)
		b = append(b, n...)
		b = append(b, `"}],"max_tokens":16}}`+"\n"...)
		if _, err := w.Write(b); err != nil {
			return in, fmt.Errorf("write input file: %w", err)
		}
		in.bytes += int64(len(b))
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close()); err != nil {
		return in, fmt.Errorf("write input file: %w", err)
	}
	return in, nil
}

// batchOutput is a completed batch's output file.
type batchOutput struct {
	fileID string
	bytes  int64
	lines  int64
}

// dispatchRun is what one repetition measured.
type dispatchRun struct {
	lines       int
	total       time.Duration // create sent → completed seen
	create      time.Duration // create sent → its response
	firstCall   time.Duration // create sent → first upstream call seen
	counted     time.Duration // create sent → every request counted (completed + failed = total)
	calls       int64         // mockllm's total_calls
	peakConc    int64         // mockllm's peak concurrency for the model
	rss, hwm    int64         // volley's VmRSS before the create, VmHWM after completion
	output      batchOutput
	loadAtStart string
	// scrapes and scrapeErrors count the reads of /metrics while the batch ran (spec.scrape).
	scrapes, scrapeErrors int64
	// pages are the times of the pages the browsers read (spec.browsers); pageErr is the first
	// page read that failed.
	pages   []time.Duration
	pageErr error
	// overCapacity is how many calls mockllm refused for capacity; effective is the model's
	// effective limit after the batch when its limit adapts (0 otherwise).
	overCapacity int64
	effective    int
}

func (r dispatchRun) rate() float64 { return float64(r.lines) / r.total.Seconds() }

func (s dispatchSpec) run(ctx context.Context, e *env) ([]row, error) {
	lines, conc := s.size(e.quick)
	in, err := writeDispatchInput(e.workDir, s.name, lines)
	if err != nil {
		return nil, err
	}
	defer os.Remove(in.path)
	inputRow := row{scenario: s.name, measure: "input",
		result: fmt.Sprintf("%s requests, %.1f MB, one batch", thousands(int64(lines)), mb(in.bytes)),
		detail: fmt.Sprintf("VOLLEY_MODEL_CONCURRENCY=%d, VOLLEY_MAX_FILE_LINES=%d, mock latency %s", conc, dispatchMaxFileLines, seconds(s.latency))}

	var fileID string
	defer func() {
		if fileID != "" {
			e.removeInputFile(ctx, fileID)
		}
	}()
	var runs []dispatchRun
	for i := range e.runs {
		r, err := s.runOnce(ctx, e, in, &fileID, conc)
		if err != nil {
			return append([]row{inputRow}, s.rows(runs, conc)...), fmt.Errorf("run %d: %w", i+1, err)
		}
		runs = append(runs, r)
		e.logStatements(ctx, fmt.Sprintf("%s %d", s.name, i+1))
		e.log.Info("run done", "scenario", s.name, "run", i+1, "total", r.total.Round(time.Millisecond),
			"req_s", fmt.Sprintf("%.0f", r.rate()), "create", r.create.Round(time.Millisecond),
			"first_call", r.firstCall.Round(time.Millisecond), "counted", r.counted.Round(time.Millisecond),
			"calls", r.calls, "peak_concurrency", r.peakConc, "volley_hwm_MB", fmt.Sprintf("%.1f", mb(r.hwm)),
			"load_at_start", r.loadAtStart, "load", loadAverage())
	}
	return append([]row{inputRow}, s.rows(runs, conc)...), nil
}

// runOnce dispatches one batch of the input file (uploading it first if fileID is empty) with a
// fresh mockllm and volley, and leaves the batch's output file in e.output.
func (s dispatchSpec) runOnce(ctx context.Context, e *env, in dispatchInput, fileID *string, conc int) (r dispatchRun, err error) {
	r.lines = in.lines
	if !s.onTop {
		if err := e.resetBatches(ctx); err != nil {
			return r, err
		}
	}
	mock, err := e.startMock(ctx, s.latency, s.mockArgs...)
	if err != nil {
		return r, err
	}
	defer func() {
		if serr := mock.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	volleyEnv := append(slices.Clone(s.volleyEnv),
		"VOLLEY_UPSTREAM_URL="+mock.upstreamURL(),
		"VOLLEY_MODEL_CONCURRENCY="+strconv.Itoa(conc),
		"VOLLEY_MAX_FILE_LINES="+strconv.Itoa(dispatchMaxFileLines),
	)
	if s.route != nil {
		path := filepath.Join(e.workDir, s.name+".yaml")
		if err := os.WriteFile(path, []byte(s.route(mock.upstreamURL(), conc)), 0o600); err != nil {
			return r, err
		}
		volleyEnv = append(volleyEnv, "VOLLEY_CONFIG="+path)
	}
	p, err := e.startVolley(ctx, volleyEnv...)
	if err != nil {
		return r, err
	}
	defer func() {
		if serr := p.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	for range max(s.replicas, 1) - 1 {
		other, err := e.startVolley(ctx, volleyEnv...)
		if err != nil {
			return r, err
		}
		defer func() {
			if serr := other.stop(); serr != nil {
				err = errors.Join(err, serr)
			}
		}()
	}
	c := newAPIClient(p.baseURL, e.apiKey)
	if *fileID == "" {
		f, err := c.uploadFile(ctx, in.path)
		if err != nil {
			return r, fmt.Errorf("upload input: %w", err)
		}
		if f.Bytes != in.bytes {
			return r, fmt.Errorf("upload input: Volley reports %d bytes, the file has %d", f.Bytes, in.bytes)
		}
		*fileID = f.ID
	} else if err := c.ping(ctx); err != nil {
		return r, err
	}
	if err := e.exec(ctx, "CHECKPOINT"); err != nil {
		return r, err
	}
	before, err := readMemory(p.pid())
	if err != nil {
		return r, err
	}
	r.rss = before.rss
	r.loadAtStart = loadAverage()

	limit := max(10*time.Minute, 5*s.idealWall(in.lines, conc))
	runCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	watchCtx, stopWatch := context.WithCancel(runCtx)
	defer stopWatch()
	firstCall := mock.watchFirstCall(watchCtx, firstCallPoll)
	scraped := make(chan [2]int64, 1)
	if s.scrape > 0 {
		go func() { scraped <- scrapeMetrics(watchCtx, strings.TrimSuffix(p.baseURL, "/v1")+"/metrics", s.scrape) }()
	} else {
		scraped <- [2]int64{}
	}

	start := time.Now()
	b, err := c.createBatch(runCtx, *fileID)
	r.create = time.Since(start)
	if err != nil {
		return r, err
	}
	browsed := make(chan browseResult, 1)
	if s.browsers > 0 {
		go func() { browsed <- browseRequests(watchCtx, c, b.ID, s.browsers) }()
	} else {
		browsed <- browseResult{}
	}
	// Statistics that count the batch's pending requests, as autovacuum's analyze gathers them
	// within a minute of such a change (and as a long-lived requests table always has them):
	// left to autovacuum, whether the claims of a run are planned with or without them is chance.
	if !s.onTop {
		if err := e.exec(runCtx, "ANALYZE requests"); err != nil {
			return r, err
		}
	}
	tick := time.NewTicker(batchPoll)
	defer tick.Stop()
	for !b.terminal() {
		select {
		case <-runCtx.Done():
			return r, fmt.Errorf("batch %s not finished after %s: %s, %d of %d completed, %d failed",
				b.ID, limit, b.Status, b.RequestCounts.Completed, b.RequestCounts.Total, b.RequestCounts.Failed)
		case <-tick.C:
		}
		if b, err = c.getBatch(runCtx, b.ID); err != nil {
			return r, err
		}
		if r.counted == 0 && b.RequestCounts.Total > 0 && b.RequestCounts.Completed+b.RequestCounts.Failed >= b.RequestCounts.Total {
			r.counted = time.Since(start)
		}
	}
	r.total = time.Since(start)
	stopWatch()
	sc := <-scraped
	r.scrapes, r.scrapeErrors = sc[0], sc[1]
	br := <-browsed
	r.pages, r.pageErr = br.pages, br.err
	if t := <-firstCall; !t.IsZero() {
		r.firstCall = t.Sub(start)
	}

	after, err := readMemory(p.pid())
	if err != nil {
		return r, err
	}
	r.hwm = after.peak
	st, err := mock.stats(ctx)
	if err != nil {
		return r, err
	}
	r.calls, r.peakConc, r.overCapacity = st.TotalCalls, st.Models[dispatchModel].PeakConcurrency, st.OverCapacity
	if s.route != nil {
		if r.effective, err = c.effectiveLimit(ctx, dispatchModel); err != nil {
			return r, err
		}
	}

	n := int64(in.lines)
	switch {
	case b.Status != "completed":
		return r, fmt.Errorf("batch %s ended %s (%d completed, %d failed)", b.ID, b.Status, b.RequestCounts.Completed, b.RequestCounts.Failed)
	case b.RequestCounts.Total != n || b.RequestCounts.Completed != n || b.RequestCounts.Failed != 0:
		return r, fmt.Errorf("batch %s: total %d, completed %d, failed %d; want %d completed", b.ID,
			b.RequestCounts.Total, b.RequestCounts.Completed, b.RequestCounts.Failed, n)
	case r.calls < n:
		return r, fmt.Errorf("mockllm saw %d calls for %d completed requests", r.calls, n)
	case r.firstCall == 0:
		return r, errors.New("the first upstream call was not seen")
	case b.OutputFileID == nil:
		return r, fmt.Errorf("batch %s completed without an output file", b.ID)
	}
	r.output = batchOutput{fileID: *b.OutputFileID}
	if err := e.db.QueryRow(ctx, "SELECT bytes, line_count FROM files WHERE id = $1", r.output.fileID).
		Scan(&r.output.bytes, &r.output.lines); err != nil {
		return r, fmt.Errorf("output file %s: %w", r.output.fileID, err)
	}
	e.output = &r.output
	return r, nil
}

// resetBatches empties requests and batches and removes the batches' output and error files, so
// that a run starts from the same state as the others, then forces a checkpoint. No volley
// process may be running.
func (e *env) resetBatches(ctx context.Context) error {
	e.output = nil
	for _, sql := range []string{
		// queues counts requests by triggers that TRUNCATE does not fire: it goes with them, or
		// the next scenario's claims would chase a backlog that is no longer there.
		"TRUNCATE requests, batches, queues",
		"DELETE FROM files WHERE batch_id IS NOT NULL",
		"CHECKPOINT",
	} {
		if err := e.exec(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}

// removeInputFile removes an input file and its lines once a scenario is done with it.
func (e *env) removeInputFile(ctx context.Context, fileID string) {
	for _, sql := range []string{"DELETE FROM file_lines WHERE file_id = $1", "DELETE FROM files WHERE id = $1"} {
		if _, err := e.db.Exec(ctx, sql, fileID); err != nil {
			e.log.Warn("remove input file", "file_id", fileID, "error", err.Error())
			return
		}
	}
}

// rows turns the runs into the scenario's table rows.
func (s dispatchSpec) rows(runs []dispatchRun, conc int) []row {
	if len(runs) == 0 {
		return nil
	}
	n := runs[0].lines
	total := collect(runs, func(r dispatchRun) time.Duration { return r.total })
	rates := collect(runs, dispatchRun.rate)
	first := collect(runs, func(r dispatchRun) time.Duration { return r.firstCall })
	create := collect(runs, func(r dispatchRun) time.Duration { return r.create })
	hwm := collect(runs, func(r dispatchRun) int64 { return r.hwm })
	rss := collect(runs, func(r dispatchRun) int64 { return r.rss })
	peaks := collect(runs, func(r dispatchRun) int64 { return r.peakConc })
	dups := collect(runs, func(r dispatchRun) int64 { return r.calls - int64(r.lines) })
	rate := float64(n) / median(total).Seconds()
	loads := make([]string, len(runs))
	for i, r := range runs {
		loads[i], _, _ = strings.Cut(r.loadAtStart, " ")
	}
	loadText := "1-min load average at each run's start: " + strings.Join(loads, ", ")

	out := []row{{
		scenario: s.name, measure: "create → completed", result: fmt.Sprintf("%.2f s", median(total).Seconds()),
		detail: "runs: " + durations(total) + "; " + loadText,
	}}
	if s.latency == 0 {
		tput := row{
			scenario: s.name, measure: "dispatch throughput", result: fmt.Sprintf("%s req/s", thousands(int64(rate))),
			detail: fmt.Sprintf("runs: %s req/s", ratesText(rates)),
		}
		if s.replicas == 0 {
			tput.target = fmt.Sprintf("≥ %s req/s", thousands(zeroLatencyMinRate))
			tput.verdict = check(rate >= zeroLatencyMinRate)
		}
		out = append(out, tput)
	} else {
		ideal := s.idealRate(conc)
		share := rate / ideal
		out = append(out,
			row{scenario: s.name, measure: "dispatch throughput", result: fmt.Sprintf("%s req/s", thousands(int64(rate))),
				detail: fmt.Sprintf("runs: %s req/s", ratesText(rates))},
			row{scenario: s.name, measure: "throughput / Little's-law ideal", result: fmt.Sprintf("%.1f%%", 100*share),
				target: ifBudget(s.budget, fmt.Sprintf("≥ %.0f%%", 100*latencyMinShare)), verdict: verdict(ifBudget(s.budget, string(check(share >= latencyMinShare)))),
				detail: fmt.Sprintf("ideal %s req/s (%s / %s), %s for the batch", thousands(int64(ideal)),
					thousands(int64(conc)), seconds(s.latency), seconds(s.idealWall(n, conc)))},
		)
	}
	out = append(out,
		row{scenario: s.name, measure: "create → first upstream call", result: millis([]time.Duration{median(first)}),
			detail: fmt.Sprintf("runs: %s; the create's response took %s", millis(first), millis(create))},
	)
	peakRow := row{scenario: s.name, measure: "mock peak concurrency", result: thousands(median(peaks)),
		detail: fmt.Sprintf("runs: %s; limit %s", joinInts(peaks), thousands(int64(conc)))}
	if s.latency > 0 && s.budget == 0 {
		worst := slicesMinMax(peaks)
		peakRow.target = "= " + thousands(int64(conc))
		peakRow.verdict = check(worst[0] == int64(conc) && worst[1] == int64(conc))
	}
	out = append(out, peakRow,
		row{scenario: s.name, measure: "upstream calls", result: fmt.Sprintf("%s (%s duplicates)", thousands(int64(n)+median(dups)), thousands(median(dups))),
			detail: fmt.Sprintf("every run: %s completed, 0 failed; duplicates per run: %s", thousands(int64(n)), joinInts(dups))},
		row{scenario: s.name, measure: "server peak RSS", result: fmt.Sprintf("%.1f MB", mb(median(hwm))),
			detail: fmt.Sprintf("VmHWM; runs: %s MB; %.1f MB before the create", mbList(hwm), mb(median(rss)))},
	)
	if s.budget > 0 {
		worst := slicesMinMax(hwm)[1]
		limit := s.budget + budgetBaseline
		out = append(out, row{scenario: s.name, measure: "worst peak RSS / budget + baseline",
			result: fmt.Sprintf("%.1f MB / %.1f MB", mb(worst), mb(limit)), target: "≤ 1", verdict: check(worst <= limit),
			detail: fmt.Sprintf("VOLLEY_MAX_INFLIGHT_BYTES=%d, baseline %.0f MB", s.budget, mb(budgetBaseline))})
	}
	return out
}

// ifBudget is text, or nothing for a scenario under a byte budget, which holds fewer calls in
// flight than the limit on purpose.
func ifBudget(budget int64, text string) string {
	if budget > 0 {
		return ""
	}
	return text
}

// seconds formats d as "2 s", "20.5 s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

func millis(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = thousands(d.Round(time.Millisecond).Milliseconds()) + " ms"
	}
	return strings.Join(parts, ", ")
}

func ratesText(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = thousands(int64(r))
	}
	return strings.Join(parts, ", ")
}

func joinInts(xs []int64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = thousands(x)
	}
	return strings.Join(parts, ", ")
}

func mbList(xs []int64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1f", mb(x))
	}
	return strings.Join(parts, ", ")
}

func slicesMinMax(xs []int64) [2]int64 {
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return [2]int64{lo, hi}
}
