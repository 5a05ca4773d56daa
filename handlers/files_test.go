package handlers

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

type fileList struct {
	Object  string     `json:"object"`
	Data    []fileJSON `json:"data"`
	FirstID *string    `json:"first_id"`
	LastID  *string    `json:"last_id"`
	HasMore bool       `json:"has_more"`
}

func (f *fixture) list(key, query string) fileList {
	f.t.Helper()
	status, _, body := f.do(http.MethodGet, "/v1/files"+query, key, nil, nil)
	require.Equal(f.t, http.StatusOK, status, string(body))
	var l fileList
	require.NoError(f.t, json.Unmarshal(body, &l))
	require.Equal(f.t, "list", l.Object)
	return l
}

func TestFilesListPagesInOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var created []string
	for i := 0; i < 5; i++ {
		created = append(created, f.uploadOK(f.alice, lines(1)).ID)
	}
	f.uploadOK(f.bob, lines(1)) // another owner's file never shows

	all := f.list(f.alice, "")
	require.Len(t, all.Data, 5)
	require.False(t, all.HasMore)
	for i, file := range all.Data { // newest first by default
		require.Equal(t, created[4-i], file.ID)
	}
	require.Equal(t, created[4], *all.FirstID)
	require.Equal(t, created[0], *all.LastID)

	for _, order := range []string{"asc", "desc"} {
		var seen []string
		after := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 10)
			q := "?limit=2&order=" + order
			if after != "" {
				q += "&after=" + after
			}
			page := f.list(f.alice, q)
			for _, file := range page.Data {
				seen = append(seen, file.ID)
			}
			if !page.HasMore {
				break
			}
			require.Len(t, page.Data, 2)
			after = page.Data[len(page.Data)-1].ID
		}
		want := append([]string(nil), created...)
		if order == "desc" {
			for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
				want[i], want[j] = want[j], want[i]
			}
		}
		require.Equal(t, want, seen, order)
	}

	require.Len(t, f.list(f.alice, "?purpose=batch").Data, 5)
	require.Empty(t, f.list(f.alice, "?purpose=batch_output").Data)
	empty := f.list(f.alice, "?after="+created[0])
	require.Empty(t, empty.Data)
	require.False(t, empty.HasMore)
	require.Nil(t, empty.FirstID)
}

func TestFilesListRejectsBadParameters(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, tc := range []struct{ query, param, message string }{
		{"?limit=0", "limit", "between 1 and 10000"},
		{"?limit=10001", "limit", "between 1 and 10000"},
		{"?limit=ten", "limit", "Invalid value for 'limit'"},
		{"?order=sideways", "order", "'asc' or 'desc'"},
	} {
		status, _, body := f.do(http.MethodGet, "/v1/files"+tc.query, f.alice, nil, nil)
		require.Equal(t, http.StatusBadRequest, status, tc.query)
		e := decodeEnvelope(t, body)
		require.Equal(t, tc.param, strOrEmpty(e.Error.Param), tc.query)
		require.Contains(t, e.Error.Message, tc.message, tc.query)
	}
}

func TestFileGetDeleteAndContent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	content := lines(4)
	up := f.uploadOK(f.alice, content)

	status, _, body := f.do(http.MethodGet, "/v1/files/"+up.ID, f.alice, nil, nil)
	require.Equal(t, http.StatusOK, status)
	var got fileJSON
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, up, got)
	require.Nil(t, got.Details)
	require.Contains(t, string(body), `"status_details":null`)

	status, _, body = f.do(http.MethodDelete, "/v1/files/"+up.ID, f.alice, nil, nil)
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, fmt.Sprintf(`{"id":%q,"object":"file","deleted":true}`, up.ID), string(body))
	_, lineRows := f.rowCounts()
	require.Zero(t, lineRows, "deleting a file removes its lines")

	for _, req := range [][2]string{{http.MethodGet, ""}, {http.MethodGet, "/content"}, {http.MethodDelete, ""}} {
		status, _, body = f.do(req[0], "/v1/files/"+up.ID+req[1], f.alice, nil, nil)
		require.Equal(t, http.StatusNotFound, status, req)
		e := decodeEnvelope(t, body)
		require.Equal(t, "No such File object: "+up.ID, e.Error.Message)
		require.Equal(t, "id", strOrEmpty(e.Error.Param))
	}
	require.Empty(t, f.list(f.alice, "").Data)
}

func TestExpiredFilesBehaveAsDeleted(t *testing.T) {
	t.Parallel()
	f := setup(t)
	up := f.uploadOK(f.alice, lines(1))
	_, err := f.pool.Exec(t.Context(), "UPDATE files SET expires_at = now() - interval '1 second' WHERE id = $1", up.ID)
	require.NoError(t, err)
	for _, path := range []string{"/v1/files/" + up.ID, "/v1/files/" + up.ID + "/content"} {
		status, _, _ := f.do(http.MethodGet, path, f.alice, nil, nil)
		require.Equal(t, http.StatusNotFound, status, path)
	}
	status, _, _ := f.do(http.MethodDelete, "/v1/files/"+up.ID, f.alice, nil, nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Empty(t, f.list(f.alice, "").Data)
}

// fileRoutes are every route that names a file.
func fileRoutes(id string) [][2]string {
	return [][2]string{
		{http.MethodGet, "/v1/files/" + id},
		{http.MethodGet, "/v1/files/" + id + "/content"},
		{http.MethodDelete, "/v1/files/" + id},
	}
}

func TestOwnersCannotSeeEachOthersFiles(t *testing.T) {
	t.Parallel()
	f := setup(t)
	alices := f.uploadOK(f.alice, lines(2))
	for _, r := range fileRoutes(alices.ID) {
		status, _, body := f.do(r[0], r[1], f.bob, nil, nil)
		require.Equal(t, http.StatusNotFound, status, "%v: %s", r, body)
		e := decodeEnvelope(t, body)
		require.Equal(t, "No such File object: "+alices.ID, e.Error.Message)
	}
	require.Empty(t, f.list(f.bob, "").Data)
	// Bob's failed delete did not touch it.
	status, _, _ := f.do(http.MethodGet, "/v1/files/"+alices.ID, f.alice, nil, nil)
	require.Equal(t, http.StatusOK, status)
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	f := setup(t)
	up := f.uploadOK(f.alice, lines(1))
	revoked := f.newKey("carol")
	_, err := f.pool.Exec(t.Context(), "UPDATE api_keys SET revoked_at = now() WHERE owner = 'carol'")
	require.NoError(t, err)

	routes := append(fileRoutes(up.ID), [2]string{http.MethodGet, "/v1/files"}, [2]string{http.MethodPost, "/v1/files"}, [2]string{http.MethodGet, "/v1/nothing-here"})
	for _, r := range routes {
		for _, tc := range []struct {
			name, header, code, message string
		}{
			{"missing", "", "", "You didn't provide an API key"},
			{"not bearer", "Basic " + f.alice, "", "You didn't provide an API key"},
			{"wrong", "Bearer sk-volley-not-a-real-key-at-all", "invalid_api_key", "Incorrect API key provided: sk-volley-not-****-all"},
			{"revoked", "Bearer " + revoked, "invalid_api_key", "has been revoked"},
		} {
			h := http.Header{}
			if tc.header != "" {
				h.Set("Authorization", tc.header)
			}
			status, _, body := f.do(r[0], r[1], "", nil, h)
			require.Equal(t, http.StatusUnauthorized, status, "%v %s", r, tc.name)
			e := decodeEnvelope(t, body)
			require.Equal(t, tc.code, strOrEmpty(e.Error.Code), "%v %s", r, tc.name)
			require.Contains(t, e.Error.Message, tc.message, "%v %s", r, tc.name)
			require.NotContains(t, e.Error.Message, revoked, "a key is never echoed whole")
		}
	}
}

func TestUnknownRoutesAndMethodsAnswerWithTheEnvelope(t *testing.T) {
	t.Parallel()
	f := setup(t)
	status, header, body := f.do(http.MethodGet, "/v1/nothing-here", f.alice, nil, nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, "application/json", header.Get("Content-Type"))
	require.Equal(t, "Invalid URL (GET /v1/nothing-here)", decodeEnvelope(t, body).Error.Message)

	status, header, body = f.do(http.MethodPut, "/v1/files", f.alice, nil, nil)
	require.Equal(t, http.StatusMethodNotAllowed, status)
	require.Contains(t, decodeEnvelope(t, body).Error.Message, "PUT /v1/files")
	require.Equal(t, "GET, POST", header.Get("Allow"), "a 405 names the methods the route serves")
	for path, allow := range map[string]string{
		"/v1/files/file-x":           "GET, DELETE",
		"/v1/batches/batch_x/cancel": "POST",
		"/healthz":                   "GET, HEAD",
	} {
		status, header, _ = f.do("TRACE", path, f.alice, nil, nil)
		require.Equal(t, http.StatusMethodNotAllowed, status, path)
		require.Equal(t, allow, header.Get("Allow"), path)
	}

	status, _, body = f.do(http.MethodGet, "/nope", "", nil, nil)
	require.Equal(t, http.StatusNotFound, status)
	decodeEnvelope(t, body)
}

func TestHealthAndRequestIDs(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		status, header, body := f.do(http.MethodGet, path, "", nil, nil)
		require.Equal(t, http.StatusOK, status, path)
		require.JSONEq(t, `"ok"`, string(mustField(t, body, "status")))
		require.Regexp(t, `^req_[0-9a-f]{32}$`, header.Get("x-request-id"))
	}
	_, h1, _ := f.do(http.MethodGet, "/v1/files", f.alice, nil, nil)
	_, h2, _ := f.do(http.MethodGet, "/v1/files", "", nil, nil)
	require.NotEqual(t, h1.Get("x-request-id"), h2.Get("x-request-id"))
	require.NotEmpty(t, h2.Get("x-request-id"), "errors carry a request id too")
}

func mustField(t *testing.T, body []byte, key string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &m))
	return m[key]
}

func jsonDecode(res *http.Response, v any) error { return json.NewDecoder(res.Body).Decode(v) }

// Downloads read a file a chunk at a time, the next while the last is written: every size around a
// chunk's comes out whole and in order, and a client that goes away stops the reading.
func TestContentAcrossChunks(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, n := range []int{contentChunkRows - 1, contentChunkRows, 2 * contentChunkRows, 2*contentChunkRows + 500} {
		content := lines(n)
		up := f.uploadOK(f.alice, content)
		status, _, body := f.do(http.MethodGet, "/v1/files/"+up.ID+"/content", f.alice, nil, nil)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, content, string(body), "%d lines", n)
		status, _, body = f.do(http.MethodGet, fmt.Sprintf("/v1/files/%s/content?offset=%d&limit=%d", up.ID, contentChunkRows-2, contentChunkRows+4), f.alice, nil, nil)
		require.Equal(t, http.StatusOK, status)
		all := strings.SplitAfter(content, "\n")
		want := strings.Join(all[contentChunkRows-2:min(n, 2*contentChunkRows+2)], "")
		require.Equal(t, want, string(body), "%d lines, a selection across chunks", n)
	}

	// Large lines, some larger than a chunk is sized for.
	var big strings.Builder
	for i, size := range []int{1 << 10, contentChunkBytes + 100, 300 << 10, 2 << 20, 3 << 20, 1 << 20, contentChunkBytes, 10, 5 << 20} {
		fmt.Fprintf(&big, `{"custom_id":"big-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"m1","messages":[{"role":"user","content":%q}]}}`+"\n",
			i, strings.Repeat("x", size))
	}
	up := f.uploadOK(f.alice, big.String())
	status, _, body := f.do(http.MethodGet, "/v1/files/"+up.ID+"/content", f.alice, nil, nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, big.String(), string(body), "large lines")

	up = f.uploadOK(f.alice, lines(40*contentChunkRows))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.url+"/v1/files/"+up.ID+"/content", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+f.alice)
	client := &http.Client{Transport: &http.Transport{}}
	res, err := client.Do(req)
	require.NoError(t, err)
	_, err = io.ReadFull(res.Body, make([]byte, 4096))
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	client.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for f.pool.Stat().AcquiredConns() > 0 {
		require.True(t, time.Now().Before(deadline), "the download's reading stops and gives its connection back")
		time.Sleep(10 * time.Millisecond)
	}
}

func TestChunksAreSizedByTheirLargestLine(t *testing.T) {
	t.Parallel()
	of := func(sizes ...int) []contentRow {
		rows := make([]contentRow, len(sizes))
		for i, n := range sizes {
			rows[i] = contentRow{data: make([]byte, n)}
		}
		return rows
	}
	require.Equal(t, contentChunkRows, nextChunkRows(of(600, 700)), "small lines: the most rows")
	require.Equal(t, 4, nextChunkRows(of(600, 1<<20, 700)), "the largest line counts")
	require.Equal(t, 1, nextChunkRows(of(16<<20)), "a line past the bound: one at a time")
	require.Equal(t, contentChunkRows, nextChunkRows(of(0)))
}
