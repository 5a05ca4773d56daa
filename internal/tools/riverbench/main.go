// Command riverbench works a JSONL file of batch requests with River, a general-purpose job queue
// on PostgreSQL, as a user without Volley would: one job per line that POSTs the line's body to
// the upstream and records the answer as the job's output (-mode call), or jobs that do nothing
// (-mode noop), the queue's own ceiling. volleybench runs it beside Volley, in the same cluster and
// against the same mockllm, and compares the rates.
//
// It lives in a module of its own so that Volley's go.mod does not carry River. It prints one JSON
// object on stdout:
//
//	{"jobs":20000,"seconds":1.42,"insert_seconds":0.21,"completed":20000}
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// callArgs is a job that sends one request body upstream.
type callArgs struct {
	URL  string          `json:"url"`
	Body json.RawMessage `json:"body"`
}

func (callArgs) Kind() string { return "call" }

// callWorker POSTs the body and records the answer as the job's output.
type callWorker struct {
	river.WorkerDefaults[callArgs]
	http     *http.Client
	upstream string
}

func (w *callWorker) Work(ctx context.Context, job *river.Job[callArgs]) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.upstream+job.Args.URL, bytes.NewReader(job.Args.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := w.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("upstream answered %s", res.Status)
	}
	return river.RecordOutput(ctx, json.RawMessage(answer))
}

// noopArgs is a job that does nothing.
type noopArgs struct {
	URL  string          `json:"url"`
	Body json.RawMessage `json:"body"`
}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct{ river.WorkerDefaults[noopArgs] }

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

type options struct {
	dsn, upstream, input, mode string
	workers                    int
	fetchCooldown, fetchPoll   time.Duration
	timeout                    time.Duration
}

type outcome struct {
	Jobs          int     `json:"jobs"`
	Seconds       float64 `json:"seconds"`
	InsertSeconds float64 `json:"insert_seconds"`
	Completed     int     `json:"completed"`
}

func main() {
	var o options
	flag.StringVar(&o.dsn, "dsn", "", "PostgreSQL connection string of the database River uses (migrated on start)")
	flag.StringVar(&o.upstream, "upstream", "", "base URL the request URLs are joined to, e.g. http://127.0.0.1:9090 (-mode call)")
	flag.StringVar(&o.input, "input", "", "JSONL batch input file: one job per line")
	flag.StringVar(&o.mode, "mode", "call", "call: POST each body upstream and record the answer; noop: jobs that do nothing")
	flag.IntVar(&o.workers, "workers", 256, "River's MaxWorkers for the queue")
	flag.DurationVar(&o.fetchCooldown, "fetch-cooldown", river.FetchCooldownDefault, "River's FetchCooldown: the least time between two fetches")
	flag.DurationVar(&o.fetchPoll, "fetch-poll-interval", river.FetchPollIntervalDefault, "River's FetchPollInterval")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "riverbench:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func run(ctx context.Context, o options) (outcome, error) {
	var out outcome
	if o.dsn == "" || o.input == "" || (o.mode == "call" && o.upstream == "") {
		return out, errors.New("-dsn and -input are required, and -upstream with -mode call")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	lines, err := readInput(o.input)
	if err != nil {
		return out, err
	}
	out.Jobs = len(lines)

	pool, err := pgxpool.New(ctx, o.dsn)
	if err != nil {
		return out, fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return out, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return out, fmt.Errorf("migrate: %w", err)
	}
	if _, err := pool.Exec(ctx, "TRUNCATE river_job"); err != nil {
		return out, err
	}

	workers := river.NewWorkers()
	params := make([]river.InsertManyParams, len(lines))
	switch o.mode {
	case "call":
		tr := &http.Transport{MaxIdleConns: o.workers, MaxIdleConnsPerHost: o.workers, IdleConnTimeout: time.Minute}
		river.AddWorker(workers, &callWorker{http: &http.Client{Transport: tr}, upstream: o.upstream})
		for i, l := range lines {
			params[i] = river.InsertManyParams{Args: callArgs(l)}
		}
	case "noop":
		river.AddWorker(workers, noopWorker{})
		for i, l := range lines {
			params[i] = river.InsertManyParams{Args: noopArgs(l)}
		}
	default:
		return out, fmt.Errorf("-mode: unknown %q (call or noop)", o.mode)
	}
	client, err := river.NewClient(driver, &river.Config{
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: o.workers}},
		Workers:           workers,
		FetchCooldown:     o.fetchCooldown,
		FetchPollInterval: o.fetchPoll,
	})
	if err != nil {
		return out, err
	}
	events, unsubscribe := client.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: len(lines) + 1, Kinds: []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed},
	})
	defer unsubscribe()
	if err := client.Start(ctx); err != nil {
		return out, fmt.Errorf("start River: %w", err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = client.Stop(sctx)
	}()

	start := time.Now()
	// The insert is timed, as Volley's batch create (which inserts its requests) is.
	if _, err := client.InsertManyFast(ctx, params); err != nil {
		return out, fmt.Errorf("insert jobs: %w", err)
	}
	out.InsertSeconds = time.Since(start).Seconds()
	for done := 0; done < len(lines); done++ {
		select {
		case ev := <-events:
			if ev.Kind != river.EventKindJobCompleted {
				return out, fmt.Errorf("job %d failed: %v", ev.Job.ID, ev.Job.Errors)
			}
		case <-ctx.Done():
			return out, fmt.Errorf("%d of %d jobs completed: %w", done, len(lines), ctx.Err())
		}
	}
	out.Seconds = time.Since(start).Seconds()
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE state = 'completed'").Scan(&out.Completed); err != nil {
		return out, err
	}
	if out.Completed != len(lines) {
		return out, fmt.Errorf("%d jobs completed in the table, %d inserted", out.Completed, len(lines))
	}
	if o.mode == "call" {
		var missing int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE NOT metadata ? 'output'").Scan(&missing); err != nil {
			return out, err
		}
		if missing > 0 {
			return out, fmt.Errorf("%d completed jobs have no recorded output", missing)
		}
	}
	return out, nil
}

// input is one line of the batch file.
type input struct {
	URL  string          `json:"url"`
	Body json.RawMessage `json:"body"`
}

func readInput(path string) ([]input, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []input
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var l input
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, len(out)+1, err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}
