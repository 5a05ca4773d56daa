package handlers

import (
	"bufio"
	"context"
	"fmt"
	"github.com/volleyhq/volley/internal/config"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawConn opens a TCP connection to the test server, closed with the test.
func (f *fixture) rawConn() net.Conn {
	f.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	require.NoError(f.t, err)
	f.t.Cleanup(func() { _ = conn.Close() })
	require.NoError(f.t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	return conn
}

// rawResponse writes req on a new connection and reads one answer, leaving the connection open.
func (f *fixture) rawResponse(req string) (*http.Response, []byte, net.Conn, *bufio.Reader) {
	f.t.Helper()
	conn := f.rawConn()
	_, err := io.WriteString(conn, req)
	require.NoError(f.t, err)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	require.NoError(f.t, err)
	body, err := io.ReadAll(res.Body)
	require.NoError(f.t, err)
	return res, body, conn, br
}

func TestNoBodyIsReadBeforeTheKeyRouteAndMethodAreChecked(t *testing.T) {
	t.Parallel()
	f := setup(t)
	host := strings.TrimPrefix(f.url, "http://")
	for _, c := range []struct {
		name, method, path, auth string
		status                   int
		code                     string
	}{
		{"batch create without a key", "POST", "/v1/batches", "", 401, ""},
		{"response create without a key", "POST", "/v1/responses", "", 401, ""},
		{"upload without a key", "POST", "/v1/files", "", 401, ""},
		{"batch create with an unknown key", "POST", "/v1/batches", "Bearer sk-volley-nope", 401, "invalid_api_key"},
		{"unknown route", "POST", "/v1/nothing", "Bearer " + f.alice, 404, ""},
		{"wrong method", "PUT", "/v1/batches", "Bearer " + f.alice, 405, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			// 1 MiB declared, 17 bytes sent: the answer must not wait for the rest.
			req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", c.method, c.path, host, 1<<20)
			if c.auth != "" {
				req += "Authorization: " + c.auth + "\r\n"
			}
			res, body, _, _ := f.rawResponse(req + "\r\n" + `{"input_file_id":`)
			require.Equal(t, c.status, res.StatusCode, string(body))
			env := decodeEnvelope(t, body)
			require.Equal(t, c.code, strOrEmpty(env.Error.Code))
			require.True(t, res.Close, "the unread body is not waited for: the connection closes")
		})
	}
}

func TestHeadOnTheProbes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		res, err := http.Head(f.url + path)
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		require.NoError(t, res.Body.Close())
		require.Equal(t, http.StatusOK, res.StatusCode, path)
		require.Empty(t, body)
		require.Equal(t, "application/json", res.Header.Get("Content-Type"))
	}
	status, _, body := f.do(http.MethodHead, "/v1/files", f.alice, nil, nil)
	require.Equal(t, http.StatusMethodNotAllowed, status, string(body))
}

func TestACutOffUploadIsNeverASuccess(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ct, body := multipartBody(t, part{name: "purpose", content: "batch"}, part{name: "file", filename: "in.jsonl", content: lines(200)})
	host := strings.TrimPrefix(f.url, "http://")
	for i := 0; i < 20; i++ {
		conn := f.rawConn()
		_, err := fmt.Fprintf(conn, "POST /v1/files HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
			host, f.alice, ct, len(body))
		require.NoError(t, err)
		_, err = conn.Write(body[:len(body)/2])
		require.NoError(t, err)
		require.NoError(t, conn.(*net.TCPConn).CloseWrite())
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			continue // the connection was reset: no answer, which is right
		}
		b, _ := io.ReadAll(res.Body)
		require.Equal(t, http.StatusBadRequest, res.StatusCode, "a cut-off upload: %s", b)
		require.Equal(t, "invalid_multipart", strOrEmpty(decodeEnvelope(t, b).Error.Code))
	}
	files, fileLines := f.rowCounts()
	require.Zero(t, files)
	require.Zero(t, fileLines)
}

func TestAStalledBodyIsAnsweredAndCutOff(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *config.Config) { c.BodyIdleTimeout = 300 * time.Millisecond; c.Files.MaxConcurrent = 1 })
	host := strings.TrimPrefix(f.url, "http://")

	start := time.Now()
	res, body, _, _ := f.rawResponse(fmt.Sprintf("POST /v1/batches HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"input_", host, f.alice))
	require.Equal(t, http.StatusRequestTimeout, res.StatusCode, string(body))
	require.Equal(t, "request_timeout", strOrEmpty(decodeEnvelope(t, body).Error.Code))
	require.True(t, res.Close, "the connection closes after the answer")
	require.Less(t, time.Since(start), 5*time.Second)

	ct, mp := multipartBody(t, part{name: "purpose", content: "batch"}, part{name: "file", filename: "in.jsonl", content: lines(2000)})
	res, body, _, _ = f.rawResponse(fmt.Sprintf("POST /v1/files HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
		host, f.alice, ct, len(mp), mp[:len(mp)/2]))
	require.Equal(t, http.StatusRequestTimeout, res.StatusCode, string(body))
	require.Equal(t, "request_timeout", strOrEmpty(decodeEnvelope(t, body).Error.Code))
	require.Eventually(t, func() bool { return f.server.turns.held() == 0 }, 5*time.Second, 5*time.Millisecond)
	files, fileLines := f.rowCounts()
	require.Zero(t, files)
	require.Zero(t, fileLines)
}

func TestASlowSteadyUploadIsNotCutOff(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *config.Config) { c.BodyIdleTimeout = 300 * time.Millisecond })
	host := strings.TrimPrefix(f.url, "http://")
	ct, mp := multipartBody(t, part{name: "purpose", content: "batch"}, part{name: "file", filename: "in.jsonl", content: lines(20)})
	conn := f.rawConn()
	_, err := fmt.Fprintf(conn, "POST /v1/files HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", host, f.alice, ct, len(mp))
	require.NoError(t, err)
	// Ten pieces 100 ms apart: a second in all, more than three times the idle timeout.
	step := len(mp)/10 + 1
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for off := 0; off < len(mp); off += step {
		<-tick.C // the client's pace
		_, err := conn.Write(mp[off:min(off+step, len(mp))])
		require.NoError(t, err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusOK, res.StatusCode, string(b))
}

func TestARequestOverTheHandlerTimeoutIsA503(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeoutCause(t.Context(), time.Nanosecond, errHandlerTimeout)
	defer cancel()
	<-ctx.Done()
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/batches", nil)
	w := httptest.NewRecorder()
	writeError(w, r, ctx.Err())
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	env := decodeEnvelope(t, w.Body.Bytes())
	require.Equal(t, "timeout", strOrEmpty(env.Error.Code))
	require.Contains(t, env.Error.Message, "VOLLEY_HANDLER_TIMEOUT")
}
