package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// userAgent identifies Volley's deliveries to receivers.
const userAgent = "Volley-Webhooks/1"

// maxErrorBody is how much of a refusing receiver's answer is kept as the delivery's last error.
const maxErrorBody = 256

// Sender posts signed events. It never follows redirects and, unless private addresses are
// allowed, never connects to one, whatever a host name resolves to at the time.
type Sender struct {
	client  *http.Client
	timeout time.Duration
	hosts   []string
}

// NewSender returns a sender whose every delivery gives up after timeout. When hosts is not empty
// it sends only to URLs whose host is one of them.
func NewSender(timeout time.Duration, allowPrivate bool, hosts []string) *Sender {
	dialer := &net.Dialer{Timeout: min(timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = publicOnly
	}
	transport := &http.Transport{
		Proxy:               nil, // a proxy would hide the address actually reached
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: min(timeout, 10*time.Second),
	}
	return &Sender{timeout: timeout, hosts: hosts, client: &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Message is one signed delivery of an event.
type Message struct {
	URL     string
	ID      string   // the event id, sent as webhook-id
	Body    []byte   // the event
	Secrets []string // each signs; the receiver accepts any
}

// Outcome is what one attempt came to. Status is 0 when no answer arrived.
type Outcome struct {
	Status int
	Err    string // empty when the receiver answered 2xx
}

// OK reports whether the receiver took the event.
func (o Outcome) OK() bool { return o.Err == "" }

// Send makes one attempt, signed at the time it is sent.
func (s *Sender) Send(ctx context.Context, m Message) Outcome {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ts := time.Now().Unix()
	sig, err := Sign(m.Secrets, m.ID, ts, m.Body)
	if err != nil {
		return Outcome{Err: "cannot sign: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return Outcome{Err: "bad URL: " + err.Error()}
	}
	if !HostAllowed(req.URL.Hostname(), s.hosts) {
		return Outcome{Err: "refused to send to " + req.URL.Hostname() + ": it is not in VOLLEY_WEBHOOK_ALLOW_HOSTS"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("webhook-id", m.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	res, err := s.client.Do(req)
	if err != nil {
		return Outcome{Err: describe(ctx, err, s.timeout)}
	}
	defer res.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // lets the connection be reused
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return Outcome{Status: res.StatusCode}
	}
	msg := fmt.Sprintf("the endpoint answered %d", res.StatusCode)
	if loc := res.Header.Get("Location"); res.StatusCode >= 300 && res.StatusCode < 400 && loc != "" {
		msg += " (redirects are not followed) to " + clip(loc)
	} else if body := strings.TrimSpace(clip(string(head))); body != "" {
		msg += ": " + body
	}
	return Outcome{Status: res.StatusCode, Err: msg}
}

func describe(ctx context.Context, err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, errPrivate):
		var op *net.OpError
		if errors.As(err, &op) && op.Addr != nil {
			return "refused to connect to " + op.Addr.String() + ": it is not a public address (VOLLEY_WEBHOOK_ALLOW_PRIVATE is off)"
		}
		return "refused to connect: " + err.Error()
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(ctx.Err(), context.Canceled):
		return "the delivery was interrupted"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "cannot resolve " + dnsErr.Name
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return "cannot connect: " + rootCause(err)
	}
	return "delivery failed: " + rootCause(err)
}

func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// clip keeps a receiver's text short and valid UTF-8.
func clip(s string) string {
	if len(s) > maxErrorBody {
		s = s[:maxErrorBody]
	}
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r == utf8.RuneError {
			return -1
		}
		return r
	}, s), "")
}
