package handlers

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
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
