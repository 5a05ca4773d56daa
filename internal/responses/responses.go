// Package responses renders OpenAI Response objects for Volley: the skeleton of a queued or
// running response, an upstream's object under Volley's id, and the error of a failed one. The API
// and the daemon both use it, so a response reads the same whoever wrote it.
package responses

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// WithID returns the upstream's Response object under Volley's id, with output always an array.
func WithID(body []byte, id string) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil || obj == nil {
		return Failure("server_error", "The upstream answered with something that is not a Response object.")
	}
	obj["id"], _ = json.Marshal(id)
	if out, ok := obj["output"]; !ok || bytes.Equal(bytes.TrimSpace(out), []byte("null")) {
		obj["output"] = json.RawMessage("[]")
	}
	for _, f := range required {
		if _, ok := obj[f.name]; !ok {
			obj[f.name] = json.RawMessage(f.def)
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return Failure("server_error", "The upstream's Response object could not be stored.")
	}
	return b
}

// AsCreated returns a stored Response object with "background" set as the client created it, and
// "service_tier" too when tier, a tier of Volley's own, is not empty. A background response is sent
// upstream without "background" (the upstream runs it in the foreground for Volley), and without
// Volley's tier, so the upstream's object says neither; the client's object must.
func AsCreated(obj []byte, background bool, tier string) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil || m == nil {
		return obj
	}
	m["background"], _ = json.Marshal(background)
	if tier != "" {
		m["service_tier"], _ = json.Marshal(tier)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return obj
	}
	return b
}

// Failure is the error of a failed response: {code, message}.
func Failure(code, message string) []byte {
	b, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{code, message})
	return b
}

// FromUpstreamError turns a final non-2xx upstream answer into a response error, keeping the
// upstream's code and message when it sent the usual envelope.
func FromUpstreamError(status int, body []byte) []byte {
	var env struct {
		Error struct {
			Code    any    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &env)
	code, _ := env.Error.Code.(string)
	if code == "" {
		switch {
		case status == 429:
			code = "rate_limit_exceeded"
		case status >= 400 && status < 500:
			code = "invalid_prompt"
		default:
			code = "server_error"
		}
	}
	msg := env.Error.Message
	if msg == "" {
		msg = "The upstream answered with HTTP status " + strconv.Itoa(status) + "."
	}
	return Failure(code, msg)
}

// Skeleton is a Response object that has no answer yet (queued, in_progress) or never will
// (cancelled, failed). Fields the create request set are echoed; the rest take OpenAI's defaults.
type Skeleton struct {
	ID        string
	CreatedAt int64
	Status    string
	// Params is the create request as the client sent it.
	Params []byte
	// Background is whether the response was created in background mode.
	Background bool
	// Error is the {code, message} of a failed response; nil otherwise.
	Error []byte
}

// required are the fields the official SDKs require of a Response object that an upstream other
// than OpenAI may leave out, with the value OpenAI gives them by default.
var required = []struct {
	name, def string
}{
	{"object", `"response"`},
	{"access_programs", "null"},
	{"error", "null"},
	{"incomplete_details", "null"},
	{"instructions", "null"},
	{"metadata", "{}"},
	{"parallel_tool_calls", "true"},
	{"temperature", "1.0"},
	{"tool_choice", `"auto"`},
	{"tools", "[]"},
	{"top_p", "1.0"},
}

// echoed are the request fields a Response object repeats, with their defaults.
var echoed = []struct {
	name, def string
}{
	{"access_programs", "null"},
	{"instructions", "null"},
	{"max_output_tokens", "null"},
	{"metadata", "{}"},
	{"parallel_tool_calls", "true"},
	{"previous_response_id", "null"},
	{"reasoning", `{"effort":null,"summary":null}`},
	{"service_tier", `"auto"`},
	{"store", "true"},
	{"temperature", "1.0"},
	{"text", `{"format":{"type":"text"}}`},
	{"tool_choice", `"auto"`},
	{"tools", "[]"},
	{"top_p", "1.0"},
	{"truncation", `"disabled"`},
	{"user", "null"},
}

// Render writes the skeleton as JSON.
func (s Skeleton) Render() []byte {
	var params map[string]json.RawMessage
	_ = json.Unmarshal(s.Params, &params)
	obj := map[string]json.RawMessage{
		"object":             json.RawMessage(`"response"`),
		"created_at":         json.RawMessage(strconv.FormatInt(s.CreatedAt, 10)),
		"completed_at":       json.RawMessage("null"),
		"incomplete_details": json.RawMessage("null"),
		"output":             json.RawMessage("[]"),
		"usage":              json.RawMessage("null"),
		"error":              json.RawMessage("null"),
		"model":              params["model"],
	}
	obj["id"], _ = json.Marshal(s.ID)
	obj["status"], _ = json.Marshal(s.Status)
	obj["background"], _ = json.Marshal(s.Background)
	if s.Error != nil {
		obj["error"] = s.Error
	}
	for _, f := range echoed {
		if v, ok := params[f.name]; ok && len(v) > 0 {
			obj[f.name] = v
		} else {
			obj[f.name] = json.RawMessage(f.def)
		}
	}
	b, _ := json.Marshal(obj)
	return b
}
