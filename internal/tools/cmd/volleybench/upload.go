package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Targets of the upload scenarios.
const (
	uploadMinRatio     = 0.60       // Volley's throughput over the ceiling's
	uploadMaxRSSGrowth = 64_000_000 // bytes the server may grow by during one upload, whatever its size
)

// uploadSpec describes an upload scenario's input file.
type uploadSpec struct {
	name       string
	lines      int // requests in the file
	lineBytes  int // average line length
	quickLines int // requests in the file under -quick
	// maxFileBytes is VOLLEY_MAX_FILE_BYTES, when Volley's default limit is too small.
	maxFileBytes int64
}

// uploadMethod is how every upload scenario measures.
const uploadMethod = "Uploads: the input is a generated JSONL file of chat-completion requests (varied text with some " +
	"UTF-8 and JSON escapes; the same file every time), uploaded with a streaming `multipart/form-data` " +
	"`POST /v1/files` (`purpose=batch` first, then the file, sent chunked from disk through a pipe). The time runs " +
	"from sending the request to reading the whole response. The ceiling is psql's `\\copy " + ceilingTable +
	" (…) FROM 'file' WITH (FORMAT binary)` of the very rows Volley stores for that file (the columns of " +
	"`file_lines`, read from the database), in the binary COPY format pgx's `CopyFrom` sends, into a table made " +
	"`LIKE file_lines INCLUDING ALL`: PostgreSQL's own cost of storing the upload, with no parsing, no checks and " +
	"no HTTP. The COPY file is generated before timing; psql's start-up and connection are timed. Both rates are " +
	"in MB of JSONL per second.\n\n" +
	"- Server RSS before is `VmRSS` after start-up and one authenticated request; peak is `VmHWM` after the " +
	"response; growth is the difference.\n" +
	"- Before every timed upload and every timed `\\copy`, `file_lines` and the ceiling table are truncated and a " +
	"`CHECKPOINT` is forced, so each run starts from an empty table and pays only for its own writes: WAL, " +
	"flushed at commit, and dirty pages evicted from shared buffers while it runs.\n" +
	"- Volley and the ceiling alternate (Volley, ceiling, Volley, …), so a change in the machine's load touches both. " +
	"After each upload the stored byte and line counts are checked and the file is deleted with " +
	"`DELETE /v1/files/{id}`. After the first of each, a hash of every stored column but `file_id`, row by row, " +
	"is compared between Volley's rows and the ceiling's, so both are known to store the same data."

// uploadTargets explain the upload scenarios' targets.
var uploadTargets = []string{
	fmt.Sprintf("Upload throughput: Volley at least %.0f%% of the ceiling's (medians). Volley parses and checks "+
		"every line (JSON syntax, `custom_id` uniqueness, `method`, `url`, `body.model`) and receives the file over HTTP "+
		"as multipart; the ceiling does neither, so some gap is expected, but most of the time should go to PostgreSQL.", 100*uploadMinRatio),
	fmt.Sprintf("Upload memory: the RSS growth of `volley serve` during one upload below %.0f MB whatever the file's "+
		"size, checked against the worst run. The upload streams: a line buffer and COPY batches of about 64 KB, "+
		"not the file, should be in memory.", mb(uploadMaxRSSGrowth)),
}

// uploadScenario uploads one generated file to Volley and loads the same rows with psql's \copy,
// alternately, runs times each.
func uploadScenario(s uploadSpec) scenario {
	summary := fmt.Sprintf("`%s`: %s requests of about %s bytes each, about %.0f MB (%s under `-quick`)",
		s.name, thousands(int64(s.lines)), thousands(int64(s.lineBytes)), mb(int64(s.lines*s.lineBytes)), thousands(int64(s.quickLines)))
	if s.maxFileBytes > 0 {
		summary += fmt.Sprintf("; Volley runs with `VOLLEY_MAX_FILE_BYTES=%d`, its default limit being 200,000,000 bytes", s.maxFileBytes)
	}
	return scenario{name: s.name, summary: summary + ".", method: uploadMethod, targets: uploadTargets, run: s.run}
}

// uploadRun is what one repetition measured.
type uploadRun struct {
	volley  time.Duration
	ceiling time.Duration
	rss     int64 // the server's VmRSS just before the upload
	peak    int64 // its VmHWM just after
	// stored fingerprints what Volley stored, on the first run only (see fingerprint).
	stored string
}

func (r uploadRun) growth() int64 { return r.peak - r.rss }

func (s uploadSpec) run(ctx context.Context, e *env) ([]row, error) {
	lines := s.lines
	if e.quick {
		lines = s.quickLines
	}
	cols, err := e.ensureCeilingTable(ctx)
	if err != nil {
		return nil, err
	}
	e.log.Info("generating input", "scenario", s.name, "lines", lines, "line_bytes", s.lineBytes)
	d, err := generateDataset(ctx, e.workDir, s.name, lines, s.lineBytes, cols)
	if err != nil {
		return nil, fmt.Errorf("generate input: %w", err)
	}
	defer d.remove()
	e.log.Info("input ready", "scenario", s.name, "bytes", d.bytes, "lines", d.lines)

	var runs []uploadRun
	for i := range e.runs {
		r, err := s.runOnce(ctx, e, d, i == 0)
		if err != nil {
			return s.rows(d, runs), fmt.Errorf("run %d: %w", i+1, err)
		}
		runs = append(runs, r)
		e.log.Info("run done", "scenario", s.name, "run", i+1,
			"volley", r.volley.Round(time.Millisecond), "ceiling", r.ceiling.Round(time.Millisecond),
			"volley_MB_s", fmt.Sprintf("%.1f", mbPerSec(d.bytes, r.volley)),
			"ceiling_MB_s", fmt.Sprintf("%.1f", mbPerSec(d.bytes, r.ceiling)),
			"rss_growth_MB", fmt.Sprintf("%.1f", mb(r.growth())), "load", loadAverage())
	}
	return s.rows(d, runs), nil
}

// runOnce uploads the file to a fresh volley process, then loads the ceiling. With compare, it
// also checks that both stored the same rows.
func (s uploadSpec) runOnce(ctx context.Context, e *env, d dataset, compare bool) (uploadRun, error) {
	r, err := s.volleyUpload(ctx, e, d, compare)
	if err != nil {
		return r, err
	}
	if err := e.quiesce(ctx, "file_lines", ceilingTable); err != nil {
		return r, err
	}
	if r.ceiling, err = e.ceilingCopy(ctx, d); err != nil {
		return r, fmt.Errorf("ceiling: %w", err)
	}
	if !compare {
		return r, nil
	}
	ceiling, err := e.fingerprint(ctx, ceilingTable, "", d.columns)
	if err != nil {
		return r, err
	}
	if ceiling != r.stored {
		return r, fmt.Errorf("the ceiling's rows differ from Volley's (fingerprints %s and %s): the comparison is not like for like", ceiling, r.stored)
	}
	return r, nil
}

// volleyUpload starts a volley process of its own (so that its peak RSS belongs to this upload
// alone), uploads the file, checks what was stored and deletes it.
func (s uploadSpec) volleyUpload(ctx context.Context, e *env, d dataset, fingerprint bool) (r uploadRun, err error) {
	var extra []string
	if s.maxFileBytes > 0 {
		extra = append(extra, "VOLLEY_MAX_FILE_BYTES="+strconv.FormatInt(s.maxFileBytes, 10))
	}
	p, err := e.startVolley(ctx, extra...)
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
	if err := e.quiesce(ctx, "file_lines", ceilingTable); err != nil {
		return r, err
	}
	before, err := readMemory(p.pid())
	if err != nil {
		return r, err
	}

	start := time.Now()
	f, err := c.uploadFile(ctx, d.jsonlPath)
	r.volley = time.Since(start)
	if err != nil {
		return r, fmt.Errorf("upload: %w", err)
	}

	after, err := readMemory(p.pid())
	if err != nil {
		return r, err
	}
	r.rss, r.peak = before.rss, after.peak
	if err := e.checkStored(ctx, f, d); err != nil {
		return r, err
	}
	if fingerprint {
		if r.stored, err = e.fingerprint(ctx, "file_lines", f.ID, d.columns); err != nil {
			return r, err
		}
	}
	return r, c.deleteFile(ctx, f.ID)
}

// checkStored makes sure the upload stored the whole file.
func (e *env) checkStored(ctx context.Context, f fileObject, d dataset) error {
	if f.Bytes != d.bytes {
		return fmt.Errorf("upload: Volley reports %d bytes, the file has %d", f.Bytes, d.bytes)
	}
	var n int
	if err := e.db.QueryRow(ctx, "SELECT count(*) FROM file_lines WHERE file_id = $1", f.ID).Scan(&n); err != nil {
		return fmt.Errorf("count stored lines: %w", err)
	}
	if n != d.lines {
		return fmt.Errorf("upload: %d lines stored, the file has %d", n, d.lines)
	}
	return nil
}

// fingerprint hashes every stored column but file_id of a file's rows (all rows when fileID is
// empty), in line order.
func (e *env) fingerprint(ctx context.Context, table, fileID string, columns []string) (string, error) {
	var cols []string
	for _, c := range columns {
		if c != "file_id" {
			cols = append(cols, pgx.Identifier{c}.Sanitize())
		}
	}
	sql := fmt.Sprintf("SELECT md5(string_agg(md5(ROW(%s)::text), '' ORDER BY line)) FROM %s WHERE $1 = '' OR file_id = $1",
		strings.Join(cols, ", "), pgx.Identifier{table}.Sanitize())
	var sum string
	if err := e.db.QueryRow(ctx, sql, fileID).Scan(&sum); err != nil {
		return "", fmt.Errorf("fingerprint %s: %w", table, err)
	}
	return sum, nil
}

// rows turns the runs into the scenario's table rows.
func (s uploadSpec) rows(d dataset, runs []uploadRun) []row {
	out := []row{{
		scenario: s.name, measure: "input",
		result: fmt.Sprintf("%.1f MB, %s lines", mb(d.bytes), thousands(int64(d.lines))),
		detail: fmt.Sprintf("%s B/line on average", thousands(d.bytes/int64(max(1, d.lines)))),
	}}
	if len(runs) == 0 {
		return out
	}
	volley := collect(runs, func(r uploadRun) time.Duration { return r.volley })
	ceiling := collect(runs, func(r uploadRun) time.Duration { return r.ceiling })
	vRate, cRate := mbPerSec(d.bytes, median(volley)), mbPerSec(d.bytes, median(ceiling))
	ratio := vRate / cRate

	rss := collect(runs, func(r uploadRun) int64 { return r.rss })
	peak := collect(runs, func(r uploadRun) int64 { return r.peak })
	growth := collect(runs, uploadRun.growth)
	worst := maxOf(growth)

	return append(out,
		row{scenario: s.name, measure: "Volley upload", result: rateText(d, median(volley)), detail: "runs: " + durations(volley)},
		row{scenario: s.name, measure: "ceiling: psql \\copy (binary)", result: rateText(d, median(ceiling)), detail: "runs: " + durations(ceiling)},
		row{scenario: s.name, measure: "Volley / ceiling", result: fmt.Sprintf("%.0f%%", 100*ratio),
			target: fmt.Sprintf("≥ %.0f%%", 100*uploadMinRatio), verdict: check(ratio >= uploadMinRatio), detail: "medians"},
		row{scenario: s.name, measure: "server RSS before → peak", result: fmt.Sprintf("%.1f → %.1f MB", mb(median(rss)), mb(median(peak))),
			detail: "runs: " + rssPairs(runs)},
		row{scenario: s.name, measure: "server RSS growth", result: fmt.Sprintf("%.1f MB", mb(median(growth))),
			target: fmt.Sprintf("< %.0f MB", mb(uploadMaxRSSGrowth)), verdict: check(worst < uploadMaxRSSGrowth),
			detail: fmt.Sprintf("worst run %.1f MB (checked against the target)", mb(worst))},
	)
}

func rateText(d dataset, t time.Duration) string {
	return fmt.Sprintf("%.1f MB/s, %s lines/s", mbPerSec(d.bytes, t), thousands(int64(float64(d.lines)/t.Seconds())))
}

func durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.2f s", d.Seconds())
	}
	return strings.Join(parts, ", ")
}

func rssPairs(runs []uploadRun) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = fmt.Sprintf("%.1f → %.1f", mb(r.rss), mb(r.peak))
	}
	return strings.Join(parts, ", ") + " MB"
}
