package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// apiClient speaks Volley's OpenAI-compatible API with one key.
type apiClient struct {
	base string // e.g. http://127.0.0.1:41234/v1
	key  string
	http *http.Client
}

func newAPIClient(base, key string) *apiClient {
	return &apiClient{base: base, key: key, http: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 4,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      64 << 10,
	}}}
}

// fileObject is the part of OpenAI's File object the benchmark checks.
type fileObject struct {
	ID    string `json:"id"`
	Bytes int64  `json:"bytes"`
}

// uploadFile streams path to POST /files as purpose=batch: the multipart body is produced from
// disk while it is sent, so the client holds no more than a copy buffer of it.
func (c *apiClient) uploadFile(ctx context.Context, path string) (fileObject, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileObject{}, fmt.Errorf("open upload: %w", err)
	}
	defer f.Close()

	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	written := make(chan error, 1)
	go func() {
		err := writeUploadForm(mw, f)
		pw.CloseWithError(err)
		written <- err
	}()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/files", pr)
	if err != nil {
		pr.Close()
		<-written
		return fileObject{}, fmt.Errorf("upload request: %w", err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var out fileObject
	err = c.do(req, &out)
	pr.CloseWithError(errors.New("upload finished")) // unblocks the writer if the server stopped reading
	if werr := <-written; err == nil && werr != nil {
		err = fmt.Errorf("write upload body: %w", werr)
	}
	return out, err
}

// writeUploadForm writes the purpose field, then the file part, then the closing boundary.
func writeUploadForm(mw *multipart.Writer, f *os.File) error {
	if err := mw.WriteField("purpose", "batch"); err != nil {
		return err
	}
	part, err := mw.CreateFormFile("file", filepath.Base(f.Name()))
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(part, f, make([]byte, 256<<10)); err != nil {
		return err
	}
	return mw.Close()
}

// deleteFile deletes a file with DELETE /files/{id}.
func (c *apiClient) deleteFile(ctx context.Context, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.base+"/files/"+url.PathEscape(id), nil)
	if err != nil {
		return fmt.Errorf("delete request: %w", err)
	}
	var out struct {
		Deleted bool `json:"deleted"`
	}
	if err := c.do(req, &out); err != nil {
		return err
	}
	if !out.Deleted {
		return fmt.Errorf("DELETE /files/%s: deleted is false", id)
	}
	return nil
}

// ping lists one file: it checks the key and opens the connection the upload then reuses.
func (c *apiClient) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/files?limit=1", nil)
	if err != nil {
		return fmt.Errorf("list request: %w", err)
	}
	var out json.RawMessage
	return c.do(req, &out)
}

// do sends req with the key and decodes a 200 response's JSON into out.
func (c *apiClient) do(req *http.Request, out any) error {
	req.Header.Set("Authorization", "Bearer "+c.key)
	what := req.Method + " " + strings.TrimPrefix(req.URL.Path, "/v1")
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("%s: read response: %w", what, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", what, res.Status, truncate(string(body), 2000))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: decode response: %w", what, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
