package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/internal/apikey"
	"github.com/volleyhq/volley/internal/ids"
)

type ctxKey int

const (
	ctxLogger ctxKey = iota
	ctxOwner
	ctxBody
	ctxAdmin
)

// bodyFrom returns the request's body wrapper, nil when the request has none.
func bodyFrom(ctx context.Context) *body {
	b, _ := ctx.Value(ctxBody).(*body)
	return b
}

// errHandlerTimeout is the cause of a request context that ran out of VOLLEY_HANDLER_TIMEOUT.
var errHandlerTimeout = errors.New("handler timeout")

func loggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(ctxLogger).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// isAdmin reports whether the request was made with an admin key.
func isAdmin(ctx context.Context) bool {
	admin, _ := ctx.Value(ctxAdmin).(bool)
	return admin
}

// maxOwnerBytes bounds the owner parameter, as openapi.yaml says.
const maxOwnerBytes = 256

// readOwner is whose objects a list route reads: the key's owner, or with an admin key the owner
// named by the owner parameter.
func readOwner(ctx context.Context, asked *string) (string, error) {
	if asked == nil || *asked == "" {
		return ownerFrom(ctx), nil
	}
	if !isAdmin(ctx) {
		return "", badRequest("invalid_value", "owner", "The 'owner' parameter needs an admin key (volley keys create --owner NAME --admin).")
	}
	if len(*asked) > maxOwnerBytes {
		return "", badRequest("invalid_value", "owner", "Invalid 'owner': it is longer than %d bytes, which no owner is.", maxOwnerBytes)
	}
	return *asked, nil
}

// ownerFrom returns the owner of the API key that authenticated the request.
func ownerFrom(ctx context.Context) string {
	owner, _ := ctx.Value(ctxOwner).(string)
	return owner
}

// statusRecorder remembers what was written, for the access log. An answer sent while the client
// may still be sending a body it will not read closes the connection after it, rather than having
// net/http wait for the rest.
type statusRecorder struct {
	http.ResponseWriter
	body   *body
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
		if s.body != nil && code >= 400 && s.body.unread() {
			s.Header().Set("Connection", "close")
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.WriteHeader(http.StatusOK)
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// observe gives every request an x-request-id, a logger that carries it, an access log line, and
// turns a panic into a logged stack and a 500 envelope.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		reqID := ids.RequestID()
		w.Header().Set("x-request-id", reqID)
		logger := s.logger.With("request_id", reqID)
		rec := &statusRecorder{ResponseWriter: w}
		ctx := context.WithValue(r.Context(), ctxLogger, logger)
		if r.Body != nil && r.Body != http.NoBody {
			rec.body = newBody(w, r, s.cfg.BodyIdleTimeout)
			r.Body = rec.body
			ctx = context.WithValue(ctx, ctxBody, rec.body)
			defer rec.body.finish()
		}
		if !isUpload(r) && s.cfg.HandlerTimeout > 0 {
			// An upload's time is bounded per read instead, so that a large file on a slow link
			// takes what it needs.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeoutCause(ctx, s.cfg.HandlerTimeout, errHandlerTimeout)
			defer cancel()
		}
		r = r.WithContext(ctx)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					logger.Info("http", "method", r.Method, "path", r.URL.Path, "status", rec.status, "aborted", true,
						"bytes", rec.bytes, "duration_ms", float64(time.Since(start).Microseconds())/1000)
					s.metrics.HTTPRequest(routePattern(r), 0, time.Since(start))
					panic(p)
				}
				logger.Error("panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if rec.status == 0 {
					writeAPIError(rec, errInternal)
				}
			}
			level := slog.LevelInfo
			if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
				level = slog.LevelDebug
			}
			took := time.Since(start)
			logger.Log(ctx, level, "http", "method", r.Method, "path", r.URL.Path, "status", rec.status,
				"bytes", rec.bytes, "duration_ms", float64(took.Microseconds())/1000)
			s.metrics.HTTPRequest(routePattern(r), rec.status, took)
		}()
		next.ServeHTTP(rec, r)
	})
}

// routePattern is the route a request matched ("/v1/batches/{batch_id}"), so that metrics have one
// label per route rather than per id; empty when none matched.
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		return rc.RoutePattern()
	}
	return ""
}

// limitBody refuses bodies declared larger than the route allows before reading them, and caps
// what is read of the others.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := s.cfg.MaxJSONBodyBytes
		upload, part := isFileUpload(r), isUploadPart(r)
		switch {
		case upload:
			// The form fields and part headers around the file need a little room of their own.
			limit = s.cfg.Files.MaxBytes + multipartOverhead
		case part:
			limit = maxPartBytes + multipartOverhead
		}
		if r.ContentLength > limit {
			switch {
			case upload:
				writeError(w, r, fileTooLarge(s.cfg.Files.MaxBytes))
			case part:
				writeError(w, r, partTooLarge())
			default:
				writeError(w, r, tooLarge(limit))
			}
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if upload || part {
			// The multipart reader reads 4 KB at a time; a larger buffer saves most of the syscalls.
			r.Body = bufferedBody{Reader: bufio.NewReaderSize(r.Body, 256<<10), Closer: r.Body}
		} else if r.Method == http.MethodPost {
			// JSON bodies are read whole and checked here: the generated decoder stops after the
			// first value and would accept trailing garbage.
			body, err := io.ReadAll(r.Body)
			var maxErr *http.MaxBytesError
			var apiErr *APIError
			switch {
			case errors.As(err, &maxErr), errors.As(err, &apiErr):
				writeError(w, r, err)
				return
			case err != nil:
				writeError(w, r, badRequest("invalid_request", "", "The request body could not be read: %s.", err.Error()))
				return
			}
			if len(bytes.TrimSpace(body)) > 0 {
				if err := json.Unmarshal(body, new(json.RawMessage)); err != nil {
					writeError(w, r, badRequest("invalid_json", "", "We could not parse the JSON body of your request: %s.", err.Error()))
					return
				}
				if err := checkMetadataValues(body); err != nil {
					writeError(w, r, err)
					return
				}
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

// checkMetadataValues refuses a metadata object whose values are not all strings, as OpenAI does,
// on every route that takes one: decoded into the generated map[string]string, a null would become
// "" and a number an error without the key's name.
func checkMetadataValues(body []byte) error {
	if !bytes.Contains(body, []byte(`"metadata"`)) {
		return nil
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return nil // not an object: the route's decoder says so
	}
	var md map[string]json.RawMessage
	if raw, ok := top["metadata"]; !ok || json.Unmarshal(raw, &md) != nil {
		return nil // absent, null or not an object: the route's decoder decides
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if v := bytes.TrimSpace(md[k]); len(v) == 0 || v[0] != '"' {
			return badRequest("invalid_value", "metadata", "Invalid 'metadata': the value of '%s' must be a string, got %s.", k, jsonKind(v))
		}
	}
	return nil
}

// jsonKind names the type of a JSON value.
func jsonKind(v []byte) string {
	switch {
	case len(v) == 0:
		return "nothing"
	case v[0] == 'n':
		return "null"
	case v[0] == 't', v[0] == 'f':
		return "a boolean"
	case v[0] == '{':
		return "an object"
	case v[0] == '[':
		return "an array"
	}
	return "a number"
}

// checkQuery refuses a query string net/http would silently drop parts of: a malformed %-escape
// (limit=%zz) is an error, not a parameter left out.
func checkQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for pair := range strings.SplitSeq(r.URL.RawQuery, "&") {
			key, value, _ := strings.Cut(pair, "=")
			name, kerr := url.QueryUnescape(key)
			_, verr := url.QueryUnescape(value)
			if kerr == nil && verr == nil {
				continue
			}
			if kerr != nil {
				name = key
			}
			writeError(w, r, badRequest("invalid_value", name, "Invalid query parameter '%s': '%s' is not a valid URL encoding.", name, pair))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isUpload reports whether r streams a file's content in: a file upload or an upload's part.
func isUpload(r *http.Request) bool { return isFileUpload(r) || isUploadPart(r) }

func isFileUpload(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/v1/files"
}

func isUploadPart(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/uploads/") && strings.HasSuffix(r.URL.Path, "/parts")
}

type bufferedBody struct {
	*bufio.Reader
	io.Closer
}

// multipartOverhead is the room allowed around an upload's file content.
const multipartOverhead = 1 << 20

const missingKeyMessage = "You didn't provide an API key. You need to provide your API key in an Authorization " +
	"header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."

// authenticate resolves the bearer key of every /v1 request to its owner.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/v1" {
			next.ServeHTTP(w, r)
			return
		}
		header := r.Header.Get("Authorization")
		scheme, key, ok := strings.Cut(strings.TrimSpace(header), " ")
		key = strings.TrimSpace(key)
		if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
			writeError(w, r, unauthorized("", missingKeyMessage))
			return
		}
		row, err := s.queries.APIKeyGetByHash(r.Context(), apikey.Hash(key))
		err = db.Translate(err)
		switch {
		case errors.Is(err, db.ErrNotFound):
			writeError(w, r, unauthorized("invalid_api_key",
				fmt.Sprintf("Incorrect API key provided: %s. Create a key with `volley keys create --owner NAME`.", apikey.Mask(key))))
			return
		case err != nil:
			writeError(w, r, fmt.Errorf("look up api key: %w", err))
			return
		case row.RevokedAt != nil:
			writeError(w, r, unauthorized("invalid_api_key",
				fmt.Sprintf("The API key %s has been revoked.", apikey.Mask(key))))
			return
		}
		ctx := context.WithValue(r.Context(), ctxOwner, row.Owner)
		ctx = context.WithValue(ctx, ctxAdmin, row.Admin)
		ctx = context.WithValue(ctx, ctxLogger, loggerFrom(ctx).With("owner", row.Owner))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
