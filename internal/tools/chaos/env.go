package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Harness is what every scenario shares: the binaries, a scratch directory and a logger.
type Harness struct {
	Bin Binaries
	// WorkDir holds each scenario's cluster and files; it is removed by the caller. Every
	// directory above it must be searchable by the postgres user when this process is root
	// (see NewWorkDir).
	WorkDir string
	// Durable keeps fsync on in the scenarios' clusters (synchronous_commit is always on).
	Durable bool
	// Logf reports progress.
	Logf func(format string, args ...any)

	mu       sync.Mutex
	pgServer string
}

// PostgresVersion is the server version of the scenarios' clusters, once one has started.
func (h *Harness) PostgresVersion() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pgServer
}

func (h *Harness) logf(format string, args ...any) {
	if h.Logf != nil {
		h.Logf(format, args...)
	}
}

// NewWorkDir makes a scratch directory under the system's temporary directory that the
// postgres user can traverse.
func NewWorkDir() (string, error) {
	dir, err := os.MkdirTemp("", "volley-chaos-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// Model is one routed model and its concurrency limit across all replicas. An adaptive model's
// limit follows the upstream below Limit, its ceiling (adaptive: {min: 1}).
type Model struct {
	Name     string
	Limit    int
	Adaptive bool
}

// EnvOptions shape one scenario's deployment.
type EnvOptions struct {
	Replicas int
	// Mock is started when Models is not empty; every model is routed to it.
	Mock   MockOptions
	Models []Model
	// UpstreamTimeout ends every upstream call, hangs included (default 5s).
	UpstreamTimeout time.Duration
	// MaxAttempts per request (default 20), with 50ms base and 2s maximum backoff.
	MaxAttempts   int
	LeaseTimeout  time.Duration // default 3s
	PollInterval  time.Duration // default 100ms
	ShutdownGrace time.Duration // default 10s
	// Env is added to every replica's environment (e.g. VOLLEY_MAX_FILE_BYTES=...).
	Env []string
}

// Env is one scenario's deployment: a cluster, maybe a mock, and volley replicas.
type Env struct {
	h        *Harness
	Dir      string
	PG       *Postgres
	Mock     *Mock
	Replicas []*Replica
	opts     EnvOptions
	config   string
	http     *http.Client
}

// NewEnv starts a deployment. Close it when done.
func (h *Harness) NewEnv(ctx context.Context, name string, opts EnvOptions) (*Env, error) {
	if opts.UpstreamTimeout == 0 {
		opts.UpstreamTimeout = 5 * time.Second
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 20
	}
	if opts.LeaseTimeout == 0 {
		opts.LeaseTimeout = 3 * time.Second
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 10 * time.Second
	}
	dir, err := os.MkdirTemp(h.WorkDir, name+"-")
	if err != nil {
		return nil, err
	}
	// When this process is root, PostgreSQL runs as the postgres user, who must reach its
	// directory below this one.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	e := &Env{h: h, Dir: dir, opts: opts, http: newHTTPClient(256)}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	h.logf("%s: starting PostgreSQL", name)
	if e.PG, err = StartPostgres(ctx, filepath.Join(dir, "pg"), h.Durable); err != nil {
		return nil, err
	}
	if h.PostgresVersion() == "" {
		v := e.PG.Version(ctx)
		h.mu.Lock()
		h.pgServer = v
		h.mu.Unlock()
	}
	if len(opts.Models) > 0 {
		for _, m := range opts.Models {
			opts.Mock.RecordStarts = opts.Mock.RecordStarts || m.Adaptive
		}
		if e.Mock, err = StartMock(ctx, h.Bin.Mock, opts.Mock); err != nil {
			return nil, err
		}
		if err := e.writeConfig(); err != nil {
			return nil, err
		}
	}
	for i := 0; i < opts.Replicas; i++ {
		r, err := e.newReplica(i)
		if err != nil {
			return nil, err
		}
		e.Replicas = append(e.Replicas, r)
	}
	// The first replica migrates the schema; the others wait on the same advisory lock anyway,
	// but starting them one by one keeps start-up logs readable.
	for _, r := range e.Replicas {
		if err := r.Start(ctx); err != nil {
			return nil, err
		}
	}
	h.logf("%s: %d replica(s) serving", name, len(e.Replicas))
	ok = true
	return e, nil
}

func (e *Env) writeConfig() error {
	var b strings.Builder
	fmt.Fprintf(&b, "upstreams:\n  mock:\n    url: %s\n    api_key: %s\n    timeout: %s\nmodels:\n",
		e.Mock.V1(), upstreamKey, e.opts.UpstreamTimeout)
	for _, m := range e.opts.Models {
		fmt.Fprintf(&b, "  - name: %q\n    upstream: mock\n    concurrency: %d\n", m.Name, m.Limit)
		if m.Adaptive {
			b.WriteString("    adaptive: {min: 1}\n")
		}
	}
	fmt.Fprintf(&b, "retry:\n  max_attempts: %d\n  base_delay: 50ms\n  max_delay: 2s\n", e.opts.MaxAttempts)
	e.config = filepath.Join(e.Dir, "volley.yaml")
	return os.WriteFile(e.config, []byte(b.String()), 0o600)
}

// replicaEnv is the environment of every replica.
func (e *Env) replicaEnv(addr string, dataDir string) []string {
	env := []string{
		"DATABASE_URL=" + e.PG.DSN(),
		"VOLLEY_ADDR=" + addr,
		"VOLLEY_DATA_DIR=" + dataDir,
		"VOLLEY_LOG_FORMAT=json",
		"VOLLEY_LOG_LEVEL=warn",
		"VOLLEY_LEASE_TIMEOUT=" + e.opts.LeaseTimeout.String(),
		"VOLLEY_POLL_INTERVAL=" + e.opts.PollInterval.String(),
		"VOLLEY_SHUTDOWN_GRACE=" + e.opts.ShutdownGrace.String(),
	}
	if e.config != "" {
		env = append(env, "VOLLEY_CONFIG="+e.config)
	}
	return append(env, e.opts.Env...)
}

// Close stops every process and removes the deployment's directory.
func (e *Env) Close() {
	for _, r := range e.Replicas {
		r.Kill()
	}
	if e.Mock != nil {
		e.Mock.Proc.Kill()
	}
	if e.PG != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := e.PG.Stop(ctx); err != nil {
			e.h.logf("stop PostgreSQL: %v", err)
		}
		cancel()
	}
	e.http.CloseIdleConnections()
	_ = os.RemoveAll(e.Dir)
}

var lastLine = regexp.MustCompile(`(?m)^(\S+)\s*$`)

// Key makes an API key for owner with `volley keys create`, as an operator would.
func (e *Env) Key(ctx context.Context, owner string) (string, error) { return e.createKey(ctx, owner) }

// AdminKey creates an admin API key for owner (volley keys create --admin).
func (e *Env) AdminKey(ctx context.Context, owner string) (string, error) {
	return e.createKey(ctx, owner, "--admin")
}

func (e *Env) createKey(ctx context.Context, owner string, flags ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.h.Bin.Volley, append([]string{"keys", "create", "--owner", owner}, flags...)...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+e.PG.DSN(), "VOLLEY_LOG_FORMAT=json", "VOLLEY_DATA_DIR="+e.Dir)
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return "", fmt.Errorf("volley keys create: %w: %s", err, exit.Stderr)
		}
		return "", fmt.Errorf("volley keys create: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	key := strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasPrefix(key, "sk-volley-") {
		return "", fmt.Errorf("volley keys create printed no key: %q", out)
	}
	return key, nil
}

// Client is an SDK client of replica r, without retries (the suites count every failure).
func (e *Env) Client(r *Replica, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(r.BaseURL()), option.WithAPIKey(key),
		option.WithMaxRetries(0), option.WithHTTPClient(e.http))
}

// Live returns the replicas that are running now.
func (e *Env) Live() []*Replica {
	var out []*Replica
	for _, r := range e.Replicas {
		if r.Running() {
			out = append(out, r)
		}
	}
	return out
}

// newHTTPClient is a client that keeps up to conns connections per replica.
func newHTTPClient(conns int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Transport: tr}
}

// freePort picks a free TCP port on 127.0.0.1.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

var volleyReady = regexp.MustCompile(`serving the OpenAI API at (http://\S+)`)

// Replica is one `volley serve` that may be killed and started again on the same address.
type Replica struct {
	Index   int
	env     *Env
	addr    string
	dataDir string

	mu           sync.Mutex
	proc         *Proc
	incarnations []*Proc
	peakHWM      int64 // the highest VmHWM seen in any incarnation
}

func (e *Env) newReplica(i int) (*Replica, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(e.Dir, fmt.Sprintf("replica-%d", i))
	return &Replica{Index: i, env: e, addr: addr, dataDir: dataDir}, nil
}

// Name is how reports call the replica.
func (r *Replica) Name() string { return fmt.Sprintf("replica %d", r.Index+1) }

// BaseURL is the replica's OpenAI base URL.
func (r *Replica) BaseURL() string { return "http://" + r.addr + "/v1" }

// Root is the replica's URL without /v1.
func (r *Replica) Root() string { return "http://" + r.addr }

// Start runs the replica; it retries for a while if the database is not reachable yet.
func (r *Replica) Start(ctx context.Context) error {
	deadline := time.Now().Add(90 * time.Second)
	for attempt := 1; ; attempt++ {
		p, err := StartProc(ctx, ProcSpec{
			Name: r.Name(), Path: r.env.h.Bin.Volley, Args: []string{"serve"},
			Env: r.env.replicaEnv(r.addr, r.dataDir), Ready: volleyReady, ReadyTimeout: 60 * time.Second,
		})
		if err == nil {
			r.mu.Lock()
			r.proc = p
			r.incarnations = append(r.incarnations, p)
			r.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", r.Name(), err)
		}
		r.env.h.logf("%s did not start (attempt %d), retrying: %v", r.Name(), attempt, firstLine(err.Error()))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond): // retry interval
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Proc is the current incarnation (nil before the first start).
func (r *Replica) Proc() *Proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

// Running reports whether the current incarnation runs.
func (r *Replica) Running() bool {
	p := r.Proc()
	return p != nil && !p.Exited()
}

// Starts counts the incarnations so far.
func (r *Replica) Starts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.incarnations)
}

// observe records the current incarnation's memory peak (while it runs).
func (r *Replica) observe() {
	p := r.Proc()
	if p == nil || p.Exited() {
		return
	}
	if m, err := ReadMemory(p.Pid()); err == nil {
		r.mu.Lock()
		r.peakHWM = max(r.peakHWM, m.HWM)
		r.mu.Unlock()
	}
}

// Kill sends SIGKILL to the replica and waits for it to end.
func (r *Replica) Kill() {
	p := r.Proc()
	if p == nil || p.Exited() {
		return
	}
	r.observe()
	_ = p.Signal(syscall.SIGKILL)
	p.Kill()
}

// Terminate sends SIGTERM and waits up to timeout for the replica to exit. It returns how long the
// exit took and the exit code (-1 if it had to be killed).
func (r *Replica) Terminate(timeout time.Duration) (time.Duration, int, error) {
	p := r.Proc()
	if p == nil || p.Exited() {
		return 0, -1, errors.New(r.Name() + " is not running")
	}
	r.observe()
	start := time.Now()
	_ = p.Signal(syscall.SIGTERM)
	_, ok := p.Wait(timeout)
	took := time.Since(start)
	if !ok {
		p.Kill()
		return took, -1, fmt.Errorf("%s did not exit within %s of SIGTERM", r.Name(), timeout)
	}
	return took, p.ExitCode(), nil
}

// Messages are the ERROR and crash messages of every incarnation, counted.
func (r *Replica) Messages() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, p := range r.incarnations {
		for k, v := range p.Messages() {
			out[k] += v
		}
	}
	return out
}

// Totals are the replica's crash lines, error logs and memory peak over every incarnation.
func (r *Replica) Totals() (panics, errorLogs, peakHWM int64) {
	r.observe()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.incarnations {
		panics += p.Panics()
		errorLogs += p.ErrorLogs()
	}
	return panics, errorLogs, r.peakHWM
}
