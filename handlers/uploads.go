package handlers

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/ids"
)

const (
	uploadLifetime = time.Hour
	// maxPartBytes is the largest part, 64 MiB: the official Python helper's part size.
	maxPartBytes = 64 << 20
	// uploadChunkBytes is the size of the rows a part is stored in.
	uploadChunkBytes = 1 << 20
	// uploadChunkReadRows is how many chunks completing an upload reads per query.
	uploadChunkReadRows = 4
	maxUploadParts      = 10000
	maxMimeTypeBytes    = 255

	uploadPending   = "pending"
	uploadCompleted = "completed"
	uploadCancelled = "cancelled"
	uploadExpired   = "expired"
)

func uploadNotFound(id string) *APIError {
	return notFound("upload_id", "No such Upload object: %s", id)
}

func partTooLarge() *APIError {
	return badRequest("part_too_large", "data", "The part is larger than %d bytes (64 MiB), the most one part may hold.", maxPartBytes)
}

// uploadStatus is what an upload's status reads as now: a pending upload past its hour is expired,
// whether or not the janitor has marked it yet.
func uploadStatus(u dbsqlc.Upload) string {
	if u.Status == uploadPending && !time.Now().Before(u.ExpiresAt) {
		return uploadExpired
	}
	return u.Status
}

func uploadObject(u dbsqlc.Upload, file *dbsqlc.File) api.Upload {
	out := api.Upload{
		Id:        u.ID,
		Object:    "upload",
		Bytes:     u.Bytes,
		CreatedAt: u.CreatedAt.Unix(),
		ExpiresAt: u.ExpiresAt.Unix(),
		Filename:  u.Filename,
		Purpose:   u.Purpose,
		Status:    api.UploadStatus(uploadStatus(u)),
	}
	if file != nil {
		f := fileObject(*file)
		out.File = &f
	}
	return out
}

// pendingUpload refuses to act on an upload that no longer takes parts.
func pendingUpload(u dbsqlc.Upload, action string) error {
	if st := uploadStatus(u); st != uploadPending {
		return badRequest("invalid_state", "upload_id", "Cannot %s an upload with status '%s'.", action, st)
	}
	return nil
}

// CreateUpload starts an upload that accepts parts for an hour.
func (s *Server) CreateUpload(ctx context.Context, req api.CreateUploadRequestObject) (api.CreateUploadResponseObject, error) {
	if req.Body == nil {
		return nil, badRequest("invalid_json", "", "The request body must be a JSON object.")
	}
	in := *req.Body
	size, err := uploadSize(in.Bytes)
	if err != nil {
		return nil, err
	}
	switch {
	case in.Filename == "":
		return nil, badRequest("missing_required_parameter", "filename", "Missing required parameter: 'filename'.")
	case in.Purpose == "":
		return nil, badRequest("missing_required_parameter", "purpose", "Missing required parameter: 'purpose'.")
	case strings.ContainsRune(in.Filename, 0):
		return nil, badRequest("invalid_value", "filename", "Invalid 'filename': it contains a NUL character.")
	case in.MimeType == "":
		return nil, badRequest("missing_required_parameter", "mime_type", "Missing required parameter: 'mime_type'.")
	case strings.ContainsRune(in.MimeType, 0):
		return nil, badRequest("invalid_value", "mime_type", "Invalid 'mime_type': it contains a NUL character.")
	case len(in.MimeType) > maxMimeTypeBytes:
		return nil, badRequest("invalid_value", "mime_type", "Invalid 'mime_type': it is longer than %d bytes.", maxMimeTypeBytes)
	case size < 0:
		return nil, badRequest("invalid_value", "bytes", "Invalid 'bytes': %d. It must be the size of the file, 0 or more.", size)
	case size > s.cfg.Files.MaxBytes:
		return nil, badRequest("file_too_large", "bytes", "File is too large: %d bytes exceeds the limit of %d bytes.", size, s.cfg.Files.MaxBytes)
	}
	if err := checkPurpose(string(in.Purpose)); err != nil {
		return nil, err
	}
	var fileExpiry *int64
	if ea := in.ExpiresAfter; ea != nil {
		if ea.Anchor != "created_at" {
			return nil, badRequest("invalid_value", "expires_after.anchor", "Invalid 'expires_after.anchor': '%s'. The only supported anchor is 'created_at'.", truncate(ea.Anchor, 64))
		}
		if ea.Seconds < minExpirySeconds || ea.Seconds > maxExpirySeconds {
			return nil, badRequest("invalid_value", "expires_after.seconds", "Invalid 'expires_after.seconds': %d. It must be from %d to %d.", ea.Seconds, minExpirySeconds, maxExpirySeconds)
		}
		fileExpiry = &ea.Seconds
	}
	id, createdAt := ids.New("upload_")
	u, err := s.queries.UploadInsert(ctx, dbsqlc.UploadInsertParams{
		ID: id, Owner: ownerFrom(ctx), Filename: cleanFilename(in.Filename), Purpose: string(in.Purpose),
		MimeType: in.MimeType, Bytes: size, FileExpirySecs: fileExpiry,
		CreatedAt: createdAt, ExpiresAt: createdAt.Add(uploadLifetime),
	})
	if err != nil {
		return nil, fmt.Errorf("insert upload: %w", db.Translate(err))
	}
	return api.CreateUpload200JSONResponse(uploadObject(u, nil)), nil
}

// uploadSize reads the required integer `bytes`, which a plain int64 field would take as 0 when it
// is missing or null.
func uploadSize(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 {
		return 0, badRequest("missing_required_parameter", "bytes", "Missing required parameter: 'bytes'.")
	}
	var n int64
	if string(raw) == "null" || json.Unmarshal(raw, &n) != nil {
		return 0, badRequest("invalid_value", "bytes", "Invalid 'bytes': %s. It must be the size of the file, a whole number of bytes.", truncate(string(raw), 64))
	}
	return n, nil
}

// getUpload returns the caller's upload or a 404 that says nothing about other owners' uploads.
func getUpload(ctx context.Context, q *dbsqlc.Queries, id string, lock bool) (dbsqlc.Upload, error) {
	var u dbsqlc.Upload
	var err error
	if lock {
		u, err = q.UploadLock(ctx, dbsqlc.UploadLockParams{ID: id, Owner: ownerFrom(ctx)})
	} else {
		u, err = q.UploadGet(ctx, dbsqlc.UploadGetParams{ID: id, Owner: ownerFrom(ctx)})
	}
	if err = db.Translate(err); err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return u, uploadNotFound(id)
		}
		return u, fmt.Errorf("get upload: %w", err)
	}
	return u, nil
}

// AddUploadPart streams the multipart field `data` into upload_chunks, 1 MiB a row, inside one
// transaction that commits only if the upload is still pending once the part is in.
func (s *Server) AddUploadPart(ctx context.Context, req api.AddUploadPartRequestObject) (api.AddUploadPartResponseObject, error) {
	u, err := getUpload(ctx, s.queries, req.UploadId, false)
	if err != nil {
		return nil, err
	}
	if err := pendingUpload(u, "add a part to"); err != nil {
		return nil, err
	}
	var part *api.UploadPart
	var tx *streamTx
	defer func() { tx.rollback(ctx) }()
	for {
		p, err := req.Body.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, partReadError(ctx, err)
		}
		if p.FormName() != "data" {
			// Other fields are ignored; the body limit bounds what they may cost.
			if _, err := io.Copy(io.Discard, p); err != nil {
				return nil, partReadError(ctx, err)
			}
			continue
		}
		if part != nil {
			return nil, badRequest("invalid_multipart", "data", "The request has more than one 'data' part; send one part per request.")
		}
		if tx, err = s.beginStream(ctx, "part"); err != nil {
			return nil, err
		}
		if part, err = s.storePart(ctx, tx, u, p); err != nil {
			return nil, err
		}
	}
	if part == nil {
		return nil, badRequest("missing_required_parameter", "data", "Missing required parameter: 'data'.")
	}
	if err := tx.commit(ctx, "part"); err != nil {
		return nil, err
	}
	return api.AddUploadPart200JSONResponse(*part), nil
}

// storePart copies one part's bytes in and checks, last, that the upload still takes it.
func (s *Server) storePart(ctx context.Context, tx *streamTx, u dbsqlc.Upload, r io.Reader) (*api.UploadPart, error) {
	q := dbsqlc.New(db.Bounded(tx, s.cfg.DBTimeout))
	id, createdAt := ids.New("part_")
	if err := q.UploadPartInsert(ctx, dbsqlc.UploadPartInsertParams{ID: id, UploadID: u.ID, CreatedAt: createdAt}); err != nil {
		return nil, fmt.Errorf("insert part: %w", db.Translate(err))
	}
	src := &chunkSource{r: r, partID: id, buf: make([]byte, uploadChunkBytes), readErr: func(err error) error { return partReadError(ctx, err) }}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"upload_chunks"}, []string{"part_id", "seq", "data"}, src)
	if src.err != nil {
		return nil, src.err
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, partReadError(ctx, err)
		}
		return nil, fmt.Errorf("copy part: %w", db.Translate(err))
	}
	if err := q.UploadPartSetBytes(ctx, dbsqlc.UploadPartSetBytesParams{ID: id, Bytes: src.n}); err != nil {
		return nil, fmt.Errorf("record part size: %w", db.Translate(err))
	}
	// Waits for a complete or cancel in progress, and sees what it decided.
	st, err := q.UploadStateForPart(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("check upload: %w", db.Translate(err))
	}
	if err := pendingUpload(dbsqlc.Upload{Status: st.Status, ExpiresAt: st.ExpiresAt}, "add a part to"); err != nil {
		return nil, err
	}
	if limit := 2*st.Bytes + maxPartBytes; st.Stored > limit {
		return nil, badRequest("upload_too_large", "data",
			"The upload's parts would hold %d bytes, more than %d (twice the upload's %d bytes plus 64 MiB); complete it with the parts it needs.", st.Stored, limit, st.Bytes)
	}
	return &api.UploadPart{Id: id, Object: "upload.part", CreatedAt: createdAt.Unix(), UploadId: u.ID}, nil
}

// chunkSource feeds pgx's COPY from a part, one chunk of up to uploadChunkBytes per row, and
// refuses the part once it grows past maxPartBytes.
type chunkSource struct {
	r       io.Reader
	partID  string
	buf     []byte
	seq     int32
	n       int64
	done    bool
	values  [3]any
	readErr func(error) error
	err     error
}

func (c *chunkSource) Next() bool {
	if c.done || c.err != nil {
		return false
	}
	// Fill the buffer by hand: io.ReadFull would report a body cut short (the multipart reader's
	// io.ErrUnexpectedEOF) the same way as a short last chunk.
	n := 0
	for n < len(c.buf) {
		m, err := c.r.Read(c.buf[n:])
		n += m
		if err == io.EOF {
			c.done = true
			break
		}
		if err != nil {
			c.err = c.readErr(err)
			return false
		}
	}
	if n == 0 {
		return false
	}
	c.n += int64(n)
	if c.n > maxPartBytes {
		c.err = partTooLarge()
		return false
	}
	c.values[0], c.values[1], c.values[2] = c.partID, c.seq, c.buf[:n]
	c.seq++
	return true
}

func (c *chunkSource) Values() ([]any, error) { return c.values[:], nil }

func (c *chunkSource) Err() error { return c.err }

// partReadError classifies a failure to read a part's request body.
func partReadError(ctx context.Context, err error) error {
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return partTooLarge()
	}
	return uploadReadError(ctx, err)
}

// CompleteUpload joins the named parts in order and ingests them exactly as POST /v1/files ingests
// an upload, in one transaction that also completes the upload and removes its parts.
func (s *Server) CompleteUpload(ctx context.Context, req api.CompleteUploadRequestObject) (api.CompleteUploadResponseObject, error) {
	if req.Body == nil {
		return nil, badRequest("invalid_json", "", "The request body must be a JSON object.")
	}
	in := *req.Body
	u, err := getUpload(ctx, s.queries, req.UploadId, false)
	if err != nil {
		return nil, err
	}
	if in.PartIds == nil {
		return nil, badRequest("missing_required_parameter", "part_ids", "Missing required parameter: 'part_ids'.")
	}
	if len(in.PartIds) > maxUploadParts {
		return nil, badRequest("invalid_value", "part_ids", "Invalid 'part_ids': %d parts given; at most %d are allowed.", len(in.PartIds), maxUploadParts)
	}
	listed := make(map[string]int, len(in.PartIds))
	for i, id := range in.PartIds {
		if first, dup := listed[id]; dup {
			return nil, badRequest("invalid_value", "part_ids", "Invalid 'part_ids': part '%s' is listed twice (positions %d and %d).", truncate(id, 64), first, i)
		}
		listed[id] = i
	}
	var wantMD5 string
	if in.Md5 != nil {
		wantMD5 = strings.ToLower(*in.Md5)
		if b, err := hex.DecodeString(wantMD5); err != nil || len(b) != md5.Size {
			return nil, badRequest("invalid_value", "md5", "Invalid 'md5': '%s'. It must be 32 hexadecimal digits.", truncate(*in.Md5, 64))
		}
	}
	if err := pendingUpload(u, "complete"); err != nil {
		return nil, err
	}

	defer s.metrics.UploadStarted()()
	// Ingesting is CPU-bound like a file upload's, so it takes one of the same turns, for the
	// whole of the COPY: the parts are already here, nothing waits on the client.
	if s.turns != nil {
		if err := s.turns.acquire(ctx, ownerFrom(ctx)); err != nil {
			return nil, uploadReadError(ctx, err)
		}
		defer s.turns.release()
	}
	tx, err := s.beginStream(ctx, "complete")
	if err != nil {
		return nil, err
	}
	defer tx.rollback(ctx)
	q := dbsqlc.New(db.Bounded(tx, s.cfg.DBTimeout))
	if u, err = getUpload(ctx, q, req.UploadId, true); err != nil {
		return nil, err
	}
	if err := pendingUpload(u, "complete"); err != nil {
		return nil, err
	}
	parts, err := q.UploadPartsGet(ctx, dbsqlc.UploadPartsGetParams{UploadID: u.ID, Ids: in.PartIds})
	if err != nil {
		return nil, fmt.Errorf("get parts: %w", db.Translate(err))
	}
	sizes := make(map[string]int64, len(parts))
	for _, p := range parts {
		sizes[p.ID] = p.Bytes
	}
	var total int64
	for _, id := range in.PartIds {
		n, ok := sizes[id]
		if !ok {
			return nil, badRequest("invalid_value", "part_ids", "Invalid 'part_ids': upload '%s' has no part '%s'.", u.ID, truncate(id, 64))
		}
		total += n
	}
	if total != u.Bytes {
		return nil, badRequest("invalid_value", "part_ids", "The parts listed hold %d bytes, but the upload was created for %d bytes.", total, u.Bytes)
	}

	r := &partsReader{ctx: ctx, q: s.queries, parts: in.PartIds, seq: -1, sum: md5.New()}
	fileID, createdAt := ids.New("file-")
	src, err := s.copyLines(ctx, tx, fileID, bufio.NewReaderSize(r, 1<<20), func(err error) error { return err })
	if err != nil {
		return nil, err
	}
	if r.n != u.Bytes || src.bytes != u.Bytes {
		return nil, fmt.Errorf("upload %s: read %d bytes of parts holding %d", u.ID, r.n, u.Bytes)
	}
	if got := hex.EncodeToString(r.sum.Sum(nil)); wantMD5 != "" && got != wantMD5 {
		return nil, badRequest("md5_mismatch", "md5", "The assembled file's MD5 is %s, not %s.", got, wantMD5)
	}
	file, err := s.insertFile(ctx, q, fileID, createdAt, u.Filename, u.Purpose, src, u.FileExpirySecs)
	if err != nil {
		return nil, err
	}
	if u, err = q.UploadComplete(ctx, dbsqlc.UploadCompleteParams{ID: u.ID, FileID: &file.ID}); err != nil {
		return nil, fmt.Errorf("complete upload: %w", db.Translate(err))
	}
	if err := q.UploadPartsDelete(ctx, u.ID); err != nil {
		return nil, fmt.Errorf("remove parts: %w", db.Translate(err))
	}
	if err := tx.commit(ctx, "upload"); err != nil {
		return nil, err
	}
	s.metrics.UploadBytes(file.Bytes)
	loggerFrom(ctx).Info("upload completed", "upload_id", u.ID, "file_id", file.ID, "bytes", file.Bytes, "parts", len(in.PartIds), "requests", src.requests)
	return api.CompleteUpload200JSONResponse(uploadObject(u, &file)), nil
}

// partsReader reads the chunks of the listed parts in order, a few at a time, through the pool:
// the transaction's own connection is busy with the COPY they feed. It hashes what it reads.
type partsReader struct {
	ctx   context.Context
	q     *dbsqlc.Queries
	parts []string
	i     int   // the part being read
	seq   int32 // the last chunk read of it
	ahead [][]byte
	cur   []byte
	n     int64
	sum   hash.Hash
}

func (r *partsReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if len(r.ahead) > 0 {
			r.cur, r.ahead = r.ahead[0], r.ahead[1:]
			continue
		}
		if r.i >= len(r.parts) {
			return 0, io.EOF
		}
		rows, err := r.q.UploadChunksRead(r.ctx, dbsqlc.UploadChunksReadParams{PartID: r.parts[r.i], AfterSeq: r.seq, MaxRows: uploadChunkReadRows})
		if err != nil {
			return 0, fmt.Errorf("read part %s: %w", r.parts[r.i], db.Translate(err))
		}
		if len(rows) == 0 {
			r.i, r.seq = r.i+1, -1
			continue
		}
		for _, row := range rows {
			r.ahead = append(r.ahead, row.Data)
		}
		r.seq = rows[len(rows)-1].Seq
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.n += int64(n)
	r.sum.Write(p[:n])
	return n, nil
}

// CancelUpload cancels a pending upload and removes its parts. Cancelling it again returns it.
func (s *Server) CancelUpload(ctx context.Context, req api.CancelUploadRequestObject) (api.CancelUploadResponseObject, error) {
	var out dbsqlc.Upload
	err := s.withTx(ctx, func(_ db.Tx, q *dbsqlc.Queries) error {
		u, err := getUpload(ctx, q, req.UploadId, true)
		if err != nil {
			return err
		}
		if u.Status == uploadCancelled {
			out = u
			return nil
		}
		if err := pendingUpload(u, "cancel"); err != nil {
			return err
		}
		if out, err = q.UploadCancel(ctx, u.ID); err != nil {
			return fmt.Errorf("cancel upload: %w", db.Translate(err))
		}
		return q.UploadPartsDelete(ctx, u.ID)
	})
	if err != nil {
		return nil, err
	}
	return api.CancelUpload200JSONResponse(uploadObject(out, nil)), nil
}
