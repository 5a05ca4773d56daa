package handlers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

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
	var written int64
	after := int32(-1)
	if c.sel != nil {
		if c.sel.lines == 0 {
			return nil
		}
		after = c.sel.first - 1
	}
	// The next chunk is read while this one is written, so that the database and the client
	// are kept busy at once; the two chunks' buffers are all that is held.
	ctx, cancel := context.WithCancel(c.ctx)
	chunks, spare, done := c.readAhead(ctx, after)
	defer done()
	defer cancel()
	for ch := range chunks {
		if ch.err != nil {
			// The status is gone already: cut the connection so that the client sees a short read
			// rather than a truncated file it might take for whole.
			loggerFrom(c.ctx).Error("download failed mid-stream", "file_id", c.file.ID, "written", written, "error", ch.err.Error())
			panic(http.ErrAbortHandler)
		}
		// The chunk's lines are contiguous already: a buffer in between would only copy them once
		// more.
		n, err := w.Write(ch.data)
		written += int64(n)
		if err != nil {
			return nil // the client went away; nothing left to tell it
		}
		spare <- ch
	}
	if written != c.bytes {
		loggerFrom(c.ctx).Error("download size mismatch", "file_id", c.file.ID, "want", c.bytes, "written", written)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// contentChunk is a run of a file's lines, read into a buffer that the download reuses for a later
// chunk once this one is written.
type contentChunk struct {
	data []byte       // the lines, one after the other
	rows []contentRow // each line, within data
	err  error
}

// readAhead reads the file's chunks after line after, in order, one ahead of the reader, until the
// last or an error (sent as the last chunk), or until ctx ends; the reader gives each chunk back
// through spare once written (spare has room for every chunk), and done waits for the reading to
// stop.
func (c contentStream) readAhead(ctx context.Context, after int32) (chunks <-chan *contentChunk, spare chan<- *contentChunk, done func()) {
	out := make(chan *contentChunk)
	// Two chunks: one being written, the next being read.
	free := make(chan *contentChunk, 2)
	free <- new(contentChunk)
	free <- new(contentChunk)
	c.ctx = ctx
	conn := db.Bounded(c.s.pool, c.s.cfg.DBTimeout)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		defer close(out)
		want := contentFirstChunkRows
		for {
			var ch *contentChunk
			select {
			case ch = <-free:
			case <-ctx.Done():
				return
			}
			ch.err = c.chunk(conn, ch, after, want)
			last := ch.err != nil || len(ch.rows) < want
			if !last {
				after = ch.rows[len(ch.rows)-1].line
				want = nextChunkRows(ch.rows)
			}
			select {
			case out <- ch:
			case <-ctx.Done():
				return
			}
			if last {
				return
			}
		}
	}()
	return out, free, func() { <-stopped }
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

// chunk reads into ch the next lines of the file, at most n after line after: an uploaded file's own
// lines, or a batch's rendered results for its output and error files. It sends the generated
// query's statement itself and copies each line straight from pgx's read buffer into ch's, where
// the generated code would allocate every line of its own: for a file of small lines those
// allocations, their garbage and a second copy into the response's buffer were most of what a
// download cost besides the database.
func (c contentStream) chunk(conn dbsqlc.DBTX, ch *contentChunk, after int32, n int) error {
	ch.data, ch.rows = ch.data[:0], ch.rows[:0]
	sql, args, err := statementOf(func(q *dbsqlc.Queries) error { return c.chunkQuery(q, after, n) })
	if err != nil {
		return err
	}
	rows, err := conn.Query(c.ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var line int32
	var data pgtype.DriverBytes // valid until the next row
	dest := []any{&line, &data} // once, rather than allocated for every row
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		ch.data = append(ch.data, data...)
		ch.rows = append(ch.rows, contentRow{line: line, data: data})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// Each row is pointed at its copy only now, when ch.data is done growing.
	off := 0
	for i, r := range ch.rows {
		ch.rows[i].data = ch.data[off : off+len(r.data)]
		off += len(r.data)
	}
	return nil
}

// chunkQuery calls the generated query that reads the chunk of n lines after line after: of the
// whole file or of the selection.
func (c contentStream) chunkQuery(q *dbsqlc.Queries, after int32, n int) error {
	errorFile := c.file.Purpose == purposeBatchError
	var err error
	switch {
	case c.sel == nil && c.file.BatchID != nil:
		_, err = q.RequestResultsChunk(c.ctx, dbsqlc.RequestResultsChunkParams{
			BatchID: c.file.BatchID, AfterLine: &after, Errors: errorFile, MaxRows: int32(n),
		})
	case c.sel == nil:
		_, err = q.FileLinesChunk(c.ctx, dbsqlc.FileLinesChunkParams{FileID: c.file.ID, AfterLine: after, MaxRows: int32(n)})
	case c.file.BatchID != nil:
		_, err = q.RequestResultsSelectedChunk(c.ctx, dbsqlc.RequestResultsSelectedChunkParams{
			BatchID: *c.file.BatchID, AfterLine: after, LastLine: c.sel.last, Errors: errorFile,
			Search: c.sel.search, MaxRows: int32(n),
		})
	default:
		_, err = q.FileLinesSelectedChunk(c.ctx, dbsqlc.FileLinesSelectedChunkParams{
			FileID: c.file.ID, AfterLine: after, LastLine: c.sel.last, Search: c.sel.search, MaxRows: int32(n),
		})
	}
	return err
}

// statementOf returns the SQL and arguments of the one generated query that call makes, without
// sending it, so that the caller can send it and read its rows its own way.
func statementOf(call func(*dbsqlc.Queries) error) (string, []any, error) {
	var st keptStatement
	if err := call(dbsqlc.New(&st)); !errors.Is(err, errStatementKept) {
		return "", nil, fmt.Errorf("keep statement: the query returned %v", err)
	}
	return st.sql, st.args, nil
}

var errStatementKept = errors.New("statement kept, not sent")

// keptStatement is a dbsqlc.DBTX that keeps the statement of a generated :many query rather than
// sending it. The other methods are left to the nil DBTX: a :many query calls only Query.
type keptStatement struct {
	dbsqlc.DBTX
	sql  string
	args []any
}

func (s *keptStatement) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	s.sql, s.args = sql, args
	return nil, errStatementKept
}
