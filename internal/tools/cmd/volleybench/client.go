package main

import (
	"bytes"
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

// batchObject is the part of OpenAI's Batch object the benchmark reads.
type batchObject struct {
	ID            string  `json:"id"`
	Status        string  `json:"status"`
	OutputFileID  *string `json:"output_file_id"`
	ErrorFileID   *string `json:"error_file_id"`
	RequestCounts struct {
		Total     int64 `json:"total"`
		Completed int64 `json:"completed"`
		Failed    int64 `json:"failed"`
	} `json:"request_counts"`
}

// terminal reports a status a batch never leaves.
func (b batchObject) terminal() bool {
	switch b.Status {
	case "completed", "failed", "expired", "cancelled":
		return true
	}
	return false
}

// createBatch creates a chat-completions batch of an uploaded file with POST /batches.
func (c *apiClient) createBatch(ctx context.Context, fileID string) (batchObject, error) {
	body, err := json.Marshal(map[string]string{
		"input_file_id": fileID, "endpoint": benchURL, "completion_window": "24h",
	})
	if err != nil {
		return batchObject{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/batches", bytes.NewReader(body))
	if err != nil {
		return batchObject{}, fmt.Errorf("create batch request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	var out batchObject
	return out, c.do(req, &out)
}

// getBatch reads a batch with GET /batches/{id}.
func (c *apiClient) getBatch(ctx context.Context, id string) (batchObject, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/batches/"+url.PathEscape(id), nil)
	if err != nil {
		return batchObject{}, fmt.Errorf("get batch request: %w", err)
	}
	var out batchObject
	return out, c.do(req, &out)
}

// downloaded is what a download read.
type downloaded struct {
	bytes int64
	lines int64
	first []byte // the first line, for a look at its content
}

// downloadFile reads GET /files/{id}/content to the end, counting bytes and lines; nothing but
// the first line is kept.
func (c *apiClient) downloadFile(ctx context.Context, id string) (downloaded, error) {
	var d downloaded
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/files/"+url.PathEscape(id)+"/content", nil)
	if err != nil {
		return d, fmt.Errorf("download request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	res, err := c.http.Do(req)
	if err != nil {
		return d, fmt.Errorf("GET /files/%s/content: %w", id, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 2000))
		return d, fmt.Errorf("GET /files/%s/content: %s: %s", id, res.Status, body)
	}
	buf := make([]byte, 256<<10)
	for {
		n, err := res.Body.Read(buf)
		chunk := buf[:n]
		if d.lines == 0 {
			if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
				d.first = append(d.first, chunk[:i+1]...)
			} else {
				d.first = append(d.first, chunk...)
			}
		}
		d.bytes += int64(n)
		d.lines += int64(bytes.Count(chunk, []byte{'\n'}))
		if err == io.EOF {
			break
		}
		if err != nil {
			return d, fmt.Errorf("GET /files/%s/content: read after %d bytes: %w", id, d.bytes, err)
		}
	}
	if res.ContentLength >= 0 && d.bytes != res.ContentLength {
		return d, fmt.Errorf("GET /files/%s/content: read %d bytes, Content-Length says %d", id, d.bytes, res.ContentLength)
	}
	return d, nil
}

// effectiveLimit reads a model's effective limit from GET /v1/models (0 when it has none).
func (c *apiClient) effectiveLimit(ctx context.Context, model string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/models", nil)
	if err != nil {
		return 0, fmt.Errorf("models request: %w", err)
	}
	var out struct {
		Data []struct {
			ID             string `json:"id"`
			EffectiveLimit *int   `json:"effective_limit"`
		} `json:"data"`
	}
	if err := c.do(req, &out); err != nil {
		return 0, err
	}
	for _, m := range out.Data {
		if m.ID == model && m.EffectiveLimit != nil {
			return *m.EffectiveLimit, nil
		}
	}
	return 0, nil
}
