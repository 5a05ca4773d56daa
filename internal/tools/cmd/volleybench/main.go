// Command volleybench measures Volley end to end with real processes: a throwaway PostgreSQL
// cluster, a freshly built `volley serve` and an HTTP client, on the machine it runs on. It prints
// a results table on stdout and writes a Markdown report (machine, settings, results, method).
//
//	go run ./internal/tools/cmd/volleybench -out docs/benchmarks.md      all scenarios (what `make bench` runs)
//	go run ./internal/tools/cmd/volleybench -quick -out /tmp/bench.md    tiny sizes: a smoke test in seconds
//	go run ./internal/tools/cmd/volleybench -only upload-100mb           a subset of the scenarios
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "volleybench:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	out   string
	only  []string
	quick bool
	runs  int
	// statements loads pg_stat_statements and logs, after each dispatch run, the statements that
	// took the server's time. The extra tracking costs a little, so such runs are for finding
	// where time goes, not for the report.
	statements bool
	args       []string // as given, for the report
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("volleybench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "write the Markdown report to this file (e.g. docs/benchmarks.md)")
	only := fs.String("only", "", "comma-separated scenarios to run (default all): "+strings.Join(scenarioNames(), ", "))
	quick := fs.Bool("quick", false, "tiny sizes, to check that the benchmark itself works")
	runs := fs.Int("runs", 3, "repetitions of each measurement; the median is reported")
	statements := fs.Bool("statements", false, "log the statements that took PostgreSQL's time after each dispatch run (pg_stat_statements)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *runs < 1 {
		return options{}, fmt.Errorf("-runs must be at least 1, got %d", *runs)
	}
	o := options{out: *out, quick: *quick, runs: *runs, statements: *statements, args: args}
	for name := range strings.SplitSeq(*only, ",") {
		if name = strings.TrimSpace(name); name != "" {
			o.only = append(o.only, name)
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	selected, err := selectScenarios(opts.only)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	started := time.Now()
	e, err := setup(ctx, log, opts)
	if err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	defer e.close()

	rep := report{opts: opts, started: started, machine: e.machine, settings: e.settings, loadBefore: loadAverage()}
	var failed []string
	for _, sc := range selected {
		log.Info("scenario starting", "scenario", sc.name, "load", loadAverage())
		rows, err := sc.run(ctx, e)
		if err != nil {
			log.Error("scenario failed", "scenario", sc.name, "error", err.Error())
			rows = append(rows, errorRow(sc.name, err))
			failed = append(failed, sc.name)
		}
		rep.add(sc, rows)
		if ctx.Err() != nil {
			break
		}
	}
	rep.loadAfter = loadAverage()
	rep.elapsed = time.Since(started)

	if err := rep.writeTable(stdout); err != nil {
		return fmt.Errorf("print results: %w", err)
	}
	if opts.out != "" {
		if err := rep.writeMarkdownFile(opts.out); err != nil {
			return err
		}
		log.Info("report written", "path", opts.out)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return nil
}
