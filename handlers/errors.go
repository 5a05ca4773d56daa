package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
)

// Error types of the OpenAI envelope.
const (
	typeInvalidRequest = "invalid_request_error"
	typeServer         = "server_error"
)

// APIError is an error that carries its HTTP answer. Handlers return it; writeError turns it, and
// every other error, into the OpenAI envelope.
type APIError struct {
	Status  int
	Type    string
	Code    string // empty → null
	Param   string // empty → null
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func badRequest(code, param, format string, args ...any) *APIError {
	return &APIError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Code: code, Param: param,
		Message: fmt.Sprintf(format, clipArgs(args)...)}
}

func notFound(param, format string, args ...any) *APIError {
	return &APIError{Status: http.StatusNotFound, Type: typeInvalidRequest, Param: param,
		Message: fmt.Sprintf(format, clipArgs(args)...)}
}

// maxQuotedBytes bounds a client-supplied value (an id, a name) quoted in an error message, so that
// a 10 KB id does not come back whole in every answer and log line.
const maxQuotedBytes = 128

// clipArgs truncates the string arguments of a message.
func clipArgs(args []any) []any {
	for i, a := range args {
		if s, ok := a.(string); ok && len(s) > maxQuotedBytes {
			args[i] = truncate(s, maxQuotedBytes)
		}
	}
	return args
}

func unauthorized(code, message string) *APIError {
	return &APIError{Status: http.StatusUnauthorized, Type: typeInvalidRequest, Code: code, Message: message}
}

func tooLarge(limit int64) *APIError {
	return &APIError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalidRequest, Code: "request_too_large",
		Message: fmt.Sprintf("Request body is too large: the limit is %d bytes.", limit)}
}

var errUnavailable = &APIError{Status: http.StatusServiceUnavailable, Type: typeServer,
	Message: "The server is temporarily unable to reach its database. Please retry shortly."}

var errHandlerTimedOut = &APIError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "timeout",
	Message: "The request took longer than the server allows (VOLLEY_HANDLER_TIMEOUT). Please retry."}

var errInternal = &APIError{Status: http.StatusInternalServerError, Type: typeServer,
	Message: "The server had an error while processing your request. Sorry about that!"}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// envelope renders e as the OpenAI error body.
func (e *APIError) envelope() api.ErrorResponse {
	return api.ErrorResponse{Error: api.ErrorObject{
		Message: e.Message, Type: e.Type, Param: nullable(e.Param), Code: nullable(e.Code),
	}}
}

// toAPIError classifies any error. Client errors pass through; database outages become 503; the
// rest is a 500 whose cause is only logged.
func toAPIError(err error) (*APIError, bool) {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr, true
	}
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return tooLarge(maxErr.Limit), true
	}
	if errors.Is(err, db.ErrInvalidText) {
		return badRequest("invalid_value", "", "The request holds text that cannot be stored or matched: a NUL character or bytes that are not UTF-8."), true
	}
	if errors.Is(err, db.ErrUnavailable) {
		return errUnavailable, false
	}
	return errInternal, false
}

// writeError is the single place where errors become HTTP answers.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	logger := loggerFrom(r.Context())
	var apiErr *APIError
	switch {
	case errors.Is(context.Cause(r.Context()), errHandlerTimeout):
		err = errHandlerTimedOut
	case errors.As(err, &apiErr) && apiErr.Code == "request_timeout":
		// A stalled body: the client is still there to be told, though its read side is done.
	case r.Context().Err() != nil:
		// The client went away, or cut its body off: there is no one to answer, and it is not a
		// server fault. The connection is reset rather than left to an implicit 200, so that nothing
		// between here and the client can take the cut-off request for a success.
		logger.Info("request abandoned by the client", "error", err.Error())
		panic(http.ErrAbortHandler)
	}
	apiErr, expected := toAPIError(err)
	if expected {
		logger.Info("request refused", "status", apiErr.Status, "code", apiErr.Code, "message", apiErr.Message)
	} else {
		logger.Error("request failed", "status", apiErr.Status, "error", err.Error())
	}
	writeAPIError(w, apiErr)
}

func writeAPIError(w http.ResponseWriter, e *APIError) {
	if e.Status >= 500 && e.Status != http.StatusServiceUnavailable {
		w.Header().Set("x-should-retry", "false")
	}
	writeJSON(w, e.Status, e.envelope())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":{"message":"encoding failed","type":"server_error","param":null,"code":null}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// requestErrorHandler answers errors raised while the generated code decodes a request: bad path or
// query parameters and unreadable bodies.
func requestErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, r, paramError(err))
}

// paramError turns the generated code's binding errors into precise 400s.
func paramError(err error) error {
	var unmarshal *api.UnmarshalingParamError
	var required *api.RequiredParamError
	var format *api.InvalidParamFormatError
	var many *api.TooManyValuesForParamError
	switch {
	case errors.As(err, &unmarshal):
		return badRequest("invalid_value", unmarshal.ParamName, "Invalid value for '%s': %s.", unmarshal.ParamName, rootCause(unmarshal.Err))
	case errors.As(err, &format):
		return badRequest("invalid_value", format.ParamName, "Invalid value for '%s': %s.", format.ParamName, rootCause(format.Err))
	case errors.As(err, &required):
		return badRequest("missing_required_parameter", required.ParamName, "Missing required parameter: '%s'.", required.ParamName)
	case errors.As(err, &many):
		return badRequest("invalid_value", many.ParamName, "Expected one value for '%s', got %d.", many.ParamName, many.Count)
	}
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return err
	}
	msg := err.Error()
	if strings.Contains(msg, "decode JSON body") {
		return badRequest("invalid_json", "", "We could not parse the JSON body of your request: %s.", rootCause(err))
	}
	if strings.Contains(msg, "multipart") || strings.Contains(msg, "Content-Type") {
		return badRequest("invalid_multipart", "", "The request body must be multipart/form-data with a 'file' and a 'purpose' field: %s.", msg)
	}
	return badRequest("invalid_request", "", "Could not read the request: %s.", msg)
}

func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

func notFoundRoute(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, &APIError{Status: http.StatusNotFound, Type: typeInvalidRequest,
		Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path)})
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, &APIError{Status: http.StatusMethodNotAllowed, Type: typeInvalidRequest,
		Message: fmt.Sprintf("Invalid method for URL (%s %s)", r.Method, r.URL.Path)})
}
