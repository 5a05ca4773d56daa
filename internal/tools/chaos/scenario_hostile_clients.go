package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// hostileIdleTimeout is the hostile replica's VOLLEY_BODY_IDLE_TIMEOUT, short so that stalled
// bodies are answered within the scenario.
const hostileIdleTimeout = 2 * time.Second

// stallHead is the start of an upload that sends its file part's header and one line, and declares
// far more: the rest never comes.
func stallHead(host, key string) []byte {
	head, _, ct := multipartBody("stall.jsonl")
	line := `{"custom_id":"stall","method":"POST","url":"/v1/chat/completions","body":{"model":"` + hostileModel + `"}}` + "\n"
	req := fmt.Sprintf("POST /v1/files HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: 1000000\r\n\r\n", host, key, ct)
	return append(append([]byte(req), head...), line...)
}

// openStalled opens a connection that sends start and then nothing.
func openStalled(ctx context.Context, addr string, start []byte) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(start); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// beforeAuth: a body is never read before the key is checked, nor for an unknown route or method.
func (hs *hostile) beforeAuth(ctx context.Context) {
	for _, c := range []struct {
		method, path, key string
		status            int
	}{
		{"POST", "/v1/batches", "", 401}, {"POST", "/v1/responses", "", 401}, {"POST", "/v1/files", "", 401},
		{"POST", "/v1/batches", "sk-volley-unknown", 401},
		{"POST", "/v1/no-such-route", hs.key, 404}, {"PUT", "/v1/batches", hs.key, 405},
	} {
		who := "without a key"
		switch {
		case c.key == hs.key:
			who = "with a key"
		case c.key != "":
			who = "with an unknown key"
		}
		hs.check(ctx, fmt.Sprintf("%s %s %s declaring 1 MiB, sending 17 bytes: %d at once", c.method, c.path, who, c.status), func() (string, error) {
			req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", c.method, c.path, hs.addr(), 1<<20)
			if c.key != "" {
				req += "Authorization: Bearer " + c.key + "\r\n"
			}
			a := rawExchange(ctx, hs.addr(), []byte(req+"\r\n"+`{"input_file_id":`), 10*time.Second)
			d, err := expect(a, c.status, "")
			if err == nil && a.Took > normalCallBound {
				err = fmt.Errorf("answered only after %s", fmtDur(a.Took))
			}
			return d, err
		})
	}
}

// stalledBodies: a body that stops is answered 408 after the idle timeout, and a stalled upload
// holds no ingest turn.
func (hs *hostile) stalledBodies(ctx context.Context) {
	bound := hostileIdleTimeout + 3*time.Second
	hs.check(ctx, fmt.Sprintf("JSON body that stops: 408 request_timeout after VOLLEY_BODY_IDLE_TIMEOUT (%s)", hostileIdleTimeout), func() (string, error) {
		req := fmt.Sprintf("POST /v1/batches HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"in", hs.addr(), hs.key)
		a := rawExchange(ctx, hs.addr(), []byte(req), bound+5*time.Second)
		d, err := expect(a, http.StatusRequestTimeout, "request_timeout")
		if err == nil && (a.Took < hostileIdleTimeout/2 || a.Took > bound) {
			err = fmt.Errorf("answered after %s, want about %s", fmtDur(a.Took), hostileIdleTimeout)
		}
		return d, err
	})
	hs.check(ctx, "upload that stops after one line: 408 request_timeout, nothing stored", func() (string, error) {
		a := rawExchange(ctx, hs.addr(), stallHead(hs.addr(), hs.key), bound+5*time.Second)
		d, err := expect(a, http.StatusRequestTimeout, "request_timeout")
		if err == nil && a.Took > bound {
			err = fmt.Errorf("answered after %s", fmtDur(a.Took))
		}
		return d, err
	})
	hs.check(ctx, "two stalled uploads (VOLLEY_MAX_CONCURRENT_UPLOADS=1): another owner's 3-line upload is served at once", func() (string, error) {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := 0; i < 2; i++ {
			c, err := openStalled(ctx, hs.addr(), stallHead(hs.addr(), hs.key))
			if err != nil {
				return "", err
			}
			conns = append(conns, c)
		}
		head, tail, ct := multipartBody("other.jsonl")
		content := MakeInput("other", 3, []Model{{Name: hostileModel, Limit: 4}}).Content
		body := bytes.Join([][]byte{head, content, tail}, nil)
		a := do(ctx, hs.client, http.MethodPost, hs.r.BaseURL()+"/files", hs.otherKey, bytes.NewReader(body), http.Header{"Content-Type": {ct}}, 30*time.Second)
		if a.Err != nil || a.Status != http.StatusOK {
			return "", fmt.Errorf("the other owner's upload: %s", a)
		}
		if a.Took > normalCallBound {
			return "", fmt.Errorf("the other owner's upload waited %s", fmtDur(a.Took))
		}
		return fmt.Sprintf("stored in %s while both stalled uploads were open", fmtDur(a.Took)), nil
	})
}

// cutOff: an upload whose client cuts its body off is never answered with a success.
func (hs *hostile) cutOff(ctx context.Context) {
	hs.check(ctx, "uploads cut off mid-body (10 times): never a 2xx; a reset or a 400 envelope", func() (string, error) {
		head, tail, ct := multipartBody("cut.jsonl")
		body := bytes.Join([][]byte{head, MakeInput("cut", 500, []Model{{Name: hostileModel, Limit: 4}}).Content, tail}, nil)
		resets, envelopes := 0, 0
		var slowest time.Duration
		for i := 0; i < 10; i++ {
			start := time.Now()
			conn, err := net.DialTimeout("tcp", hs.addr(), 5*time.Second)
			if err != nil {
				return "", err
			}
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "POST /v1/files HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", hs.addr(), hs.key, ct, len(body))
			_, _ = conn.Write(body[:len(body)/2])
			_ = conn.(*net.TCPConn).CloseWrite()
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				resets++
			} else {
				b, _ := io.ReadAll(res.Body)
				a := Answer{Status: res.StatusCode, ContentType: res.Header.Get("Content-Type"), Body: b}
				if _, err := expect(a, http.StatusBadRequest, "invalid_multipart"); err != nil {
					conn.Close()
					return "", fmt.Errorf("cut-off upload %d: %v", i+1, err)
				}
				envelopes++
			}
			slowest = max(slowest, time.Since(start))
			conn.Close()
		}
		return fmt.Sprintf("%d resets, %d × 400 invalid_multipart; slowest %s", resets, envelopes, fmtDur(slowest)), nil
	})
}

// ownAnswers: what net/http answers before any handler runs is the envelope too.
func (hs *hostile) ownAnswers(ctx context.Context) {
	host := hs.addr()
	for _, c := range []struct {
		name, req string
		status    int
		code      string
	}{
		{"headers over 64 KiB", "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nX-Big: " + strings.Repeat("h", 70<<10) + "\r\n\r\n", 431, "request_headers_too_large"},
		{"a bad %-escape in the path", "GET /v1/files/%zz HTTP/1.1\r\nHost: " + host + "\r\n\r\n", 400, "invalid_request"},
		{"a negative Content-Length", "POST /v1/batches HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: -1\r\n\r\n", 400, "invalid_request"},
		{"a NUL in a header", "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nX-Nul: a\x00b\r\n\r\n", 400, "invalid_request"},
		{"no Host header", "GET /healthz HTTP/1.1\r\n\r\n", 400, "invalid_request"},
		{"a malformed request line", "BREW\r\n\r\n", 400, "invalid_request"},
		{"an unknown Transfer-Encoding", "POST /v1/batches HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "unsupported_transfer_encoding"},
		{"an unknown expectation", "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nExpect: 200-ok\r\n\r\n", 417, "expectation_failed"},
	} {
		hs.check(ctx, fmt.Sprintf("request with %s: %d envelope", c.name, c.status), func() (string, error) {
			return expect(rawExchange(ctx, host, []byte(c.req), 10*time.Second), c.status, c.code)
		})
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		hs.check(ctx, "HEAD "+path+": 200 without a body", func() (string, error) {
			a := do(ctx, hs.client, http.MethodHead, hs.r.Root()+path, "", nil, nil, 5*time.Second)
			if a.Err != nil || a.Status != http.StatusOK || len(a.Body) != 0 {
				return "", fmt.Errorf("%s", a)
			}
			return fmt.Sprintf("200 in %s", fmtDur(a.Took)), nil
		})
	}
}

// bothLengths: after a request with Content-Length and Transfer-Encoding the connection closes, so a
// request hidden after its chunked body is never answered.
func (hs *hostile) bothLengths(ctx context.Context) {
	hs.check(ctx, "request with both Content-Length and Transfer-Encoding: answered, then the connection closes; the hidden request is not answered", func() (string, error) {
		conn, err := net.DialTimeout("tcp", hs.addr(), 5*time.Second)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		hidden := "DELETE /v1/files/" + hs.fileID + " HTTP/1.1\r\nHost: " + hs.addr() + "\r\nAuthorization: Bearer " + hs.key + "\r\n\r\n"
		fmt.Fprintf(conn, "POST /v1/batches HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n%s",
			hs.addr(), hs.key, hidden)
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return "", fmt.Errorf("first answer: %w", err)
		}
		b, _ := io.ReadAll(res.Body)
		d, err := expect(Answer{Status: res.StatusCode, ContentType: res.Header.Get("Content-Type"), Body: b, Took: time.Since(start)}, http.StatusBadRequest, "")
		if err != nil {
			return "", err
		}
		if !res.Close {
			return "", fmt.Errorf("the answer does not close the connection")
		}
		if second, err := http.ReadResponse(br, nil); err == nil {
			return "", fmt.Errorf("the hidden request was answered: %d", second.StatusCode)
		}
		a := do(ctx, hs.client, http.MethodGet, hs.r.BaseURL()+"/files/"+hs.fileID, hs.key, nil, nil, 5*time.Second)
		if a.Status != http.StatusOK {
			return "", fmt.Errorf("the file the hidden request deletes: %s", a)
		}
		return d + "; connection closed; the hidden DELETE never ran", nil
	})
}

// smallItems: values a client could not get back exactly, and long ids, and broken query escapes.
func (hs *hostile) smallItems(ctx context.Context) {
	hs.check(ctx, `upload line with custom_id "\ud800" (a lone surrogate): 400 invalid_custom_id`, func() (string, error) {
		head, tail, ct := multipartBody("s.jsonl")
		line := `{"custom_id":"\ud800","method":"POST","url":"/v1/chat/completions","body":{"model":"` + hostileModel + `"}}` + "\n"
		body := bytes.Join([][]byte{head, []byte(line), tail}, nil)
		return expect(do(ctx, hs.client, http.MethodPost, hs.r.BaseURL()+"/files", hs.key, bytes.NewReader(body), http.Header{"Content-Type": {ct}}, 10*time.Second), http.StatusBadRequest, "invalid_custom_id")
	})
	for _, v := range []string{"null", "1", "{}"} {
		hs.check(ctx, fmt.Sprintf(`POST /v1/batches with metadata {"k": %s}: 400 invalid_value`, v), func() (string, error) {
			body := `{"input_file_id":"` + hs.fileID + `","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"k":` + v + `}}`
			return expect(do(ctx, hs.client, http.MethodPost, hs.r.BaseURL()+"/batches", hs.key, strings.NewReader(body),
				http.Header{"Content-Type": {"application/json"}}, 10*time.Second), http.StatusBadRequest, "invalid_value")
		})
	}
	long := "batch_" + strings.Repeat("x", 10_000)
	hs.check(ctx, "a 10 KB id: 404 whose message quotes at most 128 bytes of it", func() (string, error) {
		a := do(ctx, hs.client, http.MethodGet, hs.r.BaseURL()+"/batches/"+long, hs.key, nil, nil, 10*time.Second)
		d, err := expect(a, http.StatusNotFound, "")
		if err == nil && len(a.Body) > 600 {
			err = fmt.Errorf("answer of %d bytes: the id is echoed whole", len(a.Body))
		}
		return d + fmt.Sprintf(", %d bytes", len(a.Body)), err
	})
	for _, q := range []string{"/batches?limit=%zz", "/files?limit=%4", "/batches?after=%zz"} {
		hs.check(ctx, "GET /v1"+q+": 400, not ignored", func() (string, error) {
			return expect(do(ctx, hs.client, http.MethodGet, hs.r.BaseURL()+q, hs.key, nil, nil, 10*time.Second), http.StatusBadRequest, "invalid_value")
		})
	}
}

// trickleMany keeps n connections that trickle a request's headers a byte every pace, opening a
// new one when the server closes one, until ctx ends; it returns how many the server closed.
func trickleMany(ctx context.Context, wg *sync.WaitGroup, addr string, n int, pace time.Duration) func() int64 {
	var mu sync.Mutex
	closed := 0
	header := []byte("POST /v1/batches HTTP/1.1\r\nHost: " + addr + "\r\nX-Trickle: " + strings.Repeat("t", 4096))
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(pace): // back off before dialling again
					}
					continue
				}
				tick := time.NewTicker(pace)
				for sent := 0; ctx.Err() == nil; sent++ {
					if _, err := conn.Write(header[sent%len(header) : sent%len(header)+1]); err != nil {
						mu.Lock()
						closed++
						mu.Unlock()
						break
					}
					select {
					case <-ctx.Done():
					case <-tick.C: // the trickle's pace
					}
				}
				tick.Stop()
				conn.Close()
			}
		}()
	}
	return func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return int64(closed)
	}
}
