package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MockOptions are mockllm's flags as the suites use them.
type MockOptions struct {
	Latency time.Duration
	// FailStatus is -fail-status, e.g. "500:0.05".
	FailStatus    string
	RateLimitRate float64
	RetryAfter    time.Duration // with the random 429s; 0 keeps mockllm's default (1s)
	ResetRate     float64
	HangRate      float64
	// MaxConcurrency counts a violation whenever more calls than this are in flight at once.
	MaxConcurrency int
	// RecordStarts keeps each call's start for the check against moving limits; NewEnv sets it
	// when a model adapts.
	RecordStarts bool
}

func (o MockOptions) args() []string {
	args := []string{"-addr", "127.0.0.1:0", "-api-key", upstreamKey, "-latency", o.Latency.String(),
		"-hang-max", "10m", "-seed", strconv.FormatInt(time.Now().UnixNano()%1_000_000, 10)}
	if o.FailStatus != "" {
		args = append(args, "-fail-status", o.FailStatus)
	}
	if o.RateLimitRate > 0 {
		args = append(args, "-rate-limit-rate", fmt.Sprint(o.RateLimitRate))
		if o.RetryAfter > 0 {
			args = append(args, "-retry-after", o.RetryAfter.String())
		}
	}
	if o.ResetRate > 0 {
		args = append(args, "-reset-rate", fmt.Sprint(o.ResetRate))
	}
	if o.HangRate > 0 {
		args = append(args, "-hang-rate", fmt.Sprint(o.HangRate))
	}
	if o.MaxConcurrency > 0 {
		args = append(args, "-max-concurrency", strconv.Itoa(o.MaxConcurrency))
	}
	if o.RecordStarts {
		args = append(args, "-record-starts")
	}
	return args
}

// Describe lists the injected faults in words.
func (o MockOptions) Describe() []string {
	var out []string
	out = append(out, fmt.Sprintf("upstream latency %s", o.Latency))
	if o.FailStatus != "" {
		for part := range strings.SplitSeq(o.FailStatus, ",") {
			status, rate, _ := strings.Cut(part, ":")
			out = append(out, fmt.Sprintf("%s%% answered %s", pct(rate), status))
		}
	}
	if o.RateLimitRate > 0 {
		ra := o.RetryAfter
		if ra == 0 {
			ra = time.Second
		}
		out = append(out, fmt.Sprintf("%s%% answered 429 with Retry-After %s", pct(fmt.Sprint(o.RateLimitRate)), ra))
	}
	if o.ResetRate > 0 {
		out = append(out, fmt.Sprintf("%s%% connections reset", pct(fmt.Sprint(o.ResetRate))))
	}
	if o.HangRate > 0 {
		out = append(out, fmt.Sprintf("%s%% calls hang (until Volley's upstream timeout)", pct(fmt.Sprint(o.HangRate))))
	}
	return out
}

func pct(rate string) string {
	f, err := strconv.ParseFloat(rate, 64)
	if err != nil {
		return rate
	}
	return strconv.FormatFloat(f*100, 'f', -1, 64)
}

const upstreamKey = "upstream-secret"

var mockReady = regexp.MustCompile(`mockllm listening on (http://\S+)`)

// Mock is a running mockllm.
type Mock struct {
	Proc *Proc
	Opts MockOptions
}

// StartMock runs mockllm with opts.
func StartMock(ctx context.Context, bin string, opts MockOptions) (*Mock, error) {
	p, err := StartProc(ctx, ProcSpec{Name: "mockllm", Path: bin, Args: opts.args(), Ready: mockReady})
	if err != nil {
		return nil, err
	}
	return &Mock{Proc: p, Opts: opts}, nil
}

// V1 is the base URL Volley sends requests to.
func (m *Mock) V1() string { return m.Proc.Announced + "/v1" }

// MockStats is the part of GET /stats the suites read.
type MockStats struct {
	TotalCalls      int64            `json:"total_calls"`
	PeakConcurrency int64            `json:"peak_concurrency"`
	MaxConcurrency  int64            `json:"max_concurrency"`
	Violations      int64            `json:"violations"`
	UniqueBodies    int64            `json:"unique_bodies"`
	DuplicateCalls  int64            `json:"duplicate_calls"`
	Resets          int64            `json:"resets"`
	Hangs           int64            `json:"hangs"`
	Canceled        int64            `json:"canceled"`
	InFlight        int64            `json:"in_flight"`
	StatusCounts    map[string]int64 `json:"status_counts"`
	Models          map[string]struct {
		Calls           int64            `json:"calls"`
		PeakConcurrency int64            `json:"peak_concurrency"`
		StatusCounts    map[string]int64 `json:"status_counts"`
	} `json:"models"`
}

// FaultAnswers counts the calls that ended in an injected fault, each of which Volley retries:
// non-2xx answers, resets and hangs.
func (s MockStats) FaultAnswers() int64 {
	var n int64
	for code, c := range s.StatusCounts {
		if !strings.HasPrefix(code, "2") {
			n += c
		}
	}
	return n + s.Resets + s.Hangs
}

// Stats reads GET /stats.
func (m *Mock) Stats(ctx context.Context) (MockStats, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.Proc.Announced+"/stats", nil)
	if err != nil {
		return MockStats{}, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return MockStats{}, err
	}
	defer res.Body.Close()
	var s MockStats
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		return MockStats{}, fmt.Errorf("mock stats: %w", err)
	}
	return s, nil
}
