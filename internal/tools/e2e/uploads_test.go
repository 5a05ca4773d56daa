package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"
)

func requireAPIError(t *testing.T, err error, status int, code, param, fragment string) {
	t.Helper()
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr), "want an API error, got %v", err)
	require.Equal(t, status, apiErr.StatusCode)
	require.Equal(t, code, apiErr.Code)
	require.Equal(t, param, apiErr.Param)
	require.Contains(t, apiErr.Message, fragment)
}

func TestUploadsWithTheOfficialSDK(t *testing.T) {
	t.Parallel()
	m := startMock(t)
	v := startVolley(t, dispatchEnv(t, m, 8)...)
	c := v.clientAs(t, "alice")
	other := v.clientAs(t, "bob")

	content := batchLines("up", 300)
	cut1, cut2 := len(content)/3+7, 2*len(content)/3+11 // inside lines
	u, err := c.Uploads.New(ctx(t), openai.UploadNewParams{
		Bytes: int64(len(content)), Filename: "requests.jsonl", MimeType: "text/jsonl", Purpose: openai.FilePurposeBatch,
	})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(u.ID, "upload_"))
	require.Equal(t, openai.UploadStatusPending, u.Status)
	require.Equal(t, u.CreatedAt+3600, u.ExpiresAt)
	require.Equal(t, "requests.jsonl", u.Filename)
	require.Equal(t, "batch", u.Purpose)
	require.Equal(t, int64(len(content)), u.Bytes)
	require.Empty(t, u.File.ID)

	addPart := func(c openai.Client, data string) (*openai.UploadPart, error) {
		return c.Uploads.Parts.New(ctx(t), u.ID, openai.UploadPartNewParams{Data: strings.NewReader(data)})
	}
	p3, err := addPart(c, content[cut2:])
	require.NoError(t, err)
	p1, err := addPart(c, content[:cut1])
	require.NoError(t, err)
	_, err = addPart(c, content[cut1:cut2]) // sent twice, as a retrying client would
	require.NoError(t, err)
	p2, err := addPart(c, content[cut1:cut2])
	require.NoError(t, err)
	require.Equal(t, u.ID, p2.UploadID)
	require.True(t, strings.HasPrefix(p2.ID, "part_"))

	_, err = addPart(other, "x")
	requireAPIError(t, err, http.StatusNotFound, "", "upload_id", "No such Upload object")

	sum := md5.Sum([]byte(content))
	done, err := c.Uploads.Complete(ctx(t), u.ID, openai.UploadCompleteParams{
		PartIDs: []string{p1.ID, p2.ID, p3.ID}, Md5: openai.String(hex.EncodeToString(sum[:])),
	})
	require.NoError(t, err)
	require.Equal(t, openai.UploadStatusCompleted, done.Status)
	require.Equal(t, openai.FileObjectStatusProcessed, done.File.Status)
	require.Equal(t, int64(len(content)), done.File.Bytes)
	require.Equal(t, "requests.jsonl", done.File.Filename)

	res, err := c.Files.Content(ctx(t), done.File.ID)
	require.NoError(t, err)
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, content, string(got))

	b := createBatch(t, c, done.File.ID, "24h")
	b = waitBatch(t, c, b.ID, 60*time.Second, terminal)
	require.Equal(t, openai.BatchStatusCompleted, b.Status)
	require.Equal(t, int64(300), b.RequestCounts.Completed)

	// Nothing more goes into a completed upload.
	_, err = addPart(c, "x")
	requireAPIError(t, err, http.StatusBadRequest, "invalid_state", "upload_id", "status 'completed'")
	_, err = c.Uploads.Complete(ctx(t), u.ID, openai.UploadCompleteParams{PartIDs: []string{p1.ID}})
	requireAPIError(t, err, http.StatusBadRequest, "invalid_state", "upload_id", "status 'completed'")
	_, err = c.Uploads.Cancel(ctx(t), u.ID)
	requireAPIError(t, err, http.StatusBadRequest, "invalid_state", "upload_id", "Cannot cancel an upload with status 'completed'")
}

func TestUploadRefusedAtCompleteWithTheLineNumber(t *testing.T) {
	t.Parallel()
	v := startVolley(t)
	c := v.clientAs(t, "alice")
	first := batchLines("a", 10)
	second := batchLines("b", 4) + `{"custom_id":"b-4","method":"POST","url":"/v1/chat/completions","body":` + "\n" + batchLines("c", 3)
	content := first + second
	u, err := c.Uploads.New(ctx(t), openai.UploadNewParams{Bytes: int64(len(content)), Filename: "bad.jsonl", MimeType: "text/jsonl", Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	var ids []string
	for _, data := range []string{first[:len(first)-5], first[len(first)-5:] + second} {
		p, err := c.Uploads.Parts.New(ctx(t), u.ID, openai.UploadPartNewParams{Data: strings.NewReader(data)})
		require.NoError(t, err)
		ids = append(ids, p.ID)
	}
	_, err = c.Uploads.Complete(ctx(t), u.ID, openai.UploadCompleteParams{PartIDs: ids})
	requireAPIError(t, err, http.StatusBadRequest, "invalid_json_line", "", "Line 15:")

	wrongMD5, err := c.Uploads.Complete(ctx(t), u.ID, openai.UploadCompleteParams{PartIDs: ids[:1]})
	require.Nil(t, wrongMD5)
	requireAPIError(t, err, http.StatusBadRequest, "invalid_value", "part_ids", "but the upload was created for")

	cancelled, err := c.Uploads.Cancel(ctx(t), u.ID)
	require.NoError(t, err, "a refused complete leaves the upload pending")
	require.Equal(t, openai.UploadStatusCancelled, cancelled.Status)
	_, err = c.Uploads.Parts.New(ctx(t), u.ID, openai.UploadPartNewParams{Data: strings.NewReader("x")})
	requireAPIError(t, err, http.StatusBadRequest, "invalid_state", "upload_id", "status 'cancelled'")

	_, err = c.Uploads.New(ctx(t), openai.UploadNewParams{Bytes: 10, Filename: "f.jsonl", MimeType: "text/jsonl", Purpose: openai.FilePurposeFineTune})
	requireAPIError(t, err, http.StatusBadRequest, "invalid_purpose", "purpose", "Invalid purpose 'fine-tune'")
	files, err := c.Files.List(ctx(t), openai.FileListParams{})
	require.NoError(t, err)
	require.Empty(t, files.Data, "no file was made")
}
