package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
)

// Input is a generated batch input file.
type Input struct {
	Content []byte
	IDs     []string
}

// MakeInput writes n chat-completion lines with custom_ids prefix-0 … prefix-(n-1), spread over
// models in turn. Each asks the mock to echo "hello <custom_id>", so a result can be matched to
// its request.
func MakeInput(prefix string, n int, models []Model) Input {
	var b bytes.Buffer
	ids := make([]string, n)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		ids[i] = id
		model := models[i%len(models)].Name
		fmt.Fprintf(&b, `{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"hello %s"}]}}`+"\n", id, model, id)
	}
	return Input{Content: b.Bytes(), IDs: ids}
}

// Upload stores content as a batch input file.
func Upload(ctx context.Context, c openai.Client, content []byte) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	f, err := c.Files.New(ctx, openai.FileNewParams{File: bytes.NewReader(content), Purpose: openai.FilePurposeBatch})
	if err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	return f.ID, nil
}

// CreateBatch starts a 24h chat-completions batch on fileID.
func CreateBatch(ctx context.Context, c openai.Client, fileID string) (*openai.Batch, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	b, err := c.Batches.New(ctx, openai.BatchNewParams{
		InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
	})
	if err != nil {
		return nil, fmt.Errorf("create batch: %w", err)
	}
	return b, nil
}

// Submitted is a batch a scenario created: its owner's key, its input and the batch.
type Submitted struct {
	Key   string
	Input Input
	Batch *openai.Batch
}

// SubmitBatch creates an API key for owner, uploads n requests spread over models (custom_ids
// prefix-0 …) and starts their batch, all through the first replica.
func (e *Env) SubmitBatch(ctx context.Context, owner, prefix string, n int, models []Model) (Submitted, error) {
	key, err := e.Key(ctx, owner)
	if err != nil {
		return Submitted{}, err
	}
	c := e.Client(e.Replicas[0], key)
	in := MakeInput(prefix, n, models)
	fileID, err := Upload(ctx, c, in.Content)
	if err != nil {
		return Submitted{}, err
	}
	batch, err := CreateBatch(ctx, c, fileID)
	if err != nil {
		return Submitted{}, err
	}
	return Submitted{Key: key, Input: in, Batch: batch}, nil
}

// verifyRun checks a scenario's single batch once it has ended: every custom_id exactly once,
// counts matching the files, every request answered, the mock's peaks within the limits
// (reported under limitCheck) and healthy replicas. It fills the result's lost, duplicated,
// violation and upstream-duplicate counts, and returns the mock's statistics.
func verifyRun(ctx context.Context, res *Result, e *Env, via *Replica, key string, final *openai.Batch, ids []string, models []Model, limitCheck string) (MockStats, error) {
	v, err := Verify(ctx, e.Client(via, key), final, ids)
	if err != nil {
		return MockStats{}, err
	}
	st, err := e.Mock.Stats(ctx)
	if err != nil {
		return MockStats{}, err
	}
	res.Lost, res.Duplicated, res.Violations = int64(v.Lost), int64(v.Duplicated), st.Violations
	res.UpstreamDuplicates = st.DuplicateCalls
	checkBatch(res, "", final, v)
	checkAnswered(res, "", v)
	checkModelPeaks(res, limitCheck, models, st)
	checkEffectiveLimits(ctx, res, e, models)
	checkReplicaHealth(res, e)
	return st, nil
}

// Terminal reports whether a batch has ended.
func Terminal(b *openai.Batch) bool {
	switch b.Status {
	case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusExpired, openai.BatchStatusCancelled:
		return true
	}
	return false
}

// Watcher polls a batch through whichever replica is up.
type Watcher struct {
	Env *Env
	Key string
	// Errors counts polls that failed (a replica going away, the database being down).
	Errors int
	// LastErr is the latest failure.
	LastErr error
}

// Get reads the batch from a random running replica.
func (w *Watcher) Get(ctx context.Context, id string) (*openai.Batch, error) {
	live := w.Env.Live()
	if len(live) == 0 {
		w.Errors++
		w.LastErr = errors.New("no replica is running")
		return nil, w.LastErr
	}
	r := live[rand.IntN(len(live))]
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := w.Env.Client(r, w.Key)
	b, err := c.Batches.Get(cctx, id)
	if err != nil {
		w.Errors++
		w.LastErr = fmt.Errorf("%s: %w", r.Name(), err)
		return nil, w.LastErr
	}
	return b, nil
}

// Wait polls until done(b) or timeout; each successful poll is passed to progress (may be nil).
func (w *Watcher) Wait(ctx context.Context, id string, timeout time.Duration, done func(*openai.Batch) bool, progress func(*openai.Batch)) (*openai.Batch, error) {
	deadline := time.Now().Add(timeout)
	var last *openai.Batch
	for {
		b, err := w.Get(ctx, id)
		if err == nil {
			last = b
			if progress != nil {
				progress(b)
			}
			if done(b) {
				return b, nil
			}
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		if time.Now().After(deadline) {
			if last == nil {
				return nil, fmt.Errorf("batch %s: no answer within %s (last error: %v)", id, timeout, w.LastErr)
			}
			return last, fmt.Errorf("batch %s still %s after %s (completed %d, failed %d of %d)", id, last.Status, timeout,
				last.RequestCounts.Completed, last.RequestCounts.Failed, last.RequestCounts.Total)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

// Verification is what the result files of a batch say about its requests.
type Verification struct {
	Submitted   int
	OutputLines int
	ErrorLines  int
	// Lost: submitted custom_ids in neither file. Duplicated: custom_ids on more than one line
	// (counted once per extra line). Unknown: lines whose custom_id was never submitted.
	// Mismatched: output lines whose answer is not the answer to their own request.
	Lost, Duplicated, Unknown, Mismatched int
	// ErrorCodes counts the error file's lines by error code (or upstream status).
	ErrorCodes map[string]int
	// Problems describes any count, size or format mismatch.
	Problems []string
}

// OK reports whether every request is in the files exactly once and everything adds up.
func (v Verification) OK() bool {
	return v.Lost == 0 && v.Duplicated == 0 && v.Unknown == 0 && v.Mismatched == 0 && len(v.Problems) == 0
}

func (v Verification) String() string {
	s := fmt.Sprintf("%d submitted: %d output lines, %d error lines; lost %d, duplicated %d, unknown %d, mismatched %d",
		v.Submitted, v.OutputLines, v.ErrorLines, v.Lost, v.Duplicated, v.Unknown, v.Mismatched)
	if len(v.ErrorCodes) > 0 {
		s += "; errors " + formatCounts(v.ErrorCodes)
	}
	if len(v.Problems) > 0 {
		s += "; " + strings.Join(v.Problems, "; ")
	}
	return s
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// resultLine is one line of an output or error file.
type resultLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Verify downloads a finished batch's output and error files and checks them against the
// submitted custom_ids: each exactly once across both files, request_counts equal to the line
// counts, each file's bytes equal to its downloaded length, and each answer the echo of its own
// request.
func Verify(ctx context.Context, c openai.Client, b *openai.Batch, ids []string) (Verification, error) {
	v := Verification{Submitted: len(ids), ErrorCodes: map[string]int{}}
	seen := make(map[string]int, len(ids))
	for _, id := range ids {
		seen[id] = 0
	}
	for _, f := range []struct {
		id     string
		output bool
	}{{b.OutputFileID, true}, {b.ErrorFileID, false}} {
		if f.id == "" {
			continue
		}
		lines, err := download(ctx, c, f.id, &v)
		if err != nil {
			return v, err
		}
		for i, raw := range lines {
			var l resultLine
			if err := json.Unmarshal(raw, &l); err != nil {
				v.Problems = append(v.Problems, fmt.Sprintf("file %s line %d is not JSON: %v", f.id, i+1, err))
				continue
			}
			if !strings.HasPrefix(l.ID, "batch_req_") {
				v.Problems = append(v.Problems, fmt.Sprintf("file %s line %d: id %q", f.id, i+1, l.ID))
			}
			n, known := seen[l.CustomID]
			switch {
			case !known:
				v.Unknown++
			case n > 0:
				v.Duplicated++
			}
			seen[l.CustomID] = n + 1
			if f.output {
				v.OutputLines++
				if l.Response == nil || l.Response.StatusCode != 200 || !echoes(l.Response.Body, l.CustomID) {
					v.Mismatched++
				}
			} else {
				v.ErrorLines++
				switch {
				case l.Error != nil:
					v.ErrorCodes[l.Error.Code]++
				case l.Response != nil:
					v.ErrorCodes[fmt.Sprintf("HTTP %d", l.Response.StatusCode)]++
				default:
					v.ErrorCodes["?"]++
				}
			}
		}
	}
	for _, n := range seen {
		if n == 0 {
			v.Lost++
		}
	}
	rc := b.RequestCounts
	if rc.Total != int64(len(ids)) {
		v.Problems = append(v.Problems, fmt.Sprintf("request_counts.total %d, submitted %d", rc.Total, len(ids)))
	}
	if rc.Completed != int64(v.OutputLines) {
		v.Problems = append(v.Problems, fmt.Sprintf("request_counts.completed %d, output lines %d", rc.Completed, v.OutputLines))
	}
	if rc.Failed != int64(v.ErrorLines) {
		v.Problems = append(v.Problems, fmt.Sprintf("request_counts.failed %d, error lines %d", rc.Failed, v.ErrorLines))
	}
	return v, nil
}

// download reads a result file whole and splits it into lines, checking its declared size.
func download(ctx context.Context, c openai.Client, fileID string, v *Verification) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	meta, err := c.Files.Get(ctx, fileID)
	if err != nil {
		return nil, fmt.Errorf("get file %s: %w", fileID, err)
	}
	res, err := c.Files.Content(ctx, fileID)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", fileID, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", fileID, err)
	}
	if meta.Bytes != int64(len(raw)) {
		v.Problems = append(v.Problems, fmt.Sprintf("file %s: bytes %d, downloaded %d", fileID, meta.Bytes, len(raw)))
	}
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		v.Problems = append(v.Problems, fmt.Sprintf("file %s: last line unterminated", fileID))
	}
	var lines [][]byte
	for line := range bytes.SplitSeq(raw, []byte("\n")) {
		if len(line) > 0 {
			lines = append(lines, line)
		}
	}
	return lines, nil
}

// echoes reports whether a chat completion body is the mock's echo of "hello <customID>".
func echoes(body json.RawMessage, customID string) bool {
	var cc struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if json.Unmarshal(body, &cc) != nil || len(cc.Choices) == 0 {
		return false
	}
	return cc.Choices[0].Message.Content == "echo: hello "+customID
}
