// Command volleychaos runs Volley's reliability suites (internal/tools/chaos) against real processes —
// several `volley serve` replicas, mockllm and a PostgreSQL cluster of each scenario's own — prints
// a results table and writes a Markdown report.
//
//	go run ./internal/tools/cmd/volleychaos -out docs/reliability.md       every scenario at full size (make chaos)
//	go run ./internal/tools/cmd/volleychaos -quick -out /tmp/chaos.md      reduced sizes: a smoke test
//	go run ./internal/tools/cmd/volleychaos -only db-stall,auth-sweep      a subset of the scenarios
//
// It exits with status 1 when a scenario fails (after writing the report).
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
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/volleyhq/volley/internal/machine"
	"github.com/volleyhq/volley/internal/tools/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "volleychaos:", err)
		os.Exit(1)
	}
}

var errFailed = errors.New("a scenario failed")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("volleychaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "write the Markdown report to this file (e.g. docs/reliability.md)")
	only := fs.String("only", "", "comma-separated scenarios to run (default all): "+strings.Join(chaos.ScenarioNames(), ", "))
	quick := fs.Bool("quick", false, "reduced sizes (those of the package's tests), to check the suites themselves")
	durable := fs.Bool("fsync", true, "keep fsync on in the scenarios' PostgreSQL clusters (synchronous_commit is always on)")
	timeout := fs.Duration("timeout", 40*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var names []string
	for n := range strings.SplitSeq(*only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	scenarios, err := chaos.Select(names)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	work, err := chaos.NewWorkDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	log.Info("building volley and mockllm")
	bin, err := chaos.Build(ctx, filepath.Join(work, "bin"))
	if err != nil {
		return err
	}
	h := &chaos.Harness{Bin: bin, WorkDir: work, Durable: *durable,
		Logf: func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }}

	command := "go run ./internal/tools/cmd/volleychaos " + strings.Join(args, " ")
	if len(args) == 2 && args[0] == "-out" && args[1] == "docs/reliability.md" {
		command = "make chaos"
	}
	rep := chaos.Report{Command: strings.TrimSpace(command), Started: time.Now(), Machine: chaos.DescribeMachine(),
		Durable: *durable, Full: !*quick}
	for _, s := range scenarios {
		if ctx.Err() != nil {
			break
		}
		log.Info("scenario starts", "scenario", s.Name)
		res := s.Run(ctx, h, !*quick)
		log.Info("scenario ends", "scenario", s.Name, "verdict", res.Verdict(), "took", res.Duration.Round(time.Millisecond).String())
		for _, f := range res.Failures() {
			log.Warn("failed", "scenario", s.Name, "what", f)
		}
		rep.Results = append(rep.Results, res)
	}
	rep.Took = time.Since(rep.Started)
	rep.Machine.Postgres = h.PostgresVersion()
	rep.Machine.LoadEnd = machine.LoadAverage()

	fmt.Fprintln(stdout)
	chaos.PrintTable(stdout, rep.Results)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		if err := chaos.WriteMarkdown(f, rep); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nreport written to %s\n", *out)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stopped early: %w", ctx.Err())
	}
	for _, r := range rep.Results {
		if !r.Pass() {
			return errFailed
		}
	}
	return nil
}
