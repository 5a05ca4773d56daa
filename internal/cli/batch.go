package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// Batch runs `volley batch ARGS`.
func Batch(ctx context.Context, args []string, o IO) error {
	if len(args) == 0 {
		return &UsageError{Msg: "batch: give a command", Usage: BatchUsage}
	}
	sub, args := args[0], args[1:]
	fs := newFlags("batch "+sub, BatchUsage)
	jsonOut := fs.Bool("json", false, "print objects as JSON")
	interval := fs.Duration("interval", 0, "refresh interval while watching")
	var (
		endpoint, window, out, after, status, tier *string
		wait                                       *bool
		limit                                      *int64
		md                                         = metadata{}
		statuses                                   list
		customIDs                                  repeated
	)
	switch sub {
	case "submit":
		endpoint = fs.String("endpoint", "", "endpoint of every line (default: the lines' url)")
		window = fs.String("window", "24h", "completion window")
		tier = fs.String("service-tier", "", "service tier: auto, default, flex or background (runs only while nothing else of its model waits)")
		fs.Var(md, "metadata", "key=value metadata (repeatable)")
		wait = fs.Bool("wait", false, "watch the batch to its end and download its results")
	case "retry":
		fs.Var(&statuses, "status", "retry lines that ended so: completed, failed, expired, cancelled (repeatable; default: every line that did not complete)")
		fs.Var(&customIDs, "custom-id", "retry only this custom_id (repeatable)")
		window = fs.String("window", "", "completion window of the new batch")
		fs.Var(md, "metadata", "key=value metadata (repeatable)")
		wait = fs.Bool("wait", false, "watch the new batch to its end")
	case "list":
		limit = fs.Int64("limit", 20, "how many to list (1-100)")
		after = fs.String("after", "", "list after this id")
	case "results":
		status = fs.String("status", "all", "completed, failed or all")
		out = fs.String("out", "", "write to this file instead of stdout")
	case "watch", "get", "cancel":
	case "help", "-h", "--help":
		return &UsageError{Usage: BatchUsage}
	default:
		return &UsageError{Msg: fmt.Sprintf("batch: unknown command %q", sub), Usage: BatchUsage}
	}
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := checkBatchArgs(fs, sub, interval, limit, status, statuses); err != nil {
		return err
	}
	e, err := newEnv(ctx, o, *jsonOut, *interval)
	if err != nil {
		return err
	}
	switch sub {
	case "submit":
		return e.submit(fs.args[0], *endpoint, *window, *tier, md, *wait)
	case "watch":
		b, err := e.watch(fs.args[0], true)
		if err != nil {
			return err
		}
		return e.finish(b)
	case "list":
		return e.batchList(*limit, *after)
	case "get":
		b, err := e.client.Batches.Get(ctx, fs.args[0])
		if err != nil {
			return apiError("get batch", err)
		}
		if e.json {
			return e.printJSON(b.RawJSON())
		}
		return e.describe(b)
	case "cancel":
		b, err := e.client.Batches.Cancel(ctx, fs.args[0])
		if err != nil {
			return apiError("cancel batch", err)
		}
		if e.json {
			return e.printJSON(b.RawJSON())
		}
		c := b.RequestCounts
		fmt.Fprintf(o.Stdout, "%s %s (%d completed, %d failed of %d so far)\n", b.ID, b.Status, c.Completed, c.Failed, c.Total)
		return nil
	case "retry":
		return e.retry(fs.args[0], statuses, customIDs, *window, md, *wait)
	case "results":
		return e.results(fs.args[0], *status, *out)
	}
	return nil
}

func checkBatchArgs(fs *flags, sub string, interval *time.Duration, limit *int64, status *string, statuses list) error {
	bad := func(format string, args ...any) error {
		return &UsageError{Msg: "batch " + sub + ": " + fmt.Sprintf(format, args...), Usage: BatchUsage}
	}
	if *interval < 0 || (*interval > 0 && *interval < 100*time.Millisecond) {
		return bad("--interval must be at least 100ms, got %s", *interval)
	}
	switch sub {
	case "submit":
		return fs.want(1, "the JSONL file of requests")
	case "list":
		if *limit < 1 || *limit > 100 {
			return bad("--limit must be within 1..100, got %d", *limit)
		}
		return fs.want(0, "")
	case "results":
		switch *status {
		case "completed", "failed", "all":
		default:
			return bad("--status must be completed, failed or all, got %q", *status)
		}
	case "retry":
		for _, s := range statuses {
			switch s {
			case "completed", "failed", "expired", "cancelled":
			default:
				return bad("--status must be completed, failed, expired or cancelled, got %q", s)
			}
		}
	}
	return fs.want(1, "a batch id")
}

// submit uploads path, creates a batch from it and, with wait, watches it and downloads its results.
func (e *env) submit(path, endpoint, window, tier string, md metadata, wait bool) error {
	if endpoint == "" {
		var err error
		if endpoint, err = inferEndpoint(path); err != nil {
			return err
		}
	}
	f, err := e.upload(path, string(openai.FilePurposeBatch))
	if err != nil {
		return err
	}
	params := openai.BatchNewParams{
		InputFileID:      f.ID,
		Endpoint:         openai.BatchNewParamsEndpoint(endpoint),
		CompletionWindow: openai.BatchNewParamsCompletionWindow(window),
	}
	if len(md) > 0 {
		params.Metadata = shared.Metadata(md)
	}
	var opts []option.RequestOption
	if tier != "" {
		opts = append(opts, option.WithJSONSet("service_tier", tier)) // Volley's extension of the create call
	}
	b, err := e.client.Batches.New(e.ctx, params, opts...)
	if err != nil {
		return apiError(fmt.Sprintf("create a batch from %s (uploaded as %s)", path, f.ID), err)
	}
	if !wait {
		if e.json {
			return e.printJSON(b.RawJSON())
		}
		fmt.Fprintln(e.io.Stdout, b.ID)
		e.screen.say("created %s: %d requests to %s from %s, window %s (watch it: volley batch watch %s)",
			b.ID, b.RequestCounts.Total, b.Endpoint, f.ID, b.CompletionWindow, b.ID)
		return nil
	}
	e.screen.say("created %s: %d requests to %s from %s, window %s", b.ID, b.RequestCounts.Total, b.Endpoint, f.ID, b.CompletionWindow)
	b, err = e.watch(b.ID, false)
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(path, ".jsonl")
	if err := e.fetchResult(b.OutputFileID, base+".output.jsonl"); err != nil {
		return err
	}
	if err := e.fetchResult(b.ErrorFileID, base+".errors.jsonl"); err != nil {
		return err
	}
	return e.finish(b)
}

// fetchResult downloads a result file to path, or, when the batch has none, removes a stale path
// from an earlier run so that the files beside the input always describe the latest batch.
func (e *env) fetchResult(id, path string) error {
	if id == "" {
		if err := os.Remove(path); err == nil {
			e.screen.say("removed %s from an earlier run: this batch has no such lines", path)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	n, err := e.downloadTo(id, path)
	if err != nil {
		return err
	}
	e.screen.say("wrote %s (%s)", path, byteSize(n))
	return nil
}

// inferEndpoint reads the url of every line of path: they must all agree.
func inferEndpoint(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var endpoint string
	first := 0
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var l struct {
				URL string `json:"url"`
			}
			// A line that does not parse is left to the server, which names its problem precisely.
			if json.Unmarshal(line, &l) == nil && l.URL != "" {
				switch {
				case endpoint == "":
					endpoint, first = l.URL, n
				case l.URL != endpoint:
					return "", fmt.Errorf("%s: line %d has url %q but line %d has %q; a batch has one endpoint (split the file, or give --endpoint)", path, n, l.URL, first, endpoint)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", path, err)
		}
	}
	if endpoint == "" {
		return "", fmt.Errorf("%s: no line has a url to take the endpoint from; give --endpoint", path)
	}
	return endpoint, nil
}

func ended(b *openai.Batch) bool {
	switch b.Status {
	case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusExpired, openai.BatchStatusCancelled:
		return true
	}
	return false
}

// endedAt is when the batch ended, by the server's clock (0 while it runs).
func endedAt(b *openai.Batch) int64 {
	for _, t := range []int64{b.CompletedAt, b.FailedAt, b.ExpiredAt, b.CancelledAt} {
		if t != 0 {
			return t
		}
	}
	return 0
}

// watch polls batch id until it ends, drawing its progress. Ctrl-C (ctx done) stops watching and
// leaves the batch as it is. Polling errors that may pass (the network, a 5xx) are shown and
// retried; any other is returned.
func (e *env) watch(id string, announce bool) (*openai.Batch, error) {
	poll := time.Second
	if e.screen.period < poll {
		poll = e.screen.period
	}
	r := &rate{window: 20 * time.Second}
	fails := &failures{seen: map[string]bool{}}
	var last *openai.Batch
	lastJSON := ""
	var lastStatus openai.BatchStatus
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		b, err := e.client.Batches.Get(e.ctx, id)
		switch {
		case e.ctx.Err() != nil:
			return nil, e.stopWatching(id, last)
		case err != nil && (statusOf(err) == 0 || statusOf(err) >= 500 || statusOf(err) == 429):
			if last == nil {
				return nil, apiError("get batch", err)
			}
			e.screen.update(e.screen.paint(ansiYellow, "retrying: "+apiError("get batch", err).Error()),
				"retrying: "+apiError("get batch", err).Error(), true)
		case err != nil:
			e.screen.end()
			return nil, apiError("get batch", err)
		default:
			if last == nil && announce && e.screen.tty {
				e.screen.say("%s  %s  %d requests", b.ID, b.Endpoint, b.RequestCounts.Total)
			}
			c := b.RequestCounts
			if !e.json && c.Failed > 0 && (last == nil || c.Failed != last.RequestCounts.Failed) {
				e.showFailures(fails, id)
			}
			last = b
			r.add(time.Now(), c.Completed+c.Failed)
			if e.json && b.RawJSON() != lastJSON {
				if err := e.printLine(b.RawJSON()); err != nil {
					return nil, err
				}
				lastJSON = b.RawJSON()
			}
			e.draw(b, r, b.Status != lastStatus)
			lastStatus = b.Status
			if ended(b) {
				e.screen.end()
				return b, nil
			}
		}
		select {
		case <-e.ctx.Done():
			return nil, e.stopWatching(id, last)
		case <-tick.C:
		}
	}
}

// failures follows the requests of a watched batch that fail, through Volley's extension
// GET /v1/batches/{id}/requests?status=failed, to show each as it happens. A server without the
// extension shows none; after maxShownFailures the rest are left to `volley batch results`.
type failures struct {
	seen  map[string]bool
	shown int
	off   bool
}

const maxShownFailures = 20

// failedRequest is what a failure note needs of a batch.request.
type failedRequest struct {
	CustomID string `json:"custom_id"`
	Line     int    `json:"line"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// reason is one line saying why the request failed.
func (r failedRequest) reason() string {
	switch {
	case r.Response != nil:
		var body struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		msg := strings.TrimSpace(string(r.Response.Body))
		if json.Unmarshal(r.Response.Body, &body) == nil && body.Error.Message != "" {
			msg = body.Error.Message
		}
		return fmt.Sprintf("HTTP %d: %s", r.Response.StatusCode, oneLine(msg, 200))
	case r.Error != nil:
		return fmt.Sprintf("%s: %s", r.Error.Code, oneLine(r.Error.Message, 200))
	}
	return "failed"
}

// oneLine is s on one line, cut to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// showFailures notes the batch's requests that failed since the last look.
func (e *env) showFailures(f *failures, id string) {
	if f.off {
		return
	}
	var page struct {
		Data []failedRequest `json:"data"`
	}
	err := e.client.Get(e.ctx, "batches/"+url.PathEscape(id)+"/requests", nil, &page,
		option.WithQuery("status", "failed"), option.WithQuery("limit", "1000"), option.WithMaxRetries(0))
	if err != nil {
		if s := statusOf(err); s >= 400 && s < 500 && s != 429 {
			f.off = true // not offered here; the counts still show
		}
		return
	}
	for _, r := range page.Data {
		if f.seen[r.CustomID] {
			continue
		}
		f.seen[r.CustomID] = true
		if f.shown == maxShownFailures {
			e.screen.note(e.screen.paint(ansiDim, "more requests fail; all of them: volley batch results "+id+" --status failed"),
				"more requests fail; all of them: volley batch results "+id+" --status failed")
			f.off = true
			return
		}
		f.shown++
		e.screen.note(fmt.Sprintf("%s %s (line %d): %s", e.screen.paint(ansiRed, "failed"), r.CustomID, r.Line, r.reason()),
			fmt.Sprintf("failed %s (line %d): %s", r.CustomID, r.Line, r.reason()))
	}
}

// printLine writes one JSON object on one line (for a stream of objects).
func (e *env) printLine(raw string) error {
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(raw)); err != nil {
		return fmt.Errorf("the server answered something that is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := e.io.Stdout.Write(buf.Bytes())
	return err
}

func (e *env) stopWatching(id string, last *openai.Batch) error {
	state := "as it was"
	if last != nil {
		state = string(last.Status)
	}
	e.screen.say("stopped watching %s; it is still %s on the server (watch again: volley batch watch %s; cancel: volley batch cancel %s)", id, state, id, id)
	return &ExitError{Code: ExitInterrupted}
}

// draw shows one progress line for b.
func (e *env) draw(b *openai.Batch, r *rate, force bool) {
	c := b.RequestCounts
	done := c.Completed + c.Failed
	now := time.Now()
	elapsed := time.Duration(0)
	if b.CreatedAt > 0 {
		end := now
		if t := endedAt(b); t != 0 {
			end = time.Unix(t, 0)
		}
		elapsed = end.Sub(time.Unix(b.CreatedAt, 0))
	}
	perSec, ok := r.perSecond()
	eta := "-"
	if ended(b) {
		eta = "0s"
	} else if d, ok := r.eta(c.Total - done); ok {
		eta = duration(d)
	}
	pct := 0.0
	if c.Total > 0 {
		pct = float64(done) * 100 / float64(c.Total)
	}
	s := e.screen
	status := string(b.Status)
	colour := ansiCyan
	switch {
	case b.Status == openai.BatchStatusCompleted && c.Failed == 0:
		colour = ansiGreen
	case b.Status == openai.BatchStatusCompleted:
		colour = ansiYellow
	case ended(b):
		colour = ansiRed
	}
	failed := fmt.Sprintf("%d failed", c.Failed)
	if c.Failed > 0 {
		failed = s.paint(ansiRed, failed)
	}
	head := s.paint(colour, status) + " "
	tail := fmt.Sprintf(" %3.0f%%  %d/%d  %s %s  %s req/s  ETA %s  elapsed %s",
		pct, done, c.Total, s.paint(ansiGreen, fmt.Sprintf("%d ok", c.Completed)), failed,
		perSecondText(perSec, ok), eta, duration(elapsed))
	s.update(head+s.bar(s.room(head+tail, 10, 40), c.Completed, c.Failed, c.Total)+tail,
		fmt.Sprintf("%s %s: %d/%d done (%.0f%%), %d completed, %d failed, %s req/s, ETA %s, elapsed %s",
			b.ID, status, done, c.Total, pct, c.Completed, c.Failed, perSecondText(perSec, ok), eta, duration(elapsed)),
		force)
}

// finish reports how batch b ended: exit status 0 only when every request completed.
func (e *env) finish(b *openai.Batch) error {
	c := b.RequestCounts
	all := b.Status == openai.BatchStatusCompleted && c.Failed == 0 && c.Completed == c.Total
	if !e.json { // with --json, watching has printed the batch as it ended

		fmt.Fprintf(e.io.Stdout, "%s %s: %d of %d requests completed, %d failed\n", b.ID, b.Status, c.Completed, c.Total, c.Failed)
		for _, be := range b.Errors.Data {
			line := ""
			if be.Line > 0 {
				line = fmt.Sprintf(" (line %d)", be.Line)
			}
			fmt.Fprintf(e.io.Stdout, "  error %s%s: %s\n", be.Code, line, be.Message)
		}
	}
	if all {
		return nil
	}
	return &ExitError{Code: 1}
}

func (e *env) batchList(limit int64, after string) error {
	params := openai.BatchListParams{Limit: openai.Int(limit)}
	if after != "" {
		params.After = openai.String(after)
	}
	page, err := e.client.Batches.List(e.ctx, params)
	if err != nil {
		return apiError("list batches", err)
	}
	if e.json {
		return e.printJSON(page.RawJSON())
	}
	tw := tabwriter.NewWriter(e.io.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tENDPOINT\tCOMPLETED\tFAILED\tTOTAL\tCREATED")
	for _, b := range page.Data {
		c := b.RequestCounts
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", b.ID, b.Status, b.Endpoint, c.Completed, c.Failed, c.Total, unixTime(b.CreatedAt))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.HasMore && len(page.Data) > 0 {
		fmt.Fprintf(e.io.Stderr, "more: volley batch list --after %s\n", page.Data[len(page.Data)-1].ID)
	}
	return nil
}

// describe prints a batch's fields for a person.
func (e *env) describe(b *openai.Batch) error {
	tw := tabwriter.NewWriter(e.io.Stdout, 0, 4, 2, ' ', 0)
	c := b.RequestCounts
	orDash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	rows := [][2]string{
		{"id", b.ID}, {"status", string(b.Status)}, {"endpoint", b.Endpoint}, {"model", orDash(b.Model)},
		{"completion_window", b.CompletionWindow}, {"service_tier", orDash(extraString(b.JSON.ExtraFields["service_tier"].Raw()))},
		{"requests", fmt.Sprintf("%d completed, %d failed, %d total", c.Completed, c.Failed, c.Total)},
		{"input_file_id", b.InputFileID}, {"output_file_id", orDash(b.OutputFileID)}, {"error_file_id", orDash(b.ErrorFileID)},
		{"created_at", unixTime(b.CreatedAt)}, {"in_progress_at", unixTime(b.InProgressAt)}, {"expires_at", unixTime(b.ExpiresAt)},
	}
	for _, t := range []struct {
		name string
		at   int64
	}{{"finalizing_at", b.FinalizingAt}, {"completed_at", b.CompletedAt}, {"failed_at", b.FailedAt},
		{"expired_at", b.ExpiredAt}, {"cancelling_at", b.CancellingAt}, {"cancelled_at", b.CancelledAt}} {
		if t.at != 0 {
			rows = append(rows, [2]string{t.name, unixTime(t.at)})
		}
	}
	if b.Usage.TotalTokens > 0 {
		rows = append(rows, [2]string{"usage", fmt.Sprintf("%d input, %d output, %d total tokens", b.Usage.InputTokens, b.Usage.OutputTokens, b.Usage.TotalTokens)})
	}
	keys := make([]string, 0, len(b.Metadata))
	for k := range b.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rows = append(rows, [2]string{"metadata." + k, b.Metadata[k]})
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	for _, be := range b.Errors.Data {
		fmt.Fprintf(tw, "error\t%s: %s\n", be.Code, be.Message)
	}
	return tw.Flush()
}

// results writes a batch's output file (completed), error file (failed) or both (all).
func (e *env) results(id, which, out string) error {
	b, err := e.client.Batches.Get(e.ctx, id)
	if err != nil {
		return apiError("get batch", err)
	}
	if !ended(b) && b.OutputFileID == "" && b.ErrorFileID == "" {
		return fmt.Errorf("batch %s is %s: its output and error files appear when it ends (watch it: volley batch watch %s)", id, b.Status, id)
	}
	var ids []string
	if (which == "completed" || which == "all") && b.OutputFileID != "" {
		ids = append(ids, b.OutputFileID)
	}
	if (which == "failed" || which == "all") && b.ErrorFileID != "" {
		ids = append(ids, b.ErrorFileID)
	}
	copyAll := func(w io.Writer) (int64, error) {
		var n int64
		for _, fid := range ids {
			res, err := e.client.Files.Content(e.ctx, fid)
			if err != nil {
				return n, apiError("download "+fid, err)
			}
			m, err := io.Copy(w, res.Body)
			res.Body.Close()
			n += m
			if err != nil {
				return n, fmt.Errorf("download %s: %w", fid, err)
			}
		}
		return n, nil
	}
	if out == "" || out == "-" {
		_, err := copyAll(e.io.Stdout)
		return err
	}
	n, err := writeFile(out, copyAll)
	if err != nil {
		return err
	}
	e.screen.say("wrote %s (%s, %s lines of %s)", out, byteSize(n), which, id)
	return nil
}

// retryBody is the body of Volley's POST /v1/batches/{id}/retry.
type retryBody struct {
	Statuses         []string          `json:"statuses,omitempty"`
	CustomIDs        []string          `json:"custom_ids,omitempty"`
	CompletionWindow string            `json:"completion_window,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
}

// retry asks Volley for a new batch of the lines of ended batch id that did not complete. It is a
// Volley extension: a server without it is told apart from a batch that does not exist.
func (e *env) retry(id string, statuses, customIDs []string, window string, md metadata, wait bool) error {
	body := retryBody{Statuses: statuses, CustomIDs: customIDs, CompletionWindow: window}
	if len(md) > 0 {
		body.Metadata = md
	}
	var b openai.Batch
	err := e.client.Post(e.ctx, "batches/"+url.PathEscape(id)+"/retry", body, &b)
	if err != nil {
		if s := statusOf(err); s == 404 || s == 405 {
			if e.lacksRoute(id, err) {
				return fmt.Errorf("retry: the server at %s does not offer batch retry (POST /v1/batches/{id}/retry is a Volley extension; it answered %d)", e.base, s)
			}
		}
		return apiError("retry batch", err)
	}
	if !wait {
		if e.json {
			return e.printJSON(b.RawJSON())
		}
		fmt.Fprintln(e.io.Stdout, b.ID)
		e.screen.say("created %s retrying %d requests of %s (watch it: volley batch watch %s)", b.ID, b.RequestCounts.Total, id, b.ID)
		return nil
	}
	e.screen.say("created %s retrying %d requests of %s", b.ID, b.RequestCounts.Total, id)
	nb, err := e.watch(b.ID, false)
	if err != nil {
		return err
	}
	return e.finish(nb)
}

// lacksRoute tells a 404 from a missing route (the server does not have the extension) from a 404
// for a batch that does not exist: the route is missing when the answer says the URL is unknown, or
// when the batch itself can be read.
func (e *env) lacksRoute(id string, err error) bool {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) && strings.HasPrefix(apiErr.Message, "Invalid URL") {
		return true
	}
	if statusOf(err) == 405 {
		return true
	}
	_, getErr := e.client.Batches.Get(e.ctx, id)
	return getErr == nil
}

// extraString is the string a field the SDK does not know holds, given its raw JSON; "" when it is
// absent or not a string.
func extraString(raw string) string {
	var s string
	if json.Unmarshal([]byte(raw), &s) != nil {
		return ""
	}
	return s
}
