package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/mockllm"
)

const reexecEnv = "MOCKLLM_TEST_REEXEC_MAIN"

// TestMain lets the test binary act as mockllm when the go tool is not
// available to build the real one.
func TestMain(m *testing.M) {
	if os.Getenv(reexecEnv) == "1" {
		os.Unsetenv(reexecEnv)
		main()
		return
	}
	os.Exit(m.Run())
}

// binaryCommand builds mockllm into a temporary directory and returns a
// command running it with args.
func binaryCommand(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	if goTool, err := exec.LookPath("go"); err == nil {
		bin := filepath.Join(t.TempDir(), "mockllm")
		build := exec.Command(goTool, "build", "-o", bin, ".")
		out, err := build.CombinedOutput()
		require.NoError(t, err, "go build: %s", out)
		return exec.Command(bin, args...)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), reexecEnv+"=1")
	return cmd
}

var listeningLine = regexp.MustCompile(`^mockllm listening on (http://127\.0\.0\.1:[0-9]+)$`)

func TestBinary(t *testing.T) {
	cmd := binaryCommand(t, "-addr", "127.0.0.1:0", "-api-key", "sk-upstream")
	cmd.Env = append(os.Environ(), "MOCKLLM_API_KEY=sk-from-env", "MOCKLLM_SEED=3")
	if cmd.Path == os.Args[0] {
		cmd.Env = append(cmd.Env, reexecEnv+"=1")
	}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	// Stdout must be drained before Wait closes the pipe.
	lineCh := make(chan string, 1)
	var (
		rest    string
		waitErr error
	)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		out := bufio.NewReader(stdout)
		line, _ := out.ReadString('\n')
		lineCh <- line
		b, _ := io.ReadAll(out)
		rest = string(b)
		waitErr = cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	var line string
	select {
	case line = <-lineCh:
	case <-time.After(30 * time.Second):
		t.Fatalf("no listening line; stderr: %s", stderr.String())
	}
	m := listeningLine.FindStringSubmatch(strings.TrimSuffix(line, "\n"))
	require.NotNil(t, m, "unexpected first line %q", line)
	base := m[1]

	post := func(ctx context.Context, key, body string) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}

	status, body, err := post(t.Context(), "sk-upstream", `{"model":"demo","messages":[{"role":"user","content":"hello"}]}`)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, string(body))
	var chat struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	require.NoError(t, json.Unmarshal(body, &chat))
	require.Equal(t, "echo: hello", chat.Choices[0].Message.Content)

	// The flag wins over MOCKLLM_API_KEY.
	status, _, err = post(t.Context(), "sk-from-env", `{"model":"demo","messages":[{"role":"user","content":"hello"}]}`)
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, status)

	resp, err := http.Get(base + "/stats")
	require.NoError(t, err)
	var st mockllm.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	require.NoError(t, resp.Body.Close())
	require.EqualValues(t, 2, st.TotalCalls)
	require.EqualValues(t, 2, st.Models["demo"].Calls)
	require.Equal(t, "Bearer sk-from-env", st.Models["demo"].LastAuthorization)
	require.Equal(t, map[string]int64{"200": 1, "401": 1}, st.StatusCounts)

	// A hanging request is answered when the server shuts down.
	hung := make(chan int, 1)
	go func() {
		status, _, err := post(context.Background(), "sk-upstream", `{"model":"demo","mock":{"hang":true},"messages":[{"role":"user","content":"x"}]}`)
		if err != nil {
			status = -1
		}
		hung <- status
	}()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(base + "/stats")
		require.NoError(t, err)
		var st mockllm.Stats
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
		require.NoError(t, resp.Body.Close())
		if st.Hangs == 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "hang did not start")
		<-tick.C
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-exited:
		require.NoError(t, waitErr, "stderr: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("mockllm did not exit after SIGTERM; stderr: %s", stderr.String())
	}
	require.Equal(t, 0, cmd.ProcessState.ExitCode())
	require.Equal(t, http.StatusServiceUnavailable, <-hung)

	require.Empty(t, rest, "stdout holds exactly one line")
	require.Contains(t, stderr.String(), "shutting down")
}

func envMap(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, envMap(), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9090", o.addr)
	require.Equal(t, uint64(1), o.cfg.Seed)
	require.Empty(t, o.cfg.Failures)
	require.Equal(t, time.Second, o.cfg.RetryAfter)
	require.Equal(t, mockllm.DefaultHangMax, o.cfg.HangMax)
	require.Zero(t, o.cfg.Capacity)

	o, err = parseFlags([]string{"-capacity", "50", "-capacity-status", "503"}, envMap("MOCKLLM_CAPACITY_MODE", "slow"), io.Discard)
	require.NoError(t, err)
	require.Equal(t, 50, o.cfg.Capacity)
	require.Equal(t, 503, o.cfg.CapacityStatus)
	require.Equal(t, mockllm.CapacitySlow, o.cfg.CapacityMode)

	o, err = parseFlags([]string{"-latency", "2s", "-fail-rate", "0.1", "-fail-status", "500,503", "-v"},
		envMap("MOCKLLM_LATENCY", "20ms", "MOCKLLM_LATENCY_JITTER", "5ms", "MOCKLLM_RATE_LIMIT_RATE", "0.02",
			"MOCKLLM_RESET_RATE", "0.01", "MOCKLLM_HANG_RATE", "0.005", "MOCKLLM_HANG_MAX", "1m",
			"MOCKLLM_MAX_CONCURRENCY", "64", "MOCKLLM_ADDR", "127.0.0.1:0", "MOCKLLM_NO_AUTH", "true",
			"MOCKLLM_LATENCY_DIST", "exp", "MOCKLLM_RETRY_AFTER", "3s"), io.Discard)
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, o.cfg.Latency, "flags win over the environment")
	require.Equal(t, 5*time.Millisecond, o.cfg.LatencyJitter)
	require.Equal(t, mockllm.DistExp, o.cfg.LatencyDist)
	require.Equal(t, []mockllm.Failure{{Status: 500, Rate: 0.05}, {Status: 503, Rate: 0.05}}, o.cfg.Failures)
	require.Equal(t, 0.02, o.cfg.RateLimitRate)
	require.Equal(t, 0.01, o.cfg.ResetRate)
	require.Equal(t, 0.005, o.cfg.HangRate)
	require.Equal(t, time.Minute, o.cfg.HangMax)
	require.Equal(t, 3*time.Second, o.cfg.RetryAfter)
	require.Equal(t, 64, o.cfg.MaxConcurrency)
	require.Equal(t, "127.0.0.1:0", o.addr)
	require.True(t, o.cfg.NoAuth)
	require.True(t, o.cfg.Verbose)

	o, err = parseFlags(nil, envMap("MOCKLLM_VERBOSE", "1", "MOCKLLM_FAIL_STATUS", "500:0.05,503:0.01,400:0.01"), io.Discard)
	require.NoError(t, err)
	require.True(t, o.cfg.Verbose)
	require.Len(t, o.cfg.Failures, 3)

	for _, tc := range []struct {
		args []string
		env  []string
	}{
		{args: []string{"-latency", "soon"}},
		{args: []string{"-fail-rate", "2"}},
		{args: []string{"-fail-status", "200"}},
		{args: []string{"-reset-rate", "0.6", "-hang-rate", "0.6"}},
		{args: []string{"-latency-dist", "normal"}},
		{args: []string{"extra"}},
		{args: []string{"-capacity", "-1"}},
		{args: []string{"-capacity", "5", "-capacity-mode", "queue"}},
		{args: []string{"-capacity-status", "500"}},
		{env: []string{"MOCKLLM_SEED", "x"}},
	} {
		_, err := parseFlags(tc.args, envMap(tc.env...), io.Discard)
		require.Error(t, err, "%v %v", tc.args, tc.env)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"-fail-rate", "7"}, envMap(), &stdout, &stderr)
	require.Equal(t, 2, code)
	require.Empty(t, stdout.String())
	require.Contains(t, stderr.String(), "mockllm:")

	stderr.Reset()
	require.Equal(t, 0, run(t.Context(), []string{"-h"}, envMap(), &stdout, &stderr))
	require.Contains(t, stderr.String(), "MOCKLLM_")
}

// TestRunInProcess starts the server in-process and stops it by cancelling
// its context.
func TestRunInProcess(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, envMap(), pw, io.Discard)
		_ = pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	m := listeningLine.FindStringSubmatch(strings.TrimSpace(line))
	require.NotNil(t, m, line)

	resp, err := http.Get(m[1] + "/healthz")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, resp.Body.Close())

	cancel()
	require.Equal(t, 0, <-done)
	_, err = http.Get(m[1] + "/healthz")
	require.Error(t, err, "the listener is closed")
}

// With -any-port-if-taken, a taken -addr port falls back to a free one, and -addr-file says which.
func TestRunPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = taken.Close() })

	// Without the flag, a taken port is an error.
	var stderr bytes.Buffer
	require.Equal(t, 1, run(t.Context(), []string{"-addr", taken.Addr().String()}, envMap(), io.Discard, &stderr))
	require.Contains(t, stderr.String(), "address already in use")

	addrFile := filepath.Join(t.TempDir(), "addr")
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-addr", taken.Addr().String(), "-any-port-if-taken", "-addr-file", addrFile}, envMap(), pw, io.Discard)
		_ = pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	m := listeningLine.FindStringSubmatch(strings.TrimSpace(line))
	require.NotNil(t, m, line)
	require.NotEqual(t, "http://"+taken.Addr().String(), m[1])

	written, err := os.ReadFile(addrFile)
	require.NoError(t, err)
	require.Equal(t, m[1], "http://"+strings.TrimSpace(string(written)))
	resp, err := http.Get(m[1] + "/healthz")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, resp.Body.Close())
	cancel()
	require.Equal(t, 0, <-done)
}
