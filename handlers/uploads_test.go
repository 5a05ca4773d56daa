package handlers

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type uploadJSON struct {
	ID        string    `json:"id"`
	Object    string    `json:"object"`
	Bytes     int64     `json:"bytes"`
	CreatedAt int64     `json:"created_at"`
	ExpiresAt int64     `json:"expires_at"`
	Filename  string    `json:"filename"`
	Purpose   string    `json:"purpose"`
	Status    string    `json:"status"`
	File      *fileJSON `json:"file"`
}

type partJSON struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	CreatedAt int64  `json:"created_at"`
	UploadID  string `json:"upload_id"`
}

func (f *fixture) createUpload(key string, size int) uploadJSON {
	f.t.Helper()
	status, body := f.postJSON("/v1/uploads", key, fmt.Sprintf(`{"bytes":%d,"filename":"big.jsonl","mime_type":"text/jsonl","purpose":"batch"}`, size))
	require.Equal(f.t, http.StatusOK, status, string(body))
	var u uploadJSON
	require.NoError(f.t, json.Unmarshal(body, &u))
	return u
}

func (f *fixture) addPart(key, uploadID, content string) (int, []byte) {
	f.t.Helper()
	ct, body := multipartBody(f.t, part{name: "data", filename: "blob", content: content})
	status, _, b := f.do(http.MethodPost, "/v1/uploads/"+uploadID+"/parts", key, bytes.NewReader(body), http.Header{"Content-Type": {ct}})
	return status, b
}

func (f *fixture) addPartOK(key, uploadID, content string) string {
	f.t.Helper()
	status, body := f.addPart(key, uploadID, content)
	require.Equal(f.t, http.StatusOK, status, string(body))
	var p partJSON
	require.NoError(f.t, json.Unmarshal(body, &p))
	require.Equal(f.t, "upload.part", p.Object)
	require.Equal(f.t, uploadID, p.UploadID)
	require.True(f.t, strings.HasPrefix(p.ID, "part_"))
	return p.ID
}

func (f *fixture) complete(key, uploadID string, partIDs []string, md5 string) (int, []byte) {
	f.t.Helper()
	body := map[string]any{"part_ids": partIDs}
	if md5 != "" {
		body["md5"] = md5
	}
	b, err := json.Marshal(body)
	require.NoError(f.t, err)
	return f.postJSON("/v1/uploads/"+uploadID+"/complete", key, string(b))
}

// uploadInParts sends content as an upload cut at the given offsets and completes it.
func (f *fixture) uploadInParts(key, content string, cuts ...int) (uploadJSON, int, []byte) {
	f.t.Helper()
	u := f.createUpload(key, len(content))
	var ids []string
	prev := 0
	slices.Sort(cuts)
	for _, c := range append(cuts, len(content)) {
		if c > prev && c <= len(content) {
			ids = append(ids, f.addPartOK(key, u.ID, content[prev:c]))
			prev = c
		}
	}
	status, body := f.complete(key, u.ID, ids, "")
	return u, status, body
}

func (f *fixture) uploadRows() (uploads, parts, chunks int) {
	f.t.Helper()
	ctx := context.Background()
	require.NoError(f.t, f.pool.QueryRow(ctx, "SELECT count(*) FROM uploads").Scan(&uploads))
	require.NoError(f.t, f.pool.QueryRow(ctx, "SELECT count(*) FROM upload_parts").Scan(&parts))
	require.NoError(f.t, f.pool.QueryRow(ctx, "SELECT count(*) FROM upload_chunks").Scan(&chunks))
	return uploads, parts, chunks
}

func TestUploadJoinsTheNamedPartsInOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	content := lines(40)
	a, b, c := content[:1000], content[1000:2500], content[2500:] // cuts fall inside lines
	u := f.createUpload(f.alice, len(content))
	require.Equal(t, "upload", u.Object)
	require.True(t, strings.HasPrefix(u.ID, "upload_"))
	require.Equal(t, "pending", u.Status)
	require.Equal(t, u.CreatedAt+3600, u.ExpiresAt)
	require.Equal(t, "big.jsonl", u.Filename)
	require.Equal(t, "batch", u.Purpose)
	require.Nil(t, u.File)

	// Sent out of order, one part twice, and a part that is never named.
	pc := f.addPartOK(f.alice, u.ID, c)
	pa := f.addPartOK(f.alice, u.ID, a)
	f.addPartOK(f.alice, u.ID, a)
	f.addPartOK(f.alice, u.ID, "garbage that is not named\n")
	pb := f.addPartOK(f.alice, u.ID, b)
	empty := f.addPartOK(f.alice, u.ID, "") // adds nothing

	sum := md5.Sum([]byte(content))
	status, body := f.complete(f.alice, u.ID, []string{pa, empty, pb, pc}, strings.ToUpper(hex.EncodeToString(sum[:])))
	require.Equal(t, http.StatusOK, status, string(body))
	var done uploadJSON
	require.NoError(t, json.Unmarshal(body, &done))
	require.Equal(t, "completed", done.Status)
	require.Equal(t, u.ID, done.ID)
	require.NotNil(t, done.File)
	require.Equal(t, "processed", done.File.Status)
	require.Equal(t, "big.jsonl", done.File.Filename)
	require.Equal(t, "batch", done.File.Purpose)
	require.Equal(t, int64(len(content)), done.File.Bytes)
	require.Equal(t, done.File.CreatedAt+30*24*3600, *done.File.ExpiresAt)

	s, _, got := f.do(http.MethodGet, "/v1/files/"+done.File.ID+"/content", f.alice, nil, nil)
	require.Equal(t, http.StatusOK, s)
	require.Equal(t, content, string(got), "the file is the named parts joined in order")
	s, _, listed := f.do(http.MethodGet, "/v1/files", f.alice, nil, nil)
	require.Equal(t, http.StatusOK, s)
	require.Contains(t, string(listed), done.File.ID)

	_, parts, chunks := f.uploadRows()
	require.Zero(t, parts, "a completed upload's parts are removed")
	require.Zero(t, chunks)
}

func TestUploadFileExpiryAndLargeParts(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// Parts of several chunks each, cut mid-line.
	var sb strings.Builder
	for i := 0; sb.Len() < 3*uploadChunkBytes+5000; i++ {
		sb.WriteString(paddedLine(fmt.Sprintf("r%d", i), 3000) + "\n")
	}
	content := sb.String()
	status, body := f.postJSON("/v1/uploads", f.alice, fmt.Sprintf(`{"bytes":%d,"filename":"dir/x.jsonl","mime_type":"application/jsonl","purpose":"batch","expires_after":{"anchor":"created_at","seconds":7200}}`, len(content)))
	require.Equal(t, http.StatusOK, status, string(body))
	var u uploadJSON
	require.NoError(t, json.Unmarshal(body, &u))
	require.Equal(t, "x.jsonl", u.Filename, "a path is reduced to its last element, as for files")
	cut := 2*uploadChunkBytes + 77
	p1 := f.addPartOK(f.alice, u.ID, content[:cut])
	p2 := f.addPartOK(f.alice, u.ID, content[cut:])
	status, body = f.complete(f.alice, u.ID, []string{p1, p2}, "")
	require.Equal(t, http.StatusOK, status, string(body))
	var done uploadJSON
	require.NoError(t, json.Unmarshal(body, &done))
	require.Equal(t, done.File.CreatedAt+7200, *done.File.ExpiresAt)
	_, _, got := f.do(http.MethodGet, "/v1/files/"+done.File.ID+"/content", f.alice, nil, nil)
	require.True(t, content == string(got), "content read back byte-identical")
}

// Completing validates the assembled content exactly as POST /v1/files validates an upload: the
// same status, code, param and message, with line numbers counted across part boundaries.
func TestUploadCompleteValidatesLikeFiles(t *testing.T) {
	t.Parallel()
	bad := map[string]string{
		"invalid json in the second part": line("a") + "\n" + line("b") + "\n{\"custom_id\": \n" + line("c") + "\n",
		"duplicate across parts":          lines(3) + line("req-2") + "\n",
		"unsupported url":                 lines(2) + strings.Replace(line("b"), "/v1/chat/completions", "/v1/images/generations", 1) + "\n",
		"invalid utf-8 split by a cut":    line("a") + "\n" + strings.Replace(line("b"), "hi", "h\xc3\xa9\xff", 1) + "\n",
		"line too long across parts":      line("a") + "\n" + paddedLine("b", 9000) + "\n",
		"too many lines":                  lines(6),
		"only blank lines":                "\n  \n\r\n",
		"unterminated last line":          lines(2) + `{"custom_id":"z"`,
	}
	for name, content := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, smallLimits)
			status, direct := f.upload(f.alice, false, part{name: "purpose", content: "batch"}, part{name: "file", filename: "in.jsonl", content: content})
			require.Equal(t, http.StatusBadRequest, status, string(direct))
			want := decodeEnvelope(t, direct)

			cuts := []int{len(line("a")) + 5, len(content) / 2, len(content) - 3}
			u, status, body := f.uploadInParts(f.alice, content, cuts...)
			require.Equal(t, http.StatusBadRequest, status, string(body))
			require.Equal(t, want, decodeEnvelope(t, body), "the same answer as POST /v1/files")

			files, fileLines := f.rowCounts()
			require.Zero(t, files)
			require.Zero(t, fileLines)
			_, parts, _ := f.uploadRows()
			require.NotZero(t, parts, "a refused complete keeps the parts")
			s, b := f.postJSON("/v1/uploads/"+u.ID+"/cancel", f.alice, "")
			require.Equal(t, http.StatusOK, s, "the upload is still pending: %s", b)
		})
	}
}

func TestUploadLineNumbersCountAcrossParts(t *testing.T) {
	t.Parallel()
	f := setup(t)
	part1 := lines(30)
	part2 := lines(20) // req-1..req-20 again: the first duplicate is the 31st line
	_, status, body := f.uploadInParts(f.alice, part1+part2, len(part1))
	require.Equal(t, http.StatusBadRequest, status)
	e := decodeEnvelope(t, body)
	require.Equal(t, "duplicate_custom_id", strOrEmpty(e.Error.Code))
	require.Contains(t, e.Error.Message, "Line 31: custom_id 'req-1' is already used on line 1")
}

func TestUploadRejectsBadRequests(t *testing.T) {
	t.Parallel()
	type call func(f *fixture) (int, []byte)
	create := func(body string) call {
		return func(f *fixture) (int, []byte) { return f.postJSON("/v1/uploads", f.alice, body) }
	}
	// pending makes a pending upload of content sent as one part, returning it and the part.
	pending := func(f *fixture, content string) (uploadJSON, string) {
		u := f.createUpload(f.alice, len(content))
		return u, f.addPartOK(f.alice, u.ID, content)
	}
	expire := func(f *fixture, id string) {
		_, err := f.pool.Exec(context.Background(), "UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = $1", id)
		require.NoError(f.t, err)
	}
	completed := func(f *fixture) (uploadJSON, string) {
		u, p := pending(f, lines(1))
		s, b := f.complete(f.alice, u.ID, []string{p}, "")
		require.Equal(f.t, http.StatusOK, s, string(b))
		return u, p
	}
	cancelled := func(f *fixture) uploadJSON {
		u, _ := pending(f, lines(1))
		s, b := f.postJSON("/v1/uploads/"+u.ID+"/cancel", f.alice, "")
		require.Equal(f.t, http.StatusOK, s, string(b))
		return u
	}
	cases := []struct {
		name    string
		do      call
		status  int
		code    string
		param   string
		message string
	}{
		// POST /v1/uploads
		{"create: not json", create(`{"bytes":`), 400, "invalid_json", "", "parse"},
		{"create: missing filename", create(`{"bytes":1,"mime_type":"text/jsonl","purpose":"batch"}`), 400, "missing_required_parameter", "filename", "'filename'"},
		{"create: missing purpose", create(`{"bytes":1,"filename":"a.jsonl","mime_type":"text/jsonl"}`), 400, "missing_required_parameter", "purpose", "'purpose'"},
		{"create: missing mime_type", create(`{"bytes":1,"filename":"a.jsonl","purpose":"batch"}`), 400, "missing_required_parameter", "mime_type", "'mime_type'"},
		{"create: NUL in filename", create(`{"bytes":1,"filename":"a\u0000.jsonl","mime_type":"text/jsonl","purpose":"batch"}`), 400, "invalid_value", "filename", "NUL"},
		{"create: NUL in mime_type", create(`{"bytes":1,"filename":"a.jsonl","mime_type":"text/\u0000","purpose":"batch"}`), 400, "invalid_value", "mime_type", "NUL"},
		{"create: mime_type too long", create(`{"bytes":1,"filename":"a.jsonl","purpose":"batch","mime_type":"` + strings.Repeat("m", 256) + `"}`), 400, "invalid_value", "mime_type", "255 bytes"},
		{"create: wrong purpose", create(`{"bytes":1,"filename":"a.jsonl","mime_type":"text/jsonl","purpose":"fine-tune"}`), 400, "invalid_purpose", "purpose", "Invalid purpose 'fine-tune'"},
		{"create: negative bytes", create(`{"bytes":-1,"filename":"a.jsonl","mime_type":"text/jsonl","purpose":"batch"}`), 400, "invalid_value", "bytes", "-1"},
		{"create: bytes not a number", create(`{"bytes":"many","filename":"a.jsonl","mime_type":"text/jsonl","purpose":"batch"}`), 400, "invalid_value", "bytes", `"many"`},
		{"create: bytes null", create(`{"bytes":null,"filename":"a.jsonl","mime_type":"text/jsonl","purpose":"batch"}`), 400, "invalid_value", "bytes", "null"},
		{"create: bytes fractional", create(`{"bytes":1.5,"filename":"a.jsonl","mime_type":"text/jsonl","purpose":"batch"}`), 400, "invalid_value", "bytes", "1.5"},
		{"create: missing bytes", create(`{"filename":"a.jsonl","mime_type":"text/jsonl","purpose":"batch"}`), 400, "missing_required_parameter", "bytes", "'bytes'"},
		{"create: over the file limit", create(`{"bytes":200000001,"filename":"a.jsonl","mime_type":"text/jsonl","purpose":"batch"}`), 400, "file_too_large", "bytes", "200000000"},
		{"create: bad expiry anchor", create(`{"bytes":1,"filename":"a.jsonl","mime_type":"text/jsonl","purpose":"batch","expires_after":{"anchor":"now","seconds":3600}}`), 400, "invalid_value", "expires_after.anchor", "created_at"},
		{"create: expiry too long", create(`{"bytes":1,"filename":"a.jsonl","mime_type":"text/jsonl","purpose":"batch","expires_after":{"anchor":"created_at","seconds":99999999}}`), 400, "invalid_value", "expires_after.seconds", "3600 to 2592000"},
		{"create: no key", func(f *fixture) (int, []byte) {
			return f.postJSON("/v1/uploads", "", `{"bytes":1,"filename":"a.jsonl","mime_type":"text/jsonl","purpose":"batch"}`)
		}, 401, "", "", "API key"},

		// POST /v1/uploads/{id}/parts
		{"part: unknown upload", func(f *fixture) (int, []byte) { return f.addPart(f.alice, "upload_nope", "x") }, 404, "", "upload_id", "No such Upload object: upload_nope"},
		{"part: another owner's upload", func(f *fixture) (int, []byte) {
			u := f.createUpload(f.bob, 1)
			return f.addPart(f.alice, u.ID, "x")
		}, 404, "", "upload_id", "No such Upload object"},
		{"part: no data field", func(f *fixture) (int, []byte) {
			u := f.createUpload(f.alice, 1)
			ct, body := multipartBody(f.t, part{name: "other", content: "x"})
			s, _, b := f.do(http.MethodPost, "/v1/uploads/"+u.ID+"/parts", f.alice, bytes.NewReader(body), http.Header{"Content-Type": {ct}})
			return s, b
		}, 400, "missing_required_parameter", "data", "'data'"},
		{"part: two data fields", func(f *fixture) (int, []byte) {
			u := f.createUpload(f.alice, 1)
			ct, body := multipartBody(f.t, part{name: "data", filename: "a", content: "x"}, part{name: "data", filename: "b", content: "y"})
			s, _, b := f.do(http.MethodPost, "/v1/uploads/"+u.ID+"/parts", f.alice, bytes.NewReader(body), http.Header{"Content-Type": {ct}})
			return s, b
		}, 400, "invalid_multipart", "data", "more than one"},
		{"part: not multipart", func(f *fixture) (int, []byte) {
			u := f.createUpload(f.alice, 1)
			return f.postJSON("/v1/uploads/"+u.ID+"/parts", f.alice, `{"data":"x"}`)
		}, 400, "invalid_multipart", "", "multipart/form-data"},
		{"part: truncated multipart", func(f *fixture) (int, []byte) {
			u := f.createUpload(f.alice, 1)
			ct, body := multipartBody(f.t, part{name: "data", filename: "blob", content: strings.Repeat("x", 5000)})
			s, _, b := f.do(http.MethodPost, "/v1/uploads/"+u.ID+"/parts", f.alice, bytes.NewReader(body[:len(body)-40]), http.Header{"Content-Type": {ct}})
			return s, b
		}, 400, "invalid_multipart", "", "could not be read"},
		{"part: over 64 MiB while streaming", func(f *fixture) (int, []byte) {
			u := f.createUpload(f.alice, 1)
			return f.streamPart(u.ID, maxPartBytes+1, false)
		}, 400, "part_too_large", "data", "67108864 bytes"},
		{"part: declared over 64 MiB", func(f *fixture) (int, []byte) {
			u := f.createUpload(f.alice, 1)
			return f.streamPart(u.ID, maxPartBytes+multipartOverhead+1, true)
		}, 400, "part_too_large", "data", "67108864 bytes"},
		{"part: parts beyond twice the upload", func(f *fixture) (int, []byte) {
			u := f.createUpload(f.alice, 1)
			f.addPartOK(f.alice, u.ID, strings.Repeat("x", 40<<20))
			return f.addPart(f.alice, u.ID, strings.Repeat("x", 25<<20))
		}, 400, "upload_too_large", "data", "twice the upload's 1 bytes plus 64 MiB"},
		{"part: completed upload", func(f *fixture) (int, []byte) {
			u, _ := completed(f)
			return f.addPart(f.alice, u.ID, "x")
		}, 400, "invalid_state", "upload_id", "Cannot add a part to an upload with status 'completed'"},
		{"part: cancelled upload", func(f *fixture) (int, []byte) {
			return f.addPart(f.alice, cancelled(f).ID, "x")
		}, 400, "invalid_state", "upload_id", "status 'cancelled'"},
		{"part: expired upload", func(f *fixture) (int, []byte) {
			u := f.createUpload(f.alice, 1)
			expire(f, u.ID)
			return f.addPart(f.alice, u.ID, "x")
		}, 400, "invalid_state", "upload_id", "status 'expired'"},

		// POST /v1/uploads/{id}/complete
		{"complete: unknown upload", func(f *fixture) (int, []byte) { return f.complete(f.alice, "upload_nope", []string{}, "") }, 404, "", "upload_id", "No such Upload object"},
		{"complete: another owner's upload", func(f *fixture) (int, []byte) {
			u := f.createUpload(f.bob, 1)
			return f.complete(f.alice, u.ID, []string{}, "")
		}, 404, "", "upload_id", "No such Upload object"},
		{"complete: not json", func(f *fixture) (int, []byte) {
			u, _ := pending(f, lines(1))
			return f.postJSON("/v1/uploads/"+u.ID+"/complete", f.alice, `{"part_ids":[`)
		}, 400, "invalid_json", "", "parse"},
		{"complete: part_ids not a list", func(f *fixture) (int, []byte) {
			u, _ := pending(f, lines(1))
			return f.postJSON("/v1/uploads/"+u.ID+"/complete", f.alice, `{"part_ids":"part_1"}`)
		}, 400, "invalid_json", "", ""},
		{"complete: missing part_ids", func(f *fixture) (int, []byte) {
			u, _ := pending(f, lines(1))
			return f.postJSON("/v1/uploads/"+u.ID+"/complete", f.alice, `{}`)
		}, 400, "missing_required_parameter", "part_ids", "'part_ids'"},
		{"complete: a part listed twice", func(f *fixture) (int, []byte) {
			u, p := pending(f, lines(1))
			return f.complete(f.alice, u.ID, []string{p, p}, "")
		}, 400, "invalid_value", "part_ids", "listed twice"},
		{"complete: too many parts", func(f *fixture) (int, []byte) {
			u, _ := pending(f, lines(1))
			ids := make([]string, maxUploadParts+1)
			for i := range ids {
				ids[i] = fmt.Sprintf("part_%d", i)
			}
			return f.complete(f.alice, u.ID, ids, "")
		}, 400, "invalid_value", "part_ids", "at most 10000"},
		{"complete: unknown part", func(f *fixture) (int, []byte) {
			u, _ := pending(f, lines(1))
			return f.complete(f.alice, u.ID, []string{"part_nope"}, "")
		}, 400, "invalid_value", "part_ids", "has no part 'part_nope'"},
		{"complete: a part of another upload", func(f *fixture) (int, []byte) {
			u, _ := pending(f, lines(1))
			_, other := pending(f, lines(1))
			return f.complete(f.alice, u.ID, []string{other}, "")
		}, 400, "invalid_value", "part_ids", "has no part"},
		{"complete: sizes do not add up", func(f *fixture) (int, []byte) {
			content := lines(2)
			u := f.createUpload(f.alice, len(content))
			p := f.addPartOK(f.alice, u.ID, content[:10])
			return f.complete(f.alice, u.ID, []string{p}, "")
		}, 400, "invalid_value", "part_ids", fmt.Sprintf("hold 10 bytes, but the upload was created for %d bytes", len(lines(2)))},
		{"complete: md5 not hex", func(f *fixture) (int, []byte) {
			u, p := pending(f, lines(1))
			return f.complete(f.alice, u.ID, []string{p}, "xyz")
		}, 400, "invalid_value", "md5", "32 hexadecimal digits"},
		{"complete: md5 empty", func(f *fixture) (int, []byte) {
			u, p := pending(f, lines(1))
			return f.postJSON("/v1/uploads/"+u.ID+"/complete", f.alice, `{"part_ids":["`+p+`"],"md5":""}`)
		}, 400, "invalid_value", "md5", "32 hexadecimal digits"},
		{"complete: md5 mismatch", func(f *fixture) (int, []byte) {
			u, p := pending(f, lines(1))
			return f.complete(f.alice, u.ID, []string{p}, strings.Repeat("0", 32))
		}, 400, "md5_mismatch", "md5", "not 00000000000000000000000000000000"},
		{"complete: empty upload", func(f *fixture) (int, []byte) {
			u := f.createUpload(f.alice, 0)
			return f.complete(f.alice, u.ID, []string{}, "")
		}, 400, "empty_file", "file", "no requests"},
		{"complete: already completed", func(f *fixture) (int, []byte) {
			u, p := completed(f)
			return f.complete(f.alice, u.ID, []string{p}, "")
		}, 400, "invalid_state", "upload_id", "Cannot complete an upload with status 'completed'"},
		{"complete: cancelled", func(f *fixture) (int, []byte) {
			return f.complete(f.alice, cancelled(f).ID, []string{}, "")
		}, 400, "invalid_state", "upload_id", "status 'cancelled'"},
		{"complete: expired", func(f *fixture) (int, []byte) {
			u, p := pending(f, lines(1))
			expire(f, u.ID)
			return f.complete(f.alice, u.ID, []string{p}, "")
		}, 400, "invalid_state", "upload_id", "status 'expired'"},

		// POST /v1/uploads/{id}/cancel
		{"cancel: unknown upload", func(f *fixture) (int, []byte) { return f.postJSON("/v1/uploads/upload_nope/cancel", f.alice, "") }, 404, "", "upload_id", "No such Upload object"},
		{"cancel: another owner's upload", func(f *fixture) (int, []byte) {
			return f.postJSON("/v1/uploads/"+f.createUpload(f.bob, 1).ID+"/cancel", f.alice, "")
		}, 404, "", "upload_id", "No such Upload object"},
		{"cancel: completed", func(f *fixture) (int, []byte) {
			u, _ := completed(f)
			return f.postJSON("/v1/uploads/"+u.ID+"/cancel", f.alice, "")
		}, 400, "invalid_state", "upload_id", "Cannot cancel an upload with status 'completed'"},
		{"cancel: expired", func(f *fixture) (int, []byte) {
			u := f.createUpload(f.alice, 1)
			expire(f, u.ID)
			return f.postJSON("/v1/uploads/"+u.ID+"/cancel", f.alice, "")
		}, 400, "invalid_state", "upload_id", "status 'expired'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			status, body := tc.do(f)
			require.Equal(t, tc.status, status, "body: %s", body)
			e := decodeEnvelope(t, body)
			require.Equal(t, "invalid_request_error", e.Error.Type)
			require.Equal(t, tc.code, strOrEmpty(e.Error.Code), "message: %s", e.Error.Message)
			require.Equal(t, tc.param, strOrEmpty(e.Error.Param), "message: %s", e.Error.Message)
			require.Contains(t, e.Error.Message, tc.message)
			var stray int
			require.NoError(t, f.pool.QueryRow(context.Background(),
				"SELECT count(*) FROM files f WHERE NOT EXISTS (SELECT 1 FROM uploads u WHERE u.file_id = f.id)").Scan(&stray))
			require.Zero(t, stray, "a refused call makes no file")
			if strings.HasPrefix(tc.name, "part: ") {
				var empty int
				require.NoError(t, f.pool.QueryRow(context.Background(),
					"SELECT count(*) FROM upload_parts p WHERE NOT EXISTS (SELECT 1 FROM upload_chunks c WHERE c.part_id = p.id)").Scan(&empty))
				require.Zero(t, empty, "a refused part leaves nothing behind")
			}
		})
	}
}

// streamPart sends a part of n bytes generated on the fly, chunked or with its length declared.
func (f *fixture) streamPart(uploadID string, n int64, declared bool) (int, []byte) {
	f.t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		w, err := mw.CreateFormFile("data", "blob")
		if err == nil {
			_, err = io.CopyN(w, zeros{}, n)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequest(http.MethodPost, f.url+"/v1/uploads/"+uploadID+"/parts", pr)
	require.NoError(f.t, err)
	if declared {
		req.ContentLength = n + 200
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+f.alice)
	res, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(f.t, err)
	_ = pr.CloseWithError(io.ErrClosedPipe)
	return res.StatusCode, b
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestCancelUploadRemovesItsParts(t *testing.T) {
	t.Parallel()
	f := setup(t)
	u := f.createUpload(f.alice, 10)
	f.addPartOK(f.alice, u.ID, "0123456789")
	for range 2 { // cancelling again returns the cancelled upload
		status, body := f.postJSON("/v1/uploads/"+u.ID+"/cancel", f.alice, "")
		require.Equal(t, http.StatusOK, status, string(body))
		var out uploadJSON
		require.NoError(t, json.Unmarshal(body, &out))
		require.Equal(t, "cancelled", out.Status)
		require.Nil(t, out.File)
	}
	_, parts, chunks := f.uploadRows()
	require.Zero(t, parts)
	require.Zero(t, chunks)
}

func TestAnUploadPastItsHourReadsExpired(t *testing.T) {
	t.Parallel()
	f := setup(t)
	u := f.createUpload(f.alice, 1)
	_, err := f.pool.Exec(context.Background(), "UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = $1", u.ID)
	require.NoError(t, err)
	status, body := f.postJSON("/v1/uploads/"+u.ID+"/cancel", f.alice, "")
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, string(body), "expired")
}

func TestUploadPartsInParallel(t *testing.T) {
	t.Parallel()
	f := setup(t)
	content := lines(200)
	const n = 8
	size := (len(content) + n - 1) / n
	u := f.createUpload(f.alice, len(content))
	ids := make([]string, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			chunk := content[i*size : min((i+1)*size, len(content))]
			ct, body := multipartBody(t, part{name: "data", filename: "blob", content: chunk})
			req, _ := http.NewRequest(http.MethodPost, f.url+"/v1/uploads/"+u.ID+"/parts", bytes.NewReader(body))
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Authorization", "Bearer "+f.alice)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			var p partJSON
			if err := json.NewDecoder(res.Body).Decode(&p); err != nil || res.StatusCode != 200 {
				errs <- fmt.Errorf("part %d: status %d, %v", i, res.StatusCode, err)
				return
			}
			ids[i] = p.ID
			errs <- nil
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
	status, body := f.complete(f.alice, u.ID, ids, "")
	require.Equal(t, http.StatusOK, status, string(body))
	var done uploadJSON
	require.NoError(t, json.Unmarshal(body, &done))
	_, _, got := f.do(http.MethodGet, "/v1/files/"+done.File.ID+"/content", f.alice, nil, nil)
	require.Equal(t, content, string(got))
}

// A part whose upload is completed while it streams in waits for that outcome and is refused.
func TestAPartLandingDuringCompleteIsRefused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	u := f.createUpload(f.alice, 10)
	ctx := context.Background()
	tx, err := f.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SELECT 1 FROM uploads WHERE id = $1 FOR NO KEY UPDATE", u.ID) // as completing does
	require.NoError(t, err)

	type answer struct {
		status int
		body   []byte
	}
	done := make(chan answer, 1)
	go func() {
		s, b := f.addPart(f.alice, u.ID, "0123456789")
		done <- answer{s, b}
	}()
	// Wait until the part is blocked on the upload's lock, then complete the upload.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR SHARE%'`).Scan(&waiting))
		if waiting > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the part never waited for the upload's lock")
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	_, err = tx.Exec(ctx, "UPDATE uploads SET status = 'completed' WHERE id = $1", u.ID)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	a := <-done
	require.Equal(t, http.StatusBadRequest, a.status, string(a.body))
	e := decodeEnvelope(t, a.body)
	require.Equal(t, "invalid_state", strOrEmpty(e.Error.Code))
	require.Contains(t, e.Error.Message, "status 'completed'")
	_, parts, chunks := f.uploadRows()
	require.Zero(t, parts, "the refused part was rolled back")
	require.Zero(t, chunks)
}
