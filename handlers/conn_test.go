package handlers

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNetHTTPsOwnAnswersAreEnvelopes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	host := strings.TrimPrefix(f.url, "http://")
	for _, c := range []struct {
		name, req string
		status    int
		code      string
		message   string
	}{
		{"headers over the limit", "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nX-Big: " + strings.Repeat("a", 80<<10) + "\r\n\r\n",
			431, "request_headers_too_large", "65536 bytes"},
		{"a bad %-escape in the path", "GET /v1/files/%zz HTTP/1.1\r\nHost: " + host + "\r\n\r\n", 400, "invalid_request", "could not be parsed"},
		{"a negative Content-Length", "POST /v1/batches HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: -5\r\n\r\n", 400, "invalid_request", "could not be parsed"},
		{"a NUL in a header", "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nX-A: a\x00b\r\n\r\n", 400, "invalid_request", "could not be parsed"},
		{"a malformed request line", "GET\r\n\r\n", 400, "invalid_request", "could not be parsed"},
		{"an unknown Transfer-Encoding", "POST /v1/batches HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "unsupported_transfer_encoding", "Transfer-Encoding"},
		{"an unknown expectation", "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nExpect: tea\r\n\r\n", 417, "expectation_failed", "100-continue"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, body, _, _ := f.rawResponse(c.req)
			require.Equal(t, c.status, res.StatusCode, string(body))
			require.Equal(t, "application/json", res.Header.Get("Content-Type"))
			env := decodeEnvelope(t, body)
			require.Equal(t, c.code, strOrEmpty(env.Error.Code))
			require.Contains(t, env.Error.Message, c.message)
			require.Equal(t, "invalid_request_error", env.Error.Type)
			require.True(t, res.Close)
		})
	}
}

func TestARequestWithBothLengthsClosesTheConnection(t *testing.T) {
	t.Parallel()
	f := setup(t)
	host := strings.TrimPrefix(f.url, "http://")
	hidden := "GET /v1/files HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + f.alice + "\r\n\r\n"
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(`{}`), `{}`)
	res, body, _, br := f.rawResponse("POST /v1/batches HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + f.alice +
		"\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + hidden)
	require.Equal(t, http.StatusBadRequest, res.StatusCode, string(body))
	require.True(t, res.Close, "the connection closes after the ambiguous request")
	_, err := http.ReadResponse(br, nil)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the request hidden after it is not answered")

	// Requests with one length each, chunked or not, keep the connection for the next.
	res, body, _, br = f.rawResponse("POST /v1/batches HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + f.alice +
		"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked +
		"POST /v1/batches HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + f.alice + "\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" + hidden)
	require.Equal(t, http.StatusBadRequest, res.StatusCode, string(body))
	require.False(t, res.Close)
	for i := 0; i < 2; i++ {
		res, err = http.ReadResponse(br, nil)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		require.False(t, res.Close)
	}
	require.Equal(t, http.StatusOK, res.StatusCode)
}

func TestTheFramerFollowsRequestsByteByByte(t *testing.T) {
	t.Parallel()
	stream := "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n" + "Transfer-Encoding: chunked\r\n\r\n" +
		"\r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, size := range []int{1, 3, 7, 64, len(stream)} {
		var fr framer
		fr.limit = 1 << 20
		for off := 0; off < len(stream); off += size {
			require.False(t, fr.feed([]byte(stream[off:min(off+size, len(stream))])), "no request has both lengths (pieces of %d)", size)
		}
		require.False(t, fr.done, "followed to the end (pieces of %d)", size)
		require.Equal(t, frameHead, fr.state)

		fr.feed([]byte("POST /d HTTP/1.1\r\ntransfer-encoding: chunked\r\n"))
		require.True(t, fr.feed([]byte("content-length: 3\r\n\r\n")), "both lengths (pieces of %d)", size)
	}
}

func TestAnswersOfVolleysOwnAreNotRewritten(t *testing.T) {
	t.Parallel()
	for _, p := range []string{
		"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nX-Request-Id: req_1\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok",
		"HTTP/1.1 100 Continue\r\n\r\n",
		`{"custom_id":"HTTP/1.1 400 x"}`,
	} {
		_, ok := rewriteOwnAnswer([]byte(p), 1024)
		require.False(t, ok, p)
	}
}
