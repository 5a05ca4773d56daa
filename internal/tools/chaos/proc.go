package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// logTailBytes is how much of a process's output is kept for error messages.
const logTailBytes = 256 << 10

// ProcSpec describes a child process to run.
type ProcSpec struct {
	Name string
	Path string
	Args []string
	// Env is added to this process's environment.
	Env []string
	// Ready matches the stdout line the process prints once it serves; its first group is kept
	// as Proc.Announced.
	Ready *regexp.Regexp
	// ReadyTimeout bounds the wait for Ready (default 60s).
	ReadyTimeout time.Duration
}

// Proc is a running child process in a process group of its own, whose output is kept (the tail)
// and scanned for crashes.
type Proc struct {
	Name      string
	Announced string

	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	waitErr error
	tail    tailBuffer

	panics    atomic.Int64 // Go runtime panics, fatal errors and recovered handler panics
	errorLogs atomic.Int64 // log lines at level ERROR

	mu       sync.Mutex
	messages map[string]int // messages of the ERROR lines and crashes, counted
}

// StartProc starts spec and waits until it announces that it is ready.
func StartProc(ctx context.Context, spec ProcSpec) (*Proc, error) {
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p := &Proc{Name: spec.Name, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p.started = time.Now()
	announced := make(chan string, 1)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		p.scan(stdout, spec.Ready, announced)
	}()
	go func() {
		defer readers.Done()
		p.scan(stderr, nil, nil)
	}()
	go func() {
		readers.Wait() // every line is read before Wait closes the pipes
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	timeout := spec.ReadyTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	if spec.Ready == nil {
		return p, nil
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case p.Announced = <-announced:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready: %v\n%s", spec.Name, p.waitErr, p.Tail(4<<10))
	case <-timer.C:
		p.Kill()
		return nil, fmt.Errorf("%s not ready after %s\n%s", spec.Name, timeout, p.Tail(4<<10))
	case <-ctx.Done():
		p.Kill()
		return nil, ctx.Err()
	}
}

// scan keeps every line in the tail, counts crashes and error logs, and reports the first line
// matching ready.
func (p *Proc) scan(r io.Reader, ready *regexp.Regexp, announced chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		_, _ = p.tail.Write([]byte(line + "\n"))
		if isPanicLine(line) {
			p.panics.Add(1)
			p.remember(line)
		}
		if strings.Contains(line, `"level":"ERROR"`) {
			p.errorLogs.Add(1)
			p.remember(line)
		}
		if ready != nil && !sent {
			if m := ready.FindStringSubmatch(line); m != nil {
				announced <- m[1]
				sent = true
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// remember counts a log line by its message (and error), for the report.
func (p *Proc) remember(line string) {
	msg := line
	var l struct {
		Msg   string `json:"msg"`
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(line), &l) == nil && l.Msg != "" {
		msg = l.Msg
		if l.Error != "" {
			msg += ": " + l.Error
		}
	}
	msg = scratchPath.ReplaceAllString(msg, "…")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.messages == nil {
		p.messages = map[string]int{}
	}
	if _, ok := p.messages[msg]; ok || len(p.messages) < 20 {
		p.messages[msg]++
	}
}

// Messages returns the ERROR and crash messages seen so far, counted.
func (p *Proc) Messages() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.messages))
	for k, v := range p.messages {
		out[k] = v
	}
	return out
}

// scratchPath matches the suites' scratch directories in log messages.
var scratchPath = regexp.MustCompile(regexp.QuoteMeta(os.TempDir()) + `/volley-chaos-[^\s)'"]*`)

func isPanicLine(line string) bool {
	return strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") ||
		strings.Contains(line, `"msg":"panic"`)
}

// Pid is the process id (and its process group id).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Panics counts crash lines seen in the output so far.
func (p *Proc) Panics() int64 { return p.panics.Load() }

// ErrorLogs counts log lines at level ERROR seen so far.
func (p *Proc) ErrorLogs() int64 { return p.errorLogs.Load() }

// Tail returns up to n last bytes of the output.
func (p *Proc) Tail(n int) string { return p.tail.last(n) }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits up to timeout for the process to end; ok is false if it still runs.
func (p *Proc) Wait(timeout time.Duration) (exitErr error, ok bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.waitErr, true
	case <-timer.C:
		return nil, false
	}
}

// ExitCode is the exit status once the process ended (-1 when killed by a signal or still running).
func (p *Proc) ExitCode() int {
	if !p.Exited() || p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Kill ends the process group at once and waits for the process.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// Memory is what /proc/PID/status says about a process's resident memory, in bytes.
type Memory struct {
	RSS int64 // VmRSS: resident now
	HWM int64 // VmHWM: the most resident since the process started
}

// ReadMemory reads VmRSS and VmHWM of pid.
func ReadMemory(pid int) (Memory, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	b, err := os.ReadFile(path)
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("%s: %s: %w", path, key, err)
		}
		if key == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
	}
	if m.HWM == 0 {
		return Memory{}, errors.New(path + ": no VmHWM")
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
	if over := len(t.buf) - logTailBytes; over > logTailBytes/4 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) last(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n <= 0 || n > len(t.buf) {
		n = len(t.buf)
	}
	return string(t.buf[len(t.buf)-n:])
}
