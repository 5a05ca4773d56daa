package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testLogger sends logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// setup returns a client for one upstream at baseURL (an httptest server's URL plus "/v1"), and
// the route to it.
func setup(t testing.TB, baseURL string, edit func(*Upstream)) (*Client, Route) {
	t.Helper()
	u := &Upstream{
		Name:    "up",
		BaseURL: baseURL,
		APIKey:  "sk-upstream",
		Timeout: 10 * time.Second,
		Headers: map[string]string{"X-Team": "research"},
	}
	if edit != nil {
		edit(u)
	}
	route := Route{Model: "m", Upstream: u, Concurrency: 4}
	c := NewClient(&Config{Upstreams: map[string]*Upstream{u.Name: u}, Routes: []Route{route}}, testLogger(t))
	t.Cleanup(c.CloseIdle)
	return c, route
}

// received is what a test server saw of one request.
type received struct {
	method, path string
	header       http.Header
	body         []byte
}

func recordingServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, <-chan received) {
	t.Helper()
	got := make(chan received, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got <- received{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body}
		r.Body = io.NopCloser(bytes.NewReader(body))
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestSendVerbatim(t *testing.T) {
	t.Parallel()
	const answer = `{"id":"chatcmpl-1","object":"chat.completion","choices":[]}`
	srv, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req-123")
		io.WriteString(w, answer)
	})
	c, route := setup(t, srv.URL+"/openai/v1", nil)

	// Odd spacing, escapes and number forms that re-encoding would change.
	body := []byte(`{ "model":"m",  "messages":[{"role":"user","content":"h\u00e9llo \"x\""}], "temperature":1.000e0 ,"n":1}`)
	o := c.Send(context.Background(), route, "/v1/chat/completions", body)
	require.NoError(t, o.Err)
	require.Equal(t, http.StatusOK, o.StatusCode)
	require.True(t, o.OK())
	require.Equal(t, answer, string(o.Body))
	require.Equal(t, "req-123", o.RequestID)
	require.Equal(t, "application/json", o.Header.Get("Content-Type"))
	require.False(t, o.Retryable)
	require.Empty(t, o.ErrCode)
	require.Zero(t, o.RetryAfter)
	require.Positive(t, o.Duration)

	r := <-got
	require.Equal(t, http.MethodPost, r.method)
	require.Equal(t, "/openai/v1/chat/completions", r.path)
	require.Equal(t, body, r.body)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "application/json", r.header.Get("Accept"))
	require.Equal(t, "Bearer sk-upstream", r.header.Get("Authorization"))
	require.Equal(t, []string{"Bearer sk-upstream"}, r.header.Values("Authorization"))
	require.Equal(t, "research", r.header.Get("X-Team"))
	require.Equal(t, "volley/"+Version, r.header.Get("User-Agent"))
	require.Equal(t, strconv.Itoa(len(body)), r.header.Get("Content-Length"))
	names := make([]string, 0, len(r.header))
	for name := range r.header {
		names = append(names, name)
	}
	slices.Sort(names)
	// Accept-Encoding is the transport's own (it decompresses gzip transparently).
	require.Equal(t, []string{"Accept", "Accept-Encoding", "Authorization", "Content-Length", "Content-Type", "User-Agent", "X-Team"}, names)

	// Endpoints given without /v1, and ones Volley does not precompute, go to the same place.
	o = c.Send(context.Background(), route, "/embeddings", body)
	require.Equal(t, http.StatusOK, o.StatusCode)
	require.Equal(t, "/openai/v1/embeddings", (<-got).path)
	o = c.Send(context.Background(), route, "/v1/audio/speech", body)
	require.Equal(t, http.StatusOK, o.StatusCode)
	require.Equal(t, "/openai/v1/audio/speech", (<-got).path)
}

func TestSendWithoutKey(t *testing.T) {
	t.Parallel()
	srv, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") })
	c, route := setup(t, srv.URL+"/v1", func(u *Upstream) {
		u.APIKey = ""
		u.Headers = map[string]string{"user-agent": "custom/1"}
	})
	o := c.Send(context.Background(), route, "/v1/completions", []byte(`{"model":"m"}`))
	require.Equal(t, http.StatusOK, o.StatusCode)
	r := <-got
	require.NotContains(t, r.header, "Authorization")
	require.Equal(t, "custom/1", r.header.Get("User-Agent"), "configured headers replace Volley's")
}

// statusServer answers with the status and headers its request body asks for.
func statusServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ask struct {
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
		}
		if err := json.NewDecoder(r.Body).Decode(&ask); err != nil {
			http.Error(w, err.Error(), http.StatusTeapot)
			return
		}
		for k, v := range ask.Headers {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ask.Status)
		io.WriteString(w, `{"error":{"message":"status `+strconv.Itoa(ask.Status)+`","type":"x"}}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSendClassifiesStatuses(t *testing.T) {
	t.Parallel()
	srv := statusServer(t)
	c, route := setup(t, srv.URL+"/v1", nil)
	cases := []struct {
		status    int
		retryable bool
	}{
		{200, false},
		{201, false},
		{301, false},
		{400, false},
		{401, false},
		{403, false},
		{404, false},
		{422, false},
		{408, true},
		{409, true},
		{425, true},
		{429, true},
		{500, true},
		{502, true},
		{503, true},
		{504, true},
	}
	for _, tc := range cases {
		o := c.Send(context.Background(), route, "/v1/chat/completions", []byte(`{"status":`+strconv.Itoa(tc.status)+`}`))
		require.NoError(t, o.Err, tc.status)
		require.Equal(t, tc.status, o.StatusCode)
		require.Equal(t, tc.retryable, o.Retryable, tc.status)
		require.Empty(t, o.ErrCode, tc.status)
		require.Equal(t, `{"error":{"message":"status `+strconv.Itoa(tc.status)+`","type":"x"}}`, string(o.Body),
			"non-2xx answers keep their body")
	}
}

func TestSendRetryAfter(t *testing.T) {
	t.Parallel()
	srv := statusServer(t)
	c, route := setup(t, srv.URL+"/v1", nil)
	send := func(status int, headers map[string]string) Outcome {
		body, err := json.Marshal(map[string]any{"status": status, "headers": headers})
		require.NoError(t, err)
		return c.Send(context.Background(), route, "/v1/chat/completions", body)
	}

	o := send(429, map[string]string{"Retry-After": "7"})
	require.True(t, o.Retryable)
	require.Equal(t, 7*time.Second, o.RetryAfter)

	o = send(429, map[string]string{"retry-after-ms": "1500.5", "Retry-After": "2"})
	require.Equal(t, 1500500*time.Microsecond, o.RetryAfter)

	o = send(503, map[string]string{"Retry-After": time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)})
	require.True(t, o.Retryable)
	require.Greater(t, o.RetryAfter, 28*time.Second)
	require.LessOrEqual(t, o.RetryAfter, 30*time.Second)

	o = send(500, nil)
	require.Zero(t, o.RetryAfter)
}

func TestSendTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that the server notices the client going away
		if r.URL.Path == "/v1/completions" {
			// Headers and part of the body, then nothing.
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, `{"partial":`)
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close, which waits for the handlers
	c, route := setup(t, srv.URL+"/v1", func(u *Upstream) { u.Timeout = 50 * time.Millisecond })

	for _, endpoint := range []string{"/v1/chat/completions", "/v1/completions"} {
		o := c.Send(context.Background(), route, endpoint, []byte(`{"model":"m"}`))
		require.Zero(t, o.StatusCode, endpoint)
		require.Nil(t, o.Body)
		require.Equal(t, ErrCodeTimeout, o.ErrCode, endpoint)
		require.True(t, o.Retryable)
		require.ErrorIs(t, o.Err, ErrTimeout)
		require.EqualError(t, o.Err, "upstream up: request timed out after 50ms")
		require.GreaterOrEqual(t, o.Duration, 50*time.Millisecond)
	}

	// A model's own timeout replaces the upstream's.
	long, route := setup(t, srv.URL+"/v1", func(u *Upstream) { u.Timeout = time.Hour })
	route.Timeout = 80 * time.Millisecond
	o := long.Send(context.Background(), route, "/v1/chat/completions", []byte(`{"model":"m"}`))
	require.Equal(t, ErrCodeTimeout, o.ErrCode)
	require.EqualError(t, o.Err, "upstream up: request timed out after 80ms")
}

func TestSendCancelled(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 2)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that the server notices the client going away
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close, which waits for the handlers
	c, route := setup(t, srv.URL+"/v1", nil)

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan Outcome, 1)
		go func() { done <- c.Send(ctx, route, "/v1/chat/completions", []byte(`{}`)) }()
		<-arrived
		cancel()
		o := <-done
		require.Zero(t, o.StatusCode)
		require.Empty(t, o.ErrCode)
		require.False(t, o.Retryable)
		require.ErrorIs(t, o.Err, context.Canceled)
	})

	t.Run("caller's deadline before the upstream timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		o := c.Send(ctx, route, "/v1/chat/completions", []byte(`{}`))
		require.Zero(t, o.StatusCode)
		require.Empty(t, o.ErrCode, "the batch's deadline is the caller's to report")
		require.False(t, o.Retryable)
		require.ErrorIs(t, o.Err, context.DeadlineExceeded)
	})

	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		o := c.Send(ctx, route, "/v1/chat/completions", []byte(`{}`))
		require.Empty(t, o.ErrCode)
		require.False(t, o.Retryable)
		require.ErrorIs(t, o.Err, context.Canceled)
	})
}

func TestSendConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	c, route := setup(t, "http://"+addr+"/v1", nil)
	o := c.Send(context.Background(), route, "/v1/chat/completions", []byte(`{}`))
	require.Zero(t, o.StatusCode)
	require.Equal(t, ErrCodeUnreachable, o.ErrCode)
	require.True(t, o.Retryable)
	require.ErrorContains(t, o.Err, "connection refused")
}

// hijackServer hands each request's connection to drop.
func hijackServer(t *testing.T, drop func(conn net.Conn, rw *bufio.ReadWriter)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		drop(conn, rw)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSendConnectionDropped(t *testing.T) {
	t.Parallel()
	cases := map[string]func(conn net.Conn, rw *bufio.ReadWriter){
		"closed before answering": func(conn net.Conn, _ *bufio.ReadWriter) { conn.Close() },
		"reset before answering": func(conn net.Conn, _ *bufio.ReadWriter) {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		},
		"closed in the body": func(conn net.Conn, rw *bufio.ReadWriter) {
			rw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"partial\":")
			rw.Flush()
			conn.Close()
		},
		"reset in the chunked body": func(conn net.Conn, rw *bufio.ReadWriter) {
			rw.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n")
			rw.Flush()
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		},
		"not HTTP": func(conn net.Conn, rw *bufio.ReadWriter) {
			rw.WriteString("SSH-2.0-OpenSSH\r\n")
			rw.Flush()
			conn.Close()
		},
	}
	for name, drop := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := hijackServer(t, drop)
			c, route := setup(t, srv.URL+"/v1", nil)
			o := c.Send(context.Background(), route, "/v1/chat/completions", []byte(`{}`))
			require.Zero(t, o.StatusCode)
			require.Nil(t, o.Body)
			require.Equal(t, ErrCodeUnreachable, o.ErrCode)
			require.True(t, o.Retryable)
			require.Error(t, o.Err)
			require.NotErrorIs(t, o.Err, ErrTimeout)
			t.Log(o.Err)
		})
	}
}

func TestSendResponseSize(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if r.URL.Query().Get("chunked") != "" {
			// Flushing before the end leaves the length unknown: the body is chunked.
			io.WriteString(w, strings.Repeat("a", n/2))
			w.(http.Flusher).Flush()
			io.WriteString(w, strings.Repeat("b", n-n/2))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		io.WriteString(w, strings.Repeat("a", n))
	}))
	t.Cleanup(srv.Close)
	c, route := setup(t, srv.URL+"/v1", nil)
	c.maxBody = 1000

	for _, chunked := range []string{"", "1"} {
		for _, n := range []int{0, 1, 999, 1000} {
			o := c.Send(context.Background(), route, "/v1/chat/completions?chunked="+chunked+"&n="+strconv.Itoa(n), []byte(`{}`))
			require.NoError(t, o.Err)
			require.Equal(t, http.StatusOK, o.StatusCode)
			require.Len(t, o.Body, n)
			require.NotNil(t, o.Body)
		}
		o := c.Send(context.Background(), route, "/v1/chat/completions?chunked="+chunked+"&n=1001", []byte(`{}`))
		require.Zero(t, o.StatusCode, "chunked=%q", chunked)
		require.Nil(t, o.Body)
		require.Equal(t, ErrCodeResponseTooLarge, o.ErrCode)
		require.False(t, o.Retryable)
		require.ErrorIs(t, o.Err, ErrResponseTooLarge)
		require.EqualError(t, o.Err, "upstream up answered 200 with a body over 1000 bytes: response body too large")
		require.NotNil(t, o.Header)
	}
}

func TestSendReusesConnections(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/v1/completions" {
			io.WriteString(w, `{"a":`)
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, `{"ok":true}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, route := setup(t, srv.URL+"/v1", nil)

	for _, endpoint := range []string{"/v1/chat/completions", "/v1/completions"} {
		for range 50 {
			o := c.Send(context.Background(), route, endpoint, []byte(`{"model":"m"}`))
			require.Equal(t, http.StatusOK, o.StatusCode)
		}
	}
	require.Equal(t, int32(1), conns.Load(), "one keep-alive connection for sequential requests")
}

func TestSendBodyIsOwned(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.(http.Flusher).Flush() // chunked: read through the pooled buffers
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	c, route := setup(t, srv.URL+"/v1", nil)

	const n = 64
	outs := make([]Outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			outs[i] = c.Send(context.Background(), route, "/v1/embeddings", []byte(`{"i":`+strconv.Itoa(i)+`}`))
		})
	}
	wg.Wait()
	for i, o := range outs {
		require.Equal(t, `{"i":`+strconv.Itoa(i)+`}`, string(o.Body))
	}
}

func TestSendUnknownUpstream(t *testing.T) {
	t.Parallel()
	c := NewClient(&Config{}, nil)
	o := c.Send(context.Background(), Route{Model: "m", Upstream: &Upstream{Name: "elsewhere"}}, "/v1/chat/completions", nil)
	require.Equal(t, ErrCodeUnreachable, o.ErrCode)
	require.False(t, o.Retryable)
	require.Error(t, o.Err)
	o = c.Send(context.Background(), Route{Model: "m"}, "/v1/chat/completions", nil)
	require.Error(t, o.Err)
}

func TestConnLimits(t *testing.T) {
	t.Parallel()
	vllm := &Upstream{Name: "vllm"}
	capped := &Upstream{Name: "capped", MaxConns: 10}
	small := &Upstream{Name: "small"}
	openai := &Upstream{Name: "openai"}
	idle := &Upstream{Name: "idle"}
	cfg := &Config{Routes: []Route{
		{Model: "a", Upstream: vllm, Concurrency: 256},
		{Model: "b", Upstream: vllm, Concurrency: 64},
		{Model: "c", Upstream: capped, Concurrency: 256},
		{Model: "d", Upstream: small, Concurrency: 2},
		{Model: "e", Upstream: openai, Concurrency: 2000},
		{Model: "*", Upstream: openai, Concurrency: 32},
	}}
	for _, tc := range []struct {
		u              *Upstream
		maxConns, idle int
	}{
		{vllm, 320, 320},
		{capped, 10, 10},
		{small, 16, 16},
		{openai, 0, 2032},
		{idle, 16, 16},
	} {
		maxConns, maxIdle := connLimits(cfg, tc.u)
		require.Equal(t, tc.maxConns, maxConns, tc.u.Name)
		require.Equal(t, tc.idle, maxIdle, tc.u.Name)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	require.NotEmpty(t, Version)
}

func BenchmarkSend(b *testing.B) {
	answer := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"echo: hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		w.Write(answer)
	}))
	defer srv.Close()
	c, route := setup(b, srv.URL+"/v1", func(u *Upstream) {})
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hello"}]}`)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			o := c.Send(context.Background(), route, "/v1/chat/completions", body)
			if o.StatusCode != http.StatusOK {
				b.Fatal(o.Err)
			}
		}
	})
}

func TestModelsAsksTheUpstream(t *testing.T) {
	t.Parallel()
	answer := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"list","data":[{"id":"llama-3","object":"model"},{"id":""},{"id":"qwen-2"}]}`))
	}
	srv, got := recordingServer(t, answer)
	c, _ := setup(t, srv.URL+"/v1", nil)
	models, err := c.Models(t.Context(), "up", 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, []string{"llama-3", "qwen-2"}, models, "entries without an id are skipped")
	r := <-got
	require.Equal(t, http.MethodGet, r.method)
	require.Equal(t, "/v1/models", r.path)
	require.Equal(t, "Bearer sk-upstream", r.header.Get("Authorization"))
	require.Equal(t, "research", r.header.Get("X-Team"))

	_, err = c.Models(t.Context(), "nope", time.Second)
	require.ErrorContains(t, err, `no upstream client for upstream "nope"`)
}

func TestModelsReportsAFailingUpstream(t *testing.T) {
	t.Parallel()
	for name, answer := range map[string]func(w http.ResponseWriter, r *http.Request){
		"status":   func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) },
		"not json": func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) },
		"slow": func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, _ := recordingServer(t, answer)
			c, _ := setup(t, srv.URL+"/v1", nil)
			_, err := c.Models(t.Context(), "up", 200*time.Millisecond)
			require.Error(t, err)
			require.Contains(t, err.Error(), "upstream up")
		})
	}
}
