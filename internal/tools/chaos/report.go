package chaos

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/volleyhq/volley/internal/machine"
)

// Machine is what the report says about where the suites ran.
type Machine struct {
	CPU      string
	Cores    int
	Memory   string
	Kernel   string
	Go       string
	Postgres string
	// LoadStart and LoadEnd are the load averages when the run started and ended: on a shared
	// machine they explain latencies.
	LoadStart, LoadEnd string
}

// DescribeMachine reads the machine's facts from /proc.
func DescribeMachine() Machine {
	f := machine.Describe()
	return Machine{CPU: f.CPU, Cores: f.Cores, Memory: f.Memory, Kernel: f.Kernel, Go: f.Go, LoadStart: machine.LoadAverage()}
}

// Report is one run of the suites.
type Report struct {
	Command string
	Started time.Time
	Took    time.Duration
	Machine Machine
	Durable bool
	Full    bool
	Results []*Result
}

// count prints a must-be-zero count.
func count(n int64) string {
	if n == NotMeasured {
		return "n/a"
	}
	return fmtInt(n)
}

// PrintTable writes the summary table for a terminal.
func PrintTable(w io.Writer, results []*Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tLOST\tDUPLICATED\tLIMIT VIOLATIONS\tUPSTREAM DUPLICATES\tCHECKS\tDURATION\tVERDICT")
	for _, r := range results {
		passed := 0
		for _, c := range r.Checks {
			if c.OK {
				passed++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", r.Name, count(r.Lost), count(r.Duplicated), count(r.Violations),
			count(r.UpstreamDuplicates), passed, len(r.Checks), fmtDur(r.Duration), r.Verdict())
	}
	_ = tw.Flush()
	for _, r := range results {
		for _, f := range r.Failures() {
			fmt.Fprintf(w, "  %s: %s\n", r.Name, f)
		}
	}
}

// md makes text safe inside a Markdown table cell.
func md(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", `\|`)
	return s
}

// clip shortens s to n runes.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// WriteMarkdown writes the report.
func WriteMarkdown(w io.Writer, rep Report) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Reliability\n\n")
	p("Measured with `%s` on %s, in %s.", rep.Command, rep.Started.UTC().Format("2006-01-02 15:04 MST"), fmtDur(rep.Took))
	if !rep.Full {
		p(" **Reduced sizes** (`-quick`): these are smoke-test figures, not the full run.")
	}
	p("\n\n")
	p("Each scenario starts its own PostgreSQL cluster, `mockllm` and `volley serve` replicas built from the working tree, drives them over HTTP with the official `openai-go` SDK and raw requests, injects the faults listed, and checks the results. " +
		"**Lost** counts submitted requests whose `custom_id` is in neither the output nor the error file, **duplicated** counts `custom_id`s on more than one result line, and **limit violations** counts upstream calls beyond a model's concurrency limit as `mockllm` saw them: all three must be zero. " +
		"**Upstream duplicate sends** are calls `mockllm` received for a body it had already seen, beyond the retries of injected faults: delivery upstream is at-least-once, so they are reported, and only the rolling restart has a target (zero).\n\n")

	p("## Machine\n\n| | |\n| --- | --- |\n")
	m := rep.Machine
	p("| CPU | %s, %d cores |\n", md(m.CPU), m.Cores)
	p("| Memory | %s |\n", m.Memory)
	p("| Kernel | Linux %s |\n", md(m.Kernel))
	p("| Go | %s |\n", m.Go)
	if m.Postgres != "" {
		p("| PostgreSQL | %s |\n", md(m.Postgres))
	}
	if m.LoadStart != "" {
		p("| Load average (1, 5, 15 min) | %s at the start, %s at the end |\n", m.LoadStart, m.LoadEnd)
	}
	fsync := "`fsync=on`, `synchronous_commit=on` (PostgreSQL's defaults)"
	if !rep.Durable {
		fsync = "`fsync=off`, `full_page_writes=off`, `synchronous_commit=on` (a server crash loses nothing committed; an operating-system crash could)"
	}
	p("| Cluster durability | %s |\n\n", fsync)

	p("## Summary\n\n")
	p("| scenario | load | faults | lost | duplicated | limit violations | upstream duplicate sends | checks | duration | verdict |\n")
	p("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range rep.Results {
		passed := 0
		for _, c := range r.Checks {
			if c.OK {
				passed++
			}
		}
		p("| [%s](#%s) | %s | %s | %s | %s | %s | %s | %d/%d | %s | **%s** |\n", r.Title, anchor(r.Title), md(r.Held), md(r.Injected),
			count(r.Lost), count(r.Duplicated), count(r.Violations), count(r.UpstreamDuplicates), passed, len(r.Checks), fmtDur(r.Duration), r.Verdict())
	}
	p("\n")
	var failing []string
	for _, r := range rep.Results {
		for _, f := range r.Failures() {
			failing = append(failing, fmt.Sprintf("- %s: %s", r.Title, md(clip(f, 400))))
		}
	}
	if len(failing) > 0 {
		p("What failed:\n\n%s\n\n", strings.Join(failing, "\n"))
	}
	for _, r := range rep.Results {
		p("## %s\n\n", r.Title)
		p("`%s` — **%s** in %s.\n\n", r.Name, r.Verdict(), fmtDur(r.Duration))
		if len(r.Load) > 0 {
			p("Load:\n\n")
			for _, l := range r.Load {
				p("- %s\n", l)
			}
			p("\n")
		}
		if len(r.Faults) > 0 {
			p("Faults:\n\n")
			for _, f := range r.Faults {
				p("- %s\n", f)
			}
			p("\n")
		}
		if r.Err != nil {
			p("The scenario did not run to its end: `%s`\n\n", md(clip(r.Err.Error(), 600)))
		}
		p("| measure | value | target |\n| --- | --- | --- |\n")
		if r.Lost != NotMeasured || r.Duplicated != NotMeasured || r.Violations != NotMeasured {
			p("| lost / duplicated / limit violations | %s / %s / %s | 0 / 0 / 0 |\n", count(r.Lost), count(r.Duplicated), count(r.Violations))
		}
		if r.UpstreamDuplicates != NotMeasured {
			p("| upstream duplicate sends (beyond fault retries) | %s | |\n", fmtInt(r.UpstreamDuplicates))
		}
		for _, mt := range r.Metrics {
			target := ""
			if mt.Target != "" {
				verdict := "met"
				if !mt.Met {
					verdict = "**missed**"
				}
				target = mt.Target + " — " + verdict
			}
			p("| %s | %s | %s |\n", md(mt.Name), md(clip(mt.Value, 400)), md(target))
		}
		p("\n")
		if len(r.Checks) > 0 {
			p("| check | result | detail |\n| --- | --- | --- |\n")
			for _, c := range r.Checks {
				res := "ok"
				if !c.OK {
					res = "**FAIL**"
				}
				p("| %s | %s | %s |\n", md(c.Name), res, md(clip(c.Detail, 300)))
			}
			p("\n")
		}
		if len(r.Skipped) > 0 {
			p("Skipped:\n\n")
			for _, s := range r.Skipped {
				p("- %s\n", md(s))
			}
			p("\n")
		}
		for _, n := range r.Notes {
			p("%s\n\n", n)
		}
	}
	p("%s", methodText)
	_, err := io.WriteString(w, b.String())
	return err
}

// anchor is GitHub's heading anchor for a simple title.
func anchor(title string) string {
	return strings.ReplaceAll(strings.ToLower(title), " ", "-")
}

const methodText = `## Method

- ` + "`volley`" + ` and ` + "`mockllm`" + ` are built from the working tree with ` + "`go build`" + `. Each scenario gets a fresh PostgreSQL cluster (` + "`internal/pgcluster`" + `, Unix socket only, ` + "`synchronous_commit=on`" + ` so that crashing the server loses no committed row), its own ` + "`mockllm`" + ` and its own replicas, each on a fixed 127.0.0.1 port so that a restarted replica comes back at the same address.
- Replicas run with ` + "`DATABASE_URL`" + ` set to the cluster, ` + "`VOLLEY_LEASE_TIMEOUT=3s`" + `, ` + "`VOLLEY_POLL_INTERVAL=100ms`" + `, ` + "`VOLLEY_SHUTDOWN_GRACE=10s`" + `, ` + "`VOLLEY_LOG_LEVEL=warn`" + ` and a ` + "`VOLLEY_CONFIG`" + ` routing every model to ` + "`mockllm`" + ` with the stated per-model limits, a 5s upstream timeout (which ends hung calls) and retries up to 20 attempts (50ms base, 2s maximum backoff). API keys come from ` + "`volley keys create`" + `.
- Every batch line asks ` + "`mockllm`" + ` to echo ` + "`hello <custom_id>`" + `; after the batch, its output and error files are downloaded and every ` + "`custom_id`" + ` must appear exactly once across both, each output line must carry the echo of its own request, ` + "`request_counts`" + ` must equal the line counts and each file's ` + "`bytes`" + ` its downloaded length.
- Concurrency limits are checked by ` + "`mockllm`" + ` itself: its per-model ` + "`peak_concurrency`" + ` must not exceed the model's limit, and its ` + "`-max-concurrency`" + ` (the sum of the limits) must count no violation. In the replicas, load and rolling scenarios the second model's limit adapts (` + "`adaptive: {min: 1}`" + `), cut by the injected 429s and 503s and raised again; its peak is checked against its ceiling, and each call's start against the effective limit then in force: mockllm records every start with the model's calls in flight at it (` + "`-record-starts`" + `), Volley logs every move of the limit in ` + "`model_limit_changes`" + `, and no start may count more calls than the highest limit in force over the second before it (a claim reads the limit under the model's lock, and its calls start once it has committed).
- A replica is killed with SIGKILL to its process group; PostgreSQL is crashed with ` + "`pg_ctl stop -m immediate`" + ` and started again with ` + "`pg_ctl restart`" + ` (same options, same socket); it is frozen with SIGSTOP to the postmaster and each of its children (found through ` + "`/proc`" + `) and thawed with SIGCONT.
- Latencies are measured by the client, from sending the request to reading the whole answer, over keep-alive connections. Memory is ` + "`VmHWM`" + ` from ` + "`/proc/PID/status`" + ` of each replica, read while it runs.
- Every request loop is bounded in count and time; no scenario touches anything but 127.0.0.1 and Unix sockets.

## Running it

` + "```sh" + `
make chaos                                         # every scenario at full size; writes this file
go run ./internal/tools/cmd/volleychaos -only db-stall,load       # a subset (the report then holds only those)
go run ./internal/tools/cmd/volleychaos -quick -out /tmp/r.md     # reduced sizes: a smoke test in a few minutes
go test ./internal/tools/chaos/                          # the same scenarios at reduced size, as make test runs them
` + "```" + `

A scenario passes when every check holds and every target is met; ` + "`volleychaos`" + ` exits with an error when one fails, after writing the report. The package's tests enforce the correctness checks at reduced size (targets are machine-dependent and only logged there).
`
