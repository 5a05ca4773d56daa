package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// mockReadyLine is what mockllm prints on stdout once it listens.
var mockReadyLine = regexp.MustCompile(`^mockllm listening on (http://\S+)$`)

// mockProc is a running mockllm: the upstream of the dispatch scenarios.
type mockProc struct {
	*proc
	http *http.Client
}

// startMock starts mockllm on a free port of 127.0.0.1, without authentication, answering every
// request after latency (exactly: no jitter).
func (e *env) startMock(ctx context.Context, latency time.Duration, extra ...string) (*mockProc, error) {
	cmd := exec.Command(e.mockBin, append([]string{"-addr", "127.0.0.1:0", "-no-auth", "-latency", latency.String()}, extra...)...)
	cmd.Env = withoutMockEnv()
	p, err := startProc(ctx, "mockllm", cmd, mockReadyLine)
	if err != nil {
		return nil, err
	}
	return &mockProc{proc: p, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}}, nil
}

// withoutMockEnv is this process's environment without the MOCKLLM_ variables, which would
// change mockllm's settings.
func withoutMockEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MOCKLLM_") {
			out = append(out, kv)
		}
	}
	return out
}

// upstreamURL is the base URL Volley sends requests to.
func (m *mockProc) upstreamURL() string { return m.baseURL + "/v1" }

// mockStats is the part of mockllm's GET /stats the benchmark reads.
type mockStats struct {
	TotalCalls      int64            `json:"total_calls"`
	InFlight        int64            `json:"in_flight"`
	PeakConcurrency int64            `json:"peak_concurrency"`
	DuplicateCalls  int64            `json:"duplicate_calls"`
	OverCapacity    int64            `json:"over_capacity"`
	StatusCounts    map[string]int64 `json:"status_counts"`
	Models          map[string]struct {
		Calls           int64 `json:"calls"`
		PeakConcurrency int64 `json:"peak_concurrency"`
	} `json:"models"`
}

// stats reads GET /stats.
func (m *mockProc) stats(ctx context.Context) (mockStats, error) {
	var st mockStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.baseURL+"/stats", nil)
	if err != nil {
		return st, err
	}
	res, err := m.http.Do(req)
	if err != nil {
		return st, fmt.Errorf("mockllm stats: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return st, fmt.Errorf("mockllm stats: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return st, fmt.Errorf("mockllm stats: %s: %s", res.Status, truncate(string(body), 500))
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("mockllm stats: %w", err)
	}
	return st, nil
}

// watchFirstCall polls GET /stats every interval until total_calls is above zero and returns a
// channel that receives the moment it saw that (or the zero time if ctx ended first).
func (m *mockProc) watchFirstCall(ctx context.Context, interval time.Duration) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		defer close(out)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			st, err := m.stats(ctx)
			if err == nil && st.TotalCalls > 0 {
				out <- time.Now()
				return
			}
			select {
			case <-ctx.Done():
				out <- time.Time{}
				return
			case <-t.C:
			}
		}
	}()
	return out
}
