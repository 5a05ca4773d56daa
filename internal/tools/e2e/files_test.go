package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"
)

func batchLines(prefix string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"custom_id":"%s-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"question %d"}]}}`+"\n", prefix, i, i)
	}
	return b.String()
}

func TestFilesWithTheOfficialSDK(t *testing.T) {
	t.Parallel()
	v := startVolley(t)
	c := v.client(v.key("alice"))

	// From a file on disk: the SDK sends its base name.
	path := filepath.Join(t.TempDir(), "requests.jsonl")
	fromDisk := batchLines("disk", 20)
	require.NoError(t, os.WriteFile(path, []byte(fromDisk), 0o600))
	fh, err := os.Open(path)
	require.NoError(t, err)
	defer fh.Close()
	f1, err := c.Files.New(ctx(t), openai.FileNewParams{File: fh, Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	require.Equal(t, "requests.jsonl", f1.Filename)
	require.Equal(t, int64(len(fromDisk)), f1.Bytes)
	require.Equal(t, openai.FileObjectStatusProcessed, f1.Status)
	require.Equal(t, openai.FileObjectPurposeBatch, f1.Purpose)
	require.Equal(t, f1.CreatedAt+30*24*3600, f1.ExpiresAt)

	// From an anonymous reader, with an expiry.
	anon := batchLines("anon", 3)
	f2, err := c.Files.New(ctx(t), openai.FileNewParams{
		File:         strings.NewReader(anon),
		Purpose:      openai.FilePurposeBatch,
		ExpiresAfter: openai.FileNewParamsExpiresAfter{Seconds: 7200},
	})
	require.NoError(t, err)
	require.Equal(t, "anonymous_file", f2.Filename)
	require.Equal(t, f2.CreatedAt+7200, f2.ExpiresAt)

	f3, err := c.Files.New(ctx(t), openai.FileNewParams{File: strings.NewReader(batchLines("third", 1)), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)

	got, err := c.Files.Get(ctx(t), f1.ID)
	require.NoError(t, err)
	require.Equal(t, f1.ID, got.ID)
	require.Equal(t, f1.Bytes, got.Bytes)

	// limit=1 makes the SDK page through every file with after= cursors.
	var ids []string
	iter := c.Files.ListAutoPaging(ctx(t), openai.FileListParams{Limit: openai.Int(1)})
	for iter.Next() {
		ids = append(ids, iter.Current().ID)
		require.Less(t, len(ids), 10, "paging must end")
	}
	require.NoError(t, iter.Err())
	require.Equal(t, []string{f3.ID, f2.ID, f1.ID}, ids)

	for id, want := range map[string]string{f1.ID: fromDisk, f2.ID: anon} {
		res, err := c.Files.Content(ctx(t), id)
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		require.NoError(t, err)
		require.True(t, bytes.Equal([]byte(want), body), "content is byte-identical")
		require.Equal(t, int64(len(want)), res.ContentLength)
	}

	del, err := c.Files.Delete(ctx(t), f1.ID)
	require.NoError(t, err)
	require.True(t, del.Deleted)
	require.Equal(t, f1.ID, del.ID)
	_, err = c.Files.Get(ctx(t), f1.ID)
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr), "got %v", err)
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	require.Equal(t, "No such File object: "+f1.ID, apiErr.Message)

	// Another owner sees nothing.
	other := v.client(v.key("bob"))
	_, err = other.Files.Get(ctx(t), f2.ID)
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusNotFound, apiErr.StatusCode)

	// A bad upload is refused with the line and code, through the SDK's error type.
	_, err = c.Files.New(ctx(t), openai.FileNewParams{File: strings.NewReader(anon + "{oops}\n"), Purpose: openai.FilePurposeBatch})
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
	require.Equal(t, "invalid_json_line", apiErr.Code)
	require.Contains(t, apiErr.Message, "Line 4:")
}
