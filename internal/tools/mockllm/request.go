package mockllm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Directive is the optional top-level "mock" object of a request body. It
// makes a request behave deterministically, whatever the server-wide fault
// rates:
//
//	{"mock":{"status":400}}                                 always 400
//	{"mock":{"status":500,"times":2}}                       first 2 identical bodies get 500, then success
//	{"mock":{"status":429,"retry_after":"2","times":1}}     429 with Retry-After: 2
//	{"mock":{"status":429,"retry_after_ms":"300","times":1}} 429 with Retry-After-Ms: 300
//	{"mock":{"reset":true,"times":1}}                       connection reset
//	{"mock":{"hang":true}}                                  never answered
//	{"mock":{"latency":"500ms"}}                            per-request latency
//	{"mock":{"content":"fixed text"}}                       replaces the generated text
//
// "times" counts calls whose raw body is byte-for-byte identical (SHA-256),
// since the server started or the stats were last reset. Without "times"
// (or with 0) the fault applies to every call. Reset takes precedence over
// hang, hang over status. Latency and content apply to every call,
// regardless of "times". Calls for which the directive has no active fault
// are still subject to the server-wide random faults.
type Directive struct {
	// Status is an error status within 400..599 (0 or 200: none).
	Status int `json:"status,omitempty"`
	// Times limits the fault to the first Times calls with this body.
	Times int `json:"times,omitempty"`
	// RetryAfter and RetryAfterMS are copied verbatim into the Retry-After
	// and Retry-After-Ms headers of the error answer. They may be given as
	// JSON strings or numbers.
	RetryAfter   FlexString `json:"retry_after,omitempty"`
	RetryAfterMS FlexString `json:"retry_after_ms,omitempty"`
	// Reset closes the connection (with an RST) without answering.
	Reset bool `json:"reset,omitempty"`
	// Hang leaves the request unanswered until the client goes away.
	Hang bool `json:"hang,omitempty"`
	// Latency replaces the server latency: a Go duration ("500ms") or a
	// number of milliseconds.
	Latency FlexString `json:"latency,omitempty"`
	// Message, Type and Code override the error envelope fields.
	Message string `json:"message,omitempty"`
	Type    string `json:"type,omitempty"`
	Code    string `json:"code,omitempty"`
	// Content replaces the generated text of a successful answer.
	Content *string `json:"content,omitempty"`
}

func (d *Directive) faulty() bool { return d.Reset || d.Hang || d.Status >= 400 }

// FlexString is a string that may also be written as a JSON number.
type FlexString string

// UnmarshalJSON implements json.Unmarshaler.
func (f *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*f = ""
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = FlexString(s)
		return nil
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		*f = FlexString(b)
		return nil
	}
	return errors.New("want a string or a number")
}

// apiRequest holds the fields of all endpoints; each endpoint reads the
// ones it needs.
type apiRequest struct {
	Model         json.RawMessage `json:"model"`
	Mock          *Directive      `json:"mock"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N                   *int            `json:"n"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	MaxOutputTokens     *int            `json:"max_output_tokens"`
	Messages            json.RawMessage `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	Input               json.RawMessage `json:"input"`
	Instructions        json.RawMessage `json:"instructions"`
	Metadata            json.RawMessage `json:"metadata"`
	PreviousResponseID  json.RawMessage `json:"previous_response_id"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Store               *bool           `json:"store"`
	Dimensions          *int            `json:"dimensions"`
	EncodingFormat      string          `json:"encoding_format"`
	ServiceTier         *string         `json:"service_tier"`

	model          string
	mock           *Directive
	mockLatency    time.Duration
	hasMockLatency bool

	// last is the text to echo (chat, responses).
	last string
	// items are the individual inputs (completions, embeddings,
	// moderations) and itemTokens their token counts.
	items      []string
	itemTokens []int
	// promptTokens is the input token count, at least 1.
	promptTokens int
}

func invalid(param, format string, args ...any) *apiError {
	return newAPIError(fmt.Sprintf(format, args...), "invalid_request_error", param, "invalid_request")
}

// parseRequest decodes body into req. req.model is set whenever the body
// carries a string model, even if another part is invalid.
// serviceTiers are the tiers OpenAI accepts; it refuses any other.
var serviceTiers = []string{"auto", "default", "flex", "scale", "priority", "fast", "ultrafast"}

func parseRequest(ep endpoint, body []byte, req *apiRequest) *apiError {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return invalid("", "The request body must be a JSON object.")
	}
	if err := json.Unmarshal(body, req); err != nil {
		var model string
		if json.Unmarshal(req.Model, &model) == nil {
			req.model = model
		}
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			return invalid(te.Field, "Invalid type for '%s': %v", te.Field, err)
		}
		return invalid("", "We could not parse the JSON body of your request: %v", err)
	}
	m := bytes.TrimSpace(req.Model)
	if len(m) == 0 || string(m) == "null" {
		return invalid("model", "you must provide a model parameter")
	}
	if m[0] != '"' {
		return invalid("model", "Invalid type for 'model': expected a string.")
	}
	if err := json.Unmarshal(m, &req.model); err != nil {
		return invalid("model", "Invalid 'model': %v", err)
	}
	if req.model == "" {
		return invalid("model", "you must provide a model parameter")
	}
	if t := req.ServiceTier; t != nil && !slices.Contains(serviceTiers, *t) {
		return invalid("service_tier", "Invalid value for 'service_tier': '%s'. Supported values are: %s.", *t, strings.Join(serviceTiers, ", "))
	}
	if d := req.Mock; d != nil {
		if aerr := req.checkDirective(d); aerr != nil {
			return aerr
		}
	}
	switch ep {
	case epChat:
		return req.parseChat()
	case epCompletions:
		return req.parseCompletions()
	case epEmbeddings:
		return req.parseEmbeddings()
	case epModerations:
		return req.parseModerations()
	case epResponses:
		return req.parseResponses()
	}
	return nil
}

func (req *apiRequest) checkDirective(d *Directive) *apiError {
	if d.Status != 0 && d.Status != 200 && (d.Status < 400 || d.Status > 599) {
		return invalid("mock.status", "mock.status must be 200 or within 400..599, got %d", d.Status)
	}
	if d.Times < 0 {
		return invalid("mock.times", "mock.times must not be negative")
	}
	if d.Latency != "" {
		s := string(d.Latency)
		var lat time.Duration
		if ms, err := strconv.ParseFloat(s, 64); err == nil {
			lat = time.Duration(ms * float64(time.Millisecond))
		} else if lat, err = time.ParseDuration(s); err != nil {
			return invalid("mock.latency", "mock.latency must be a duration such as \"500ms\" or a number of milliseconds, got %q", s)
		}
		if lat < 0 {
			return invalid("mock.latency", "mock.latency must not be negative")
		}
		req.mockLatency = lat
		req.hasMockLatency = true
	}
	req.mock = d
	return nil
}

// contentText returns the text of a message content: a string, or the text
// parts of an array joined by spaces.
func contentText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case '[':
		var parts []struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return "", err
		}
		var sb strings.Builder
		for _, p := range parts {
			if p.Text == "" {
				continue
			}
			if sb.Len() > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(p.Text)
		}
		return sb.String(), nil
	}
	return "", errors.New("expected a string or an array of content parts")
}

func (req *apiRequest) parseChat() *apiError {
	raw := bytes.TrimSpace(req.Messages)
	if len(raw) == 0 || string(raw) == "null" {
		return invalid("messages", "Missing required parameter: 'messages'.")
	}
	var msgs []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return invalid("messages", "Invalid 'messages': %v", err)
	}
	if len(msgs) == 0 {
		return invalid("messages", "Invalid 'messages': empty array. Expected an array with minimum length 1.")
	}
	tokens := 0
	var last, lastAny string
	haveUser := false
	for i, m := range msgs {
		text, err := contentText(m.Content)
		if err != nil {
			return invalid(fmt.Sprintf("messages.[%d].content", i), "Invalid 'messages[%d].content': %v", i, err)
		}
		tokens += countWords(text)
		lastAny = text
		if m.Role == "user" {
			last, haveUser = text, true
		}
	}
	if !haveUser {
		last = lastAny
	}
	req.last = last
	req.promptTokens = max(tokens, 1)
	return nil
}

// parseItems decodes a string, an array of strings, an array of token ids
// or an array of token id arrays.
func parseItems(raw json.RawMessage, param string) ([]string, []int, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, invalid(param, "Missing required parameter: '%s'.", param)
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, nil, invalid(param, "Invalid '%s': %v", param, err)
		}
		return []string{s}, []int{countWords(s)}, nil
	case '[':
	default:
		return nil, nil, invalid(param, "Invalid type for '%s': expected a string or an array.", param)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, nil, invalid(param, "Invalid '%s': %v", param, err)
	}
	if len(elems) == 0 {
		return nil, nil, invalid(param, "Invalid '%s': empty array. Expected an array with minimum length 1.", param)
	}
	first := bytes.TrimSpace(elems[0])
	if len(first) > 0 && (first[0] == '-' || (first[0] >= '0' && first[0] <= '9')) {
		var toks []int64
		if err := json.Unmarshal(raw, &toks); err != nil {
			return nil, nil, invalid(param, "Invalid '%s': %v", param, err)
		}
		return []string{tokensText(toks)}, []int{len(toks)}, nil
	}
	items := make([]string, len(elems))
	counts := make([]int, len(elems))
	for i, e := range elems {
		e = bytes.TrimSpace(e)
		switch {
		case len(e) > 0 && e[0] == '"':
			if err := json.Unmarshal(e, &items[i]); err != nil {
				return nil, nil, invalid(param, "Invalid '%s[%d]': %v", param, i, err)
			}
			counts[i] = countWords(items[i])
		case len(e) > 0 && e[0] == '[':
			var toks []int64
			if err := json.Unmarshal(e, &toks); err != nil {
				return nil, nil, invalid(param, "Invalid '%s[%d]': %v", param, i, err)
			}
			items[i] = tokensText(toks)
			counts[i] = len(toks)
		default:
			return nil, nil, invalid(param, "Invalid type for '%s[%d]': expected a string or an array of integers.", param, i)
		}
	}
	return items, counts, nil
}

func tokensText(toks []int64) string {
	b := make([]byte, 0, len(toks)*6)
	for i, t := range toks {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, t, 10)
	}
	return string(b)
}

func sum(v []int) int {
	t := 0
	for _, x := range v {
		t += x
	}
	return t
}

func (req *apiRequest) parseCompletions() *apiError {
	items, counts, aerr := parseItems(req.Prompt, "prompt")
	if aerr != nil {
		return aerr
	}
	req.items, req.itemTokens = items, counts
	req.promptTokens = max(sum(counts), 1)
	return nil
}

func (req *apiRequest) parseEmbeddings() *apiError {
	items, counts, aerr := parseItems(req.Input, "input")
	if aerr != nil {
		return aerr
	}
	if req.Dimensions != nil && *req.Dimensions < 1 {
		return invalid("dimensions", "Invalid 'dimensions': must be at least 1.")
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		return invalid("encoding_format", "Invalid 'encoding_format': expected 'float' or 'base64'.")
	}
	req.items, req.itemTokens = items, counts
	req.promptTokens = max(sum(counts), 1)
	return nil
}

func (req *apiRequest) parseModerations() *apiError {
	raw := bytes.TrimSpace(req.Input)
	if len(raw) > 0 && raw[0] == '[' {
		// Multi-modal input: an array of content parts is one input.
		var parts []struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &parts) == nil && len(parts) > 0 && parts[0].Type != "" {
			text, err := contentText(raw)
			if err != nil {
				return invalid("input", "Invalid 'input': %v", err)
			}
			req.items = []string{text}
			req.itemTokens = []int{countWords(text)}
			req.promptTokens = max(req.itemTokens[0], 1)
			return nil
		}
	}
	items, counts, aerr := parseItems(req.Input, "input")
	if aerr != nil {
		return aerr
	}
	req.items, req.itemTokens = items, counts
	req.promptTokens = max(sum(counts), 1)
	return nil
}

func (req *apiRequest) parseResponses() *apiError {
	tokens := 0
	if instr := bytes.TrimSpace(req.Instructions); len(instr) > 0 && instr[0] == '"' {
		var s string
		if json.Unmarshal(instr, &s) == nil {
			tokens += countWords(s)
		}
	}
	raw := bytes.TrimSpace(req.Input)
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &req.last); err != nil {
			return invalid("input", "Invalid 'input': %v", err)
		}
		tokens += countWords(req.last)
	case raw[0] == '[':
		var items []struct {
			Type    string          `json:"type"`
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
			Output  json.RawMessage `json:"output"`
		}
		if err := json.Unmarshal(raw, &items); err != nil {
			return invalid("input", "Invalid 'input': %v", err)
		}
		var lastAny string
		haveUser := false
		for i, it := range items {
			text, err := contentText(it.Content)
			if err != nil {
				return invalid(fmt.Sprintf("input[%d].content", i), "Invalid 'input[%d].content': %v", i, err)
			}
			if out := bytes.TrimSpace(it.Output); len(out) > 0 && out[0] == '"' {
				var s string
				if json.Unmarshal(out, &s) == nil {
					tokens += countWords(s)
				}
			}
			if len(it.Content) == 0 {
				continue
			}
			tokens += countWords(text)
			lastAny = text
			if it.Role == "user" {
				req.last, haveUser = text, true
			}
		}
		if !haveUser {
			req.last = lastAny
		}
	default:
		return invalid("input", "Invalid type for 'input': expected a string or an array of input items.")
	}
	req.promptTokens = max(tokens, 1)
	return nil
}

// countWords counts whitespace separated words.
func countWords(s string) int {
	n := 0
	in := false
	for i := 0; i < len(s); {
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		i += size
		if unicode.IsSpace(r) {
			in = false
		} else if !in {
			in = true
			n++
		}
	}
	return n
}

// truncateWords returns the prefix of s holding its first n words and
// whether anything was cut.
func truncateWords(s string, n int) (string, bool) {
	words := 0
	in := false
	for i, r := range s {
		if unicode.IsSpace(r) {
			in = false
			continue
		}
		if !in {
			if words == n {
				return strings.TrimRightFunc(s[:i], unicode.IsSpace), true
			}
			in = true
			words++
		}
	}
	return s, false
}

// truncateRunes returns s cut to at most n runes (n < 0: no limit).
func truncateRunes(s string, n int) string {
	if n < 0 || len(s) <= n {
		return s
	}
	count := 0
	for i := range s {
		if count == n {
			return s[:i]
		}
		count++
	}
	return s
}
