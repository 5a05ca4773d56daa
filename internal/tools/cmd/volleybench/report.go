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
const makeBenchCommand = "go run ./internal/tools/cmd/volleybench -out docs/benchmarks.md"

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
	parts := []string{"go run ./internal/tools/cmd/volleybench"}
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
	fmt.Fprintf(b, "\nThe machine may be shared with other work while the benchmark runs: the load averages above "+
		"(and, for the dispatch scenarios, at each run's start) say how busy it was. Comparisons with another system "+
		"alternate runs so that both see the same load; absolute rates on a busy machine are lower than on an idle one.\n")

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
	var targets []string
	for _, s := range r.scenarios {
		for _, t := range s.targets {
			if !slices.Contains(targets, t) {
				targets = append(targets, t)
				fmt.Fprintf(b, "- %s\n", t)
			}
		}
	}
	fmt.Fprintf(b, "\nA missed target is reported as FAIL in the table; the program still exits successfully.\n")
}

// commonMethod is how every scenario is measured.
func commonMethod(r *report) []string {
	return []string{
		fmt.Sprintf("Everything runs on this one machine: the client (this program), `volley serve`, mockllm (the "+
			"simulated upstream of the dispatch scenarios) and PostgreSQL share its %d cores, as psql and PostgreSQL do "+
			"for the upload ceiling. Clients and servers talk over 127.0.0.1; Volley and psql reach PostgreSQL over its "+
			"Unix socket.", r.machine.cores),
		"`volley` and `mockllm` are built from the working tree with `go build`; `volley` runs as `volley serve` with " +
			"`DATABASE_URL` set to the cluster, `VOLLEY_ADDR=127.0.0.1:0`, `VOLLEY_LOG_FORMAT=json` and " +
			"`VOLLEY_LOG_LEVEL=warn`, the settings each scenario names, and otherwise its defaults. An API key comes " +
			"from `volley keys create --owner bench`.",
		"Every measured run gets a fresh `volley serve` process, so that the peak RSS it reports (`VmHWM` from " +
			"`/proc/PID/status`) belongs to that run alone, rather than resetting it with `/proc/PID/clear_refs`, which " +
			"would leave heap kept from an earlier run in the baseline.",
	}
}

// mdCell makes s safe inside a Markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
