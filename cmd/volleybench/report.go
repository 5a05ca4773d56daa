package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report collects the results of a run and writes them as a table and as Markdown.
type report struct {
	opts       options
	started    time.Time
	elapsed    time.Duration
	machine    machineInfo
	settings   []pgSetting
	loadBefore string
	loadAfter  string
	scenarios  []scenario
	rows       []row
}

func (r *report) add(s scenario, rows []row) {
	r.scenarios = append(r.scenarios, s)
	r.rows = append(r.rows, rows...)
}

// makeBenchCommand is what `make bench` runs.
const makeBenchCommand = "go run ./cmd/volleybench -out docs/benchmarks.md"

var tableHeader = []string{"scenario", "measure", "result", "target", "verdict", "detail"}

func (rw row) cells() []string {
	return []string{rw.scenario, rw.measure, rw.result, rw.target, string(rw.verdict), rw.detail}
}

// writeTable prints the results as aligned columns.
func (r *report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(tableHeader, "\t")))
	for _, rw := range r.rows {
		fmt.Fprintln(tw, strings.Join(rw.cells(), "\t"))
	}
	return tw.Flush()
}

func (r *report) command() string {
	parts := []string{"go run ./cmd/volleybench"}
	for _, a := range r.opts.args {
		if a == "" || strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// writeMarkdownFile writes the report to path.
func (r *report) writeMarkdownFile(path string) error {
	var b bytes.Buffer
	r.writeMarkdown(&b)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func (r *report) writeMarkdown(b *bytes.Buffer) {
	m := r.machine
	fmt.Fprintf(b, "# Benchmarks\n\n")
	cmd := fmt.Sprintf("`%s`", r.command())
	if r.command() == makeBenchCommand {
		cmd += " (`make bench`)"
	}
	fmt.Fprintf(b, "Measured with %s on %s, in %s.\n\n", cmd, r.started.UTC().Format("2006-01-02 15:04 MST"), r.elapsed.Round(time.Second))
	if r.opts.quick {
		fmt.Fprintf(b, "> **Quick mode** (`-quick`): tiny inputs that only check the benchmark works. These are not results.\n\n")
	}

	fmt.Fprintf(b, "## Machine\n\n| | |\n| --- | --- |\n")
	fmt.Fprintf(b, "| CPU | %s, %d cores |\n", mdCell(m.cpu), m.cores)
	fmt.Fprintf(b, "| Memory | %s |\n", m.memory)
	fmt.Fprintf(b, "| Kernel | Linux %s |\n", mdCell(m.kernel))
	fmt.Fprintf(b, "| Go | %s |\n", m.goVersion)
	fmt.Fprintf(b, "| PostgreSQL | %s |\n", mdCell(m.postgres))
	fmt.Fprintf(b, "| Filesystem | %s (PostgreSQL's data directory and the input files) |\n", m.filesystem)
	fmt.Fprintf(b, "| Load average (1, 5, 15 min) | %s at the start, %s at the end |\n\n", r.loadBefore, r.loadAfter)

	fmt.Fprintf(b, "## PostgreSQL\n\n")
	fmt.Fprintf(b, "A throwaway cluster started for the run by `internal/pgcluster` (`initdb --locale=C --encoding=UTF8`, "+
		"Unix socket only) with the package's defaults (`max_connections=200`, `shared_buffers=128MB`) and PostgreSQL's "+
		"own defaults for everything else: durability is not traded for speed. As the server reported them:\n\n")
	fmt.Fprintf(b, "| setting | value |\n| --- | --- |\n")
	for _, s := range r.settings {
		fmt.Fprintf(b, "| `%s` | `%s` |\n", s.name, s.value)
	}

	fmt.Fprintf(b, "\n## Results\n\n")
	fmt.Fprintf(b, "| %s |\n|%s\n", strings.Join(tableHeader, " | "), strings.Repeat(" --- |", len(tableHeader)))
	for _, rw := range r.rows {
		cells := rw.cells()
		for i, c := range cells {
			cells[i] = mdCell(c)
		}
		fmt.Fprintf(b, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintf(b, "\nEvery figure is the median of %d runs; MB is 10^6 bytes.\n", r.opts.runs)

	fmt.Fprintf(b, "\n## Method\n\n")
	for _, line := range commonMethod(r) {
		fmt.Fprintf(b, "- %s\n", line)
	}
	fmt.Fprintf(b, "\nScenarios:\n\n")
	var methods []string
	for _, s := range r.scenarios {
		fmt.Fprintf(b, "- %s\n", s.summary)
		if !slices.Contains(methods, s.method) {
			methods = append(methods, s.method)
		}
	}
	for _, m := range methods {
		fmt.Fprintf(b, "\n%s\n", m)
	}

	fmt.Fprintf(b, "\n## Targets\n\n")
	fmt.Fprintf(b, "- Upload throughput: Volley at least %.0f%% of the ceiling's (medians). Volley parses and checks "+
		"every line (JSON syntax, `custom_id` uniqueness, `method`, `url`, `body.model`) and receives the file over HTTP "+
		"as multipart; the ceiling does neither, so some gap is expected, but most of the time should go to PostgreSQL.\n", 100*uploadMinRatio)
	fmt.Fprintf(b, "- Server memory: the RSS growth of `volley serve` during one upload below %.0f MB whatever the file's "+
		"size, checked against the worst run. The upload streams: a line buffer and COPY batches of about 64 KB, "+
		"not the file, should be in memory.\n", mb(uploadMaxRSSGrowth))
	fmt.Fprintf(b, "\nA missed target is reported as FAIL in the table; the program still exits successfully.\n")
}

// commonMethod is how every scenario is measured.
func commonMethod(r *report) []string {
	return []string{
		fmt.Sprintf("Everything runs on this one machine: the client (this program), `volley serve` and PostgreSQL share "+
			"its %d cores, as psql and PostgreSQL do for the ceiling. Client and server talk over 127.0.0.1; Volley and "+
			"psql reach PostgreSQL over its Unix socket.", r.machine.cores),
		"`volley` is built from the working tree with `go build` and run as `volley serve` with `DATABASE_URL` set to the " +
			"cluster, `VOLLEY_ADDR=127.0.0.1:0`, `VOLLEY_LOG_FORMAT=json` and `VOLLEY_LOG_LEVEL=warn`, otherwise with its defaults. An API key comes from " +
			"`volley keys create --owner bench`.",
		"Each upload gets a fresh `volley serve` process, so that the peak RSS it reports belongs to that upload alone " +
			"(rather than resetting it with `/proc/PID/clear_refs`, which would leave heap kept from an earlier upload in " +
			"the baseline). RSS before is `VmRSS` from `/proc/PID/status` after start-up and one authenticated request; " +
			"peak is `VmHWM` after the response; growth is the difference.",
		"Before every timed upload and every timed `\\copy`, `file_lines` and the ceiling table are truncated and a " +
			"`CHECKPOINT` is forced, so each run starts from an empty table and pays only for its own writes: WAL, " +
			"flushed at commit, and dirty pages evicted from shared buffers while it runs.",
		"Volley and the ceiling alternate (Volley, ceiling, Volley, …), so a change in the machine's load touches both. " +
			"After each upload the stored byte and line counts are checked and the file is deleted with " +
			"`DELETE /v1/files/{id}`. After the first of each, a hash of every stored column but `file_id`, row by row, " +
			"is compared between Volley's rows and the ceiling's, so both are known to store the same data.",
	}
}

// mdCell makes s safe inside a Markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
