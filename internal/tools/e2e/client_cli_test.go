package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/testproc"
)

// cliStack is a volley serve dispatching to a mockllm, and the environment the volley client
// commands need to reach it.
type cliStack struct {
	t      *testing.T
	bin    string
	env    []string
	client openai.Client
}

func startCLIStack(t *testing.T, concurrency int, mockArgs ...string) *cliStack {
	t.Helper()
	m := startMock(t, mockArgs...)
	v := startVolley(t, dispatchEnv(t, m, concurrency)...)
	key := v.key("cli")
	return &cliStack{
		t: t, bin: filepath.Join(v.bin, "volley"), client: v.client(key),
		env: []string{"OPENAI_BASE_URL=" + v.proc.URL, "OPENAI_API_KEY=" + key, "NO_COLOR=", "TERM=xterm"},
	}
}

// cliResult is what one run of the volley binary printed and how it exited.
type cliResult struct {
	stdout, stderr string
	code           int
}

// run runs the volley binary with stdout and stderr on pipes (not a terminal).
func (s *cliStack) run(args ...string) cliResult {
	s.t.Helper()
	return runVolleyCLI(s.t, s.bin, s.env, args...)
}

func runVolleyCLI(t *testing.T, bin string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runInTerminal runs the volley binary with a pseudo-terminal (120 columns) as its stdin, stdout
// and stderr, and returns everything the terminal received.
func (s *cliStack) runInTerminal(args ...string) cliResult {
	s.t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), s.env...)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	require.NoError(s.t, err)
	defer tty.Close()
	var out bytes.Buffer // read only once copied is closed
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = out.ReadFrom(tty) // ends with EIO once the process has exited
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		s.t.Fatalf("volley %v did not end", args)
	}
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		s.t.Fatalf("terminal output of volley %v did not end", args)
	}
	code := 0
	var exitErr *exec.ExitError
	if errors.As(werr, &exitErr) {
		code = exitErr.ExitCode()
	} else {
		require.NoError(s.t, werr)
	}
	return cliResult{stdout: out.String(), code: code}
}

// background is a volley client command running while the test acts around it.
type background struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan error
}

func (s *cliStack) start(args ...string) *background {
	s.t.Helper()
	b := &background{t: s.t, cmd: exec.Command(s.bin, args...), done: make(chan error, 1)}
	b.cmd.Env = append(os.Environ(), s.env...)
	b.cmd.Stdout, b.cmd.Stderr = &b.stdout, &b.stderr
	require.NoError(s.t, b.cmd.Start())
	go func() { b.done <- b.cmd.Wait() }()
	s.t.Cleanup(func() { _ = b.cmd.Process.Kill() })
	return b
}

// waitStderr polls until stderr holds what n times.
func (b *background) waitStderr(what string, n int) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(b.stderr.String(), what) < n {
		require.True(b.t, time.Now().Before(deadline), "no %q in %q", what, b.stderr.String())
		time.Sleep(20 * time.Millisecond) // polling the child's output
	}
}

// interrupt sends SIGINT, as Ctrl-C does, and returns the exit status.
func (b *background) interrupt() int {
	b.t.Helper()
	require.NoError(b.t, b.cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-b.done:
		var exitErr *exec.ExitError
		require.True(b.t, errors.As(err, &exitErr), "%v", err)
		return exitErr.ExitCode()
	case <-time.After(30 * time.Second):
		b.t.Fatal("the command did not stop on SIGINT")
	}
	return 0
}

// requireNoControlChars fails when out holds anything a terminal would interpret (escapes,
// carriage returns, backspaces): plain output is one line per update.
func requireNoControlChars(t *testing.T, name, out string) {
	t.Helper()
	for i, c := range []byte(out) {
		if (c < 0x20 && c != '\n') || c == 0x7f {
			t.Fatalf("%s holds control character %#x at byte %d:\n%q", name, c, i, out)
		}
	}
}

// writeRequests writes n chat completion lines to dir/name; lines for which fail says so ask
// mockllm for a 400, which is final.
func writeRequests(t *testing.T, dir, name string, n int, fail func(i int) bool) (string, []string) {
	t.Helper()
	var b strings.Builder
	var failing []string
	for i := range n {
		id := fmt.Sprintf("req-%04d", i)
		extra := ""
		if fail != nil && fail(i) {
			extra = `,"mock":{"status":400}`
			failing = append(failing, id)
		}
		b.WriteString(reqLine(id, "cli-model", extra))
	}
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	return path, failing
}

// jsonlCustomIDs reads a result file written by the CLI and returns its custom_ids, sorted.
func jsonlCustomIDs(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var ids []string
	for _, l := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		var r resultLine
		require.NoError(t, json.Unmarshal([]byte(l), &r), "line %q of %s", l, path)
		ids = append(ids, r.CustomID)
	}
	sort.Strings(ids)
	return ids
}

// A 1,000-line file with failures, submitted and waited for off a terminal: plain progress lines,
// both result files beside the input, and a non-zero exit since not every request completed.
func TestCLISubmitWaitWritesBothFiles(t *testing.T) {
	t.Parallel()
	s := startCLIStack(t, 32, "-latency", "5ms")
	dir := t.TempDir()
	path, failing := writeRequests(t, dir, "requests.jsonl", 1000, func(i int) bool { return i%37 == 5 })
	require.Len(t, failing, 27)

	res := s.run("batch", "submit", path, "--wait", "--window", "2h", "--metadata", "team=search", "--metadata", "run=7", "--interval", "1s")
	require.Equal(t, 1, res.code, "not every request completed\nstdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	requireNoControlChars(t, "stdout", res.stdout)
	requireNoControlChars(t, "stderr", res.stderr)
	require.Contains(t, res.stderr, "uploading requests.jsonl: ")
	require.Regexp(t, `(?m)^batch_\S+ completed: 1000/1000 done \(100%\), 973 completed, 27 failed, \S+ req/s, ETA 0s, elapsed \S+$`, res.stderr)
	require.Contains(t, res.stderr, "wrote "+filepath.Join(dir, "requests.output.jsonl"))
	require.Regexp(t, `(?m)^batch_\S+ completed: 973 of 1000 requests completed, 27 failed$`, res.stdout)
	// The failures are shown as they happen, each once, up to 20.
	notes := regexp.MustCompile(`(?m)^failed (req-\d+) \(line (\d+)\): HTTP 400: mockllm: status 400 requested by mock directive$`).FindAllStringSubmatch(res.stderr, -1)
	require.Len(t, notes, 20, res.stderr)
	shown := map[string]bool{}
	for _, n := range notes {
		require.False(t, shown[n[1]], "%s is shown once", n[1])
		shown[n[1]] = true
		require.Contains(t, failing, n[1])
		require.Equal(t, n[1], fmt.Sprintf("req-%04d", mustAtoi(t, n[2])-1), "its line")
	}
	require.Contains(t, res.stderr, "more requests fail; all of them: volley batch results ")

	out := jsonlCustomIDs(t, filepath.Join(dir, "requests.output.jsonl"))
	errs := jsonlCustomIDs(t, filepath.Join(dir, "requests.errors.jsonl"))
	require.Equal(t, failing, errs, "the error file holds exactly the failing lines")
	require.Len(t, out, 973)
	require.Empty(t, intersect(out, errs))

	id := regexp.MustCompile(`(?m)^(batch_\S+) completed:`).FindStringSubmatch(res.stdout)[1]
	b, err := s.client.Batches.Get(ctx(t), id)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusCompleted, b.Status)
	require.Equal(t, "2h", b.CompletionWindow)
	require.Equal(t, "/v1/chat/completions", b.Endpoint, "the endpoint is inferred from the lines")
	require.Equal(t, "search", b.Metadata["team"])
	require.Equal(t, "7", b.Metadata["run"])
	require.Equal(t, int64(27), b.RequestCounts.Failed)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

func intersect(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range a {
		in[x] = true
	}
	var both []string
	for _, x := range b {
		if in[x] {
			both = append(both, x)
		}
	}
	return both
}

// Every request completing is the one exit status 0; --json streams the batch as it changes, and a
// stale error file from an earlier run does not survive a run without failures.
func TestCLISubmitWaitSucceedsWithJSON(t *testing.T) {
	t.Parallel()
	s := startCLIStack(t, 8)
	dir := t.TempDir()
	path, _ := writeRequests(t, dir, "ok.jsonl", 40, nil)
	stale := filepath.Join(dir, "ok.errors.jsonl")
	require.NoError(t, os.WriteFile(stale, []byte("from an earlier run\n"), 0o644))

	res := s.run("batch", "submit", path, "--wait", "--json")
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	var last map[string]any
	for _, l := range lines {
		last = map[string]any{}
		require.NoError(t, json.Unmarshal([]byte(l), &last), "each stdout line is a JSON object: %q", l)
		require.Equal(t, "batch", last["object"])
	}
	require.Equal(t, "completed", last["status"])
	require.Equal(t, map[string]any{"total": 40.0, "completed": 40.0, "failed": 0.0}, last["request_counts"])
	require.Len(t, jsonlCustomIDs(t, filepath.Join(dir, "ok.output.jsonl")), 40)
	require.NoFileExists(t, stale)
}

var percent = regexp.MustCompile(`(\d+)%`)

// On a terminal: the upload's byte bar, then a bar redrawn in place with colour while the batch
// runs; watch started on a running batch ends when the batch does.
func TestCLIProgressOnTerminal(t *testing.T) {
	t.Parallel()
	s := startCLIStack(t, 4, "-latency", "100ms")
	path, _ := writeRequests(t, t.TempDir(), "tty.jsonl", 160, func(i int) bool { return i == 3 })

	sub := s.runInTerminal("batch", "submit", path)
	require.Equal(t, 0, sub.code, "%q", sub.stdout)
	require.Contains(t, sub.stdout, "\ruploading tty.jsonl ", "the upload bar is drawn in place")
	require.Contains(t, sub.stdout, "100%", "and reaches its end")
	require.Contains(t, sub.stdout, "█")
	id := regexp.MustCompile(`(?m)^(batch_\w+)\r?$`).FindStringSubmatch(sub.stdout)
	require.NotNil(t, id, "%q", sub.stdout)

	b, err := s.client.Batches.Get(ctx(t), id[1])
	require.NoError(t, err)
	require.False(t, terminal(b), "the batch still runs when watching starts")
	require.Less(t, b.RequestCounts.Completed+b.RequestCounts.Failed, int64(160))

	w := s.runInTerminal("batch", "watch", id[1])
	require.Equal(t, 1, w.code, "one request failed: %q", w.stdout)
	frames := strings.Split(w.stdout, "\r")
	var drawn []string
	for _, f := range frames {
		if strings.Contains(f, "req/s") && strings.Contains(f, "ETA") {
			drawn = append(drawn, f)
		}
	}
	require.GreaterOrEqual(t, len(drawn), 3, "the bar is redrawn as the batch runs: %q", w.stdout)
	seen := map[string]bool{}
	for _, f := range drawn {
		require.Contains(t, f, "\x1b[K", "each redraw clears the rest of the line")
		require.Contains(t, f, "/160", "completed/failed/total")
		require.Contains(t, f, "elapsed")
		if m := percent.FindStringSubmatch(f); m != nil {
			seen[m[1]] = true
		}
	}
	require.GreaterOrEqual(t, len(seen), 2, "the bar moves: %q", w.stdout)
	require.Contains(t, w.stdout, "\x1b[32m", "colour on a terminal")
	require.Contains(t, w.stdout, "\x1b[31m1 failed", "failures in red")
	require.Equal(t, 1, strings.Count(w.stdout, "\x1b[31mfailed\x1b[0m req-0003 (line 4): HTTP 400: mockllm: status 400"), "the failure is shown as it happens: %q", w.stdout)
	require.Contains(t, drawn[len(drawn)-1], "100%")
	require.Contains(t, w.stdout, id[1]+" completed: 159 of 160 requests completed, 1 failed")

	b, err = s.client.Batches.Get(ctx(t), id[1])
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusCompleted, b.Status, "watch ends at the batch's end")
}

// Ctrl-C stops watching and leaves the batch running; `volley batch cancel` is what cancels.
func TestCLIInterruptLeavesBatchRunning(t *testing.T) {
	t.Parallel()
	s := startCLIStack(t, 2, "-latency", "200ms")
	path, _ := writeRequests(t, t.TempDir(), "long.jsonl", 100, nil)
	sub := s.run("batch", "submit", path)
	require.Equal(t, 0, sub.code, sub.stderr)
	id := strings.TrimSpace(sub.stdout)
	require.True(t, strings.HasPrefix(id, "batch_"), sub.stdout)

	w := s.start("batch", "watch", id, "--interval", "200ms")
	w.waitStderr("req/s", 2)
	require.Equal(t, 130, w.interrupt())
	requireNoControlChars(t, "stderr", w.stderr.String())
	require.Contains(t, w.stderr.String(), "stopped watching "+id+"; it is still in_progress on the server")

	b, err := s.client.Batches.Get(ctx(t), id)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusInProgress, b.Status, "Ctrl-C never cancels")
	before := b.RequestCounts.Completed
	b = waitBatch(t, s.client, id, 30*time.Second, func(b *openai.Batch) bool { return b.RequestCounts.Completed > before })
	require.Equal(t, openai.BatchStatusInProgress, b.Status, "the batch runs on")

	c := s.run("batch", "cancel", id)
	require.Equal(t, 0, c.code, c.stderr)
	require.Regexp(t, `^`+id+` (cancelling|cancelled) \(\d+ completed, \d+ failed of 100 so far\)`, c.stdout)
	b = waitBatch(t, s.client, id, 30*time.Second, terminal)
	require.Equal(t, openai.BatchStatusCancelled, b.Status)
}

// The other commands, with --json parsed as a script would, and their human forms.
func TestCLICommands(t *testing.T) {
	t.Parallel()
	s := startCLIStack(t, 16)
	dir := t.TempDir()
	path, failing := writeRequests(t, dir, "cmds.jsonl", 30, func(i int) bool { return i%10 == 0 })

	up := s.run("file", "upload", path, "--json")
	require.Equal(t, 0, up.code, up.stderr)
	var file struct {
		ID, Object, Purpose, Filename string
		Bytes                         int64
	}
	require.NoError(t, json.Unmarshal([]byte(up.stdout), &file), up.stdout)
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, "file", file.Object)
	require.Equal(t, "batch", file.Purpose)
	require.Equal(t, "cmds.jsonl", file.Filename)
	require.Equal(t, info.Size(), file.Bytes)

	list := s.run("file", "list", "--json", "--purpose", "batch")
	require.Equal(t, 0, list.code, list.stderr)
	var files struct {
		Object string
		Data   []struct{ ID string }
	}
	require.NoError(t, json.Unmarshal([]byte(list.stdout), &files))
	require.Equal(t, "list", files.Object)
	require.Equal(t, file.ID, files.Data[0].ID)
	require.Contains(t, s.run("file", "list").stdout, file.ID+"  batch")
	require.Contains(t, s.run("file", "get", file.ID).stdout, "cmds.jsonl")

	copyPath := filepath.Join(dir, "copy.jsonl")
	dl := s.run("file", "download", file.ID, "--out", copyPath)
	require.Equal(t, 0, dl.code, dl.stderr)
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	got, err := os.ReadFile(copyPath)
	require.NoError(t, err)
	require.Equal(t, want, got, "the download is byte-identical")
	require.Equal(t, string(want), s.run("file", "download", file.ID).stdout)

	sub := s.run("batch", "submit", path, "--endpoint", "/v1/chat/completions", "--json")
	require.Equal(t, 0, sub.code, sub.stderr)
	var created openai.Batch
	require.NoError(t, json.Unmarshal([]byte(sub.stdout), &created))
	require.Equal(t, int64(30), created.RequestCounts.Total)
	b := waitBatch(t, s.client, created.ID, time.Minute, terminal)

	get := s.run("batch", "get", b.ID, "--json")
	require.Equal(t, 0, get.code, get.stderr)
	var got1 openai.Batch
	require.NoError(t, json.Unmarshal([]byte(get.stdout), &got1))
	require.Equal(t, b.ID, got1.ID)
	require.Equal(t, openai.BatchStatusCompleted, got1.Status)
	human := s.run("batch", "get", b.ID).stdout
	require.Regexp(t, `requests\s+27 completed, 3 failed, 30 total`, human)
	require.Regexp(t, `service_tier\s+-\n`, human, "none given")

	bl := s.run("batch", "list", "--json", "--limit", "5")
	require.Equal(t, 0, bl.code, bl.stderr)
	var batches struct{ Data []struct{ ID string } }
	require.NoError(t, json.Unmarshal([]byte(bl.stdout), &batches))
	require.Equal(t, b.ID, batches.Data[0].ID)
	require.Regexp(t, b.ID+`\s+completed\s+/v1/chat/completions\s+27\s+3\s+30`, s.run("batch", "list").stdout)

	failedPath := filepath.Join(dir, "failed.jsonl")
	r := s.run("batch", "results", b.ID, "--status", "failed", "--out", failedPath)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, failing, jsonlCustomIDs(t, failedPath))
	all := s.run("batch", "results", b.ID)
	require.Equal(t, 30, strings.Count(all.stdout, "\n"), "all: output then error lines")
	completed := s.run("batch", "results", b.ID, "--status", "completed")
	require.Equal(t, 27, strings.Count(completed.stdout, "\n"))

	del := s.run("file", "delete", file.ID, "--json")
	require.Equal(t, 0, del.code, del.stderr)
	var deleted struct {
		ID      string
		Deleted bool
	}
	require.NoError(t, json.Unmarshal([]byte(del.stdout), &deleted))
	require.True(t, deleted.Deleted)
	gone := s.run("file", "get", file.ID)
	require.Equal(t, 1, gone.code)
	require.Contains(t, gone.stderr, "404")
	missing := s.run("batch", "get", "batch_missing")
	require.Equal(t, 1, missing.code)
	require.Contains(t, missing.stderr, "get batch: 404 No batch found with id 'batch_missing'.")

	// A batch of the background tier.
	low := s.run("batch", "submit", path, "--service-tier", "background")
	require.Equal(t, 0, low.code, low.stderr)
	lowID := strings.TrimSpace(low.stdout)
	require.Regexp(t, `service_tier\s+background\n`, s.run("batch", "get", lowID).stdout)
	waitBatch(t, s.client, lowID, time.Minute, terminal)
	bad := s.run("batch", "submit", path, "--service-tier", "urgent")
	require.Equal(t, 1, bad.code)
	require.Contains(t, bad.stderr, "Invalid 'service_tier': 'urgent'")
}

// A bad command line exits 2 with the usage; bad input found before any call exits 1, named.
func TestCLIArgumentErrors(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(testproc.Binaries(t), "volley")
	env := []string{"OPENAI_BASE_URL=http://127.0.0.1:1/v1", "OPENAI_API_KEY=sk-test"}
	dir := t.TempDir()
	mixed := filepath.Join(dir, "mixed.jsonl")
	require.NoError(t, os.WriteFile(mixed, []byte(reqLine("a", "m", "")+
		`{"custom_id":"b","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"x"}}`+"\n"), 0o644))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"batch"}, "batch: give a command"},
		{[]string{"batch", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"batch", "submit"}, "batch submit: give the JSONL file of requests"},
		{[]string{"batch", "submit", "a.jsonl", "b.jsonl"}, `unexpected argument "b.jsonl"`},
		{[]string{"batch", "submit", "a.jsonl", "--metadata", "novalue"}, `want key=value, got "novalue"`},
		{[]string{"batch", "submit", "a.jsonl", "--wiat"}, "flag provided but not defined: -wiat"},
		{[]string{"batch", "watch"}, "batch watch: give a batch id"},
		{[]string{"batch", "watch", "b", "--interval", "1ms"}, "--interval must be at least 100ms"},
		{[]string{"batch", "list", "--limit", "0"}, "--limit must be within 1..100"},
		{[]string{"batch", "get", "a", "b"}, `unexpected argument "b"`},
		{[]string{"batch", "results", "b", "--status", "nope"}, "--status must be completed, failed or all"},
		{[]string{"batch", "retry", "b", "--status", "running"}, "--status must be completed, failed, expired or cancelled"},
		{[]string{"file"}, "file: give a command"},
		{[]string{"file", "download"}, "file download: give a file id"},
		{[]string{"file", "list", "--limit", "x"}, `invalid value "x" for flag -limit`},
	} {
		res := runVolleyCLI(t, bin, env, tc.args...)
		require.Equal(t, 2, res.code, "%v: %s", tc.args, res.stderr)
		require.Contains(t, res.stderr, tc.want, "%v", tc.args)
		require.Contains(t, res.stderr, "Usage:", "%v", tc.args)
	}
	help := runVolleyCLI(t, bin, env, "batch", "help")
	require.Equal(t, 0, help.code, "help asked for is no error")
	require.Contains(t, help.stdout, "volley batch submit FILE")
	help = runVolleyCLI(t, bin, env, "file", "list", "-h")
	require.Equal(t, 0, help.code)
	require.Contains(t, help.stdout, "volley file upload FILE")

	res := runVolleyCLI(t, bin, env, "batch", "submit", mixed)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `line 2 has url "/v1/embeddings" but line 1 has "/v1/chat/completions"`)
	res = runVolleyCLI(t, bin, []string{"OPENAI_API_KEY="}, "batch", "list")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "OPENAI_API_KEY is not set")
	res = runVolleyCLI(t, bin, env, "batch", "submit", filepath.Join(dir, "absent.jsonl"))
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "absent.jsonl: no such file or directory")
}

// What the server refuses is shown as the server words it, and a batch that is still running has
// no results to read yet.
func TestCLIServerErrors(t *testing.T) {
	t.Parallel()
	s := startCLIStack(t, 1, "-latency", "300ms")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte(reqLine("a", "m", "")+reqLine("a", "m", "")), 0o644))
	res := s.run("batch", "submit", bad)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "upload "+bad+": 400 Line 2: custom_id 'a' is already used on line 1")
	require.Contains(t, res.stderr, "code duplicate_custom_id")
	files, err := s.client.Files.List(ctx(t), openai.FileListParams{})
	require.NoError(t, err)
	require.Empty(t, files.Data, "nothing was stored")

	// A large file refused near its start: the server answers before the body is all sent, and that
	// answer is what is shown.
	var big strings.Builder
	big.WriteString(reqLine("first", "m", ""))
	big.WriteString("{\"custom_id\": 7}\n")
	pad := strings.Repeat("x", 2000)
	for i := range 4000 {
		big.WriteString(reqLine(fmt.Sprintf("pad-%d", i), "m", `,"pad":"`+pad+`"`))
	}
	bigPath := filepath.Join(dir, "big.jsonl")
	require.NoError(t, os.WriteFile(bigPath, []byte(big.String()), 0o644))
	res = s.run("file", "upload", bigPath)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "upload "+bigPath+": 400 Line 2: ")
	require.Contains(t, res.stderr, "custom_id")

	path, _ := writeRequests(t, dir, "slow.jsonl", 20, nil)
	sub := s.run("batch", "submit", path)
	require.Equal(t, 0, sub.code, sub.stderr)
	id := strings.TrimSpace(sub.stdout)
	res = s.run("batch", "results", id)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "batch "+id+" is in_progress: its output and error files appear when it ends")
	res = s.run("batch", "submit", path, "--window", "1d")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "create a batch from "+path)
	require.Contains(t, res.stderr, "400")
}

// A watch whose server goes away keeps trying and says so, and still stops cleanly on Ctrl-C.
func TestCLIWatchOutlivesServerErrors(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "300ms")
	v := startVolley(t, dispatchEnv(t, m, 1)...)
	key := v.key("cli")
	s := &cliStack{t: t, bin: filepath.Join(v.bin, "volley"), client: v.client(key),
		env: []string{"OPENAI_BASE_URL=" + v.proc.URL, "OPENAI_API_KEY=" + key}}
	path, _ := writeRequests(t, t.TempDir(), "gone.jsonl", 50, nil)
	sub := s.run("batch", "submit", path)
	require.Equal(t, 0, sub.code, sub.stderr)
	id := strings.TrimSpace(sub.stdout)

	w := s.start("batch", "watch", id, "--interval", "200ms")
	w.waitStderr("req/s", 1)
	v.proc.Kill()
	w.waitStderr("retrying: get batch: ", 1)
	select {
	case err := <-w.done:
		t.Fatalf("watch gave up while the server was away: %v\n%s", err, w.stderr.String())
	default:
	}
	require.Equal(t, 130, w.interrupt())
	require.Contains(t, w.stderr.String(), "stopped watching "+id)
	requireNoControlChars(t, "stderr", w.stderr.String())
}
