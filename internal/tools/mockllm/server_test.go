package mockllm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const chatBody = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`

func TestBadRequests(t *testing.T) {
	h := New(Config{MaxBodyBytes: 1024}, nil).Handler()
	cases := []struct {
		name, path, body string
		status           int
		param            any
	}{
		{"not json", "/v1/chat/completions", `nope`, 400, nil},
		{"broken json", "/v1/chat/completions", `{"model":`, 400, nil},
		{"array body", "/v1/chat/completions", `[{"model":"m"}]`, 400, nil},
		{"empty body", "/v1/chat/completions", ``, 400, nil},
		{"missing model", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, 400, "model"},
		{"null model", "/v1/embeddings", `{"model":null,"input":"x"}`, 400, "model"},
		{"numeric model", "/v1/embeddings", `{"model":3,"input":"x"}`, 400, "model"},
		{"empty model", "/v1/responses", `{"model":"","input":"x"}`, 400, "model"},
		{"missing messages", "/v1/chat/completions", `{"model":"m"}`, 400, "messages"},
		{"empty messages", "/v1/chat/completions", `{"model":"m","messages":[]}`, 400, "messages"},
		{"bad content", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":5}]}`, 400, "messages.[0].content"},
		{"missing prompt", "/v1/completions", `{"model":"m"}`, 400, "prompt"},
		{"missing input", "/v1/embeddings", `{"model":"m"}`, 400, "input"},
		{"bad dimensions", "/v1/embeddings", `{"model":"m","input":"x","dimensions":0}`, 400, "dimensions"},
		{"bad input type", "/v1/moderations", `{"model":"m","input":{}}`, 400, "input"},
		{"bad responses input", "/v1/responses", `{"model":"m","input":7}`, 400, "input"},
		{"bad stream type", "/v1/chat/completions", `{"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]}`, 400, "stream"},
		{"bad mock status", "/v1/chat/completions", `{"model":"m","mock":{"status":302},"messages":[{"role":"user","content":"x"}]}`, 400, "mock.status"},
		{"bad mock status type", "/v1/chat/completions", `{"model":"m","mock":{"status":"500"},"messages":[{"role":"user","content":"x"}]}`, 400, "mock.status"},
		{"bad mock latency", "/v1/chat/completions", `{"model":"m","mock":{"latency":"soon"},"messages":[{"role":"user","content":"x"}]}`, 400, "mock.latency"},
		{"negative mock times", "/v1/chat/completions", `{"model":"m","mock":{"status":500,"times":-1},"messages":[{"role":"user","content":"x"}]}`, 400, "mock.times"},
		{"unknown service tier", "/v1/responses", `{"model":"m","input":"x","service_tier":"background"}`, 400, "service_tier"},
		{"too large", "/v1/embeddings", `{"model":"m","input":"` + strings.Repeat("x", 2000) + `"}`, 413, nil},
		{"unknown path", "/v1/images/generations", `{"model":"m"}`, 404, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := callHandler(t, h, tc.path, tc.body)
			require.Equal(t, tc.status, r.status, string(r.body))
			require.Equal(t, "application/json", r.header.Get("Content-Type"))
			errorCode(t, r)
			e := r.json(t)["error"].(map[string]any)
			require.Equal(t, tc.param, e["param"])
			require.NotEmpty(t, e["message"])
		})
	}

	req, err := http.NewRequest(http.MethodGet, "/v1/chat/completions", nil)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	require.Equal(t, "POST", rec.Header().Get("Allow"))
}

func TestAuth(t *testing.T) {
	open := New(Config{}, nil).Handler()
	keyed := New(Config{APIKey: testKey}, nil).Handler()
	noAuth := New(Config{NoAuth: true, APIKey: testKey}, nil).Handler()
	cases := []struct {
		name   string
		h      http.Handler
		auth   string
		status int
	}{
		{"open any key", open, "Bearer whatever", 200},
		{"open lower-case scheme", open, "bearer whatever", 200},
		{"open missing", open, "", 401},
		{"open empty key", open, "Bearer ", 401},
		{"open basic", open, "Basic Zm9vOmJhcg==", 401},
		{"keyed right", keyed, "Bearer " + testKey, 200},
		{"keyed wrong", keyed, "Bearer sk-user-key-123456", 401},
		{"keyed missing", keyed, "", 401},
		{"no auth", noAuth, "", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := callHandler(t, tc.h, "/v1/chat/completions", chatBody, "Authorization", tc.auth)
			require.Equal(t, tc.status, r.status, string(r.body))
			if tc.status == 401 {
				require.Equal(t, "invalid_api_key", errorCode(t, r))
				require.NotContains(t, string(r.body), "sk-user-key-123456", "keys are redacted")
			}
		})
	}
}

func TestAuthorizationRecordedPerModel(t *testing.T) {
	s := New(Config{APIKey: testKey}, nil)
	h := s.Handler()
	callHandler(t, h, "/v1/chat/completions", `{"model":"a","messages":[{"role":"user","content":"x"}]}`)
	r := callHandler(t, h, "/v1/chat/completions", `{"model":"b","messages":[{"role":"user","content":"x"}]}`,
		"Authorization", "Bearer sk-user-leaked")
	require.Equal(t, http.StatusUnauthorized, r.status)
	// Rejected bodies are still attributed to their model when it parses.
	r = callHandler(t, h, "/v1/chat/completions", `{"model":"c"}`, "Authorization", "")
	require.Equal(t, http.StatusUnauthorized, r.status, "auth is checked before validation")

	st := s.Stats()
	require.Equal(t, "Bearer "+testKey, st.Models["a"].LastAuthorization)
	require.Equal(t, "Bearer sk-user-leaked", st.Models["b"].LastAuthorization)
	require.Equal(t, "", st.Models["c"].LastAuthorization)
	require.Equal(t, map[string]int64{"401": 1}, st.Models["b"].StatusCounts)
	require.Equal(t, map[string]int64{"200": 1, "401": 2}, st.StatusCounts)
}

func TestDirectiveStatus(t *testing.T) {
	s := New(Config{}, nil)
	h := s.Handler()
	body := `{"model":"m","mock":{"status":400},"messages":[{"role":"user","content":"x"}]}`
	for range 3 {
		r := callHandler(t, h, "/v1/chat/completions", body)
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Equal(t, "invalid_request", errorCode(t, r))
	}

	body = `{"model":"m","mock":{"status":500,"times":2},"messages":[{"role":"user","content":"x"}]}`
	var got []int
	for range 4 {
		r := callHandler(t, h, "/v1/chat/completions", body)
		got = append(got, r.status)
		if r.status == 500 {
			require.Equal(t, "server_error", errorCode(t, r))
			require.Equal(t, "server_error", r.json(t)["error"].(map[string]any)["type"])
		}
	}
	require.Equal(t, []int{500, 500, 200, 200}, got)
	// A different body has its own count.
	r := callHandler(t, h, "/v1/chat/completions", strings.Replace(body, `"x"`, `"y"`, 1))
	require.Equal(t, 500, r.status)
	require.Equal(t, "1", r.header.Get("X-Mockllm-Call"))

	body = `{"model":"m","mock":{"status":429,"retry_after":"2","times":1},"messages":[{"role":"user","content":"x"}]}`
	r = callHandler(t, h, "/v1/chat/completions", body)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "2", r.header.Get("Retry-After"))
	require.Empty(t, r.header.Get("Retry-After-Ms"))
	require.Equal(t, "rate_limit_exceeded", errorCode(t, r))
	require.Equal(t, 200, callHandler(t, h, "/v1/chat/completions", body).status)

	body = `{"model":"m","mock":{"status":429,"retry_after_ms":"300","times":1},"messages":[{"role":"user","content":"x"}]}`
	r = callHandler(t, h, "/v1/chat/completions", body)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "300", r.header.Get("retry-after-ms"))
	require.Empty(t, r.header.Get("Retry-After"))

	body = `{"model":"m","mock":{"status":429,"retry_after":1,"retry_after_ms":1000},"messages":[{"role":"user","content":"x"}]}`
	r = callHandler(t, h, "/v1/chat/completions", body)
	require.Equal(t, "1", r.header.Get("Retry-After"))
	require.Equal(t, "1000", r.header.Get("Retry-After-Ms"))

	body = `{"model":"m","mock":{"status":503,"message":"overloaded","type":"server_error","code":"overloaded"},"messages":[{"role":"user","content":"x"}]}`
	r = callHandler(t, h, "/v1/chat/completions", body)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Equal(t, "overloaded", errorCode(t, r))
	require.Equal(t, "overloaded", r.json(t)["error"].(map[string]any)["message"])

	body = `{"model":"m","mock":{"status":200,"content":"fixed answer"},"messages":[{"role":"user","content":"x"}]}`
	r = callHandler(t, h, "/v1/chat/completions", body)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "fixed answer", r.json(t)["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"])

	// Directive counts start over after a stats reset.
	body = `{"model":"m","mock":{"status":500,"times":1},"messages":[{"role":"user","content":"z"}]}`
	require.Equal(t, 500, callHandler(t, h, "/v1/chat/completions", body).status)
	require.Equal(t, 200, callHandler(t, h, "/v1/chat/completions", body).status)
	s.ResetStats()
	require.Equal(t, 500, callHandler(t, h, "/v1/chat/completions", body).status)
}

func TestDirectiveResetConnection(t *testing.T) {
	s, ts := startServer(t, Config{})
	body := `{"model":"m","mock":{"reset":true,"times":1},"messages":[{"role":"user","content":"x"}]}`
	_, err := doPost(t.Context(), ts.Client(), ts.URL+"/v1/chat/completions", body)
	require.Error(t, err, "the connection is reset without an answer")
	r, err := doPost(t.Context(), ts.Client(), ts.URL+"/v1/chat/completions", body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.status)

	st := s.Stats()
	require.EqualValues(t, 1, st.Resets)
	require.EqualValues(t, 2, st.TotalCalls)
	require.Equal(t, map[string]int64{"200": 1}, st.StatusCounts)
	require.EqualValues(t, 0, st.InFlight)
}

func TestDirectiveHangEndsWhenClientGoesAway(t *testing.T) {
	_, ts := startServer(t, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := doPost(ctx, ts.Client(), ts.URL+"/v1/chat/completions",
			`{"model":"m","mock":{"hang":true},"messages":[{"role":"user","content":"x"}]}`)
		errc <- err
	}()
	waitStats(t, ts.URL, "the hang to start", func(st Stats) bool { return st.Hangs == 1 && st.InFlight == 1 })
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	st := waitStats(t, ts.URL, "the hang to end", func(st Stats) bool { return st.InFlight == 0 })
	require.EqualValues(t, 1, st.Canceled)
	require.Empty(t, st.StatusCounts)
}

func TestHangMaxAndClose(t *testing.T) {
	// Every request hangs; HangMax bounds the hang with a 504.
	s := New(Config{HangRate: 1, HangMax: 20 * time.Millisecond}, nil)
	r := callHandler(t, s.Handler(), "/v1/chat/completions", chatBody)
	require.Equal(t, http.StatusGatewayTimeout, r.status)
	require.Equal(t, "timeout", errorCode(t, r))

	// Close releases hanging requests with a 503.
	s2, ts := startServer(t, Config{})
	res := make(chan result, 1)
	go func() {
		r, err := doPost(t.Context(), ts.Client(), ts.URL+"/v1/chat/completions",
			`{"model":"m","mock":{"hang":true},"messages":[{"role":"user","content":"x"}]}`)
		if err != nil {
			r.status = -1
		}
		res <- r
	}()
	waitStats(t, ts.URL, "the hang to start", func(st Stats) bool { return st.Hangs == 1 })
	s2.Close()
	require.Equal(t, http.StatusServiceUnavailable, (<-res).status)
}

func TestDirectiveLatency(t *testing.T) {
	h := New(Config{}, nil).Handler()
	for _, lat := range []string{`"60ms"`, `60`, `"0.06s"`} {
		start := time.Now()
		r := callHandler(t, h, "/v1/embeddings", `{"model":"m","input":"x","mock":{"latency":`+lat+`}}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.GreaterOrEqual(t, time.Since(start), 60*time.Millisecond, lat)
	}
}

func TestLatencyCanceledByClient(t *testing.T) {
	_, ts := startServer(t, Config{Latency: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := doPost(ctx, ts.Client(), ts.URL+"/v1/embeddings", `{"model":"m","input":"x"}`)
		errc <- err
	}()
	waitStats(t, ts.URL, "the request to be in flight", func(st Stats) bool { return st.InFlight == 1 })
	cancel()
	require.Error(t, <-errc)
	st := waitStats(t, ts.URL, "the request to end", func(st Stats) bool { return st.InFlight == 0 })
	require.EqualValues(t, 1, st.Canceled)
}

func TestDrawLatency(t *testing.T) {
	const n = 20000
	draw := func(cfg Config) []time.Duration {
		s := New(cfg, nil)
		out := make([]time.Duration, n)
		for i := range out {
			r := newRNG(s.cfg.Seed, uint64(i+1))
			r.float64()
			out[i] = s.drawLatency(r.float64())
		}
		return out
	}
	mean := func(ds []time.Duration) time.Duration {
		var t time.Duration
		for _, d := range ds {
			t += d
		}
		return t / time.Duration(len(ds))
	}

	for _, d := range draw(Config{Latency: 50 * time.Millisecond}) {
		require.Equal(t, 50*time.Millisecond, d)
	}
	for _, d := range draw(Config{Latency: 50 * time.Millisecond, LatencyJitter: time.Second, LatencyDist: DistFixed}) {
		require.Equal(t, 50*time.Millisecond, d)
	}
	uni := draw(Config{Latency: 100 * time.Millisecond, LatencyJitter: 20 * time.Millisecond})
	for _, d := range uni {
		require.GreaterOrEqual(t, d, 80*time.Millisecond)
		require.LessOrEqual(t, d, 120*time.Millisecond)
	}
	require.InDelta(t, float64(100*time.Millisecond), float64(mean(uni)), float64(time.Millisecond))
	for _, d := range draw(Config{Latency: 10 * time.Millisecond, LatencyJitter: 50 * time.Millisecond}) {
		require.GreaterOrEqual(t, d, time.Duration(0), "clamped at zero")
	}
	exp := draw(Config{Latency: 100 * time.Millisecond, LatencyDist: DistExp})
	require.InDelta(t, float64(100*time.Millisecond), float64(mean(exp)), float64(5*time.Millisecond))
	for _, d := range exp {
		require.LessOrEqual(t, d, 2*time.Second)
	}
}

func TestRandomFaultRates(t *testing.T) {
	const n = 5000
	cfg := Config{
		Seed:          42,
		Failures:      []Failure{{Status: 500, Rate: 0.10}, {Status: 503, Rate: 0.05}},
		RateLimitRate: 0.05,
		RetryAfter:    1500 * time.Millisecond,
	}
	run := func(cfg Config) ([]int, map[int]int) {
		h := New(cfg, nil).Handler()
		seq := make([]int, n)
		counts := map[int]int{}
		for i := range seq {
			// Distinct bodies: the outcome depends on the draw, not the body.
			r := callHandler(t, h, "/v1/embeddings", fmt.Sprintf(`{"model":"m","input":"x%d"}`, i))
			seq[i] = r.status
			counts[r.status]++
			if r.status == 429 {
				require.Equal(t, "2", r.header.Get("Retry-After"))
				require.Equal(t, "1500", r.header.Get("Retry-After-Ms"))
				require.Equal(t, "rate_limit_exceeded", errorCode(t, r))
			}
		}
		return seq, counts
	}
	seq, counts := run(cfg)
	within := func(status int, rate float64) {
		want := rate * n
		require.InDelta(t, want, float64(counts[status]), 4*math.Sqrt(want), "status %d: %v", status, counts)
	}
	within(500, 0.10)
	within(503, 0.05)
	within(429, 0.05)
	within(200, 0.80)

	again, _ := run(cfg)
	require.Equal(t, seq, again, "the same seed gives the same sequence")
	cfg.Seed = 43
	other, _ := run(cfg)
	require.NotEqual(t, seq, other)
}

func TestRandomResetsAndHangs(t *testing.T) {
	s, ts := startServer(t, Config{Seed: 7, ResetRate: 0.3, HangRate: 0.1, HangMax: time.Millisecond})
	const n = 300
	failed, timedOut := 0, 0
	for i := range n {
		r, err := doPost(t.Context(), ts.Client(), ts.URL+"/v1/embeddings", fmt.Sprintf(`{"model":"m","input":"%d"}`, i))
		switch {
		case err != nil:
			failed++
		case r.status == http.StatusGatewayTimeout:
			timedOut++
		default:
			require.Equal(t, http.StatusOK, r.status)
		}
	}
	st := s.Stats()
	require.EqualValues(t, failed, st.Resets, "every reset is seen as a connection error by the client")
	require.EqualValues(t, timedOut, st.Hangs)
	require.InDelta(t, 0.3*n, float64(failed), 4*math.Sqrt(0.3*n))
	require.InDelta(t, 0.1*n, float64(timedOut), 4*math.Sqrt(0.1*n))
}

func TestPeakConcurrency(t *testing.T) {
	const perModel, models, limit = 15, 2, 20
	_, ts := startServer(t, Config{Latency: time.Hour, MaxConcurrency: limit})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	for m := range models {
		for i := range perModel {
			wg.Go(func() {
				_, _ = doPost(ctx, client, ts.URL+"/v1/embeddings", fmt.Sprintf(`{"model":"m%d","input":"%d"}`, m, i))
			})
		}
	}
	const total = perModel * models
	// A call counts in flight at once, and for its model once its body is read.
	st := waitStats(t, ts.URL, "all requests in flight for their models", func(st Stats) bool {
		if st.InFlight != total {
			return false
		}
		for m := range models {
			if st.Models[fmt.Sprintf("m%d", m)].InFlight != perModel {
				return false
			}
		}
		return true
	})
	require.EqualValues(t, total, st.PeakConcurrency)
	require.EqualValues(t, total-limit, st.Violations)
	require.Equal(t, limit, st.MaxConcurrency)
	for m := range models {
		ms := st.Models[fmt.Sprintf("m%d", m)]
		require.EqualValues(t, perModel, ms.InFlight)
		require.EqualValues(t, perModel, ms.PeakConcurrency)
		require.EqualValues(t, perModel, ms.Calls)
	}
	cancel()
	wg.Wait()
	st = waitStats(t, ts.URL, "all requests to end", func(st Stats) bool { return st.InFlight == 0 })
	require.EqualValues(t, total, st.PeakConcurrency)
	require.EqualValues(t, total, st.Canceled)
	require.EqualValues(t, 0, st.Models["m0"].InFlight)
}

// TestManyConnections holds 2,000 concurrent connections open and then
// releases them all.
func TestManyConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	const n = 2000
	s, ts := startServer(t, Config{})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := doPost(t.Context(), client, ts.URL+"/v1/chat/completions",
				fmt.Sprintf(`{"model":"m","mock":{"hang":true},"messages":[{"role":"user","content":"%d"}]}`, i))
			if err != nil {
				statuses <- -1
				return
			}
			statuses <- r.status
		})
	}
	st := waitStats(t, ts.URL, "all requests in flight", func(st Stats) bool { return st.InFlight == n })
	require.EqualValues(t, n, st.PeakConcurrency)
	s.Close()
	wg.Wait()
	close(statuses)
	for status := range statuses {
		require.Equal(t, http.StatusServiceUnavailable, status)
	}
}

func TestDuplicatesAndStatsReset(t *testing.T) {
	s, ts := startServer(t, Config{})
	send := func(body string, times int) {
		for range times {
			r, err := doPost(t.Context(), ts.Client(), ts.URL+"/v1/embeddings", body)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, r.status)
		}
	}
	send(`{"model":"a","input":"1"}`, 3)
	send(`{"model":"a","input":"2"}`, 2)
	send(`{"model":"b","input":"3"}`, 1)

	st := getStats(t, ts.URL)
	require.EqualValues(t, 6, st.TotalCalls)
	require.EqualValues(t, 3, st.UniqueBodies)
	require.EqualValues(t, 2, st.Duplicates)
	require.EqualValues(t, 3, st.DuplicateCalls)
	require.EqualValues(t, 5, st.Models["a"].Calls)
	require.EqualValues(t, 1, st.Models["b"].Calls)
	require.EqualValues(t, 1, st.PeakConcurrency)
	require.Equal(t, map[string]int64{"200": 6}, st.StatusCounts)
	require.Equal(t, map[string]int64{"/v1/embeddings": 6}, st.Endpoints)

	resp, err := http.Post(ts.URL+"/stats/reset", "application/json", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, resp.Body.Close())

	st = getStats(t, ts.URL)
	require.Zero(t, st.TotalCalls)
	require.Zero(t, st.UniqueBodies)
	require.Zero(t, st.Duplicates)
	require.Zero(t, st.PeakConcurrency)
	require.Empty(t, st.Models)
	require.Empty(t, st.StatusCounts)
	require.Empty(t, st.Endpoints)
	require.True(t, st.ResetAt.After(st.StartedAt) || st.ResetAt.Equal(st.StartedAt))

	send(`{"model":"a","input":"1"}`, 1)
	st = s.Stats()
	require.EqualValues(t, 1, st.UniqueBodies)
	require.Zero(t, st.Duplicates)
	require.EqualValues(t, 1, st.Models["a"].Calls)

	resp, err = http.Get(ts.URL + "/stats/reset")
	require.NoError(t, err)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.NoError(t, resp.Body.Close())
}

func TestStatsJSONShapeAndHealthz(t *testing.T) {
	_, ts := startServer(t, Config{MaxConcurrency: 5})
	_, err := doPost(t.Context(), ts.Client(), ts.URL+"/v1/chat/completions", chatBody)
	require.NoError(t, err)

	resp, err := http.Get(ts.URL + "/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	for _, k := range []string{"started_at", "reset_at", "total_calls", "in_flight", "peak_concurrency",
		"max_concurrency", "violations", "unique_bodies", "duplicates", "duplicate_calls", "resets", "hangs",
		"canceled", "status_counts", "endpoints", "models"} {
		require.Contains(t, m, k)
	}
	model := m["models"].(map[string]any)["m"].(map[string]any)
	require.Equal(t, map[string]any{
		"calls": 1.0, "in_flight": 0.0, "peak_concurrency": 1.0,
		"status_counts": map[string]any{"200": 1.0}, "last_authorization": "Bearer " + testKey,
	}, model)

	hz, err := http.Get(ts.URL + "/healthz")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, hz.StatusCode)
	require.NoError(t, hz.Body.Close())
}

func TestParseFailures(t *testing.T) {
	got, err := ParseFailures("500", 0.05)
	require.NoError(t, err)
	require.Equal(t, []Failure{{500, 0.05}}, got)

	got, err = ParseFailures("500:0.05, 503:0.01,400:0.01", 0.5)
	require.NoError(t, err)
	require.Equal(t, []Failure{{500, 0.05}, {503, 0.01}, {400, 0.01}}, got)

	got, err = ParseFailures("500,503,429:0.1", 0.1)
	require.NoError(t, err)
	require.Equal(t, []Failure{{500, 0.05}, {503, 0.05}, {429, 0.1}}, got)

	got, err = ParseFailures("500", 0)
	require.NoError(t, err)
	require.Empty(t, got)

	got, err = ParseFailures("", 0.3)
	require.NoError(t, err)
	require.Empty(t, got)

	for _, bad := range []string{"abc", "200", "500:x", "500:1.5", "700:0.1"} {
		_, err := ParseFailures(bad, 0.1)
		require.Error(t, err, bad)
	}
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, Config{}.Validate())
	require.NoError(t, Config{ResetRate: 0.5, HangRate: 0.25, RateLimitRate: 0.25}.Validate())
	for _, bad := range []Config{
		{ResetRate: -0.1},
		{HangRate: 1.1},
		{ResetRate: 0.6, RateLimitRate: 0.6},
		{Failures: []Failure{{Status: 200, Rate: 0.1}}},
		{LatencyDist: "normal"},
		{Latency: -time.Second},
		{MaxConcurrency: -1},
	} {
		require.Error(t, bad.Validate(), "%+v", bad)
	}
	require.Panics(t, func() { New(Config{ResetRate: 2}, nil) })
}

func TestFlexString(t *testing.T) {
	var d Directive
	require.NoError(t, json.Unmarshal([]byte(`{"retry_after":2,"retry_after_ms":"300","latency":1.5}`), &d))
	require.Equal(t, FlexString("2"), d.RetryAfter)
	require.Equal(t, FlexString("300"), d.RetryAfterMS)
	require.Equal(t, FlexString("1.5"), d.Latency)
	require.Error(t, json.Unmarshal([]byte(`{"retry_after":true}`), &d))

	// Directives round-trip, so tests elsewhere can build request bodies.
	b, err := json.Marshal(Directive{Status: 500, Times: 2})
	require.NoError(t, err)
	require.JSONEq(t, `{"status":500,"times":2}`, string(b))
}

var errSink error

func BenchmarkChatCompletions(b *testing.B) {
	h := New(Config{}, nil).Handler()
	body := `{"model":"bench","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say something short about benchmarks."}]}`
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer k")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				errSink = errors.New(rec.Body.String())
			}
		}
	})
	if errSink != nil {
		b.Fatal(errSink)
	}
}

// With RecordStarts, every start of a model is kept with the model's calls in flight at it: a
// wave of calls held open counts 1, 2, … up, and a call after they ended counts 1 again.
func TestRecordStarts(t *testing.T) {
	const perModel = 6
	_, ts := startServer(t, Config{Latency: time.Hour, RecordStarts: true})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	before := time.Now().UnixNano()
	var wg sync.WaitGroup
	for m := range 2 {
		for i := range perModel {
			wg.Go(func() {
				_, _ = doPost(ctx, client, ts.URL+"/v1/embeddings", fmt.Sprintf(`{"model":"m%d","input":"%d"}`, m, i))
			})
		}
	}
	waitStats(t, ts.URL, "every call in flight", func(st Stats) bool {
		return st.Models["m0"].InFlight == perModel && st.Models["m1"].InFlight == perModel
	})
	cancel()
	wg.Wait()
	waitStats(t, ts.URL, "every call ended", func(st Stats) bool { return st.InFlight == 0 })
	_, err := doPost(t.Context(), http.DefaultClient, ts.URL+"/v1/embeddings", `{"model":"m0","input":"after","mock":{"latency":"0s"}}`)
	require.NoError(t, err)

	starts := getStarts(t, ts.URL)
	require.Zero(t, starts.Dropped)
	for m, want := range map[string]int{"m0": perModel + 1, "m1": perModel} {
		got := starts.Models[m]
		require.Len(t, got, want, m)
		for i, s := range got[:perModel] {
			require.EqualValues(t, i+1, s.InFlight, "%s: start %d", m, i)
			require.GreaterOrEqual(t, s.At, before)
			if i > 0 {
				require.GreaterOrEqual(t, s.At, got[i-1].At, "in the order of their counts")
			}
		}
	}
	require.EqualValues(t, 1, starts.Models["m0"][perModel].InFlight, "the later call was alone")

	resp, err := http.Post(ts.URL+"/stats/reset", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Empty(t, getStarts(t, ts.URL).Models, "a reset forgets the starts")
}

func getStarts(t *testing.T, base string) Starts { return getJSON[Starts](t, base+"/stats/starts") }
