package mockllm

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type endpoint int

const (
	epChat endpoint = iota
	epCompletions
	epEmbeddings
	epModerations
	epResponses
	numEndpoints
)

var endpointPaths = [numEndpoints]string{
	epChat:        "/v1/chat/completions",
	epCompletions: "/v1/completions",
	epEmbeddings:  "/v1/embeddings",
	epModerations: "/v1/moderations",
	epResponses:   "/v1/responses",
}

func lookupEndpoint(path string) (endpoint, bool) {
	p := strings.TrimPrefix(path, "/v1")
	switch p {
	case "/chat/completions":
		return epChat, true
	case "/completions":
		return epCompletions, true
	case "/embeddings":
		return epEmbeddings, true
	case "/moderations":
		return epModerations, true
	case "/responses":
		return epResponses, true
	}
	return 0, false
}

type faultKind uint8

const (
	faultNone faultKind = iota
	faultStatus
	faultRateLimit
	faultReset
	faultHang
)

// fault is one slice of the [0,1) interval used for the random draw.
type fault struct {
	upper  float64
	kind   faultKind
	status int
}

// Server is the simulated upstream. It is safe for concurrent use.
type Server struct {
	cfg       Config
	logger    *slog.Logger
	stats     *stats
	starts    startLog
	seq       atomic.Uint64
	faults    []fault
	closing   chan struct{}
	closeOnce sync.Once

	retryAfter   string
	retryAfterMS string
}

// New returns a Server for cfg. It panics if cfg.Validate reports an error;
// callers taking user input should validate first. A nil logger discards
// logs.
func New(cfg Config, logger *slog.Logger) *Server {
	if err := cfg.Validate(); err != nil {
		panic("mockllm: invalid config: " + err.Error())
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:     cfg,
		logger:  logger,
		stats:   newStats(),
		closing: make(chan struct{}),
	}
	// Outcomes are mutually exclusive slices of [0,1): each has exactly its
	// configured probability.
	var acc float64
	add := func(rate float64, kind faultKind, status int) {
		if rate <= 0 {
			return
		}
		acc += rate
		s.faults = append(s.faults, fault{upper: acc, kind: kind, status: status})
	}
	add(cfg.ResetRate, faultReset, 0)
	add(cfg.HangRate, faultHang, 0)
	add(cfg.RateLimitRate, faultRateLimit, http.StatusTooManyRequests)
	for _, f := range cfg.Failures {
		add(f.Rate, faultStatus, f.Status)
	}
	if cfg.RetryAfter > 0 {
		secs := int64(math.Ceil(cfg.RetryAfter.Seconds()))
		s.retryAfter = strconv.FormatInt(secs, 10)
		s.retryAfterMS = strconv.FormatInt(cfg.RetryAfter.Milliseconds(), 10)
	}
	return s
}

// Handler returns the HTTP handler serving the API, /stats, /stats/reset
// and /healthz.
func (s *Server) Handler() http.Handler { return s }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return s.stats.snapshot(s.cfg.MaxConcurrency, s.cfg.Capacity, s.cfg.CapacityMode)
}

// ResetStats zeroes the counters, forgets the bodies seen so far (so "times"
// directives start over) and restarts the random sequence.
func (s *Server) ResetStats() {
	s.stats.reset()
	s.starts.reset()
	s.seq.Store(0)
}

// Close makes hanging requests return (with a 503 answer) so that a
// graceful shutdown does not wait for HangMax. The handler keeps serving
// other requests; new hangs return immediately.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{\"status\":\"ok\"}\n"))
		return
	case "/stats":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET")
			return
		}
		writeJSON(w, http.StatusOK, s.Stats())
		return
	case "/stats/starts":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		writeJSON(w, http.StatusOK, s.starts.snapshot())
		return
	case "/stats/reset":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		s.ResetStats()
		writeJSON(w, http.StatusOK, s.Stats())
		return
	case "/v1/models":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		if e := s.checkAuth(r); e != nil {
			writeJSON(w, http.StatusUnauthorized, e)
			return
		}
		writeJSON(w, http.StatusOK, s.modelList())
		return
	}
	ep, ok := lookupEndpoint(r.URL.Path)
	if !ok {
		writeJSON(w, http.StatusNotFound, newAPIError(
			fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path), "invalid_request_error", "", "unknown_url"))
		return
	}
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	s.serveAPI(w, r, ep)
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// modelList is GET /v1/models: the configured models, as an inference server lists those it serves.
func (s *Server) modelList() modelList {
	out := modelList{Object: "list", Data: make([]modelObject, 0, len(s.cfg.Models))}
	for _, m := range s.cfg.Models {
		out.Data = append(out.Data, modelObject{ID: m, Object: "model", Created: 1700000000, OwnedBy: "mockllm"})
	}
	return out
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, newAPIError(
		"method not allowed, use "+allow, "invalid_request_error", "", "method_not_allowed"))
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBuffer = 1 << 20

// call carries the per-request state.
type call struct {
	s      *Server
	w      http.ResponseWriter
	r      *http.Request
	ep     endpoint
	ms     *modelState
	sum    [sha256.Size]byte
	n      int64
	id     string
	status int
	left   bool // the call no longer counts as in flight
}

// leave ends the call's part in the in-flight counts, once: when its handler returns, or earlier
// when it closes its connection, which the client sees at once and may follow with its next call.
func (c *call) leave() {
	if c.left {
		return
	}
	c.left = true
	c.s.stats.inflight.dec()
	if c.ms != nil {
		c.ms.inflight.dec()
	}
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, ep endpoint) {
	st := s.stats
	st.total.Add(1)
	st.endpoints[ep].Add(1)
	if cur := st.inflight.inc(); s.cfg.MaxConcurrency > 0 && cur > int64(s.cfg.MaxConcurrency) {
		st.violations.Add(1)
	}
	c := &call{s: s, w: w, r: r, ep: ep}
	defer c.leave()
	if s.cfg.Verbose {
		start := time.Now()
		defer func() {
			s.logger.Info("request", "method", r.Method, "path", r.URL.Path,
				"status", c.status, "call", c.n, "duration", time.Since(start))
		}()
	}

	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			bufPool.Put(buf)
		}
	}()
	if cl := r.ContentLength; cl > 0 && cl <= s.cfg.MaxBodyBytes {
		buf.Grow(int(cl) + 1)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			c.fail(http.StatusRequestEntityTooLarge, newAPIError(
				fmt.Sprintf("request body exceeds %d bytes", s.cfg.MaxBodyBytes), "invalid_request_error", "", "request_too_large"))
			return
		}
		st.canceled.Add(1)
		return
	}
	body := buf.Bytes()
	c.sum = sha256.Sum256(body)
	c.n = st.bodies.observe(c.sum)
	c.id = hex.EncodeToString(c.sum[:12]) + strconv.FormatInt(c.n, 36)
	w.Header().Set("X-Request-Id", "req_"+c.id)
	w.Header().Set("X-Mockllm-Call", strconv.FormatInt(c.n, 10))

	var req apiRequest
	perr := parseRequest(ep, body, &req)
	if req.model != "" {
		ms := st.model(req.model)
		ms.calls.Add(1)
		if s.cfg.RecordStarts {
			s.starts.record(req.model, &ms.inflight)
		} else {
			ms.inflight.inc()
		}
		ms.setAuth(r.Header.Get("Authorization"))
		c.ms = ms
	}
	if aerr := s.checkAuth(r); aerr != nil {
		c.fail(http.StatusUnauthorized, aerr)
		return
	}
	if perr != nil {
		c.fail(http.StatusBadRequest, perr)
		return
	}

	p := s.plan(&req, c.n)
	if s.cfg.Capacity > 0 && p.kind == faultNone {
		limit := int64(s.cfg.Capacity)
		if s.cfg.CapacityMode == CapacityReject {
			if !st.serving.tryInc(limit) {
				st.over.Add(1)
				s.overCapacity(c)
				return
			}
		} else if serving := st.serving.inc(); serving > limit {
			// The slots are shared, so each call takes serving/Capacity
			// times as long.
			st.over.Add(1)
			p.latency = time.Duration(float64(p.latency) * float64(serving) / float64(limit))
		}
		defer st.serving.dec()
	}
	w.Header().Set("X-Mockllm-Latency", p.latency.String())
	if p.latency > 0 && !s.wait(r, p.latency) {
		st.canceled.Add(1)
		return
	}
	switch p.kind {
	case faultReset:
		c.reset()
		return
	case faultHang:
		c.hang()
		return
	case faultStatus, faultRateLimit:
		h := w.Header()
		if p.retryAfter != "" {
			h.Set("Retry-After", p.retryAfter)
		}
		if p.retryAfterMS != "" {
			h.Set("Retry-After-Ms", p.retryAfterMS)
		}
		c.fail(p.status, p.err)
		return
	}
	c.respond(&req, p.content)
}

// overCapacity refuses a call because Capacity calls are being served.
func (s *Server) overCapacity(c *call) {
	if s.retryAfter != "" {
		c.w.Header().Set("Retry-After", s.retryAfter)
		c.w.Header().Set("Retry-After-Ms", s.retryAfterMS)
	}
	status := s.cfg.CapacityStatus
	msg := fmt.Sprintf("mockllm: over capacity (%d calls at once)", s.cfg.Capacity)
	if status == http.StatusTooManyRequests {
		c.fail(status, newAPIError(msg, "requests", "", "rate_limit_exceeded"))
		return
	}
	c.fail(status, newAPIError(msg, "server_error", "", "overloaded"))
}

func (s *Server) checkAuth(r *http.Request) *apiError {
	if s.cfg.NoAuth {
		return nil
	}
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return newAPIError("You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
			"invalid_request_error", "", "invalid_api_key")
	}
	key := strings.TrimSpace(h[len(prefix):])
	if key == "" {
		return newAPIError("You didn't provide an API key.", "invalid_request_error", "", "invalid_api_key")
	}
	if s.cfg.APIKey != "" && key != s.cfg.APIKey {
		return newAPIError("Incorrect API key provided: "+redactKey(key)+".", "invalid_request_error", "", "invalid_api_key")
	}
	return nil
}

func redactKey(k string) string {
	if len(k) <= 8 {
		return "****"
	}
	return k[:3] + "****" + k[len(k)-4:]
}

// plan is what will happen to a request.
type plan struct {
	kind         faultKind
	status       int
	err          *apiError
	retryAfter   string
	retryAfterMS string
	latency      time.Duration
	content      *string
}

func (s *Server) plan(req *apiRequest, n int64) plan {
	rng := newRNG(s.cfg.Seed, s.seq.Add(1))
	uFault := rng.float64()
	uLatency := rng.float64()

	var p plan
	d := req.mock
	if d != nil {
		p.content = d.Content
	}
	if req.hasMockLatency {
		p.latency = req.mockLatency
	} else {
		p.latency = s.drawLatency(uLatency)
	}
	if d != nil && d.faulty() && (d.Times <= 0 || n <= int64(d.Times)) {
		switch {
		case d.Reset:
			p.kind = faultReset
		case d.Hang:
			p.kind = faultHang
		default:
			p.kind = faultStatus
			p.status = d.Status
			p.retryAfter = string(d.RetryAfter)
			p.retryAfterMS = string(d.RetryAfterMS)
			msg := d.Message
			if msg == "" {
				msg = fmt.Sprintf("mockllm: status %d requested by mock directive", d.Status)
			}
			typ, code := defaultErrorKind(d.Status)
			if d.Type != "" {
				typ = d.Type
			}
			if d.Code != "" {
				code = d.Code
			}
			p.err = newAPIError(msg, typ, "", code)
		}
		return p
	}
	for _, f := range s.faults {
		if uFault >= f.upper {
			continue
		}
		p.kind = f.kind
		switch f.kind {
		case faultRateLimit:
			p.status = http.StatusTooManyRequests
			p.retryAfter = s.retryAfter
			p.retryAfterMS = s.retryAfterMS
			p.err = newAPIError("mockllm: rate limit reached (injected)", "requests", "", "rate_limit_exceeded")
		case faultStatus:
			p.status = f.status
			typ, code := defaultErrorKind(f.status)
			p.err = newAPIError(fmt.Sprintf("mockllm: injected failure (status %d)", f.status), typ, "", code)
		}
		break
	}
	return p
}

func defaultErrorKind(status int) (typ, code string) {
	switch {
	case status == http.StatusUnauthorized:
		return "invalid_request_error", "invalid_api_key"
	case status == http.StatusTooManyRequests:
		return "requests", "rate_limit_exceeded"
	case status >= 500:
		return "server_error", "server_error"
	default:
		return "invalid_request_error", "invalid_request"
	}
}

func (s *Server) drawLatency(u float64) time.Duration {
	base := s.cfg.Latency
	switch s.cfg.LatencyDist {
	case DistFixed:
		return base
	case DistExp:
		if base <= 0 {
			return 0
		}
		v := -float64(base) * math.Log(1-u)
		return time.Duration(min(v, 20*float64(base)))
	default:
		j := s.cfg.LatencyJitter
		if j <= 0 {
			return base
		}
		return max(0, base+time.Duration((2*u-1)*float64(j)))
	}
}

// wait sleeps for d unless the client goes away first; it reports whether
// the full delay elapsed.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (c *call) record(status int) {
	c.status = status
	c.s.stats.status.add(status)
	if c.ms != nil {
		c.ms.status.add(status)
	}
}

func (c *call) fail(status int, e *apiError) {
	c.record(status)
	writeJSON(c.w, status, e)
}

func (c *call) reset() {
	c.s.stats.resets.Add(1)
	conn, _, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		// Not hijackable (e.g. HTTP/2): abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	c.leave()
	abortConn(conn)
}

// abortConn closes conn, with an RST rather than a FIN when possible.
func abortConn(conn net.Conn) {
	nc := conn
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if tcp, ok := nc.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = nc.Close()
}

func (c *call) hang() {
	s := c.s
	s.stats.hangs.Add(1)
	t := time.NewTimer(s.cfg.HangMax)
	defer t.Stop()
	select {
	case <-c.r.Context().Done():
		s.stats.canceled.Add(1)
	case <-t.C:
		c.fail(http.StatusGatewayTimeout, newAPIError(
			fmt.Sprintf("mockllm: request hung for %s", s.cfg.HangMax), "server_error", "", "timeout"))
	case <-s.closing:
		c.fail(http.StatusServiceUnavailable, newAPIError(
			"mockllm: server shutting down", "server_error", "", "server_shutting_down"))
	}
}

// apiError is the OpenAI error envelope.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func newAPIError(msg, typ, param, code string) *apiError {
	e := &apiError{Error: apiErrorBody{Message: msg, Type: typ}}
	if param != "" {
		e.Error.Param = &param
	}
	if code != "" {
		e.Error.Code = &code
	}
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(newAPIError("mockllm: encoding response: "+err.Error(), "server_error", "", "server_error"))
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
