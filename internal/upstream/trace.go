package upstream

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// Headers that identify a call to the upstream, so that its logs can be joined to Volley's.
const (
	HeaderTraceparent = "traceparent"
	HeaderRequestID   = "X-Volley-Request-Id"
	HeaderBatchID     = "X-Volley-Batch-Id"
	HeaderCustomID    = "X-Volley-Custom-Id"
	HeaderResponseID  = "X-Volley-Response-Id"
)

// Call identifies the request a call is made for.
type Call struct {
	// RequestID is Volley's id of the request: a batch line's result id (batch_req_…) or a
	// response's id.
	RequestID string
	BatchID   string
	CustomID  string
	// ResponseID is set for a background or flex response.
	ResponseID string
	// Attempt numbers the claims of the request; it tells the spans of one trace apart.
	Attempt int32
}

type callKey struct{}

// WithCall attaches c to ctx; Send then sends its headers upstream.
func WithCall(ctx context.Context, c Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) (Call, bool) {
	c, ok := ctx.Value(callKey{}).(Call)
	return c, ok
}

// TraceID is the W3C trace id of a request: the same for every attempt, derived from its id.
func TraceID(requestID string) string {
	sum := md5.Sum([]byte("volley-trace:" + requestID))
	if sum == ([16]byte{}) {
		sum[15] = 1 // an all-zero trace id is invalid
	}
	return hex.EncodeToString(sum[:])
}

// headersFor returns base with the call's identifying headers added, or base itself when ctx names
// no call (base is shared and never modified).
func headersFor(ctx context.Context, base http.Header) http.Header {
	c, ok := callFrom(ctx)
	if !ok || c.RequestID == "" {
		return base
	}
	h := base.Clone()
	if h == nil {
		h = make(http.Header, 5)
	}
	var span [8]byte
	_, _ = rand.Read(span[:])
	if span == ([8]byte{}) {
		span[7] = 1
	}
	h.Set(HeaderTraceparent, "00-"+TraceID(c.RequestID)+"-"+hex.EncodeToString(span[:])+"-01")
	h.Set(HeaderRequestID, c.RequestID)
	if c.BatchID != "" {
		h.Set(HeaderBatchID, c.BatchID)
	}
	if c.CustomID != "" {
		h.Set(HeaderCustomID, headerSafe(c.CustomID))
	}
	if c.ResponseID != "" {
		h.Set(HeaderResponseID, c.ResponseID)
	}
	return h
}

// headerSafe makes s fit a header value: bytes a header may not carry (controls, and anything past
// ASCII, which custom_ids may hold) are percent-encoded, as is '%' itself, so the value decodes back
// exactly.
func headerSafe(s string) string {
	safe := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '%' {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	out := make([]byte, 0, len(s)*3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '%' {
			out = append(out, '%', hexDigits[c>>4], hexDigits[c&15])
			continue
		}
		out = append(out, c)
	}
	return string(out)
}
