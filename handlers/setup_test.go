package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/apikey"
	"github.com/volleyhq/volley/internal/config"
	"github.com/volleyhq/volley/internal/tools/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// fixture is a server on a database of the test's own, with keys for two owners.
type fixture struct {
	t      *testing.T
	pool   *pgxpool.Pool
	url    string
	alice  string // alice's key
	bob    string // bob's key
	server *Server
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func setup(t *testing.T, tweak ...func(*config.Config)) *fixture {
	t.Helper()
	cfg := config.Default()
	for _, f := range tweak {
		f(&cfg)
	}
	pool := testdb.New(t)
	logger := slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := New(pool, cfg, nil, nil, logger)
	t.Cleanup(s.Close)
	s.MarkReady()
	ts := httptest.NewUnstartedServer(CloseAmbiguous(s.Handler()))
	ts.Listener = Listener(ts.Listener, testMaxHeaderBytes)
	ts.Config.ConnContext = ConnContext
	ts.Config.MaxHeaderBytes = testMaxHeaderBytes
	ts.Config.ReadHeaderTimeout = cfg.HeaderTimeout
	ts.Start()
	t.Cleanup(ts.Close)
	f := &fixture{t: t, pool: pool, url: ts.URL, server: s}
	f.alice = f.newKey("alice")
	f.bob = f.newKey("bob")
	return f
}

// testMaxHeaderBytes is the test server's header limit, as volley serve's.
const testMaxHeaderBytes = 64 << 10

func (f *fixture) newKey(owner string) string {
	key, hash, display := apikey.New()
	_, err := dbsqlc.New(f.pool).APIKeyInsert(context.Background(), dbsqlc.APIKeyInsertParams{Owner: owner, KeyHash: hash, KeyPrefix: display})
	require.NoError(f.t, err)
	return key
}

// do sends a request and returns the status, headers and body.
func (f *fixture) do(method, path, key string, body io.Reader, header http.Header) (int, http.Header, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.url+path, body)
	require.NoError(f.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(f.t, err)
	return res.StatusCode, res.Header, b
}

// part is one multipart field, written in the order given.
type part struct {
	name, filename, content string
}

func multipartBody(t *testing.T, parts ...part) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p.filename != "" {
			w, err = mw.CreateFormFile(p.name, p.filename)
		} else {
			w, err = mw.CreateFormField(p.name)
		}
		require.NoError(t, err)
		_, err = io.WriteString(w, p.content)
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	return mw.FormDataContentType(), buf.Bytes()
}

// upload posts a multipart form; chunked sends it without a Content-Length.
func (f *fixture) upload(key string, chunked bool, parts ...part) (int, []byte) {
	f.t.Helper()
	ct, body := multipartBody(f.t, parts...)
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // hides the length, so the client streams it chunked
	}
	status, _, b := f.do(http.MethodPost, "/v1/files", key, r, http.Header{"Content-Type": {ct}})
	return status, b
}

func (f *fixture) uploadOK(key, content string) fileJSON {
	f.t.Helper()
	status, body := f.upload(key, false, part{name: "purpose", content: "batch"}, part{name: "file", filename: "in.jsonl", content: content})
	require.Equal(f.t, http.StatusOK, status, string(body))
	var out fileJSON
	require.NoError(f.t, json.Unmarshal(body, &out))
	return out
}

type fileJSON struct {
	ID        string  `json:"id"`
	Object    string  `json:"object"`
	Bytes     int64   `json:"bytes"`
	CreatedAt int64   `json:"created_at"`
	ExpiresAt *int64  `json:"expires_at"`
	Filename  string  `json:"filename"`
	Purpose   string  `json:"purpose"`
	Status    string  `json:"status"`
	Details   *string `json:"status_details"`
}

type envelope struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func decodeEnvelope(t *testing.T, body []byte) envelope {
	t.Helper()
	var e envelope
	require.NoError(t, json.Unmarshal(body, &e), "not an error envelope: %s", body)
	require.NotEmpty(t, e.Error.Message)
	require.NotEmpty(t, e.Error.Type)
	// All four keys must be present, null or not.
	var raw map[string]map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &raw))
	for _, k := range []string{"message", "type", "param", "code"} {
		_, ok := raw["error"][k]
		require.True(t, ok, "error.%s missing in %s", k, body)
	}
	return e
}

func strOrEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// line makes a valid batch input line.
func line(customID string) string {
	return fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":{"model":"m1","messages":[{"role":"user","content":"hi %s"}]}}`, customID, customID)
}

func lines(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(line(fmt.Sprintf("req-%d", i)))
		b.WriteByte('\n')
	}
	return b.String()
}

// rowCounts returns how many files and file lines are stored.
func (f *fixture) rowCounts() (files, fileLines int) {
	f.t.Helper()
	ctx := context.Background()
	require.NoError(f.t, f.pool.QueryRow(ctx, "SELECT count(*) FROM files").Scan(&files))
	require.NoError(f.t, f.pool.QueryRow(ctx, "SELECT count(*) FROM file_lines").Scan(&fileLines))
	return files, fileLines
}
