package handlers

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/config"
)

func smallLimits(c *config.Config) {
	c.Files.MaxBytes = 10_000
	c.Files.MaxLines = 5
	c.Files.MaxLineBytes = 8192
	c.Files.MaxCustomIDBytes = 64
}

// paddedLine is a valid line of about n bytes.
func paddedLine(customID string, n int) string {
	base := line(customID)
	pad := n - len(base) - len(`,"pad":""`)
	return strings.Replace(base, `"model":"m1"`, fmt.Sprintf(`"model":"m1","pad":%q`, strings.Repeat("x", max(pad, 0))), 1)
}

func TestUploadRejectsBadInput(t *testing.T) {
	t.Parallel()
	purpose := part{name: "purpose", content: "batch"}
	file := func(content string) part { return part{name: "file", filename: "in.jsonl", content: content} }
	cases := []struct {
		name    string
		parts   []part
		chunked bool
		raw     func(f *fixture) (int, []byte) // for bodies multipartBody cannot make
		status  int
		code    string
		param   string
		message string
	}{
		{name: "invalid json", parts: []part{purpose, file(line("a") + "\n{\"custom_id\": \n")},
			status: 400, code: "invalid_json_line", message: "Line 2:"},
		{name: "not an object", parts: []part{purpose, file("[1,2]\n")},
			status: 400, code: "invalid_json_line", message: "Line 1:"},
		{name: "missing custom_id", parts: []part{purpose, file(`{"method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}` + "\n")},
			status: 400, code: "missing_custom_id", param: "custom_id", message: "Line 1:"},
		{name: "custom_id not a string", parts: []part{purpose, file(`{"custom_id":7,"method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`)},
			status: 400, code: "invalid_custom_id", param: "custom_id", message: "Line 1:"},
		{name: "empty custom_id", parts: []part{purpose, file(line("a") + "\n" + line("") + "\n")},
			status: 400, code: "invalid_custom_id", param: "custom_id", message: "Line 2:"},
		{name: "custom_id too long", parts: []part{purpose, file(line(strings.Repeat("c", 65)))},
			status: 400, code: "invalid_custom_id", param: "custom_id", message: "Line 1:"},
		{name: "custom_id with a lone surrogate", parts: []part{purpose, file(line("a") + "\n" + `{"custom_id":"\ud800","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}` + "\n")},
			status: 400, code: "invalid_custom_id", param: "custom_id", message: "Line 2: custom_id must not contain an unpaired UTF-16 surrogate"},
		{name: "duplicate custom_id", parts: []part{purpose, file(line("a") + "\n" + line("b") + "\n" + line("a") + "\n")},
			status: 400, code: "duplicate_custom_id", param: "custom_id", message: "Line 3: custom_id 'a' is already used on line 1"},
		{name: "method GET", parts: []part{purpose, file(strings.Replace(line("a"), `"POST"`, `"GET"`, 1))},
			status: 400, code: "invalid_method", param: "method", message: "Line 1:"},
		{name: "missing method", parts: []part{purpose, file(strings.Replace(line("a"), `"method":"POST",`, ``, 1))},
			status: 400, code: "missing_method", param: "method", message: "Line 1:"},
		{name: "unsupported url", parts: []part{purpose, file(line("a") + "\n" + strings.Replace(line("b"), "/v1/chat/completions", "/v1/images/generations", 1))},
			status: 400, code: "unsupported_url", param: "url", message: "Line 2:"},
		{name: "missing url", parts: []part{purpose, file(strings.Replace(line("a"), `"url":"/v1/chat/completions",`, ``, 1))},
			status: 400, code: "missing_url", param: "url", message: "Line 1:"},
		{name: "missing body", parts: []part{purpose, file(`{"custom_id":"a","method":"POST","url":"/v1/embeddings"}`)},
			status: 400, code: "missing_body", param: "body", message: "Line 1:"},
		{name: "body not an object", parts: []part{purpose, file(`{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":"x"}`)},
			status: 400, code: "invalid_body", param: "body", message: "Line 1:"},
		{name: "missing model", parts: []part{purpose, file(`{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{"input":"x"}}`)},
			status: 400, code: "missing_model", param: "body.model", message: "Line 1:"},
		{name: "model not a string", parts: []part{purpose, file(`{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{"model":3}}`)},
			status: 400, code: "invalid_model", param: "body.model", message: "Line 1:"},
		{name: "duplicate key", parts: []part{purpose, file(`{"custom_id":"a","custom_id":"b","method":"POST","url":"/v1/embeddings","body":{"model":"m"}}`)},
			status: 400, code: "duplicate_key", param: "custom_id", message: "Line 1:"},
		{name: "invalid utf-8", parts: []part{purpose, file(line("a") + "\n" + strings.Replace(line("b"), "hi", "h\xff", 1))},
			status: 400, code: "invalid_utf8", message: "Line 2:"},
		{name: "nested too deeply", parts: []part{purpose, file(`{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{"model":"m","x":` + strings.Repeat("[", 3000) + strings.Repeat("]", 3000) + "}}")},
			status: 400, code: "invalid_json_line", message: "Line 1:"},
		{name: "too many lines", parts: []part{purpose, file(lines(6))},
			status: 400, code: "too_many_lines", param: "file", message: "Line 6:"},
		{name: "too large while streaming", chunked: true, parts: []part{purpose, file(paddedLine("a", 4000) + "\n" + paddedLine("b", 4000) + "\n" + paddedLine("c", 4000) + "\n")},
			status: 400, code: "file_too_large", param: "file", message: "10000 bytes"},
		{name: "line too long", parts: []part{purpose, file(paddedLine("a", 9000))},
			status: 400, code: "line_too_long", param: "file", message: "Line 1:"},
		{name: "empty file", parts: []part{purpose, file("")},
			status: 400, code: "empty_file", param: "file", message: "no requests"},
		{name: "only blank lines", parts: []part{purpose, file("\n  \n\r\n")},
			status: 400, code: "empty_file", param: "file", message: "no requests"},
		{name: "wrong purpose", parts: []part{{name: "purpose", content: "fine-tune"}, file(lines(1))},
			status: 400, code: "invalid_purpose", param: "purpose", message: "'batch'"},
		{name: "wrong purpose after the file", parts: []part{file(lines(2)), {name: "purpose", content: "assistants"}},
			status: 400, code: "invalid_purpose", param: "purpose", message: "Invalid purpose 'assistants'"},
		{name: "missing purpose", parts: []part{file(lines(1))},
			status: 400, code: "missing_required_parameter", param: "purpose", message: "'purpose'"},
		{name: "missing file", parts: []part{purpose},
			status: 400, code: "missing_required_parameter", param: "file", message: "'file'"},
		{name: "two files", parts: []part{purpose, file(lines(1)), file(lines(1))},
			status: 400, code: "invalid_multipart", param: "file", message: "more than one"},
		{name: "bad expiry anchor", parts: []part{purpose, {name: "expires_after[anchor]", content: "now"}, {name: "expires_after[seconds]", content: "3600"}, file(lines(1))},
			status: 400, code: "invalid_value", param: "expires_after[anchor]", message: "created_at"},
		{name: "expiry too short", parts: []part{purpose, {name: "expires_after[anchor]", content: "created_at"}, {name: "expires_after[seconds]", content: "60"}, file(lines(1))},
			status: 400, code: "invalid_value", param: "expires_after[seconds]", message: "3600 to 2592000"},
		{name: "expiry without anchor", parts: []part{purpose, {name: "expires_after[seconds]", content: "7200"}, file(lines(1))},
			status: 400, code: "missing_required_parameter", param: "expires_after[anchor]", message: "expires_after[anchor]"},
		{name: "not multipart", raw: func(f *fixture) (int, []byte) {
			s, _, b := f.do(http.MethodPost, "/v1/files", f.alice, strings.NewReader(`{"purpose":"batch"}`), http.Header{"Content-Type": {"application/json"}})
			return s, b
		}, status: 400, code: "invalid_multipart", message: "multipart/form-data"},
		{name: "truncated multipart", raw: func(f *fixture) (int, []byte) {
			ct, body := multipartBody(f.t, purpose, file(lines(3)))
			s, _, b := f.do(http.MethodPost, "/v1/files", f.alice, bytes.NewReader(body[:len(body)-40]), http.Header{"Content-Type": {ct}})
			return s, b
		}, status: 400, code: "invalid_multipart", message: "could not be read"},
		{name: "declared body over the limit", raw: func(f *fixture) (int, []byte) {
			ct, body := multipartBody(f.t, purpose, file(strings.Repeat("\n", 1<<20+20_000)))
			s, _, b := f.do(http.MethodPost, "/v1/files", f.alice, bytes.NewReader(body), http.Header{"Content-Type": {ct}})
			return s, b
		}, status: 400, code: "file_too_large", param: "file", message: "File is too large: it exceeds the limit of 10000 bytes"},
		{name: "streamed body outgrowing the limit in another field", chunked: true,
			parts:  []part{purpose, file(lines(1)), {name: "note", content: strings.Repeat("x", 1<<20+20_000)}},
			status: 400, code: "file_too_large", param: "file", message: "10000 bytes"},
	}
	require.GreaterOrEqual(t, len(cases), 20)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, smallLimits)
			var status int
			var body []byte
			if tc.raw != nil {
				status, body = tc.raw(f)
			} else {
				status, body = f.upload(f.alice, tc.chunked, tc.parts...)
			}
			require.Equal(t, tc.status, status, "body: %s", body)
			e := decodeEnvelope(t, body)
			require.Equal(t, "invalid_request_error", e.Error.Type)
			require.Equal(t, tc.code, strOrEmpty(e.Error.Code), "message: %s", e.Error.Message)
			require.Equal(t, tc.param, strOrEmpty(e.Error.Param), "message: %s", e.Error.Message)
			require.Contains(t, e.Error.Message, tc.message)
			files, fileLines := f.rowCounts()
			require.Zero(t, files, "a refused upload must leave no file")
			require.Zero(t, fileLines, "a refused upload must leave no lines")
		})
	}
}

func TestUploadAcceptsAnyFieldOrderAndEncoding(t *testing.T) {
	t.Parallel()
	f := setup(t)
	content := lines(3) + "\n" + line("last") // a blank line and no final newline
	orders := map[string][]part{
		"purpose first": {{name: "purpose", content: "batch"}, {name: "file", filename: "a.jsonl", content: content}},
		"purpose last":  {{name: "file", filename: "a.jsonl", content: content}, {name: "purpose", content: "batch"}},
		"placeholder name and expiry": {{name: "expires_after[anchor]", content: "created_at"}, {name: "expires_after[seconds]", content: "3600"},
			{name: "file", filename: "anonymous_file", content: content}, {name: "purpose", content: "batch"}, {name: "unknown", content: "ignored"}},
	}
	for name, parts := range orders {
		for _, chunked := range []bool{false, true} {
			status, body := f.upload(f.alice, chunked, parts...)
			require.Equal(t, http.StatusOK, status, "%s chunked=%v: %s", name, chunked, body)
			var got fileJSON
			require.NoError(t, jsonUnmarshal(body, &got))
			require.Equal(t, int64(len(content)), got.Bytes)
			require.Equal(t, "processed", got.Status)
			require.Equal(t, "batch", got.Purpose)
			require.Equal(t, "file", got.Object)
			require.NotNil(t, got.ExpiresAt)
			want := int64(30 * 24 * 3600)
			if name == "placeholder name and expiry" {
				want = 3600
				require.Equal(t, "anonymous_file", got.Filename)
			}
			require.Equal(t, want, *got.ExpiresAt-got.CreatedAt)
			status, _, raw := f.do(http.MethodGet, "/v1/files/"+got.ID+"/content", f.alice, nil, nil)
			require.Equal(t, http.StatusOK, status)
			require.Equal(t, content, string(raw))
		}
	}
}

func TestUploadCRLFAndLongLinesAreByteIdentical(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// Lines longer than the reader's 1 MiB buffer take the slow path.
	content := paddedLine("big", 3<<20) + "\r\n" + line("small") + "\r\n"
	got := f.uploadOK(f.alice, content)
	require.Equal(t, int64(len(content)), got.Bytes)
	status, header, raw := f.do(http.MethodGet, "/v1/files/"+got.ID+"/content", f.alice, nil, http.Header{"Accept": {"application/binary"}})
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, fmt.Sprint(len(content)), header.Get("Content-Length"))
	require.True(t, bytes.Equal([]byte(content), raw))
}

func TestAnUploadAbandonedMidwayLeavesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ct, body := multipartBody(t, part{name: "purpose", content: "batch"}, part{name: "file", filename: "in.jsonl", content: lines(2000)})
	addr := strings.TrimPrefix(f.url, "http://")
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_, err = fmt.Fprintf(conn, "POST /v1/files HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		addr, f.alice, ct, len(body))
	require.NoError(t, err)
	_, err = conn.Write(body[:len(body)/2])
	require.NoError(t, err)

	// Wait until the upload is streaming into the database, then hang up.
	activeCopy := func() (n int) {
		require.NoError(t, f.pool.QueryRow(t.Context(),
			`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
			 AND (query ILIKE 'copy%' OR state = 'idle in transaction')`).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return activeCopy() > 0 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, conn.Close())
	require.Eventually(t, func() bool { return activeCopy() == 0 }, 10*time.Second, 10*time.Millisecond,
		"the upload's transaction ends when its client goes away")
	files, fileLines := f.rowCounts()
	require.Zero(t, files)
	require.Zero(t, fileLines)
}

func TestUploadsBeyondTheLimitWaitTheirTurn(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *config.Config) { c.Files.MaxConcurrent = 1 })
	require.NoError(t, f.server.turns.acquire(t.Context(), "someone")) // the only turn is taken

	type result struct {
		status int
		body   []byte
	}
	second := make(chan result, 1)
	go func() {
		status, b := f.upload(f.bob, false, part{name: "purpose", content: "batch"}, part{name: "file", filename: "b.jsonl", content: lines(3)})
		second <- result{status, b}
	}()
	require.Eventually(t, func() bool { return f.server.turns.waiting() == 1 }, 10*time.Second, 5*time.Millisecond)
	select {
	case r := <-second:
		t.Fatalf("the upload ran without a turn: %d %s", r.status, r.body)
	default:
	}
	files, _ := f.rowCounts()
	require.Zero(t, files)

	f.server.turns.release()
	select {
	case r := <-second:
		require.Equal(t, http.StatusOK, r.status, string(r.body))
	case <-time.After(10 * time.Second):
		t.Fatal("the upload did not run once the turn was free")
	}
	require.Zero(t, f.server.turns.waiting())
	require.Zero(t, f.server.turns.held(), "the turn is given back")
	files, fileLines := f.rowCounts()
	require.Equal(t, 1, files)
	require.Equal(t, 3, fileLines)
}

func TestAStalledUploadHoldsNoTurn(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *config.Config) { c.Files.MaxConcurrent = 1 })

	// Alice's upload sends its file's header and some lines, then goes silent.
	ct, body := multipartBody(t, part{name: "purpose", content: "batch"}, part{name: "file", filename: "in.jsonl", content: lines(2000)})
	addr := strings.TrimPrefix(f.url, "http://")
	first, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer first.Close()
	_, err = fmt.Fprintf(first, "POST /v1/files HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		addr, f.alice, ct, len(body))
	require.NoError(t, err)
	_, err = first.Write(body[:len(body)/2])
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, f.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND pid <> pg_backend_pid() AND query ILIKE 'copy%'`).Scan(&n))
		return n > 0
	}, 10*time.Second, 5*time.Millisecond, "the first upload is streaming")

	// Bob's upload, sent whole, is served meanwhile, while Alice's is still open and silent.
	status, b := f.upload(f.bob, false, part{name: "purpose", content: "batch"}, part{name: "file", filename: "b.jsonl", content: lines(3)})
	require.Equal(t, http.StatusOK, status, string(b))
	files, _ := f.rowCounts()
	require.Equal(t, 1, files)

	// Alice then sends the rest and is served too.
	_, err = first.Write(body[len(body)/2:])
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(first), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.NoError(t, res.Body.Close())
	require.Eventually(t, func() bool { return f.server.turns.held() == 0 }, 10*time.Second, 5*time.Millisecond, "both turns given back")
	files, fileLines := f.rowCounts()
	require.Equal(t, 2, files)
	require.Equal(t, 2003, fileLines)
}

func TestTurnsGoRoundTheOwners(t *testing.T) {
	t.Parallel()
	tr := newTurns(1)
	require.NoError(t, tr.acquire(t.Context(), "holder"))
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	// Queue alice three times, then bob once, in that order.
	for i, owner := range []string{"alice", "alice", "alice", "bob"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, tr.acquire(t.Context(), owner))
			mu.Lock()
			order = append(order, owner)
			mu.Unlock()
			tr.release()
		}()
		require.Eventually(t, func() bool { return tr.waiting() == i+1 }, 5*time.Second, time.Millisecond)
	}
	tr.release()
	wg.Wait()
	require.Equal(t, []string{"alice", "bob", "alice", "alice"}, order, "bob is served second, not after all of alice's")
	require.Zero(t, tr.held())

	// A waiter that gives up leaves the line.
	require.NoError(t, tr.acquire(t.Context(), "holder"))
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- tr.acquire(ctx, "carol") }()
	require.Eventually(t, func() bool { return tr.waiting() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	require.Error(t, <-errc)
	require.Zero(t, tr.waiting())
	tr.release()
	require.Zero(t, tr.held())
}

func TestAnUploadThatGivesUpWaitingLeavesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *config.Config) { c.Files.MaxConcurrent = 1 })
	require.NoError(t, f.server.turns.acquire(t.Context(), "someone")) // the only turn is taken

	ct, body := multipartBody(t, part{name: "purpose", content: "batch"}, part{name: "file", filename: "in.jsonl", content: lines(3)})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url+"/v1/files", bytes.NewReader(body))
		if err != nil {
			done <- err
			return
		}
		req.Header.Set("Authorization", "Bearer "+f.alice)
		req.Header.Set("Content-Type", ct)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	require.Eventually(t, func() bool { return f.server.turns.waiting() == 1 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Eventually(t, func() bool { return f.server.turns.waiting() == 0 }, 10*time.Second, 5*time.Millisecond,
		"a client that goes away stops waiting")
	require.Equal(t, 1, f.server.turns.held(), "it never took the turn")
	files, fileLines := f.rowCounts()
	require.Zero(t, files)
	require.Zero(t, fileLines)
}
