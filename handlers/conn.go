package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

// Listener wraps ln for Volley's http.Server (set its ConnContext to ConnContext as well). Its
// connections do two things net/http offers no hook for:
//
//   - The answers net/http writes on its own, before any handler runs (431 for headers over
//     maxHeaderBytes, 400 for a request line or header it cannot parse, 501 for an unknown
//     Transfer-Encoding, 417 for an Expect other than 100-continue), are rewritten into the OpenAI
//     error envelope. They are recognised as answers without an x-request-id, which every answer of
//     Volley's handlers carries, so no list of cases is kept here.
//   - A request carrying both Content-Length and Transfer-Encoding is noticed on the wire (net/http
//     drops the Content-Length before a handler sees it), so that the connection is closed after it
//     (RFC 9112 §6.1): a second request hidden in its body is never answered.
func Listener(ln net.Listener, maxHeaderBytes int) net.Listener {
	return &listener{Listener: ln, maxHeaderBytes: maxHeaderBytes}
}

type listener struct {
	net.Listener
	maxHeaderBytes int
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, maxHeaderBytes: l.maxHeaderBytes, framer: framer{limit: max(l.maxHeaderBytes, 1<<20) + 4096}}, nil
}

type connCtxKey struct{}

// ConnContext is the http.Server's ConnContext for connections of Listener.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if vc, ok := c.(*conn); ok {
		return context.WithValue(ctx, connCtxKey{}, vc)
	}
	return ctx
}

// CloseAmbiguous closes the connection after a request that carried both Content-Length and
// Transfer-Encoding (see Listener).
func CloseAmbiguous(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ambiguousLength(r) {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// ambiguousLength reports whether the request's connection carried a request with both length
// headers (at or before this one).
func ambiguousLength(r *http.Request) bool {
	c, _ := r.Context().Value(connCtxKey{}).(*conn)
	return c != nil && c.ambiguous.Load()
}

type conn struct {
	net.Conn
	maxHeaderBytes int
	framer         framer // read by the connection's serving goroutine only
	ambiguous      atomic.Bool
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.framer.done {
		if c.framer.feed(p[:n]) {
			c.ambiguous.Store(true)
		}
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	if out, ok := rewriteOwnAnswer(p, c.maxHeaderBytes); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// rewriteOwnAnswer turns an error answer net/http wrote by itself (one write holding the whole
// answer, without the x-request-id of Volley's handlers) into the error envelope.
func rewriteOwnAnswer(p []byte, maxHeaderBytes int) ([]byte, bool) {
	if !bytes.HasPrefix(p, []byte("HTTP/1.")) || len(p) < len("HTTP/1.1 400 ") {
		return nil, false
	}
	status, err := strconv.Atoi(string(p[9:12]))
	if err != nil || status < 400 || p[12] != ' ' {
		return nil, false
	}
	end := bytes.Index(p, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false
	}
	head := p[:end+2]
	if bytes.Contains(bytes.ToLower(head), []byte("\r\nx-request-id:")) {
		return nil, false
	}
	text := string(p[end+4:])
	e := &APIError{Status: status, Type: typeInvalidRequest}
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		e.Code = "request_headers_too_large"
		e.Message = fmt.Sprintf("The request line and headers are larger than the %d bytes the server accepts.", maxHeaderBytes)
	case http.StatusNotImplemented:
		e.Code = "unsupported_transfer_encoding"
		e.Message = "The request's Transfer-Encoding is not supported: send the body with a Content-Length, or with Transfer-Encoding: chunked alone."
	case http.StatusExpectationFailed:
		e.Code = "expectation_failed"
		e.Message = "The request's Expect header is not supported: the only expectation the server meets is 100-continue."
	case http.StatusBadRequest:
		e.Code = "invalid_request"
		detail := strings.TrimPrefix(text, "400 Bad Request")
		detail = strings.TrimSpace(strings.TrimPrefix(detail, ":"))
		if detail == "" {
			detail = "its request line or a header is malformed (a bad %-escape in the path, a bad Content-Length, a control character in a header, a bad Host)"
		}
		e.Message = fmt.Sprintf("The request could not be parsed: %s.", strings.TrimSuffix(detail, "."))
	default:
		if status >= 500 {
			e.Type = typeServer
		}
		e.Message = strings.TrimSpace(text)
		if e.Message == "" {
			e.Message = http.StatusText(status)
		}
	}
	body, err := json.Marshal(e.envelope())
	if err != nil {
		return nil, false
	}
	body = append(body, '\n')
	out := fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		status, http.StatusText(status), len(body))
	return append(out, body...), true
}

// framer follows the requests on a connection as they arrive, just far enough to find each one's
// header block: it skips bodies by their Content-Length or chunk sizes. It reports a header block with
// both Content-Length and Transfer-Encoding; after that, or on anything it cannot follow, it stops
// (net/http refuses what is malformed, and the connection closes after an ambiguous request).
type framer struct {
	limit int
	done  bool
	state int
	head  []byte
	// lineStart is where the header line being read starts in head.
	lineStart int
	left      int64 // bytes of body or chunk data still to skip
}

const (
	frameHead = iota
	frameBody
	frameChunkSize
	frameChunkData
	frameChunkEnd
	frameTrailer
)

// feed follows b and reports whether a request with both length headers was seen.
func (f *framer) feed(b []byte) bool {
	for len(b) > 0 && !f.done {
		switch f.state {
		case frameHead:
			if len(f.head) == 0 {
				b = bytes.TrimLeft(b, "\r\n")
				if len(b) == 0 {
					return false
				}
			}
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				f.head = append(f.head, b...)
				b = nil
			} else {
				f.head = append(f.head, b[:i+1]...)
				b = b[i+1:]
				if len(bytes.TrimRight(f.head[f.lineStart:], "\r\n")) == 0 {
					if f.endHead() {
						f.done = true
						return true
					}
				} else {
					f.lineStart = len(f.head)
				}
			}
			if len(f.head) > f.limit {
				f.done = true
			}
		case frameBody, frameChunkData:
			n := int64(len(b))
			if n > f.left {
				n = f.left
			}
			b, f.left = b[n:], f.left-n
			if f.left == 0 {
				if f.state == frameBody {
					f.state = frameHead
				} else {
					f.state = frameChunkEnd
				}
			}
		case frameChunkSize, frameChunkEnd, frameTrailer:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				f.head = append(f.head, b...)
				b = nil
				if len(f.head) > 4096 {
					f.done = true
				}
				continue
			}
			line := string(bytes.TrimRight(append(f.head, b[:i]...), "\r"))
			f.head, b = f.head[:0], b[i+1:]
			switch f.state {
			case frameChunkEnd:
				f.state = frameChunkSize
			case frameTrailer:
				if line == "" {
					f.state = frameHead
				}
			case frameChunkSize:
				size, _, _ := strings.Cut(line, ";")
				n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
				switch {
				case err != nil || n < 0:
					f.done = true
				case n == 0:
					f.state = frameTrailer
				default:
					f.state, f.left = frameChunkData, n
				}
			}
		}
	}
	return false
}

// endHead reads the finished header block and reports both length headers; otherwise it sets up
// the skipping of the body.
func (f *framer) endHead() bool {
	var length int64 = -1
	var hasTE, chunked bool
	lines := strings.Split(string(f.head), "\n")
	f.head, f.lineStart = f.head[:0], 0
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(strings.TrimRight(l, "\r"), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				f.done = true
				return length >= 0 && hasTE
			}
			length = n
		case "transfer-encoding":
			hasTE = true
			codings := strings.Split(value, ",")
			chunked = strings.EqualFold(strings.TrimSpace(codings[len(codings)-1]), "chunked")
		}
	}
	if length >= 0 && hasTE {
		return true
	}
	switch {
	case chunked:
		f.state = frameChunkSize
	case hasTE:
		f.done = true // net/http answers 501 and closes
	case length > 0:
		f.state, f.left = frameBody, length
	default:
		f.state = frameHead
	}
	return false
}
