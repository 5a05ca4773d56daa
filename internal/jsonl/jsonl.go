// Package jsonl validates the lines of a Batch API input file.
//
// Each line of a batch input file is one request:
//
//	{"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", ...}}
//
// [Validate] checks one line in a single parsing pass, without building a
// document tree and without reflection, so that uploads can be validated while they
// stream in at close to disk speed. On success it returns the decoded fields a batch
// needs ([Line]); on failure a [*Error] with a stable code, the offending parameter
// and a human-readable message.
//
// # Rules
//
// A line is accepted when all of the following hold. When several rules are broken,
// the first one in this list is reported:
//
//  1. The line is valid UTF-8 ([CodeInvalidUTF8]).
//  2. The line is exactly one JSON value per RFC 8259, optionally surrounded by JSON
//     whitespace (space, tab, CR, LF; so a trailing "\r" from CRLF line endings is
//     fine), nested at most [Limits.MaxDepth] levels deep, and that value is an object
//     ([CodeInvalidJSONLine]).
//  3. None of the keys custom_id, method, url, body appears twice at the top level, and
//     model does not appear twice in the body ([CodeDuplicateKey]). Keys are compared
//     after resolving escapes, so "custom\u005fid" is custom_id. Keys that differ from
//     one of these names only in letter case (as encoding/json's case-insensitive
//     matching sees it, e.g. "Custom_ID" or "cuſtom_id") count as the same key: such a
//     pair is reported as a duplicate, and a lone variant is reported as the field
//     being missing. Parsers disagree about all of these cases (first wins, last wins,
//     case-sensitive or not), so they are refused rather than resolved one way.
//     If several keys are duplicated, the first duplicate in the line is reported.
//  4. custom_id is present ([CodeMissingCustomID]) and is a non-empty string of at most
//     [Limits.MaxCustomIDBytes] bytes (counted after decoding escapes) that contains
//     no NUL character and no unpaired UTF-16 surrogate escape ([CodeInvalidCustomID]).
//  5. method is present ([CodeMissingMethod]) and is the string "POST"
//     ([CodeInvalidMethod]).
//  6. url is present ([CodeMissingURL]) and is one of [BatchEndpoints]
//     ([CodeUnsupportedURL]).
//  7. body is present ([CodeMissingBody]) and is an object ([CodeInvalidBody]).
//  8. body.model is present ([CodeMissingModel]) and is a non-empty string without NUL
//     characters ([CodeInvalidModel]).
//
// Other keys, at the top level and in the body, are allowed and not inspected beyond
// JSON well-formedness. A JSON null counts as present with the wrong type, not as
// missing. The checks on field values (rules 4 to 8) are made in that fixed order,
// whatever the order of the keys in the line.
//
// Strings are decoded exactly as encoding/json decodes them: escapes are resolved,
// and a \u escape naming an unpaired UTF-16 surrogate becomes U+FFFD — except in
// custom_id, where it is refused ([CodeInvalidCustomID]), since the output line
// could not give it back exactly and the caller could not match it. Unlike
// encoding/json, invalid UTF-8 anywhere in the line is an error rather than being
// replaced.
//
// # Messages
//
// Messages are sentences ending with a period. They name the problem and, for syntax
// errors, where it is as a 1-based byte position within the line ("invalid JSON at
// byte 17: unexpected character '}', expecting a value."), the same convention as
// encoding/json's SyntaxError.Offset. They do not carry a line number: callers prefix
// one ("Line 3: ..."). Values quoted in messages are truncated and escaped so that a
// hostile line cannot produce a huge or unprintable message.
//
// # Performance
//
// Validate makes one pass to check UTF-8 and one pass to parse; both skip ASCII text
// eight or more bytes at a time. It does not recurse beyond the two fixed levels
// of the line's structure (top level and body), so deeply nested input cannot exhaust
// the stack, and it allocates only the returned strings (one allocation for a valid
// line), plus the error for an invalid one. It is safe for concurrent use.
package jsonl

import (
	"bytes"
	"strconv"
)

// Error codes, stable and suitable for API responses.
const (
	// CodeInvalidUTF8: the line is not valid UTF-8.
	CodeInvalidUTF8 = "invalid_utf8"
	// CodeInvalidJSONLine: the line is not a single well-formed JSON object,
	// or is nested more deeply than Limits.MaxDepth.
	CodeInvalidJSONLine = "invalid_json_line"
	// CodeDuplicateKey: custom_id, method, url or body appears more than once at
	// the top level, or model more than once in the body (including variants that
	// differ only in letter case).
	CodeDuplicateKey = "duplicate_key"
	// CodeMissingCustomID: there is no custom_id.
	CodeMissingCustomID = "missing_custom_id"
	// CodeInvalidCustomID: custom_id is not a string, is empty, is too long or
	// contains a NUL character.
	CodeInvalidCustomID = "invalid_custom_id"
	// CodeMissingMethod: there is no method.
	CodeMissingMethod = "missing_method"
	// CodeInvalidMethod: method is anything other than the string "POST".
	CodeInvalidMethod = "invalid_method"
	// CodeMissingURL: there is no url.
	CodeMissingURL = "missing_url"
	// CodeUnsupportedURL: url is not a string naming one of BatchEndpoints.
	CodeUnsupportedURL = "unsupported_url"
	// CodeMissingBody: there is no body.
	CodeMissingBody = "missing_body"
	// CodeInvalidBody: body is not a JSON object.
	CodeInvalidBody = "invalid_body"
	// CodeMissingModel: body has no model.
	CodeMissingModel = "missing_model"
	// CodeInvalidModel: body.model is not a string, is empty or contains a NUL
	// character.
	CodeInvalidModel = "invalid_model"
)

// Values of Error.Param. Errors about the line as a whole (CodeInvalidUTF8,
// CodeInvalidJSONLine) have an empty Param.
const (
	ParamCustomID = "custom_id"
	ParamMethod   = "method"
	ParamURL      = "url"
	ParamBody     = "body"
	ParamModel    = "body.model"
)

// MethodPOST is the only method accepted, and the value of Line.Method.
const MethodPOST = "POST"

// The endpoints a batch may target.
const (
	EndpointChatCompletions = "/v1/chat/completions"
	EndpointCompletions     = "/v1/completions"
	EndpointEmbeddings      = "/v1/embeddings"
	EndpointResponses       = "/v1/responses"
	EndpointModerations     = "/v1/moderations"
)

// BatchEndpoints lists the values accepted for url, in the order used in messages.
// It must not be modified.
var BatchEndpoints = []string{
	EndpointChatCompletions,
	EndpointCompletions,
	EndpointEmbeddings,
	EndpointResponses,
	EndpointModerations,
}

// IsBatchEndpoint reports whether url is one of BatchEndpoints (exact match).
func IsBatchEndpoint(url string) bool {
	return canonicalEndpoint(url) != ""
}

// canonicalEndpoint returns the constant equal to url, or "" if there is none.
// Called with string(someBytes) it does not allocate.
func canonicalEndpoint(url string) string {
	switch url {
	case EndpointChatCompletions:
		return EndpointChatCompletions
	case EndpointCompletions:
		return EndpointCompletions
	case EndpointEmbeddings:
		return EndpointEmbeddings
	case EndpointResponses:
		return EndpointResponses
	case EndpointModerations:
		return EndpointModerations
	}
	return ""
}

// Defaults used for zero (or negative) Limits fields.
const (
	DefaultMaxCustomIDBytes = 512
	DefaultMaxDepth         = 64
)

// Limits configures Validate. The zero value means the defaults.
type Limits struct {
	// MaxCustomIDBytes is the longest custom_id accepted, in bytes of its decoded
	// UTF-8 value. Zero or negative means DefaultMaxCustomIDBytes.
	MaxCustomIDBytes int
	// MaxDepth is the deepest nesting of objects and arrays accepted; the line's
	// own object is depth 1 and its body depth 2. Zero or negative means
	// DefaultMaxDepth.
	MaxDepth int
}

func (l Limits) withDefaults() Limits {
	if l.MaxCustomIDBytes <= 0 {
		l.MaxCustomIDBytes = DefaultMaxCustomIDBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

// Line is what Validate extracts from a valid line. The strings are decoded
// values that do not alias the input (CustomID and Model share one allocation).
type Line struct {
	CustomID string
	Method   string // always MethodPOST
	URL      string // one of BatchEndpoints
	Model    string
	// BodyStart and BodyEnd delimit the raw JSON text of the body object in the
	// validated input: b[BodyStart:BodyEnd] starts with '{' and ends with '}'.
	BodyStart, BodyEnd int
}

// Error describes why a line is invalid.
type Error struct {
	Code    string // one of the Code constants
	Param   string // one of the Param constants, or "" for problems with the line as a whole
	Message string // human-readable, without a line number
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Validate checks one line of a batch input file. b is the line without its
// terminating "\n" (a trailing "\r" is JSON whitespace and is accepted). Validate
// does not retain b.
//
// It returns the extracted fields and a nil *Error if the line is valid. Note that
// the error is returned as *Error: compare it with nil before converting it to the
// error interface.
func Validate(b []byte, lim Limits) (Line, *Error) {
	lim = lim.withDefaults()
	if !validUTF8(b) {
		return Line{}, utf8Error(b)
	}
	s := scanner{b: b, maxDepth: lim.MaxDepth, dup: -1}
	if !s.line() {
		return Line{}, s.err
	}
	return s.result(lim)
}

// result applies the field rules to a syntactically valid line.
func (s *scanner) result(lim Limits) (Line, *Error) {
	if s.dup >= 0 {
		return Line{}, s.duplicateError()
	}
	b := s.b

	// Decoded custom_id and model are collected into one buffer and converted to
	// a single string, so a valid line costs one allocation.
	var scratch [256]byte
	buf := scratch[:0]

	if !s.present(fCustomID) {
		return Line{}, s.missingError(fCustomID)
	}
	v := s.fields[fCustomID].val
	if v.kind != kindString {
		return Line{}, newError(CodeInvalidCustomID, ParamCustomID, "custom_id must be a string, got "+s.describe(v)+".")
	}
	n := v.end - v.start - 2 // the decoded length if there are no escapes
	if v.esc || n <= lim.MaxCustomIDBytes {
		buf = appendDecoded(buf, b, v)
		n = len(buf)
	}
	switch {
	case n == 0:
		return Line{}, newError(CodeInvalidCustomID, ParamCustomID, "custom_id must not be empty.")
	case n > lim.MaxCustomIDBytes:
		return Line{}, newError(CodeInvalidCustomID, ParamCustomID, "custom_id is "+strconv.Itoa(n)+
			" bytes long, more than the maximum of "+strconv.Itoa(lim.MaxCustomIDBytes)+" bytes.")
	case v.esc && bytes.IndexByte(buf, 0) >= 0:
		return Line{}, newError(CodeInvalidCustomID, ParamCustomID, `custom_id must not contain a NUL character (\u0000).`)
	case hasLoneSurrogate(b, v):
		return Line{}, newError(CodeInvalidCustomID, ParamCustomID, `custom_id must not contain an unpaired UTF-16 surrogate escape (such as \ud800): it could not be returned exactly.`)
	}

	if !s.present(fMethod) {
		return Line{}, s.missingError(fMethod)
	}
	v = s.fields[fMethod].val
	if v.kind != kindString || !stringIs(b, v, MethodPOST) {
		return Line{}, newError(CodeInvalidMethod, ParamMethod, "method must be 'POST', got "+s.describe(v)+".")
	}

	if !s.present(fURL) {
		return Line{}, s.missingError(fURL)
	}
	v = s.fields[fURL].val
	url := ""
	if v.kind == kindString {
		if v.esc {
			var tmp [32]byte
			url = canonicalEndpoint(string(appendDecoded(tmp[:0], b, v)))
		} else {
			url = canonicalEndpoint(string(b[v.start+1 : v.end-1]))
		}
	}
	if url == "" {
		return Line{}, s.urlError(v)
	}

	if !s.present(fBody) {
		return Line{}, s.missingError(fBody)
	}
	body := s.fields[fBody].val
	if body.kind != kindObject {
		return Line{}, newError(CodeInvalidBody, ParamBody, "body must be a JSON object, got "+s.describe(body)+".")
	}

	if !s.present(fModel) {
		return Line{}, s.missingError(fModel)
	}
	v = s.fields[fModel].val
	if v.kind != kindString {
		return Line{}, newError(CodeInvalidModel, ParamModel, "body.model must be a string, got "+s.describe(v)+".")
	}
	buf = appendDecoded(buf, b, v)
	switch {
	case len(buf) == n:
		return Line{}, newError(CodeInvalidModel, ParamModel, "body.model must not be empty.")
	case v.esc && bytes.IndexByte(buf[n:], 0) >= 0:
		return Line{}, newError(CodeInvalidModel, ParamModel, `body.model must not contain a NUL character (\u0000).`)
	}

	str := string(buf)
	return Line{
		CustomID:  str[:n],
		Method:    MethodPOST,
		URL:       url,
		Model:     str[n:],
		BodyStart: body.start,
		BodyEnd:   body.end,
	}, nil
}

// present reports whether field f was given under its exact name.
func (s *scanner) present(f int) bool {
	return s.fields[f].count > 0 && s.fields[f].exact
}

// stringIs reports whether the string value v decodes to want.
func stringIs(b []byte, v value, want string) bool {
	if !v.esc {
		return string(b[v.start+1:v.end-1]) == want
	}
	var tmp [32]byte
	return string(appendDecoded(tmp[:0], b, v)) == want
}
