package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// File runs `volley file ARGS`.
func File(ctx context.Context, args []string, o IO) error {
	if len(args) == 0 {
		return &UsageError{Msg: "file: give a command", Usage: FileUsage}
	}
	sub, args := args[0], args[1:]
	fs := newFlags("file "+sub, FileUsage)
	jsonOut := fs.Bool("json", false, "print objects as JSON")
	purpose := fs.String("purpose", "", "purpose of the file")
	limit := fs.Int64("limit", 20, "how many to list (1-10000)")
	after := fs.String("after", "", "list after this id")
	out := fs.String("out", "", "write the content to this file")
	switch sub {
	case "upload", "list", "get", "download", "delete":
	case "help", "-h", "--help":
		return &UsageError{Usage: FileUsage}
	default:
		return &UsageError{Msg: fmt.Sprintf("file: unknown command %q", sub), Usage: FileUsage}
	}
	if err := fs.parse(args); err != nil {
		return err
	}
	var err error
	switch sub {
	case "list":
		err = fs.want(0, "")
		if err == nil && (*limit < 1 || *limit > 10000) {
			err = &UsageError{Msg: fmt.Sprintf("file list: --limit must be within 1..10000, got %d", *limit), Usage: FileUsage}
		}
	case "upload":
		err = fs.want(1, "the file to upload")
	default:
		err = fs.want(1, "a file id")
	}
	if err != nil {
		return err
	}
	e, err := newEnv(ctx, o, *jsonOut, 0)
	if err != nil {
		return err
	}
	switch sub {
	case "upload":
		p := *purpose
		if p == "" {
			p = string(openai.FilePurposeBatch)
		}
		f, err := e.upload(fs.args[0], p)
		if err != nil {
			return err
		}
		if e.json {
			return e.printJSON(f.RawJSON())
		}
		fmt.Fprintln(o.Stdout, f.ID)
		return nil
	case "list":
		return e.fileList(*purpose, *limit, *after)
	case "get":
		f, err := e.client.Files.Get(ctx, fs.args[0])
		if err != nil {
			return apiError("get file", err)
		}
		if e.json {
			return e.printJSON(f.RawJSON())
		}
		tw := tabwriter.NewWriter(o.Stdout, 0, 4, 2, ' ', 0)
		for _, row := range [][2]string{
			{"id", f.ID}, {"filename", f.Filename}, {"purpose", string(f.Purpose)}, {"bytes", fmt.Sprint(f.Bytes)},
			{"status", string(f.Status)}, {"created_at", unixTime(f.CreatedAt)}, {"expires_at", unixTime(f.ExpiresAt)},
		} {
			fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
		}
		return tw.Flush()
	case "download":
		return e.download(fs.args[0], *out)
	case "delete":
		d, err := e.client.Files.Delete(ctx, fs.args[0])
		if err != nil {
			return apiError("delete file", err)
		}
		if e.json {
			return e.printJSON(d.RawJSON())
		}
		fmt.Fprintf(o.Stdout, "deleted %s\n", d.ID)
		return nil
	}
	return nil
}

func (e *env) fileList(purpose string, limit int64, after string) error {
	params := openai.FileListParams{}
	if purpose != "" {
		params.Purpose = openai.String(purpose)
	}
	if after != "" {
		params.After = openai.String(after)
	}
	params.Limit = openai.Int(min(limit, 10000))
	page, err := e.client.Files.List(e.ctx, params)
	if err != nil {
		return apiError("list files", err)
	}
	if e.json {
		return e.printJSON(page.RawJSON())
	}
	tw := tabwriter.NewWriter(e.io.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPURPOSE\tBYTES\tCREATED\tFILENAME")
	for _, f := range page.Data {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", f.ID, f.Purpose, f.Bytes, unixTime(f.CreatedAt), f.Filename)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.HasMore && len(page.Data) > 0 {
		fmt.Fprintf(e.io.Stderr, "more: volley file list --after %s\n", page.Data[len(page.Data)-1].ID)
	}
	return nil
}

// upload sends path as a multipart upload streamed from disk, with a known Content-Length, showing
// the bytes sent as they go. The SDK would buffer the whole file; the body is handed to it ready-made
// instead, so memory stays flat however large the file.
func (e *env) upload(path, purpose string) (*openai.FileObject, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	if err := mw.WriteField("purpose", purpose); err != nil {
		return nil, err
	}
	if _, err := mw.CreateFormFile("file", filepath.Base(path)); err != nil {
		return nil, err
	}
	prefix := bytes.Clone(head.Bytes())
	head.Reset()
	if err := mw.Close(); err != nil {
		return nil, err
	}
	suffix := head.Bytes()
	total := int64(len(prefix)) + info.Size() + int64(len(suffix))
	counter := &countingReader{r: io.MultiReader(bytes.NewReader(prefix), f, bytes.NewReader(suffix))}

	name := filepath.Base(path)
	stop := e.showTransfer(func() string { return "uploading " + name }, counter, info.Size(), int64(len(prefix)), "waiting for the server to check it")
	var obj openai.FileObject
	err = e.client.Post(e.ctx, "files", nil, &obj,
		option.WithRequestBody(mw.FormDataContentType(), counter),
		option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
			r.ContentLength = total
			return next(r)
		}))
	stop(err == nil)
	if err != nil {
		if e.ctx.Err() != nil {
			return nil, &ExitError{Code: ExitInterrupted, Msg: fmt.Sprintf("upload of %s interrupted; nothing was stored", path)}
		}
		return nil, apiError("upload "+path, err)
	}
	return &obj, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// showTransfer draws a byte progress bar for a transfer of size bytes counted by c (minus skip
// bytes of framing) until the returned function is called;
// waitNote is shown once every byte is sent, until the other side answers.
func (e *env) showTransfer(label func() string, c *countingReader, size, skip int64, waitNote string) (stop func(ok bool)) {
	started := time.Now()
	r := &rate{window: 5 * time.Second}
	draw := func(force bool) {
		n := min(max(c.n.Load()-skip, 0), size)
		r.add(time.Now(), n)
		perSec, ok := r.perSecond()
		pct := 100.0
		if size > 0 {
			pct = float64(n) * 100 / float64(size)
		}
		tail := ""
		if n == size && size > 0 && waitNote != "" {
			tail = ", " + waitNote
		} else if eta, ok := r.eta(size - n); ok {
			tail = ", ETA " + duration(eta)
		}
		speed := ""
		if ok {
			speed = ", " + byteSize(int64(perSec)) + "/s"
		}
		head := label() + " "
		rest := fmt.Sprintf(" %3.0f%%  %s / %s%s%s", pct, byteSize(n), byteSize(size), speed, tail)
		e.screen.update(head+e.screen.bar(e.screen.room(head+rest, 10, 30), n, 0, size)+rest,
			fmt.Sprintf("%s: %s of %s (%.0f%%)%s%s", label(), byteSize(n), byteSize(size), pct, speed, tail),
			force)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		draw(true)
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				draw(false)
			}
		}
	}()
	return func(ok bool) {
		close(done)
		<-finished
		if ok {
			n := min(max(c.n.Load()-skip, 0), size)
			if e.screen.tty {
				head := label() + " "
				rest := fmt.Sprintf(" 100%%  %s in %s", byteSize(n), duration(time.Since(started)))
				e.screen.update(head+e.screen.bar(e.screen.room(head+rest, 10, 30), n, 0, size)+rest, "", true)
			} else {
				e.screen.update("", fmt.Sprintf("%s: %s in %s, done", label(), byteSize(n), duration(time.Since(started))), true)
			}
		}
		e.screen.end()
	}
}

// download writes file id's content to out ("" or "-": stdout).
func (e *env) download(id, out string) error {
	if out == "" || out == "-" {
		res, err := e.client.Files.Content(e.ctx, id)
		if err != nil {
			return apiError("download "+id, err)
		}
		defer res.Body.Close()
		if _, err := io.Copy(e.io.Stdout, res.Body); err != nil {
			return fmt.Errorf("download %s: %w", id, err)
		}
		return nil
	}
	n, err := e.downloadTo(id, out)
	if err != nil {
		return err
	}
	if !e.json {
		fmt.Fprintf(e.io.Stdout, "%s: %s\n", out, byteSize(n))
	}
	return nil
}

// downloadTo writes file id's content to path, whole or not at all. It returns the bytes written.
func (e *env) downloadTo(id, path string) (int64, error) {
	return writeFile(path, func(w io.Writer) (int64, error) {
		res, err := e.client.Files.Content(e.ctx, id)
		if err != nil {
			return 0, apiError("download "+id, err)
		}
		defer res.Body.Close()
		counter := &countingReader{r: res.Body}
		var stop func(bool)
		if e.screen.tty {
			stop = e.showTransfer(func() string { return "downloading " + filepath.Base(path) }, counter, max(res.ContentLength, 0), 0, "")
		}
		n, err := io.Copy(w, counter)
		if stop != nil {
			stop(err == nil)
		}
		if err != nil {
			return 0, fmt.Errorf("download %s: %w", id, err)
		}
		if res.ContentLength >= 0 && n != res.ContentLength {
			return 0, fmt.Errorf("download %s: got %d of %d bytes", id, n, res.ContentLength)
		}
		return n, nil
	})
}

// writeFile writes path through a temporary file beside it, renamed into place once fill succeeds,
// so that path holds either the whole content or what it held before.
func writeFile(path string, fill func(io.Writer) (int64, error)) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := fill(tmp)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}
