// Package testproc builds Volley's binaries once per test process and runs them as real child
// processes (volley serve, mockllm), reading the address each prints when it is ready.
package testproc

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// ModuleRoot is the directory holding go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the module")
	}
	return filepath.Dir(mod), nil
}

// Binaries builds ./cmd/volley and ./internal/tools/cmd/mockllm (once per process) and returns their directory.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "volley-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./cmd/volley", "./internal/tools/cmd/mockllm")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binDir = dir
	})
	if buildErr != nil {
		t.Fatalf("build binaries: %v", buildErr)
	}
	return binDir
}

// Proc is a running child process.
type Proc struct {
	Name string
	URL  string // what the process announced, e.g. http://127.0.0.1:43123/v1
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	mu   sync.Mutex
	logs strings.Builder
}

// Start runs bin with args and env (added to the current environment) and waits until a stdout
// line matches ready, whose first group becomes URL. Output is kept and logged if the test fails.
func Start(t testing.TB, name, bin string, args []string, env []string, ready *regexp.Regexp) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = writerFunc(p.log)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			text := sc.Text()
			_, _ = p.log([]byte(text + "\n"))
			if m := ready.FindStringSubmatch(text); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.Logs())
		}
	})
	select {
	case u := <-found:
		p.URL = u
	case <-p.done:
		t.Fatalf("%s exited before it was ready: %v\n%s", name, p.err, p.Logs())
	case <-time.After(90 * time.Second):
		t.Fatalf("%s not ready after 90s\n%s", name, p.Logs())
	}
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (p *Proc) log(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logs.Write(b)
	return len(b), nil
}

// Logs returns everything the process printed so far.
func (p *Proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Wait waits for the process to exit, up to timeout, and returns its exit error.
func (p *Proc) Wait(timeout time.Duration) (error, bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// Stop sends SIGTERM and waits for a clean exit.
func (p *Proc) Stop(ctx context.Context) error {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		p.Kill()
		return ctx.Err()
	}
}

// Kill ends the process and its group at once.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// VolleyReady matches the line volley serve prints once it accepts requests.
var VolleyReady = regexp.MustCompile(`serving the OpenAI API at (http://\S+)`)

// MockReady matches the line mockllm prints once it listens.
var MockReady = regexp.MustCompile(`mockllm listening on (http://\S+)`)
