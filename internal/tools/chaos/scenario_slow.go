package chaos

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SlowParams size the slow-clients scenario.
type SlowParams struct {
	// IdleConns unauthenticated connections send nothing; TrickleConns trickle their headers a byte
	// every TricklePace. Each is opened again when the server closes it.
	IdleConns, TrickleConns int
	TricklePace             time.Duration
	// StalledUploads authenticated uploads send their file part's header and one line, then nothing.
	StalledUploads int
	// Phase is how long the calls are measured without, then with, the slow clients.
	Phase time.Duration
	// Lines is the size of the measured client's uploads.
	Lines int
}

// SlowFull is the size `make chaos` runs.
func SlowFull() SlowParams {
	return SlowParams{IdleConns: 100, TrickleConns: 100, TricklePace: 500 * time.Millisecond, StalledUploads: 20, Phase: 20 * time.Second, Lines: 100}
}

// SlowReduced is the size the package's tests run.
func SlowReduced() SlowParams {
	return SlowParams{IdleConns: 30, TrickleConns: 30, TricklePace: 500 * time.Millisecond, StalledUploads: 6, Phase: 4 * time.Second, Lines: 100}
}

// slowCalls are the measured client's latencies in one phase.
type slowCalls struct {
	upload, create, poll Latencies
	failures             []string
	peakRSS              int64
}

// RunSlow measures an authenticated client's upload, batch create and poll, first alone, then
// while unauthenticated connections sit idle or trickle their headers and stalled uploads hold
// their connections, and the server's memory in both phases.
func RunSlow(ctx context.Context, h *Harness, p SlowParams) *Result {
	res := newResult("slow-clients", "Slow clients")
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	res.Load = []string{fmt.Sprintf("1 replica (defaults: VOLLEY_MAX_CONCURRENT_UPLOADS 1 on 2 CPUs, VOLLEY_HEADER_TIMEOUT 10s, VOLLEY_BODY_IDLE_TIMEOUT 30s); "+
		"one client uploading a %d-line file, creating a batch on it and polling it three times, over and over, for %s alone and %s with the slow clients",
		p.Lines, fmtDur(p.Phase), fmtDur(p.Phase))}
	res.Faults = []string{
		fmt.Sprintf("%d unauthenticated connections that send nothing, each opened again when the server closes it", p.IdleConns),
		fmt.Sprintf("%d unauthenticated connections trickling their headers a byte every %s, each opened again when closed", p.TrickleConns, fmtDur(p.TricklePace)),
		fmt.Sprintf("%d authenticated uploads (another owner) that send their file's header and one line, then nothing", p.StalledUploads),
	}
	res.Held = fmt.Sprintf("1 replica; one client uploading, creating and polling")
	res.Injected = fmt.Sprintf("%d idle and %d trickling unauthenticated connections; %d stalled uploads", p.IdleConns, p.TrickleConns, p.StalledUploads)
	models := []Model{{Name: "slow-m", Limit: 16}}
	e, err := h.NewEnv(ctx, res.Name, EnvOptions{Replicas: 1, Models: models, Mock: MockOptions{Latency: time.Millisecond},
		Env: []string{"VOLLEY_MAX_CONCURRENT_UPLOADS=1"}})
	if err != nil {
		return res.Fail(err)
	}
	defer e.Close()
	r := e.Replicas[0]
	key, err := e.Key(ctx, "measured")
	if err != nil {
		return res.Fail(err)
	}
	stallerKey, err := e.Key(ctx, "staller")
	if err != nil {
		return res.Fail(err)
	}
	addr := strings.TrimPrefix(r.Root(), "http://")
	content := MakeInput("slow", p.Lines, models).Content

	quiet := measureCalls(ctx, e, r, key, content, p.Phase)

	attackCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	idleClosed := holdMany(attackCtx, &wg, addr, p.IdleConns, nil)
	trickleClosed := trickleMany(attackCtx, &wg, addr, p.TrickleConns, p.TricklePace)
	stalledClosed := holdMany(attackCtx, &wg, addr, p.StalledUploads, stallHead(addr, stallerKey))
	attacked := measureCalls(ctx, e, r, key, content, p.Phase)
	stop()
	wg.Wait()
	after, _ := ReadMemory(r.Proc().Pid())

	for _, f := range append(quiet.failures, attacked.failures...) {
		res.Check("every measured call succeeded", false, "%s", f)
	}
	if len(quiet.failures)+len(attacked.failures) == 0 {
		res.Check("every measured call succeeded", true, "%d calls alone, %d with the slow clients",
			quiet.upload.Count()+quiet.create.Count()+quiet.poll.Count(), attacked.upload.Count()+attacked.create.Count()+attacked.poll.Count())
	}
	for _, c := range []struct {
		name   string
		q, a   *Latencies
		bounds time.Duration
	}{
		{"upload", &quiet.upload, &attacked.upload, 0},
		{"batch create", &quiet.create, &attacked.create, 0},
		{"poll (GET /v1/batches/{id})", &quiet.poll, &attacked.poll, 0},
	} {
		q99, a99 := c.q.Percentile(99), c.a.Percentile(99)
		// Normal time: the p99 alone, with room for a shared 2-core machine's noise.
		bound := 2*q99 + 50*time.Millisecond
		res.Target(c.name+" p99 with the slow clients", fmtDur(a99), "≤ 2 × alone + 50ms = "+fmtDur(bound), a99 > 0 && a99 <= bound)
		res.Metric(c.name, "alone: p50 %s, p99 %s over %d; with the slow clients: p50 %s, p99 %s over %d",
			fmtDur(c.q.Percentile(50)), fmtDur(q99), c.q.Count(), fmtDur(c.a.Percentile(50)), fmtDur(a99), c.a.Count())
	}
	growth := attacked.peakRSS - quiet.peakRSS
	res.Target("server RSS growth under the slow clients", fmtMB(growth), "< 64.0 MB", quiet.peakRSS > 0 && growth < 64_000_000)
	res.Metric("server RSS", "peak %s alone, peak %s with the slow clients, %s after they left", fmtMB(quiet.peakRSS), fmtMB(attacked.peakRSS), fmtMB(after.RSS))
	res.Metric("connections the server closed", "%d idle (VOLLEY_HEADER_TIMEOUT), %d trickling, %d stalled uploads (VOLLEY_BODY_IDLE_TIMEOUT)",
		idleClosed(), trickleClosed(), stalledClosed())
	res.Note("Each stalled upload that has sent a line keeps its COPY's database connection until VOLLEY_BODY_IDLE_TIMEOUT answers it; %d of the pool's 40 here.", p.StalledUploads)
	checkReplicaHealth(res, e)
	return res
}

// measureCalls runs the measured client's cycle for d and samples the server's memory.
func measureCalls(ctx context.Context, e *Env, r *Replica, key string, content []byte, d time.Duration) *slowCalls {
	sc := &slowCalls{}
	c := e.Client(r, key)
	sampleCtx, stop := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if m, err := ReadMemory(r.Proc().Pid()); err == nil {
				sc.peakRSS = max(sc.peakRSS, m.RSS)
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C: // the sampling period
			}
		}
	}()
	client := newHTTPClient(1)
	defer client.CloseIdleConnections()
	for end := time.Now().Add(d); time.Now().Before(end) && ctx.Err() == nil && len(sc.failures) < 5; {
		t0 := time.Now()
		fileID, err := Upload(ctx, c, content)
		if err != nil {
			sc.failures = append(sc.failures, err.Error())
			continue
		}
		sc.upload.Add(time.Since(t0))
		t0 = time.Now()
		b, err := CreateBatch(ctx, c, fileID)
		if err != nil {
			sc.failures = append(sc.failures, err.Error())
			continue
		}
		sc.create.Add(time.Since(t0))
		for i := 0; i < 3; i++ {
			a := do(ctx, client, http.MethodGet, r.BaseURL()+"/batches/"+b.ID, key, nil, nil, 30*time.Second)
			if a.Err != nil || a.Status != http.StatusOK {
				sc.failures = append(sc.failures, "poll: "+a.String())
				break
			}
			sc.poll.Add(a.Took)
		}
	}
	stop()
	<-sampled
	return sc
}

// holdMany keeps n connections open that send start (nothing when nil) and then wait, opening a
// new one when the server closes one, until ctx ends; it returns how many the server closed.
func holdMany(ctx context.Context, wg *sync.WaitGroup, addr string, n int, start []byte) func() int64 {
	var closed atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				d := net.Dialer{Timeout: 5 * time.Second}
				conn, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					continue
				}
				stopClose := context.AfterFunc(ctx, func() { conn.Close() })
				if len(start) > 0 {
					_, _ = conn.Write(start)
				}
				buf := make([]byte, 512)
				for {
					if _, err := conn.Read(buf); err != nil {
						break
					}
				}
				if ctx.Err() == nil {
					closed.Add(1)
				}
				stopClose()
				conn.Close()
			}
		}()
	}
	return closed.Load
}
