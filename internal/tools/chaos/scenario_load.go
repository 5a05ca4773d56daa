package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go/v3"
)

// LoadParams size the load scenario.
type LoadParams struct {
	Replicas int
	// Batches batches of BatchSize requests each run at once.
	Batches, BatchSize int
	Models             []Model
	Latency            time.Duration
	// Pollers clients each poll a batch or list batches or files, pausing Think between calls.
	Pollers int
	Think   time.Duration
	// Uploaders clients each upload a file of UploadBytes (then delete it), up to UploadRounds
	// times while the batches run.
	Uploaders, UploadRounds int
	UploadBytes             int
	// P99Target is the target for GET /v1/batches/{id}; MemoryTarget for each replica's VmHWM.
	P99Target    time.Duration
	MemoryTarget int64
	Timeout      time.Duration
}

// LoadFull is the size `make chaos` runs.
func LoadFull() LoadParams {
	return LoadParams{Replicas: 3, Batches: 2, BatchSize: 50_000, Models: []Model{{Name: "load-a", Limit: 64}, {Name: "load-b", Limit: 64, Adaptive: true}},
		Latency: 20 * time.Millisecond, Pollers: 200, Think: 200 * time.Millisecond,
		Uploaders: 10, UploadRounds: 2, UploadBytes: 20_000_000,
		P99Target: 50 * time.Millisecond, MemoryTarget: 512_000_000, Timeout: 10 * time.Minute}
}

// LoadReduced is the size the package's tests run.
func LoadReduced() LoadParams {
	return LoadParams{Replicas: 2, Batches: 2, BatchSize: 2_000, Models: []Model{{Name: "load-a", Limit: 16}, {Name: "load-b", Limit: 16, Adaptive: true}},
		Latency: 20 * time.Millisecond, Pollers: 20, Think: 100 * time.Millisecond,
		Uploaders: 3, UploadRounds: 1, UploadBytes: 4_000_000,
		P99Target: 50 * time.Millisecond, MemoryTarget: 512_000_000, Timeout: 45 * time.Second}
}

// loadCounters are what the clients of the load scenario saw.
type loadCounters struct {
	getBatch, listBatches, listFiles, upload Latencies
	// getBatch split by whether an upload was running when the call began.
	getBatchUploading, getBatchQuiet Latencies
	uploading                        atomic.Int64
	requests                         atomic.Int64
	status5xx, transport, other      atomic.Int64
	mu                               sync.Mutex
	samples                          []string // the first few failures
}

func (lc *loadCounters) failure(what string, a Answer) {
	switch {
	case a.Err != nil:
		lc.transport.Add(1)
	case a.Status >= 500:
		lc.status5xx.Add(1)
	default:
		lc.other.Add(1)
	}
	lc.mu.Lock()
	if len(lc.samples) < 5 {
		lc.samples = append(lc.samples, what+": "+a.String())
	}
	lc.mu.Unlock()
}

// RunLoad runs large batches while many clients poll and list and several clients upload big
// files, and measures the API's latency, errors and memory.
func RunLoad(ctx context.Context, h *Harness, p LoadParams) *Result {
	res := newResult("load", "Load")
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	total := p.Batches * p.BatchSize
	res.Load = []string{
		fmt.Sprintf("%d replicas running %d batches of %s chat completions (%s in all; %s), upstream latency %s",
			p.Replicas, p.Batches, fmtInt(int64(p.BatchSize)), fmtInt(int64(total)), describeModels(p.Models), p.Latency),
		fmt.Sprintf("%d concurrent clients, each calling GET /v1/batches/{id} (70%%), GET /v1/batches (15%%) or GET /v1/files (15%%) with a %s pause, spread over the replicas",
			p.Pollers, p.Think),
		fmt.Sprintf("%d concurrent uploads of %s (JSONL, about 2 kB a line), each deleted once stored, up to %d rounds while the batches run",
			p.Uploaders, fmtMB(int64(p.UploadBytes)), p.UploadRounds),
	}
	res.Faults = []string{"none: load only"}
	res.Held = fmt.Sprintf("%d replicas, %s requests in %d batches; %d clients polling and listing; %d concurrent %s uploads",
		p.Replicas, fmtInt(int64(total)), p.Batches, p.Pollers, p.Uploaders, fmtMB(int64(p.UploadBytes)))
	res.Injected = "none"

	e, err := h.NewEnv(ctx, res.Name, EnvOptions{Replicas: p.Replicas, Models: p.Models,
		Mock: MockOptions{Latency: p.Latency, MaxConcurrency: sumLimits(p.Models)}})
	if err != nil {
		return res.Fail(err)
	}
	defer e.Close()
	key, err := e.Key(ctx, "load")
	if err != nil {
		return res.Fail(err)
	}
	inputs := make([]Input, p.Batches)
	fileIDs := make([]string, p.Batches)
	for i := range inputs {
		inputs[i] = MakeInput(fmt.Sprintf("ld%d", i), p.BatchSize, p.Models)
		if fileIDs[i], err = Upload(ctx, e.Client(e.Replicas[i%len(e.Replicas)], key), inputs[i].Content); err != nil {
			return res.Fail(err)
		}
	}
	big := bigUpload(p.UploadBytes, p.Models[0].Name)
	for _, r := range e.Replicas {
		r.observe()
	}

	var lc loadCounters
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	client := newHTTPClient(p.Pollers + p.Uploaders)
	defer client.CloseIdleConnections()

	batchIDs := make([]string, p.Batches)
	runStart := time.Now()
	for i := range batchIDs {
		b, err := CreateBatch(ctx, e.Client(e.Replicas[i%len(e.Replicas)], key), fileIDs[i])
		if err != nil {
			return res.Fail(err)
		}
		batchIDs[i] = b.ID
	}
	h.logf("%s: %d batches created; %d pollers and %d uploaders start", res.Name, p.Batches, p.Pollers, p.Uploaders)

	var clients sync.WaitGroup
	for i := 0; i < p.Pollers; i++ {
		clients.Add(1)
		go func() {
			defer clients.Done()
			poll(loadCtx, client, e.Replicas[i%len(e.Replicas)], key, batchIDs, p.Think, &lc)
		}()
	}
	var uploads atomic.Int64
	var uploaders sync.WaitGroup
	for i := 0; i < p.Uploaders; i++ {
		uploaders.Add(1)
		go func() {
			defer uploaders.Done()
			r := e.Replicas[i%len(e.Replicas)]
			// A round that has begun is finished even if the batches end meanwhile.
			for round := 0; round < p.UploadRounds && loadCtx.Err() == nil; round++ {
				if uploadAndDelete(ctx, client, r, key, big, &lc) {
					uploads.Add(1)
				}
			}
		}()
	}

	// Wait for every batch, sampling memory on the way.
	w := &Watcher{Env: e, Key: key}
	finals := make([]*openai.Batch, p.Batches)
	deadline := runStart.Add(p.Timeout)
	lastLog := time.Now()
	for i, id := range batchIDs {
		finals[i], err = w.Wait(ctx, id, time.Until(deadline), Terminal, func(b *openai.Batch) {
			for _, r := range e.Replicas {
				r.observe()
			}
			if time.Since(lastLog) > 10*time.Second {
				lastLog = time.Now()
				h.logf("%s: batch %d: %d/%d done; %d API calls so far", res.Name, i+1,
					b.RequestCounts.Completed+b.RequestCounts.Failed, b.RequestCounts.Total, lc.requests.Load())
			}
		})
		if err != nil {
			return res.Fail(err)
		}
	}
	elapsed := time.Since(runStart)
	stopLoad()
	clients.Wait()
	uploaders.Wait()
	for _, r := range e.Replicas {
		r.observe()
	}

	var lost, dup int
	for i, b := range finals {
		v, err := Verify(ctx, e.Client(e.Replicas[0], key), b, inputs[i].IDs)
		if err != nil {
			return res.Fail(err)
		}
		lost += v.Lost
		dup += v.Duplicated
		checkBatch(res, fmt.Sprintf("batch %d: ", i+1), b, v)
		checkAnswered(res, fmt.Sprintf("batch %d: ", i+1), v)
	}
	st, err := e.Mock.Stats(ctx)
	if err != nil {
		return res.Fail(err)
	}
	res.Lost, res.Duplicated, res.Violations = int64(lost), int64(dup), st.Violations
	res.UpstreamDuplicates = st.DuplicateCalls
	checkModelPeaks(res, CheckLimit, p.Models, st)
	checkEffectiveLimits(ctx, res, e, p.Models)
	checkReplicaHealth(res, e)
	lc.mu.Lock()
	samples := strings.Join(lc.samples, "; ")
	lc.mu.Unlock()
	res.Check("zero 5xx answers", lc.status5xx.Load() == 0, "%d 5xx answers: %s", lc.status5xx.Load(), samples)
	res.Check("no API call failed", lc.transport.Load() == 0 && lc.other.Load() == 0,
		"%d transport errors, %d other failures: %s", lc.transport.Load(), lc.other.Load(), samples)
	res.Check("every upload stored", uploads.Load() == int64(lc.upload.Count()) && uploads.Load() > 0,
		"%d of %d uploads stored", uploads.Load(), lc.upload.Count())

	p50, p99 := lc.getBatch.Percentile(50), lc.getBatch.Percentile(99)
	res.Target("GET /v1/batches/{id} p99", fmtDur(p99), "< "+fmtDur(p.P99Target), p99 < p.P99Target)
	res.Metric("GET /v1/batches/{id}", "p50 %s, p99 %s over %s calls", fmtDur(p50), fmtDur(p99), fmtInt(int64(lc.getBatch.Count())))
	res.Metric("GET /v1/batches/{id} while uploads ran", "p50 %s, p99 %s over %s calls", fmtDur(lc.getBatchUploading.Percentile(50)),
		fmtDur(lc.getBatchUploading.Percentile(99)), fmtInt(int64(lc.getBatchUploading.Count())))
	res.Metric("GET /v1/batches/{id} while no upload ran", "p50 %s, p99 %s over %s calls", fmtDur(lc.getBatchQuiet.Percentile(50)),
		fmtDur(lc.getBatchQuiet.Percentile(99)), fmtInt(int64(lc.getBatchQuiet.Count())))
	res.Metric("GET /v1/batches", "p50 %s, p99 %s over %s calls", fmtDur(lc.listBatches.Percentile(50)), fmtDur(lc.listBatches.Percentile(99)), fmtInt(int64(lc.listBatches.Count())))
	res.Metric("GET /v1/files", "p50 %s, p99 %s over %s calls", fmtDur(lc.listFiles.Percentile(50)), fmtDur(lc.listFiles.Percentile(99)), fmtInt(int64(lc.listFiles.Count())))
	res.Metric("uploads", "%d of %s: p50 %s, slowest %s", lc.upload.Count(), fmtMB(int64(p.UploadBytes)),
		fmtDur(lc.upload.Percentile(50)), fmtDur(lc.upload.Percentile(100)))
	res.Metric("API calls", "%s in %s (%.0f/s)", fmtInt(lc.requests.Load()), fmtDur(elapsed), float64(lc.requests.Load())/elapsed.Seconds())
	res.Metric("batch duration", "%s for %s requests (%.0f requests/s)", fmtDur(elapsed), fmtInt(int64(total)), float64(total)/elapsed.Seconds())
	var peaks []string
	worst := int64(0)
	for _, r := range e.Replicas {
		_, _, hwm := r.Totals()
		worst = max(worst, hwm)
		peaks = append(peaks, fmt.Sprintf("%s %s", r.Name(), fmtMB(hwm)))
	}
	res.Target("server memory (VmHWM, worst replica)", fmtMB(worst), "< "+fmtMB(p.MemoryTarget), worst > 0 && worst < p.MemoryTarget)
	res.Metric("VmHWM per replica", "%s", strings.Join(peaks, ", "))
	res.Metric("peak concurrency per model", "%s", formatPeaks(p.Models, st))
	return res
}

// poll is one client of the load scenario.
func poll(ctx context.Context, client *http.Client, r *Replica, key string, batchIDs []string, think time.Duration, lc *loadCounters) {
	const maxCalls = 100_000 // a bound, far above what the scenario's timeout allows
	for n := 0; n < maxCalls && ctx.Err() == nil; n++ {
		var url string
		var lat *Latencies
		what := ""
		switch x := rand.IntN(100); {
		case x < 70:
			url, lat, what = r.BaseURL()+"/batches/"+batchIDs[rand.IntN(len(batchIDs))], &lc.getBatch, "GET /v1/batches/{id}"
		case x < 85:
			url, lat, what = r.BaseURL()+"/batches?limit=20", &lc.listBatches, "GET /v1/batches"
		default:
			url, lat, what = r.BaseURL()+"/files?limit=20", &lc.listFiles, "GET /v1/files"
		}
		uploading := lc.uploading.Load() > 0
		a := do(ctx, client, http.MethodGet, url, key, nil, nil, 30*time.Second)
		if ctx.Err() != nil {
			return // the load ended during the call: not the server's doing
		}
		lc.requests.Add(1)
		if a.Err != nil || a.Status != http.StatusOK {
			lc.failure(what, a)
		} else {
			lat.Add(a.Took)
			if lat == &lc.getBatch {
				if uploading || lc.uploading.Load() > 0 {
					lc.getBatchUploading.Add(a.Took)
				} else {
					lc.getBatchQuiet.Add(a.Took)
				}
			}
		}
		sleepJitter(ctx, think)
	}
}

// sleepJitter pauses for d ± 50%, or until ctx ends.
func sleepJitter(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	d = d/2 + time.Duration(rand.Int64N(int64(d)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// bigUpload is a JSONL file of about size bytes with lines of about 2 kB.
func bigUpload(size int, model string) []byte {
	filler := strings.Repeat("lorem ipsum dolor sit amet ", 70) // about 1.9 kB
	var b bytes.Buffer
	b.Grow(size + 4096)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `{"custom_id":"up-%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"%s%d"}]}}`+"\n",
			i, model, filler, i)
	}
	return b.Bytes()
}

// multipartBody frames content as a multipart upload with purpose=batch, returning the body's
// parts around the content and its Content-Type.
func multipartBody(filename string) (head, tail []byte, contentType string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("purpose", "batch")
	hdr := textproto.MIMEHeader{}
	hdr.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, filename))
	hdr.Set("Content-Type", "application/jsonl")
	_, _ = mw.CreatePart(hdr)
	head = append([]byte(nil), b.Bytes()...)
	b.Reset()
	_ = mw.Close()
	return head, append([]byte(nil), b.Bytes()...), mw.FormDataContentType() // Close writes "\r\n--boundary--\r\n"
}

// uploadAndDelete streams content as a file upload and deletes the stored file.
func uploadAndDelete(ctx context.Context, client *http.Client, r *Replica, key string, content []byte, lc *loadCounters) bool {
	lc.uploading.Add(1)
	defer lc.uploading.Add(-1)
	head, tail, ct := multipartBody("load.jsonl")
	body := io.MultiReader(bytes.NewReader(head), bytes.NewReader(content), bytes.NewReader(tail))
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx2, http.MethodPost, r.BaseURL()+"/files", body)
	if err != nil {
		return false
	}
	req.ContentLength = int64(len(head) + len(content) + len(tail))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+key)
	t0 := time.Now()
	res, err := client.Do(req)
	a := Answer{Err: err, Took: time.Since(t0)}
	if err == nil {
		a.Status, a.ContentType = res.StatusCode, res.Header.Get("Content-Type")
		a.Body, a.Err = io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		a.Took = time.Since(t0)
	}
	if ctx.Err() != nil {
		return false
	}
	lc.requests.Add(1)
	lc.upload.Add(a.Took)
	if a.Err != nil || a.Status != http.StatusOK {
		lc.failure("POST /v1/files", a)
		return false
	}
	var f struct {
		ID    string `json:"id"`
		Bytes int64  `json:"bytes"`
	}
	if err := json.Unmarshal(a.Body, &f); err != nil || f.ID == "" || f.Bytes != int64(len(content)) {
		lc.failure("POST /v1/files (answer)", a)
		return false
	}
	d := do(ctx, client, http.MethodDelete, r.BaseURL()+"/files/"+f.ID, key, nil, nil, time.Minute)
	if ctx.Err() != nil {
		return true
	}
	lc.requests.Add(1)
	if d.Err != nil || d.Status != http.StatusOK {
		lc.failure("DELETE /v1/files/{id}", d)
	}
	return true
}
