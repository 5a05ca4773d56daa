package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Codes of Outcome.ErrCode, for answers that are not an HTTP status.
const (
	// ErrCodeTimeout: the upstream's per-request timeout passed before the whole answer came.
	ErrCodeTimeout = "request_timeout"
	// ErrCodeUnreachable: no answer, because the connection was refused, reset or closed, the name
	// did not resolve, TLS failed, or the server did not speak HTTP.
	ErrCodeUnreachable = "upstream_unreachable"
	// ErrCodeResponseTooLarge: the answer's body was larger than MaxResponseBytes.
	ErrCodeResponseTooLarge = "upstream_response_too_large"
)

// MaxResponseBytes bounds the body of an upstream's answer that Send reads.
const MaxResponseBytes = 64 << 20

var (
	// ErrTimeout is wrapped by Outcome.Err when the per-request timeout passed.
	ErrTimeout = errors.New("request timed out")
	// ErrResponseTooLarge is wrapped by Outcome.Err when the answer's body was too large.
	ErrResponseTooLarge = errors.New("response body too large")
)

// Version is sent upstream in "User-Agent: volley/<Version>". It defaults to the version Go
// stamped into the binary; -ldflags "-X github.com/volleyhq/volley/internal/upstream.Version=..."
// sets it. NewClient reads it.
var Version = buildVersion()

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Outcome is what became of one request sent upstream.
type Outcome struct {
	// StatusCode is the upstream's HTTP status; 0 when no usable answer came (see ErrCode).
	StatusCode int
	// Body is the upstream's answer, whatever its status. The caller owns it.
	Body []byte
	// Header holds the answer's headers (also set for ErrCodeResponseTooLarge).
	Header http.Header
	// RequestID is the upstream's x-request-id, if it sent one.
	RequestID string
	// Err says why no usable answer came, when StatusCode is 0.
	Err error
	// ErrCode classifies Err: ErrCodeTimeout, ErrCodeUnreachable or ErrCodeResponseTooLarge. It
	// is empty when the request was abandoned because the caller's context ended (batch
	// cancelled or expired, shutdown): the caller knows which, and what to record.
	ErrCode string
	// Retryable is set for answers another attempt may improve: timeouts, connection failures,
	// and the statuses 408, 409, 425, 429 and 5xx. Other 4xx (and 3xx) answers are final.
	Retryable bool
	// RetryAfter is the server's hint (retry-after-ms, else Retry-After in seconds or as an HTTP
	// date) on a non-2xx answer; 0 when absent. At most MaxRetryAfter.
	RetryAfter time.Duration
	// Duration is the time from sending to the end of the answer or the failure.
	Duration time.Duration
}

// OK reports a 2xx answer.
func (o Outcome) OK() bool { return o.StatusCode >= 200 && o.StatusCode <= 299 }

// retryableStatus reports the statuses worth another attempt.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return code >= 500 && code <= 599
}

// Client sends requests to the configured upstreams. It is safe for concurrent use.
type Client struct {
	logger    *slog.Logger
	upstreams map[string]*upstreamClient
	maxBody   int64
}

// upstreamClient holds what every request to one upstream shares.
type upstreamClient struct {
	name      string
	base      string
	timeout   time.Duration
	transport *http.Transport
	// header is the same map for every request. The transport never modifies a request's
	// headers, and nothing else sees them, so it is never written after NewClient.
	header http.Header
	// urls maps the batch endpoints to their full URL, so that Send builds no string.
	urls map[string]string
}

// knownEndpoints are the endpoints whose URL is computed once per upstream.
var knownEndpoints = []string{
	"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations",
}

// Connection pool sizing; see connLimits.
const (
	minConns         = 16
	catchAllIdleConn = 1024
)

// NewClient returns a client with one http.Transport per upstream of cfg, each keeping
// connections alive between requests. An upstream's connections are capped at its MaxConns when
// set. Otherwise they are capped at the sum of the concurrency limits routed to it (at least 16):
// each replica may run every slot of a model at once. An upstream serving the catch-all route has
// no such cap, since any number of models may share that route; its idle pool still keeps at
// least 1024 connections, so that bursts do not turn into connection churn (idle connections
// close after 90 seconds). https upstreams may use HTTP/2. Proxies are taken from the
// environment (HTTPS_PROXY, NO_PROXY). A nil logger discards logs.
func NewClient(cfg *Config, logger *slog.Logger) *Client {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{logger: logger, upstreams: make(map[string]*upstreamClient), maxBody: MaxResponseBytes}
	if cfg == nil {
		return c
	}
	userAgent := "volley/" + Version
	for name, u := range cfg.Upstreams {
		maxConns, maxIdle := connLimits(cfg, u)
		base := strings.TrimSuffix(u.BaseURL, "/")
		uc := &upstreamClient{
			name:      name,
			base:      base,
			timeout:   u.Timeout,
			transport: newTransport(base, maxConns, maxIdle),
			header: http.Header{
				"Content-Type": {"application/json"},
				"Accept":       {"application/json"},
				"User-Agent":   {userAgent},
			},
			urls: make(map[string]string, len(knownEndpoints)),
		}
		if uc.timeout <= 0 {
			uc.timeout = DefaultTimeout
		}
		if u.APIKey != "" {
			uc.header["Authorization"] = []string{"Bearer " + u.APIKey}
		}
		for k, v := range u.Headers {
			uc.header[http.CanonicalHeaderKey(k)] = []string{v}
		}
		for _, ep := range knownEndpoints {
			uc.urls[ep] = base + strings.TrimPrefix(ep, "/v1")
		}
		c.upstreams[name] = uc
		logger.Debug("upstream client ready", "upstream", name, "url", base, "timeout", uc.timeout,
			"max_conns", maxConns, "max_idle_conns", maxIdle)
	}
	return c
}

// connLimits returns the transport's MaxConnsPerHost (0: no cap) and MaxIdleConnsPerHost for u.
func connLimits(cfg *Config, u *Upstream) (maxConns, maxIdle int) {
	if u.MaxConns > 0 {
		return u.MaxConns, u.MaxConns
	}
	sum, catchAll := 0, false
	for _, r := range cfg.Routes {
		if r.Upstream == nil || r.Upstream.Name != u.Name {
			continue
		}
		sum += r.Concurrency
		catchAll = catchAll || r.Model == CatchAll
	}
	sum = max(sum, minConns)
	if catchAll {
		return 0, max(sum, catchAllIdleConn)
	}
	return sum, sum
}

func newTransport(base string, maxConns, maxIdle int) *http.Transport {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   strings.HasPrefix(base, "https://"),
		MaxIdleConns:        0, // no overall limit: the transport serves one host
		MaxIdleConnsPerHost: maxIdle,
		MaxConnsPerHost:     maxConns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
}

// CloseIdle closes the connections not in use.
func (c *Client) CloseIdle() {
	for _, uc := range c.upstreams {
		uc.transport.CloseIdleConnections()
	}
}

// Send posts body, unchanged, to endpoint (such as "/v1/chat/completions") on route's upstream,
// with the upstream's key and headers and nothing from the caller, and reads the whole answer
// within the route's timeout (the upstream's unless the model sets its own). ctx ending abandons the request (Outcome.ErrCode is then
// empty). Send never retries.
func (c *Client) Send(ctx context.Context, route Route, endpoint string, body []byte) Outcome {
	start := time.Now()
	var uc *upstreamClient
	if route.Upstream != nil {
		uc = c.upstreams[route.Upstream.Name]
	}
	if uc == nil {
		return Outcome{
			Err:     fmt.Errorf("no upstream client for the route of model %q (upstream %v)", route.Model, route.Upstream),
			ErrCode: ErrCodeUnreachable,
		}
	}
	timeout := uc.timeout
	if route.Timeout > 0 {
		timeout = route.Timeout // the model's own
	}
	if ctx.Err() != nil {
		return uc.failed(ctx, ctx, ctx.Err(), start, timeout)
	}
	rctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrTimeout)
	defer cancel()
	target, ok := uc.urls[endpoint]
	if !ok {
		target = uc.base + strings.TrimPrefix(endpoint, "/v1")
	}
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return Outcome{Err: fmt.Errorf("upstream %s: %w", uc.name, err), ErrCode: ErrCodeUnreachable, Duration: time.Since(start)}
	}
	req.Header = headersFor(ctx, uc.header)
	resp, err := uc.transport.RoundTrip(req)
	if err != nil {
		return uc.failed(ctx, rctx, err, start, timeout)
	}
	o := Outcome{StatusCode: resp.StatusCode, Header: resp.Header}
	o.Body, err = readBody(resp, c.maxBody)
	resp.Body.Close()
	if err != nil {
		if errors.Is(err, ErrResponseTooLarge) {
			return Outcome{
				Header:   resp.Header,
				Err:      fmt.Errorf("upstream %s answered %d with a body over %d bytes: %w", uc.name, resp.StatusCode, c.maxBody, err),
				ErrCode:  ErrCodeResponseTooLarge,
				Duration: time.Since(start),
			}
		}
		return uc.failed(ctx, rctx, err, start, timeout)
	}
	if v := resp.Header["X-Request-Id"]; len(v) > 0 {
		o.RequestID = v[0]
	}
	if !o.OK() {
		o.Retryable = retryableStatus(o.StatusCode)
		o.RetryAfter = parseRetryAfter(resp.Header, time.Now())
	}
	o.Duration = time.Since(start)
	return o
}

// failed classifies a request that got no usable answer. parent is the caller's context, rctx
// the request's (parent with the timeout).
func (uc *upstreamClient) failed(parent, rctx context.Context, err error, start time.Time, timeout time.Duration) Outcome {
	o := Outcome{Duration: time.Since(start)}
	switch {
	case parent.Err() != nil:
		o.Err = fmt.Errorf("upstream %s: request abandoned: %w", uc.name, context.Cause(parent))
	case context.Cause(rctx) == ErrTimeout:
		o.Err = fmt.Errorf("upstream %s: %w after %s", uc.name, ErrTimeout, timeout)
		o.ErrCode, o.Retryable = ErrCodeTimeout, true
	default:
		o.Err = fmt.Errorf("upstream %s: %w", uc.name, err)
		o.ErrCode, o.Retryable = ErrCodeUnreachable, true
	}
	return o
}

// Buffers for answers of unknown length; those grown past maxPooledBuffer are left to the GC.
const maxPooledBuffer = 1 << 20

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

var errBodyTooLong = errors.New("response body longer than its Content-Length")

// readBody reads the whole body, up to limit bytes, into a slice the caller owns.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 {
		if n > limit {
			return nil, ErrResponseTooLarge
		}
		// One byte more than announced, so that the read ends on EOF and the connection
		// goes back to the pool at once.
		b := make([]byte, n+1)
		got, err := io.ReadFull(resp.Body, b)
		switch {
		case int64(got) == n && (err == io.ErrUnexpectedEOF || err == io.EOF):
			return b[:n:n], nil
		case err == nil:
			return nil, errBodyTooLong
		}
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	var out []byte
	switch {
	case err != nil:
	case int64(buf.Len()) > limit:
		err = ErrResponseTooLarge
	default:
		out = make([]byte, buf.Len())
		copy(out, buf.Bytes())
	}
	if buf.Cap() <= maxPooledBuffer {
		bufPool.Put(buf)
	}
	return out, err
}

// maxModelListBytes bounds the answer of an upstream's GET /v1/models.
const maxModelListBytes = 4 << 20

// Models asks the upstream named upstream which models it serves (GET /v1/models, the OpenAI list
// every OpenAI-compatible server answers), within timeout.
func (c *Client) Models(ctx context.Context, upstream string, timeout time.Duration) ([]string, error) {
	uc := c.upstreams[upstream]
	if uc == nil {
		return nil, fmt.Errorf("no upstream client for upstream %q", upstream)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uc.base+"/models", nil)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", uc.name, err)
	}
	req.Header = uc.header.Clone()
	req.Header.Del("Content-Type")
	resp, err := uc.transport.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: list models: %w", uc.name, err)
	}
	defer resp.Body.Close()
	body, err := readBody(resp, maxModelListBytes)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: list models: %w", uc.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("upstream %s: list models answered %d", uc.name, resp.StatusCode)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("upstream %s: list models: %w", uc.name, err)
	}
	models := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID != "" {
			models = append(models, m.ID)
		}
	}
	return models, nil
}
