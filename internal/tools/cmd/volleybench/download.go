package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// Targets of the download scenario.
const (
	downloadMinRate = 200.0 // MB/s
	// downloadMaxRSSGrowth bounds what volley serve may grow by while it streams a file. A download
	// reads at most 1,000 result rows (4 MB) per query into one of two reused buffers, so a few
	// MB are expected; the 100,000-line output file is several times this bound, so a server holding
	// it whole would fail.
	downloadMaxRSSGrowth = 16_000_000
)

var downloadTarget = fmt.Sprintf("Downloads: at least %.0f MB/s for the output file of a 100,000-request batch, with "+
	"flat memory: `volley serve` grows by less than %.0f MB while it sends the file, checked against the worst run.",
	downloadMinRate, mb(downloadMaxRSSGrowth))

func downloadScenario() scenario {
	return scenario{
		name: "download",
		summary: fmt.Sprintf("`download`: the output file of `dispatch-zero-latency`, %s lines (%s under `-quick`); "+
			"run without it (`-only download`), the scenario first dispatches such a batch itself, untimed.",
			thousands(int64(zeroLatency.lines)), thousands(int64(zeroLatency.quickLines))),
		method:  downloadMethod,
		targets: []string{downloadTarget},
		run:     runDownload,
	}
}

// downloadRun is what one repetition measured.
type downloadRun struct {
	took      time.Duration
	rss, peak int64 // volley's VmRSS before the download, VmHWM after
}

func (r downloadRun) growth() int64 { return r.peak - r.rss }

func runDownload(ctx context.Context, e *env) ([]row, error) {
	const name = "download"
	if e.output == nil {
		e.log.Info("no output file from dispatch-zero-latency; dispatching a batch to download", "scenario", name)
		lines, conc := zeroLatency.size(e.quick)
		in, err := writeDispatchInput(e.workDir, name, lines)
		if err != nil {
			return nil, err
		}
		defer os.Remove(in.path)
		var fileID string
		_, err = zeroLatency.runOnce(ctx, e, in, &fileID, conc)
		if fileID != "" {
			e.removeInputFile(ctx, fileID)
		}
		if err != nil {
			return nil, fmt.Errorf("dispatch a batch to download: %w", err)
		}
	}
	out := *e.output
	// Statistics that know the batch's requests are completed, as autovacuum's analyze gathers
	// them within about a minute of the batch's updates.
	if err := e.exec(ctx, "ANALYZE requests"); err != nil {
		return nil, err
	}
	rows := []row{{
		scenario: name, measure: "input", result: fmt.Sprintf("%.1f MB, %s lines", mb(out.bytes), thousands(out.lines)),
		detail: fmt.Sprintf("%s B/line on average; batch_…_output.jsonl", thousands(out.bytes/max(1, out.lines))),
	}}
	var runs []downloadRun
	for i := range e.runs {
		r, err := downloadOnce(ctx, e, out)
		if err != nil {
			return append(rows, downloadRows(out, runs)...), fmt.Errorf("run %d: %w", i+1, err)
		}
		runs = append(runs, r)
		e.log.Info("run done", "scenario", name, "run", i+1, "took", r.took.Round(time.Millisecond),
			"MB_s", fmt.Sprintf("%.1f", mbPerSec(out.bytes, r.took)), "rss_growth_MB", fmt.Sprintf("%.1f", mb(r.growth())),
			"load", loadAverage())
	}
	return append(rows, downloadRows(out, runs)...), nil
}

// downloadOnce downloads the file from a fresh volley process and checks what arrived.
func downloadOnce(ctx context.Context, e *env, out batchOutput) (r downloadRun, err error) {
	if err := e.exec(ctx, "CHECKPOINT"); err != nil {
		return r, err
	}
	p, err := e.startVolley(ctx, "VOLLEY_DISPATCH=false")
	if err != nil {
		return r, err
	}
	defer func() {
		if serr := p.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	c := newAPIClient(p.baseURL, e.apiKey)
	if err := c.ping(ctx); err != nil {
		return r, err
	}
	before, err := readMemory(p.pid())
	if err != nil {
		return r, err
	}
	start := time.Now()
	d, err := c.downloadFile(ctx, out.fileID)
	r.took = time.Since(start)
	if err != nil {
		return r, err
	}
	after, err := readMemory(p.pid())
	if err != nil {
		return r, err
	}
	r.rss, r.peak = before.rss, after.peak
	if d.bytes != out.bytes || d.lines != out.lines {
		return r, fmt.Errorf("downloaded %d bytes, %d lines; the file has %d bytes, %d lines", d.bytes, d.lines, out.bytes, out.lines)
	}
	return r, checkOutputLine(d.first)
}

// checkOutputLine makes sure the first line of an output file is the answer to request r-1.
func checkOutputLine(line []byte) error {
	var l struct {
		CustomID string `json:"custom_id"`
		Response *struct {
			StatusCode int             `json:"status_code"`
			Body       json.RawMessage `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(line, &l); err != nil {
		return fmt.Errorf("first output line %q: %w", truncate(string(line), 300), err)
	}
	if l.CustomID != "r-1" || l.Response == nil || l.Response.StatusCode != 200 || len(l.Response.Body) == 0 {
		return fmt.Errorf("first output line is not a 200 answer to r-1: %s", truncate(string(line), 300))
	}
	return nil
}

func downloadRows(out batchOutput, runs []downloadRun) []row {
	if len(runs) == 0 {
		return nil
	}
	const name = "download"
	took := collect(runs, func(r downloadRun) time.Duration { return r.took })
	rate := mbPerSec(out.bytes, median(took))
	rss := collect(runs, func(r downloadRun) int64 { return r.rss })
	peak := collect(runs, func(r downloadRun) int64 { return r.peak })
	growth := collect(runs, downloadRun.growth)
	worst := maxOf(growth)
	rateRuns := make([]float64, len(runs))
	for i, t := range took {
		rateRuns[i] = mbPerSec(out.bytes, t)
	}
	return []row{
		{scenario: name, measure: "Volley download", result: fmt.Sprintf("%.1f MB/s, %s lines/s", rate, thousands(int64(float64(out.lines)/median(took).Seconds()))),
			target: fmt.Sprintf("≥ %.0f MB/s", downloadMinRate), verdict: check(rate >= downloadMinRate),
			detail: fmt.Sprintf("runs: %s (%s MB/s)", durations(took), mbRates(rateRuns))},
		{scenario: name, measure: "server RSS before → peak", result: fmt.Sprintf("%.1f → %.1f MB", mb(median(rss)), mb(median(peak))),
			detail: "runs: " + pairs(rss, peak)},
		{scenario: name, measure: "server RSS growth", result: fmt.Sprintf("%.1f MB", mb(median(growth))),
			target: fmt.Sprintf("< %.0f MB", mb(downloadMaxRSSGrowth)), verdict: check(worst < downloadMaxRSSGrowth),
			detail: fmt.Sprintf("worst run %.1f MB (checked against the target), for a %.1f MB file", mb(worst), mb(out.bytes))},
	}
}

func mbRates(rs []float64) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%.0f", r)
	}
	return s
}

func pairs(before, after []int64) string {
	s := ""
	for i := range before {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%.1f → %.1f", mb(before[i]), mb(after[i]))
	}
	return s + " MB"
}
