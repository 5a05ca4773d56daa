package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// readyLine is what volley serve prints on stdout once it accepts requests.
var readyLine = regexp.MustCompile(`^Volley is serving the OpenAI API at (http://\S+/v1)$`)

const (
	startTimeout = 90 * time.Second
	stopTimeout  = 30 * time.Second
	logTailBytes = 16 << 10
)

// proc is a running server process (`volley serve` or mockllm) that announced its base URL.
type proc struct {
	name    string // for messages: "volley serve", "mockllm"
	baseURL string // what the process announced, e.g. http://127.0.0.1:41234/v1
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	output  tailBuffer
}

// volleyProc is a running `volley serve`.
type volleyProc = proc

// startVolley starts `volley serve` on a free port of 127.0.0.1 with extra environment variables
// and waits until it announces its base URL.
func (e *env) startVolley(ctx context.Context, extra ...string) (*volleyProc, error) {
	cmd := exec.Command(e.volleyBin, "serve")
	cmd.Env = e.volleyEnv(append([]string{"VOLLEY_ADDR=127.0.0.1:0"}, extra...)...)
	return startProc(ctx, "volley serve", cmd, readyLine)
}

// startProc starts cmd in a process group of its own and waits until a line of its stdout matches
// ready, whose first group is the base URL.
func startProc(ctx context.Context, name string, cmd *exec.Cmd, ready *regexp.Regexp) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &p.output
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	announced := make(chan string, 1)
	go p.readStdout(stdout, ready, announced)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case p.baseURL = <-announced:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready: %v\n%s", name, p.waitErr, p.output.String())
	case <-timer.C:
		p.kill()
		return nil, fmt.Errorf("%s not ready after %s\n%s", name, startTimeout, p.output.String())
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
}

// readStdout keeps the process's stdout for error messages and reports the announced URL.
func (p *proc) readStdout(r io.Reader, ready *regexp.Regexp, announced chan<- string) {
	sc := bufio.NewScanner(r)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		_, _ = p.output.Write([]byte(line + "\n"))
		if m := ready.FindStringSubmatch(line); m != nil && !sent {
			announced <- m[1]
			sent = true
		}
	}
}

// pid is the process's id (it is started directly, not through a shell).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop asks the process to shut down and waits, killing it if it takes too long.
func (p *proc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		var exit *exec.ExitError
		if p.waitErr != nil && !errors.As(p.waitErr, &exit) {
			return fmt.Errorf("%s: %w", p.name, p.waitErr)
		}
		if p.waitErr != nil {
			return fmt.Errorf("%s exited with %v\n%s", p.name, p.waitErr, p.output.String())
		}
		return nil
	case <-time.After(stopTimeout):
		p.kill()
		return fmt.Errorf("%s did not stop within %s of SIGTERM", p.name, stopTimeout)
	}
}

// kill ends the process group started for the process at once.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
}

// procMemory is what /proc/<pid>/status says about a process's resident memory, in bytes.
type procMemory struct {
	rss  int64 // VmRSS: resident now
	peak int64 // VmHWM: the most resident since the process started (or clear_refs reset it)
}

// readMemory reads VmRSS and VmHWM of pid.
func readMemory(pid int) (procMemory, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	b, err := os.ReadFile(path)
	if err != nil {
		return procMemory{}, fmt.Errorf("read memory: %w", err)
	}
	var m procMemory
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return procMemory{}, fmt.Errorf("%s: %s: %q: %w", path, key, val, err)
		}
		if key == "VmRSS" {
			m.rss = kb << 10
		} else {
			m.peak = kb << 10
		}
	}
	if m.rss == 0 || m.peak == 0 {
		return procMemory{}, fmt.Errorf("%s: no VmRSS/VmHWM", path)
	}
	return m, nil
}

// tailBuffer keeps the last logTailBytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - logTailBytes; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
