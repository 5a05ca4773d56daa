package handlers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/config"
	"github.com/volleyhq/volley/internal/ids"
	"github.com/volleyhq/volley/internal/jsonl"
)

const (
	purposeBatch     = "batch"
	minExpirySeconds = 3600
	maxExpirySeconds = 2592000
	maxFieldBytes    = 1024
	maxFilenameBytes = 255
)

// uploadForm is what an upload's small fields said.
type uploadForm struct {
	purpose       *string
	anchor        *string
	seconds       *int64
	filename      string
	ingested      *lineSource
	fileID        string
	createdAt     time.Time
	sawFileHeader bool
}

// CreateFile streams a multipart upload into file_lines inside one transaction. Fields may come in
// any order; every line is validated as it arrives and the first problem aborts the transaction, so
// a refused upload leaves nothing behind.
func (s *Server) CreateFile(ctx context.Context, req api.CreateFileRequestObject) (api.CreateFileResponseObject, error) {
	defer s.metrics.UploadStarted()()
	var form uploadForm
	var tx *streamTx
	defer func() { tx.rollback(ctx) }()
	for {
		part, err := req.Body.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, uploadReadError(ctx, err)
		}
		switch name := part.FormName(); name {
		case "file":
			if form.sawFileHeader {
				return nil, badRequest("invalid_multipart", "file", "The upload has more than one 'file' part; send one file per request.")
			}
			form.sawFileHeader = true
			form.filename = cleanFilename(part.FileName())
			// The upload's reads take an ingest turn while data flows (see body.pace); the
			// transaction begins only once the file's first bytes are in, so a client that stops
			// after the part's headers holds neither a turn nor a database connection.
			b := bodyFrom(ctx)
			if b != nil {
				b.pace(ctx, s.turns, ownerFrom(ctx))
				defer b.unpace()
			}
			in := bufio.NewReaderSize(part, uploadReadBuffer)
			if _, err := in.Peek(1); err != nil && !errors.Is(err, io.EOF) {
				return nil, uploadReadError(ctx, err)
			}
			if b != nil {
				if err := b.takeTurn(); err != nil {
					return nil, err
				}
			}
			if tx, err = s.beginStream(ctx, "upload"); err != nil {
				return nil, err
			}
			form.fileID, form.createdAt = ids.New("file-")
			src, err := s.copyLines(ctx, tx, form.fileID, in, func(err error) error { return uploadReadError(ctx, err) })
			if err != nil {
				return nil, err
			}
			form.ingested = src
		case "purpose":
			v, err := readField(ctx, part, name)
			if err != nil {
				return nil, err
			}
			if err := checkPurpose(v); err != nil {
				return nil, err
			}
			form.purpose = &v
		case "expires_after[anchor]":
			v, err := readField(ctx, part, name)
			if err != nil {
				return nil, err
			}
			if v != "created_at" {
				return nil, badRequest("invalid_value", name, "Invalid 'expires_after[anchor]': '%s'. The only supported anchor is 'created_at'.", truncate(v, 64))
			}
			form.anchor = &v
		case "expires_after[seconds]":
			v, err := readField(ctx, part, name)
			if err != nil {
				return nil, err
			}
			n, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil || n < minExpirySeconds || n > maxExpirySeconds {
				return nil, badRequest("invalid_value", name, "Invalid 'expires_after[seconds]': '%s'. It must be a whole number from %d to %d.", truncate(v, 64), minExpirySeconds, maxExpirySeconds)
			}
			form.seconds = &n
		default:
			// Unknown fields are ignored, as OpenAI does; MaxBytesReader bounds what they may cost.
			if _, err := io.Copy(io.Discard, part); err != nil {
				return nil, uploadReadError(ctx, err)
			}
		}
	}
	switch {
	case form.ingested == nil:
		return nil, badRequest("missing_required_parameter", "file", "Missing required parameter: 'file'.")
	case form.purpose == nil:
		return nil, badRequest("missing_required_parameter", "purpose", "Missing required parameter: 'purpose'.")
	case form.anchor == nil && form.seconds != nil:
		return nil, badRequest("missing_required_parameter", "expires_after[anchor]", "Missing required parameter: 'expires_after[anchor]'.")
	case form.anchor != nil && form.seconds == nil:
		return nil, badRequest("missing_required_parameter", "expires_after[seconds]", "Missing required parameter: 'expires_after[seconds]'.")
	}
	row, err := s.insertFile(ctx, dbsqlc.New(db.Bounded(tx, s.cfg.DBTimeout)), form.fileID, form.createdAt, form.filename, *form.purpose, form.ingested, form.seconds)
	if err != nil {
		return nil, err
	}
	if err := tx.commit(ctx, "upload"); err != nil {
		return nil, err
	}
	s.metrics.UploadBytes(row.Bytes)
	loggerFrom(ctx).Info("file stored", "file_id", row.ID, "bytes", row.Bytes, "requests", form.ingested.requests)
	return api.CreateFile200JSONResponse(fileObject(row)), nil
}

// streamTx is a transaction held open while a request body streams into it: begun and committed
// within VOLLEY_DB_TIMEOUT, and rolled back unless committed.
type streamTx struct {
	pgx.Tx
	s *Server
}

func (s *Server) beginStream(ctx context.Context, what string) (*streamTx, error) {
	beginCtx, cancel := s.dbBound(ctx)
	defer cancel()
	tx, err := s.pool.Begin(beginCtx)
	if err != nil {
		return nil, fmt.Errorf("begin %s: %w", what, db.Translate(err))
	}
	return &streamTx{Tx: tx, s: s}, nil
}

func (t *streamTx) commit(ctx context.Context, what string) error {
	commitCtx, cancel := t.s.dbBound(ctx)
	defer cancel()
	if err := t.Commit(commitCtx); err != nil {
		return fmt.Errorf("commit %s: %w", what, db.Translate(err))
	}
	return nil
}

// rollback ends the transaction unless it was committed (or never begun), even once the request's
// context is gone.
func (t *streamTx) rollback(ctx context.Context) {
	if t == nil {
		return
	}
	rbCtx, cancel := t.s.dbBound(context.WithoutCancel(ctx))
	defer cancel()
	_ = t.Rollback(rbCtx) // after a commit pgx answers ErrTxClosed and does nothing
}

// checkPurpose refuses every purpose but batch, for files and uploads alike.
func checkPurpose(v string) error {
	if v != purposeBatch {
		return badRequest("invalid_purpose", "purpose",
			"Invalid purpose '%s'. Volley stores input files for the Batch API: use purpose 'batch'.", truncate(v, 64))
	}
	return nil
}

// insertFile records a file whose lines src has just copied, expiring after expirySeconds (nil:
// the default for batch files). A file without requests is refused.
func (s *Server) insertFile(ctx context.Context, q *dbsqlc.Queries, id string, createdAt time.Time, filename, purpose string, src *lineSource, expirySeconds *int64) (dbsqlc.File, error) {
	if src.requests == 0 {
		return dbsqlc.File{}, badRequest("empty_file", "file", "The file contains no requests; a batch input file needs at least one JSONL line.")
	}
	expiry := s.cfg.Files.DefaultExpiry
	if expirySeconds != nil {
		expiry = time.Duration(*expirySeconds) * time.Second
	}
	expiresAt := createdAt.Add(expiry)
	row, err := q.FileInsert(ctx, dbsqlc.FileInsertParams{
		ID: id, Owner: ownerFrom(ctx), Filename: filename, Purpose: purpose,
		Bytes: src.bytes, LineCount: src.line, CreatedAt: createdAt, ExpiresAt: &expiresAt,
	})
	if err != nil {
		return row, fmt.Errorf("insert file: %w", db.Translate(err))
	}
	return row, nil
}

// copyLines COPYs the lines of in into file_lines, validating each on the way. readErr turns a
// failure to read in into the answer.
func (s *Server) copyLines(ctx context.Context, tx pgx.Tx, fileID string, in *bufio.Reader, readErr func(error) error) (*lineSource, error) {
	src := newLineSource(fileID, in, s.cfg.Files, readErr)
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"file_lines"},
		[]string{"file_id", "line", "custom_id", "url", "model", "body_start", "body_end", "data"}, src)
	if src.err != nil {
		return nil, src.err
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, readErr(err)
		}
		return nil, fmt.Errorf("copy file lines: %w", db.Translate(err))
	}
	return src, nil
}

// lineSource feeds pgx's COPY from the upload, one physical line per row.
type lineSource struct {
	r       *bufio.Reader
	readErr func(error) error
	fileID  string
	limits  config.FileLimits
	jl      jsonl.Limits

	line     int32 // physical lines read
	requests int   // lines that are requests (not whitespace-only)
	bytes    int64
	long     []byte // accumulates a line longer than the reader's buffer
	seen     map[[2]uint64]int32
	seeds    [2]maphash.Seed
	values   [8]any
	err      error
}

func newLineSource(fileID string, r *bufio.Reader, limits config.FileLimits, readErr func(error) error) *lineSource {
	return &lineSource{
		readErr: readErr,
		r:       r,
		fileID:  fileID,
		limits:  limits,
		jl:      jsonl.Limits{MaxCustomIDBytes: limits.MaxCustomIDBytes},
		seen:    make(map[[2]uint64]int32, 1024),
		seeds:   [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
	}
}

func (s *lineSource) fail(err error) bool {
	s.err = err
	return false
}

// Next reads, checks and stages the next line.
func (s *lineSource) Next() bool {
	if s.err != nil {
		return false
	}
	raw, err := s.readLine()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return false
		}
		return s.fail(err)
	}
	s.line++
	if len(raw) > s.limits.MaxLineBytes+1 {
		return s.fail(lineTooLong(s.line, s.limits.MaxLineBytes))
	}
	content := raw
	if n := len(content); n > 0 && content[n-1] == '\n' {
		content = content[:n-1]
	}
	s.values[0], s.values[1], s.values[7] = s.fileID, s.line, raw
	if isBlank(content) {
		s.values[2], s.values[3], s.values[4], s.values[5], s.values[6] = nil, nil, nil, nil, nil
		return true
	}
	l, verr := jsonl.Validate(content, s.jl)
	if verr != nil {
		return s.fail(badRequest(verr.Code, verr.Param, "Line %d: %s", s.line, verr.Message))
	}
	s.requests++
	if s.requests > s.limits.MaxLines {
		return s.fail(badRequest("too_many_lines", "file", "Line %d: the file has more than %d requests, the most one file may hold.", s.line, s.limits.MaxLines))
	}
	key := [2]uint64{maphash.String(s.seeds[0], l.CustomID), maphash.String(s.seeds[1], l.CustomID)}
	if first, dup := s.seen[key]; dup {
		return s.fail(badRequest("duplicate_custom_id", "custom_id", "Line %d: custom_id '%s' is already used on line %d; each custom_id must be unique within the file.", s.line, truncate(l.CustomID, 64), first))
	}
	s.seen[key] = s.line
	s.values[2], s.values[3], s.values[4] = l.CustomID, l.URL, l.Model
	s.values[5], s.values[6] = int32(l.BodyStart), int32(l.BodyEnd)
	return true
}

// readLine returns the next line including its '\n' (absent on a last unterminated line), enforcing
// the file's size limit while reading. io.EOF means no more lines.
func (s *lineSource) readLine() ([]byte, error) {
	s.long = s.long[:0]
	for {
		chunk, err := s.r.ReadSlice('\n')
		s.bytes += int64(len(chunk))
		if s.bytes > s.limits.MaxBytes {
			return nil, fileTooLarge(s.limits.MaxBytes)
		}
		switch {
		case err == nil && len(s.long) == 0:
			return chunk, nil
		case err == nil:
			return append(s.long, chunk...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(s.long)+len(chunk) > s.limits.MaxLineBytes {
				return nil, lineTooLong(s.line+1, s.limits.MaxLineBytes)
			}
			s.long = append(s.long, chunk...)
		case errors.Is(err, io.EOF):
			if len(s.long)+len(chunk) == 0 {
				return nil, io.EOF
			}
			return append(s.long, chunk...), nil
		default:
			return nil, s.readErr(err)
		}
	}
}

// uploadReadBuffer is what an upload reads ahead of its lines. It is what each stalled upload
// costs, so it is kept small; a longer line is gathered from several reads (readLine).
const uploadReadBuffer = 64 << 10

func lineTooLong(line int32, limit int) error {
	return badRequest("line_too_long", "file", "Line %d: the line is longer than %d bytes, the most one request may take.", line, limit)
}

func (s *lineSource) Values() ([]any, error) { return s.values[:], nil }

func (s *lineSource) Err() error { return s.err }

func isBlank(b []byte) bool {
	return len(bytes.TrimLeft(b, " \t\r")) == 0
}

// readField reads a small form field.
func readField(ctx context.Context, part *multipart.Part, name string) (string, error) {
	b, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
	if err != nil {
		return "", uploadReadError(ctx, err)
	}
	if len(b) > maxFieldBytes {
		return "", badRequest("invalid_value", name, "The '%s' field is longer than %d bytes.", name, maxFieldBytes)
	}
	return strings.TrimSpace(string(b)), nil
}

// fileTooLarge is the answer to an upload over the size limit: 400, as OpenAI answers it, whether
// the declared length says so before anything is read or the body outgrows it while streaming.
func fileTooLarge(limit int64) error {
	return badRequest("file_too_large", "file", "File is too large: it exceeds the limit of %d bytes.", limit)
}

// uploadReadError classifies a failure to read the request body.
func uploadReadError(ctx context.Context, err error) error {
	var apiErr *APIError
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &apiErr):
		return err
	case errors.As(err, &maxErr):
		return fileTooLarge(maxErr.Limit - multipartOverhead) // the body's limit leaves room for the form
	case ctx != nil && ctx.Err() != nil:
		return fmt.Errorf("upload abandoned by the client: %w", err)
	}
	return badRequest("invalid_multipart", "", "The multipart body could not be read: %s.", err.Error())
}

// cleanFilename keeps the last path element of a client-supplied name, as valid UTF-8 without
// control characters.
func cleanFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, "\uFFFD"))
	name = strings.TrimSpace(name)
	if name == "" {
		name = "upload.jsonl"
	}
	return truncate(name, maxFilenameBytes)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
