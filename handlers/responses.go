package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/ids"
	"github.com/volleyhq/volley/internal/responses"
	"github.com/volleyhq/volley/internal/upstream"
)

const (
	modeBackground = "background"
	modeFlex       = "flex"
	modeSync       = "sync"
)

// tierBackground is Volley's lowest service tier: its requests run only while nothing else of
// their model waits, within a share of the model's limit.
const tierBackground = "background"

// flexRecheck bounds how long a flex call can miss a lost notification.
const flexRecheck = 2 * time.Second

// createParams are the fields of a create request that decide how it is served.
type createParams struct {
	Model             any             `json:"model"`
	Background        *bool           `json:"background"`
	Stream            *bool           `json:"stream"`
	Store             *bool           `json:"store"`
	ServiceTier       *string         `json:"service_tier"`
	BackgroundOptions json.RawMessage `json:"background_options"`
}

// backgroundOptions are the options of a queued response the SDKs may send; completion_window, as
// a batch's, sets its deadline (VOLLEY_RESPONSE_WINDOW when absent). Other options are accepted
// and have no effect.
type backgroundOptions struct {
	CompletionWindow *string `json:"completion_window"`
}

// window returns the deadline window p asks for, or def.
func (p createParams) window(def time.Duration) (time.Duration, error) {
	raw := bytes.TrimSpace(p.BackgroundOptions)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return def, nil
	}
	const param = "background_options.completion_window"
	var o backgroundOptions
	if raw[0] != '{' || json.Unmarshal(raw, &o) != nil {
		if raw[0] == '{' {
			return 0, badRequest("invalid_type", param, "Invalid 'background_options.completion_window': it must be a string such as '24h'.")
		}
		return 0, badRequest("invalid_type", "background_options", "Invalid 'background_options': it must be an object.")
	}
	if o.CompletionWindow == nil {
		return def, nil
	}
	d, err := parseWindow(*o.CompletionWindow)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		apiErr.Param = param
		apiErr.Message = strings.Replace(apiErr.Message, "'completion_window'", "'"+param+"'", 1)
	}
	return d, err
}

func responseNotFound(id string) *APIError {
	return notFound("response_id", "Response with id '%s' not found.", id)
}

// jsonObject is a JSON body written as is.
type jsonObject []byte

func (o jsonObject) write(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(o)))
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(o)
	return err
}

func (o jsonObject) VisitCreateResponseResponse(w http.ResponseWriter) error   { return o.write(w) }
func (o jsonObject) VisitRetrieveResponseResponse(w http.ResponseWriter) error { return o.write(w) }
func (o jsonObject) VisitCancelResponseResponse(w http.ResponseWriter) error   { return o.write(w) }

// CreateResponse queues a background or flex response, or passes a synchronous one through.
func (s *Server) CreateResponse(ctx context.Context, req api.CreateResponseRequestObject) (api.CreateResponseResponseObject, error) {
	if req.Body == nil || !bytes.HasPrefix(bytes.TrimSpace(*req.Body), []byte("{")) {
		return nil, badRequest("invalid_json", "", "The request body must be a JSON object.")
	}
	raw := []byte(*req.Body)
	var p createParams
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, badRequest("invalid_value", "", "Invalid request: %s.", rootCause(err))
	}
	model, ok := p.Model.(string)
	switch {
	case p.Model == nil:
		return nil, badRequest("missing_required_parameter", "model", "Missing required parameter: 'model'.")
	case !ok || model == "":
		return nil, badRequest("invalid_value", "model", "Invalid 'model': it must be a non-empty string.")
	}
	route, routed := s.route(model)
	if !routed {
		return nil, badRequest("model_not_found", "model", "The model '%s' has no upstream configured.", truncate(model, 128))
	}
	background := p.Background != nil && *p.Background
	stream := p.Stream != nil && *p.Stream
	flex := p.ServiceTier != nil && *p.ServiceTier == "flex"
	lowest := p.ServiceTier != nil && *p.ServiceTier == tierBackground
	switch {
	case lowest && !background:
		return nil, badRequest("unsupported_value", "service_tier", "The '%s' service tier queues a response behind all other work; create it with 'background': true and poll GET /v1/responses/{id}.", tierBackground)
	case background && stream:
		return nil, badRequest("unsupported_value", "stream", "Streaming a background response is not supported; create it without 'stream' and poll GET /v1/responses/{id}.")
	case flex && stream:
		return nil, badRequest("unsupported_value", "stream", "Streaming a flex response is not supported; create it without 'stream'.")
	}
	// background_options are checked whatever the mode, so that a request is refused or accepted
	// for what it says rather than for where it goes.
	window, err := p.window(s.cfg.ResponseWindow)
	if err != nil {
		return nil, err
	}
	switch {
	case background, flex:
		mode := modeFlex
		if background {
			mode = modeBackground
		}
		return s.queueResponse(ctx, model, raw, mode, window, lowest)
	case stream:
		store := p.Store == nil || *p.Store
		return sseProxy{s: s, ctx: ctx, route: route, raw: raw, model: model, store: store}, nil
	}
	return s.passThrough(ctx, route, model, raw, p.Store == nil || *p.Store)
}

func (s *Server) route(model string) (upstream.Route, bool) {
	if s.router == nil {
		return upstream.Route{}, false
	}
	return s.router.Route(model)
}

// queueResponse stores the response and its request; a flex call then waits for the answer. A
// request of the background tier goes upstream without its tier, which is Volley's own.
func (s *Server) queueResponse(ctx context.Context, model string, raw []byte, mode string, window time.Duration, lowest bool) (api.CreateResponseResponseObject, error) {
	strip := []string{"background", "stream", "background_options"}
	if lowest {
		strip = append(strip, "service_tier")
	}
	body, err := withoutKeys(raw, strip...)
	if err != nil {
		return nil, badRequest("invalid_json", "", "Invalid request body: %s.", err.Error())
	}
	id, created := ids.New("resp_")
	var wait <-chan struct{}
	if mode == modeFlex {
		ch, stop := s.hub.subscribe(id)
		defer stop()
		wait = ch
	}
	owner := ownerFrom(ctx)
	err = s.withTx(ctx, func(_ db.Tx, q *dbsqlc.Queries) error {
		reqID, err := q.ResponseRequestInsert(ctx, dbsqlc.ResponseRequestInsertParams{
			Owner: owner, Model: model, Body: body, Deadline: created.Add(window), ResponseID: &id, Background: lowest,
		})
		if err != nil {
			return err
		}
		if err := q.ResponseInsert(ctx, dbsqlc.ResponseInsertParams{
			ID: id, Owner: owner, Model: model, Mode: mode, RequestID: &reqID, Params: raw, CreatedAt: created,
		}); err != nil {
			return err
		}
		return q.BatchNotifyWork(ctx, id)
	})
	if err != nil {
		return nil, fmt.Errorf("queue response: %w", err)
	}
	if mode == modeBackground {
		return jsonObject(responses.Skeleton{ID: id, CreatedAt: created.Unix(), Status: "queued", Params: raw, Background: true}.Render()), nil
	}
	return s.awaitResponse(ctx, id, wait)
}

// awaitResponse waits for a queued response to finish, woken by the daemon's notification and
// re-checking now and then in case one was lost, up to the flex wait.
func (s *Server) awaitResponse(ctx context.Context, id string, done <-chan struct{}) (api.CreateResponseResponseObject, error) {
	limit := time.NewTimer(s.cfg.FlexWait)
	defer limit.Stop()
	recheck := time.NewTicker(s.flexRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-done:
			done = nil
		case <-recheck.C:
		case <-limit.C:
			obj, _, err := s.loadResponse(ctx, id)
			return jsonObject(obj), err
		}
		obj, finished, err := s.loadResponse(ctx, id)
		if err != nil || finished {
			return jsonObject(obj), err
		}
	}
}

// passThrough calls the upstream synchronously and stores its answer under Volley's id.
func (s *Server) passThrough(ctx context.Context, route upstream.Route, model string, raw []byte, store bool) (api.CreateResponseResponseObject, error) {
	out := s.client.Send(ctx, route, "/v1/responses", raw)
	if out.StatusCode == 0 {
		return nil, upstreamUnreachable(out.Err)
	}
	if out.StatusCode < 200 || out.StatusCode > 299 {
		return upstreamAnswer{status: out.StatusCode, body: out.Body}, nil
	}
	id, created := ids.New("resp_")
	obj := responses.WithID(out.Body, id)
	if store {
		if err := s.storeResponse(ctx, id, model, raw, obj, created); err != nil {
			return nil, err
		}
	}
	return jsonObject(obj), nil
}

func (s *Server) storeResponse(ctx context.Context, id, model string, params, obj []byte, created time.Time) error {
	err := s.queries.ResponseInsert(ctx, dbsqlc.ResponseInsertParams{
		ID: id, Owner: ownerFrom(ctx), Model: model, Mode: modeSync, Params: params, Object: obj, CreatedAt: created,
	})
	if err != nil {
		return fmt.Errorf("store response: %w", db.Translate(err))
	}
	return nil
}

func upstreamUnreachable(err error) *APIError {
	msg := "The model's upstream could not be reached."
	if err != nil {
		msg = "The model's upstream could not be reached: " + err.Error() + "."
	}
	return &APIError{Status: http.StatusBadGateway, Type: typeServer, Code: "upstream_unreachable", Message: msg}
}

// upstreamAnswer relays an upstream's error answer as the OpenAI envelope the client expects.
type upstreamAnswer struct {
	status int
	body   []byte
}

func (u upstreamAnswer) VisitCreateResponseResponse(w http.ResponseWriter) error {
	var env struct {
		Error *json.RawMessage `json:"error"`
	}
	if json.Unmarshal(u.body, &env) == nil && env.Error != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(u.status)
		_, err := w.Write(u.body)
		return err
	}
	writeAPIError(w, &APIError{Status: u.status, Type: typeServer, Code: "upstream_error",
		Message: fmt.Sprintf("The model's upstream answered with HTTP status %d.", u.status)})
	return nil
}

// loadResponse renders a stored response as it stands and says whether it is finished.
func (s *Server) loadResponse(ctx context.Context, id string) ([]byte, bool, error) {
	row, err := s.queries.ResponseGet(ctx, dbsqlc.ResponseGetParams{ID: id, Owner: ownerFrom(ctx)})
	if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
		return nil, false, responseNotFound(id)
	} else if err != nil {
		return nil, false, fmt.Errorf("get response: %w", err)
	}
	obj, finished := renderStored(row)
	return obj, finished, nil
}

// renderStored turns a stored response and its request's state into the Response object.
func renderStored(row dbsqlc.ResponseGetRow) ([]byte, bool) {
	if row.Mode == modeSync {
		return row.Object, true
	}
	sk := responses.Skeleton{ID: row.ID, CreatedAt: row.CreatedAt.Unix(), Params: row.Params, Background: row.Mode == modeBackground}
	state := deref(row.RequestState)
	switch {
	case row.CancelledAt != nil && state != "completed" || state == "cancelled":
		sk.Status = "cancelled"
	case state == "pending":
		sk.Status = "queued"
		return sk.Render(), false
	case state == "running":
		sk.Status = "in_progress"
		return sk.Render(), false
	case state == "completed":
		if row.CancelledAt != nil {
			sk.Status = "cancelled"
			break
		}
		tier := ""
		if gjson.GetBytes(row.Params, "service_tier").Str == tierBackground {
			tier = tierBackground
		}
		return responses.AsCreated(row.RequestResult, row.Mode == modeBackground, tier), true
	default: // failed, expired
		sk.Status = "failed"
		sk.Error = row.RequestResult
		if state == "expired" {
			sk.Error = responses.Failure("server_error", "The response could not be completed within its time limit.")
		}
	}
	return sk.Render(), true
}

// RetrieveResponse returns a stored response.
func (s *Server) RetrieveResponse(ctx context.Context, req api.RetrieveResponseRequestObject) (api.RetrieveResponseResponseObject, error) {
	if req.Params.Stream != nil && *req.Params.Stream {
		return nil, badRequest("unsupported_value", "stream", "Streaming a stored response is not supported; GET it without 'stream'.")
	}
	obj, _, err := s.loadResponse(ctx, req.ResponseId)
	if err != nil {
		return nil, err
	}
	return jsonObject(obj), nil
}

// CancelResponse cancels a background response; it is idempotent and returns the final object.
func (s *Server) CancelResponse(ctx context.Context, req api.CancelResponseRequestObject) (api.CancelResponseResponseObject, error) {
	row, err := s.queries.ResponseGet(ctx, dbsqlc.ResponseGetParams{ID: req.ResponseId, Owner: ownerFrom(ctx)})
	if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
		return nil, responseNotFound(req.ResponseId)
	} else if err != nil {
		return nil, fmt.Errorf("get response: %w", err)
	}
	if row.Mode != modeBackground {
		return nil, badRequest("invalid_state", "", "Only background responses can be cancelled; this one was not created with background: true.")
	}
	if _, finished := renderStored(row); !finished {
		if err := s.stopQueued(ctx, row.ID); err != nil {
			return nil, err
		}
	}
	obj, _, err := s.loadResponse(ctx, req.ResponseId)
	if err != nil {
		return nil, err
	}
	return jsonObject(obj), nil
}

// stopQueued marks a queued response cancelled, ends its request if it has not started, and
// asks the replica running it to abort; should that request come back to the queue, it is not
// claimed again.
func (s *Server) stopQueued(ctx context.Context, id string) error {
	return s.withTx(ctx, func(_ db.Tx, q *dbsqlc.Queries) error {
		if err := q.ResponseMarkCancelled(ctx, id); err != nil {
			return err
		}
		if _, err := q.ResponseCancelPending(ctx, &id); err != nil {
			return err
		}
		if err := q.ResponseEndRunning(ctx, id); err != nil {
			return err
		}
		return q.ResponseNotifyAbort(ctx, id)
	})
}

// DeleteResponse removes a stored response, stopping it first if it is still queued.
func (s *Server) DeleteResponse(ctx context.Context, req api.DeleteResponseRequestObject) (api.DeleteResponseResponseObject, error) {
	row, err := s.queries.ResponseGet(ctx, dbsqlc.ResponseGetParams{ID: req.ResponseId, Owner: ownerFrom(ctx)})
	if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
		return nil, responseNotFound(req.ResponseId)
	} else if err != nil {
		return nil, fmt.Errorf("get response: %w", err)
	}
	if _, finished := renderStored(row); !finished {
		if err := s.stopQueued(ctx, row.ID); err != nil {
			return nil, err
		}
	}
	n, err := s.queries.ResponseMarkDeleted(ctx, dbsqlc.ResponseMarkDeletedParams{ID: req.ResponseId, Owner: ownerFrom(ctx)})
	if err != nil {
		return nil, fmt.Errorf("delete response: %w", db.Translate(err))
	}
	if n == 0 {
		return nil, responseNotFound(req.ResponseId)
	}
	return api.DeleteResponse200JSONResponse{Id: req.ResponseId, Object: "response", Deleted: true}, nil
}

// QueueDepth reports pending and running requests per model, and the pending ones by time to
// their deadline.
func (s *Server) QueueDepth(ctx context.Context, req api.QueueDepthRequestObject) (api.QueueDepthResponseObject, error) {
	names, bounds, err := parseWindows(req.Params.Windows)
	if err != nil {
		return nil, err
	}
	owner := ownerFrom(ctx)
	rows, err := s.queries.QueueDepth(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("queue depth: %w", db.Translate(err))
	}
	everyone := isAdmin(ctx)
	effective, err := s.effectiveLimits(ctx)
	if err != nil {
		return nil, err
	}
	buckets, err := s.queries.QueueDeadlineWindows(ctx, dbsqlc.QueueDeadlineWindowsParams{Bounds: bounds, Everyone: everyone, Owner: owner})
	if err != nil {
		return nil, fmt.Errorf("queue deadline windows: %w", db.Translate(err))
	}
	byModel := map[string][]int64{}
	for _, b := range buckets {
		counts := byModel[b.Model]
		if counts == nil {
			counts = make([]int64, len(names))
			byModel[b.Model] = counts
		}
		counts[b.Bucket+1] += b.Pending
	}
	out := api.QueueDepth200JSONResponse{Object: "list", Data: make([]api.ModelQueue, len(rows)), WindowsScope: api.Own}
	if everyone {
		out.WindowsScope = api.All
	}
	for i, r := range rows {
		windows := make([]api.DeadlineWindow, len(names))
		counts := byModel[r.Model]
		for k, name := range names {
			windows[k].Window = name
			if counts != nil {
				windows[k].Pending = counts[k]
			}
		}
		out.Data[i] = api.ModelQueue{Model: r.Model, Pending: r.Pending, Running: r.Running, OwnPending: r.OwnPending, OwnRunning: r.OwnRunning,
			BackgroundPending: r.BackgroundPending, BackgroundRunning: r.BackgroundRunning, DeadlineWindows: windows}
		if route, ok := s.route(r.Model); ok {
			limit := route.Ceiling()
			out.Data[i].Limit = &limit
			out.Data[i].EffectiveLimit = effective.of(r.Model, route)
		}
	}
	return out, nil
}

// effectiveLimits are the effective limits of the models whose limit adapts, as model_limits
// holds them; a model without a row runs at its ceiling.
type effectiveLimits map[string]int

func (s *Server) effectiveLimits(ctx context.Context) (effectiveLimits, error) {
	rows, err := s.queries.ModelLimitsList(ctx)
	if err != nil {
		return nil, fmt.Errorf("model limits: %w", db.Translate(err))
	}
	out := make(effectiveLimits, len(rows))
	for _, r := range rows {
		out[r.Model] = int(r.Effective)
	}
	return out, nil
}

// of is model's effective limit, or nil when its limit is fixed.
func (e effectiveLimits) of(model string, route upstream.Route) *int {
	if route.Adaptive == nil {
		return nil
	}
	n, ok := e[model]
	if !ok || n > route.Ceiling() {
		n = route.Ceiling()
	}
	return &n
}

const maxWindows = 8

// parseWindows reads "1h,24h" into the names of the buckets (overdue, within_1h, within_24h,
// later) and the windows in seconds.
func parseWindows(in *string) (names []string, bounds []float64, err error) {
	text := "1h,24h"
	if in != nil && strings.TrimSpace(*in) != "" {
		text = *in
	}
	parts := strings.Split(text, ",")
	if len(parts) > maxWindows {
		return nil, nil, badRequest("invalid_value", "windows", "Invalid 'windows': %d given; at most %d are allowed.", len(parts), maxWindows)
	}
	names = []string{"overdue"}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		d, err := time.ParseDuration(p)
		if err != nil || d <= 0 {
			return nil, nil, badRequest("invalid_value", "windows", "Invalid 'windows': '%s' is not a positive duration like 30m, 1h or 24h.", truncate(p, 32))
		}
		if len(bounds) > 0 && d.Seconds() <= bounds[len(bounds)-1] {
			return nil, nil, badRequest("invalid_value", "windows", "Invalid 'windows': '%s' is not longer than the window before it; give them in ascending order.", p)
		}
		bounds = append(bounds, d.Seconds())
		names = append(names, "within_"+p)
	}
	return append(names, "later"), bounds, nil
}

// withoutKeys removes top-level keys from a JSON object.
func withoutKeys(raw []byte, keys ...string) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	for _, k := range keys {
		delete(obj, k)
	}
	return json.Marshal(obj)
}

// sseProxy relays a streamed synchronous response event by event, giving it Volley's id, and
// stores the final object.
type sseProxy struct {
	s     *Server
	ctx   context.Context
	route upstream.Route
	raw   []byte
	model string
	store bool
}

func (p sseProxy) VisitCreateResponseResponse(w http.ResponseWriter) error {
	resp, err := p.s.client.Open(p.ctx, p.route, "/v1/responses", p.raw)
	if err != nil {
		writeAPIError(w, upstreamUnreachable(err))
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return upstreamAnswer{status: resp.StatusCode, body: body}.VisitCreateResponseResponse(w)
	}
	id, created := ids.New("resp_")
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	var final []byte
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				rewritten, completed := rewriteEvent(bytes.TrimRight(data, "\r\n"), id)
				if completed != nil {
					final = completed
				}
				line = append(append([]byte("data: "), rewritten...), '\n')
			}
			if _, werr := w.Write(line); werr != nil {
				return nil // the client went away
			}
			if len(bytes.TrimSpace(line)) == 0 && flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			break
		}
	}
	if flusher != nil {
		flusher.Flush()
	}
	if p.store && final != nil {
		if err := p.s.storeResponse(context.WithoutCancel(p.ctx), id, p.model, p.raw, final, created); err != nil {
			loggerFrom(p.ctx).Error("store streamed response", "response_id", id, "error", err.Error())
		}
	}
	return nil
}

// rewriteEvent gives the response inside a stream event Volley's id. It returns the event and, for
// the event that ends the stream, the final response object.
func rewriteEvent(data []byte, id string) (event, final []byte) {
	var ev map[string]json.RawMessage
	if json.Unmarshal(data, &ev) != nil {
		return data, nil
	}
	inner, ok := ev["response"]
	if !ok {
		return data, nil
	}
	obj := responses.WithID(inner, id)
	ev["response"] = obj
	out, err := json.Marshal(ev)
	if err != nil {
		return data, nil
	}
	var typ string
	_ = json.Unmarshal(ev["type"], &typ)
	if strings.HasPrefix(typ, "response.") && (typ == "response.completed" || typ == "response.incomplete" || typ == "response.failed") {
		return out, obj
	}
	return out, nil
}
