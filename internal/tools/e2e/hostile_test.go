package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"
)

// addr is the host:port volley serve listens on.
func (v *volley) addr() string {
	return strings.TrimSuffix(strings.TrimPrefix(v.proc.URL, "http://"), "/v1")
}

// raw opens a TCP connection to the server, closed with the test.
func (v *volley) raw(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", v.addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	return conn
}

// rawAnswer writes req on a new connection and reads one answer.
func (v *volley) rawAnswer(t *testing.T, req string) (*http.Response, []byte, *bufio.Reader, time.Duration) {
	t.Helper()
	conn := v.raw(t)
	start := time.Now()
	_, err := io.WriteString(conn, req)
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, body, br, time.Since(start)
}

type errEnvelope struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func requireEnvelope(t *testing.T, res *http.Response, body []byte, status int, code string) errEnvelope {
	t.Helper()
	require.Equal(t, status, res.StatusCode, string(body))
	require.Equal(t, "application/json", res.Header.Get("Content-Type"))
	var env errEnvelope
	require.NoError(t, json.Unmarshal(body, &env), string(body))
	got := ""
	if env.Error.Code != nil {
		got = *env.Error.Code
	}
	require.Equal(t, code, got, string(body))
	require.NotEmpty(t, env.Error.Message)
	return env
}

// TestHostileClientsOverRawTCP sends the attacks of a misbehaving client to a real volley serve.
func TestHostileClientsOverRawTCP(t *testing.T) {
	t.Parallel()
	v := startVolley(t, "VOLLEY_BODY_IDLE_TIMEOUT=1s")
	key := v.key("alice")
	host := v.addr()

	t.Run("a body declared but not sent, without a key, is answered at once", func(t *testing.T) {
		for _, path := range []string{"/v1/batches", "/v1/responses", "/v1/files"} {
			res, body, _, took := v.rawAnswer(t, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"input_file_id\":", path, host, 1<<20))
			requireEnvelope(t, res, body, http.StatusUnauthorized, "")
			require.True(t, res.Close)
			require.Less(t, took, 5*time.Second, path)
		}
	})
	t.Run("a stalled body with a key is answered 408", func(t *testing.T) {
		res, body, _, _ := v.rawAnswer(t, fmt.Sprintf("POST /v1/batches HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", host, key))
		requireEnvelope(t, res, body, http.StatusRequestTimeout, "request_timeout")
	})
	t.Run("net/http's own answers are envelopes", func(t *testing.T) {
		for _, c := range []struct {
			req    string
			status int
			code   string
		}{
			{"GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nX-Big: " + strings.Repeat("b", 70<<10) + "\r\n\r\n", 431, "request_headers_too_large"},
			{"GET /v1/files/%zz HTTP/1.1\r\nHost: " + host + "\r\n\r\n", 400, "invalid_request"},
			{"POST /v1/files HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: -1\r\n\r\n", 400, "invalid_request"},
			{"GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nX-Nul: \x00\r\n\r\n", 400, "invalid_request"},
			{"POST /v1/files HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: br\r\n\r\n", 501, "unsupported_transfer_encoding"},
			{"GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nExpect: 200-ok\r\n\r\n", 417, "expectation_failed"},
		} {
			res, body, _, _ := v.rawAnswer(t, c.req)
			requireEnvelope(t, res, body, c.status, c.code)
		}
	})
	t.Run("HEAD on the probes", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			res, err := http.Head("http://" + host + path)
			require.NoError(t, err)
			require.NoError(t, res.Body.Close())
			require.Equal(t, http.StatusOK, res.StatusCode, path)
		}
	})
	t.Run("a request with both lengths closes its connection", func(t *testing.T) {
		hidden := "GET /v1/files HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + key + "\r\n\r\n"
		res, body, br, _ := v.rawAnswer(t, "POST /v1/batches HTTP/1.1\r\nHost: "+host+"\r\nAuthorization: Bearer "+key+
			"\r\nContent-Type: application/json\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"+hidden)
		requireEnvelope(t, res, body, http.StatusBadRequest, "missing_required_parameter")
		require.True(t, res.Close)
		_, err := http.ReadResponse(br, nil)
		require.Error(t, err, "the hidden request is never answered")
	})
	t.Run("a cut-off upload is never a success", func(t *testing.T) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		require.NoError(t, mw.WriteField("purpose", "batch"))
		fw, err := mw.CreateFormFile("file", "in.jsonl")
		require.NoError(t, err)
		_, err = io.WriteString(fw, batchLines("cut", 500))
		require.NoError(t, err)
		require.NoError(t, mw.Close())
		for i := 0; i < 5; i++ {
			conn := v.raw(t)
			_, err = fmt.Fprintf(conn, "POST /v1/files HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
				host, key, mw.FormDataContentType(), buf.Len())
			require.NoError(t, err)
			_, err = conn.Write(buf.Bytes()[:buf.Len()/2])
			require.NoError(t, err)
			require.NoError(t, conn.(*net.TCPConn).CloseWrite())
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err == nil {
				body, _ := io.ReadAll(res.Body)
				requireEnvelope(t, res, body, http.StatusBadRequest, "invalid_multipart")
			}
		}
		c := v.client(key)
		list, err := c.Files.List(ctx(t), openai.FileListParams{})
		require.NoError(t, err)
		require.Empty(t, list.Data)
	})
}

// TestStalledUploadsDoNotBlockOtherOwners: two of Alice's uploads send one line and go silent; Bob's
// upload is stored meanwhile, with one ingest turn.
func TestStalledUploadsDoNotBlockOtherOwners(t *testing.T) {
	t.Parallel()
	v := startVolley(t, "VOLLEY_MAX_CONCURRENT_UPLOADS=1")
	alice, bob := v.key("alice"), v.key("bob")
	host := v.addr()
	for i := 0; i < 2; i++ {
		conn := v.raw(t)
		head := "--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.jsonl\"\r\n\r\n"
		_, err := fmt.Fprintf(conn, "POST /v1/files HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n%s%s",
			host, alice, head, batchLines(fmt.Sprintf("stall%d", i), 1))
		require.NoError(t, err)
	}
	start := time.Now()
	c := v.client(bob)
	f, err := c.Files.New(ctx(t), openai.FileNewParams{File: strings.NewReader(batchLines("bob", 3)), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	require.Equal(t, int64(len(batchLines("bob", 3))), f.Bytes, "stored")
	require.Less(t, time.Since(start), 5*time.Second, "Bob does not wait for Alice's silent uploads")
}
