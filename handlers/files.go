package handlers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
)

const (
	purposeBatchError = "batch_error"
	filesDefaultLimit = 10000
	filesMaxLimit     = 10000
	// contentChunkRows is how many lines a download reads per query: enough to amortise the round
	// trip, few enough that memory stays flat.
	contentChunkRows = 1000
	// contentChunkBytes is what a chunk is sized to hold (see nextChunkRows), and
	// contentFirstChunkRows what the first one reads, before any line's size is known.
	contentChunkBytes     = 4 << 20
	contentFirstChunkRows = 64
)

func fileObject(f dbsqlc.File) api.OpenAIFile {
	out := api.OpenAIFile{
		Id:        f.ID,
		Object:    "file",
		Bytes:     f.Bytes,
		CreatedAt: f.CreatedAt.Unix(),
		Filename:  f.Filename,
		Purpose:   api.OpenAIFilePurpose(f.Purpose),
		Status:    "processed",
	}
	if f.ExpiresAt != nil {
		exp := f.ExpiresAt.Unix()
		out.ExpiresAt = &exp
	}
	return out
}

func fileNotFound(id string) *APIError {
	return notFound("id", "No such File object: %s", id)
}

// getFile returns the caller's live file or a 404 that says nothing about other owners' files.
func (s *Server) getFile(ctx context.Context, id string) (dbsqlc.File, error) {
	f, err := s.queries.FileGetLive(ctx, dbsqlc.FileGetLiveParams{ID: id, Owner: ownerFrom(ctx)})
	if err = db.Translate(err); err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return f, fileNotFound(id)
		}
		return f, fmt.Errorf("get file: %w", err)
	}
	return f, nil
}

// ListFiles pages through the caller's files by creation time.
func (s *Server) ListFiles(ctx context.Context, req api.ListFilesRequestObject) (api.ListFilesResponseObject, error) {
	p := req.Params
	limit := filesDefaultLimit
	if p.Limit != nil {
		limit = *p.Limit
		if limit < 1 || limit > filesMaxLimit {
			return nil, badRequest("invalid_value", "limit", "Invalid 'limit': %d. It must be between 1 and %d.", limit, filesMaxLimit)
		}
	}
	order := "desc"
	if p.Order != nil {
		order = *p.Order
		if order != "asc" && order != "desc" {
			return nil, badRequest("invalid_value", "order", "Invalid 'order': %q. It must be 'asc' or 'desc'.", order)
		}
	}
	owner, err := readOwner(ctx, p.Owner)
	if err != nil {
		return nil, err
	}
	var rows []dbsqlc.File
	if order == "asc" {
		rows, err = s.queries.FileListAsc(ctx, dbsqlc.FileListAscParams{Owner: owner, Purpose: p.Purpose, After: p.After, MaxRows: int32(limit + 1)})
	} else {
		rows, err = s.queries.FileListDesc(ctx, dbsqlc.FileListDescParams{Owner: owner, Purpose: p.Purpose, After: p.After, MaxRows: int32(limit + 1)})
	}
	if err != nil {
		return nil, fmt.Errorf("list files: %w", db.Translate(err))
	}
	pg := pageOf(rows, limit, fileObject, func(f dbsqlc.File) string { return f.ID })
	return api.ListFiles200JSONResponse{Object: "list", Data: pg.data, FirstId: pg.firstID, LastId: pg.lastID, HasMore: pg.hasMore}, nil
}

// RetrieveFile returns one of the caller's files.
func (s *Server) RetrieveFile(ctx context.Context, req api.RetrieveFileRequestObject) (api.RetrieveFileResponseObject, error) {
	f, err := s.getFile(ctx, req.FileId)
	if err != nil {
		return nil, err
	}
	return api.RetrieveFile200JSONResponse(fileObject(f)), nil
}

// DeleteFile removes a file and, unless a running batch still reads them, its lines, in one
// transaction.
func (s *Server) DeleteFile(ctx context.Context, req api.DeleteFileRequestObject) (api.DeleteFileResponseObject, error) {
	err := s.withTx(ctx, func(_ pgx.Tx, q *dbsqlc.Queries) error {
		id, err := q.FileMarkDeleted(ctx, dbsqlc.FileMarkDeletedParams{ID: req.FileId, Owner: ownerFrom(ctx)})
		if err != nil {
			return err
		}
		return q.FileLinesDeleteUnlessInUse(ctx, id)
	})
	if errors.Is(err, db.ErrNotFound) {
		return nil, fileNotFound(req.FileId)
	}
	if err != nil {
		return nil, fmt.Errorf("delete file: %w", err)
	}
	return api.DeleteFile200JSONResponse{Id: req.FileId, Object: "file", Deleted: true}, nil
}

// DownloadFile streams a file's content.
func (s *Server) DownloadFile(ctx context.Context, req api.DownloadFileRequestObject) (api.DownloadFileResponseObject, error) {
	p := req.Params
	if p.Offset != nil && *p.Offset < 0 {
		return nil, badRequest("invalid_value", "offset", "Invalid 'offset': %d. It must be 0 or more.", *p.Offset)
	}
	if p.Limit != nil && *p.Limit < 1 {
		return nil, badRequest("invalid_value", "limit", "Invalid 'limit': %d. It must be 1 or more.", *p.Limit)
	}
	search, err := checkSearch(p.Search)
	if err != nil {
		return nil, err
	}
	f, err := s.getFile(ctx, req.FileId)
	if err != nil {
		return nil, err
	}
	c := contentStream{ctx: ctx, s: s, file: f, bytes: f.Bytes}
	if p.Offset == nil && p.Limit == nil && search == nil {
		return c, nil
	}
	sel := &selection{search: search}
	skip, take := int64(0), int64(math.MaxInt64)
	if p.Offset != nil {
		skip = *p.Offset
	}
	if p.Limit != nil {
		take = *p.Limit
	}
	if f.BatchID != nil {
		r, err := s.queries.RequestResultsSelection(ctx, dbsqlc.RequestResultsSelectionParams{
			BatchID: *f.BatchID, Errors: f.Purpose == purposeBatchError, Search: search, Skip: skip, Take: take})
		if err != nil {
			return nil, fmt.Errorf("select result lines: %w", db.Translate(err))
		}
		sel.lines, c.bytes, sel.first, sel.last = r.Lines, r.Bytes, r.FirstLine, r.LastLine
	} else {
		r, err := s.queries.FileLinesSelection(ctx, dbsqlc.FileLinesSelectionParams{FileID: f.ID, Search: search, Skip: skip, Take: take})
		if err != nil {
			return nil, fmt.Errorf("select file lines: %w", db.Translate(err))
		}
		sel.lines, c.bytes, sel.first, sel.last = r.Lines, r.Bytes, r.FirstLine, r.LastLine
	}
	c.sel = sel
	return c, nil
}

// selection is the part of a file a download asked for: the lines from first to last (inclusive)
// that match search.
type selection struct {
	search      *string
	lines       int64
	first, last int32
}

type contentStream struct {
	ctx   context.Context
	s     *Server
	file  dbsqlc.File
	bytes int64      // what is sent: the file's size, or the selection's
	sel   *selection // nil: the whole file
}

func (c contentStream) VisitDownloadFileResponse(w http.ResponseWriter) error {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(c.bytes, 10))
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", c.file.Filename))
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 256<<10)
	var written int64
	after := int32(-1)
	if c.sel != nil {
		if c.sel.lines == 0 {
			return nil
		}
		after = c.sel.first - 1
	}
	// The next chunk is read while this one is written, so that the database and the client
	// are kept busy at once; at most two chunks are held.
	ctx, cancel := context.WithCancel(c.ctx)
	chunks, done := c.readAhead(ctx, after)
	defer done()
	defer cancel()
	for ch := range chunks {
		if ch.err != nil {
			// The status is gone already: cut the connection so that the client sees a short read
			// rather than a truncated file it might take for whole.
			loggerFrom(c.ctx).Error("download failed mid-stream", "file_id", c.file.ID, "written", written, "error", ch.err.Error())
			panic(http.ErrAbortHandler)
		}
		for _, row := range ch.rows {
			n, err := bw.Write(row.data)
			written += int64(n)
			if err != nil {
				return nil // the client went away; nothing left to tell it
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return nil
	}
	if written != c.bytes {
		loggerFrom(c.ctx).Error("download size mismatch", "file_id", c.file.ID, "want", c.bytes, "written", written)
		panic(http.ErrAbortHandler)
	}
	return nil
}

type contentChunk struct {
	rows []contentRow
	err  error
}

// readAhead reads the file's chunks after line after, in order, one ahead of the reader, until the
// last or an error (sent as the last chunk), or until ctx ends; done waits for it to stop.
func (c contentStream) readAhead(ctx context.Context, after int32) (chunks <-chan contentChunk, done func()) {
	out := make(chan contentChunk)
	c.ctx = ctx
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		defer close(out)
		want := contentFirstChunkRows
		for {
			rows, err := c.chunk(after, want)
			select {
			case out <- contentChunk{rows: rows, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(rows) < want {
				return
			}
			after = rows[len(rows)-1].line
			want = nextChunkRows(rows)
		}
	}()
	return out, func() { <-stopped }
}

// nextChunkRows is how many lines the next chunk reads: as many of the largest line of this one as
// fit in contentChunkBytes, from 1 to contentChunkRows. The lines of a file are mostly alike in
// size, so a chunk of large answers stays near the bound rather than holding a thousand of them.
func nextChunkRows(rows []contentRow) int {
	largest := 1
	for _, r := range rows {
		largest = max(largest, len(r.data))
	}
	return min(contentChunkRows, max(1, contentChunkBytes/largest))
}

type contentRow struct {
	line int32
	data []byte
}

// chunk reads the next lines of the file: an uploaded file's own lines, or a batch's rendered
// results for its output and error files.
func (c contentStream) chunk(after int32, n int) ([]contentRow, error) {
	if c.sel != nil {
		return c.selectedChunk(after, n)
	}
	if c.file.BatchID != nil {
		rows, err := c.s.queries.RequestResultsChunk(c.ctx, dbsqlc.RequestResultsChunkParams{
			BatchID: c.file.BatchID, AfterLine: &after, Errors: c.file.Purpose == purposeBatchError, MaxRows: int32(n),
		})
		out := make([]contentRow, len(rows))
		for i, r := range rows {
			out[i] = contentRow{line: *r.Line, data: r.Result}
		}
		return out, err
	}
	rows, err := c.s.queries.FileLinesChunk(c.ctx, dbsqlc.FileLinesChunkParams{FileID: c.file.ID, AfterLine: after, MaxRows: int32(n)})
	out := make([]contentRow, len(rows))
	for i, r := range rows {
		out[i] = contentRow{line: r.Line, data: r.Data}
	}
	return out, err
}

// selectedChunk reads the next lines of a selection.
func (c contentStream) selectedChunk(after int32, n int) ([]contentRow, error) {
	if c.file.BatchID != nil {
		rows, err := c.s.queries.RequestResultsSelectedChunk(c.ctx, dbsqlc.RequestResultsSelectedChunkParams{
			BatchID: *c.file.BatchID, AfterLine: after, LastLine: c.sel.last, Errors: c.file.Purpose == purposeBatchError,
			Search: c.sel.search, MaxRows: int32(n),
		})
		out := make([]contentRow, len(rows))
		for i, r := range rows {
			out[i] = contentRow{line: r.Line, data: r.Result}
		}
		return out, err
	}
	rows, err := c.s.queries.FileLinesSelectedChunk(c.ctx, dbsqlc.FileLinesSelectedChunkParams{
		FileID: c.file.ID, AfterLine: after, LastLine: c.sel.last, Search: c.sel.search, MaxRows: int32(n),
	})
	out := make([]contentRow, len(rows))
	for i, r := range rows {
		out[i] = contentRow{line: r.Line, data: r.Data}
	}
	return out, err
}
