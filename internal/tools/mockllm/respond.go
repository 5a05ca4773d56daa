package mockllm

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"time"
)

const systemFingerprint = "fp_mockllm"

// outputText is the generated text and whether it was cut by a token limit.
type outputText struct {
	text      string
	truncated bool
	tokens    int
}

func (c *call) generate(input string, override *string, limit *int) outputText {
	var text string
	if override != nil {
		text = *override
	} else {
		text = "echo: " + truncateRunes(input, c.s.cfg.EchoMaxRunes)
	}
	out := outputText{text: text}
	if limit != nil && *limit > 0 {
		out.text, out.truncated = truncateWords(text, *limit)
	}
	out.tokens = max(countWords(out.text), 1)
	if pad := c.s.cfg.PadBytes - len(out.text); pad > 0 {
		out.text += " " + strings.Repeat("x", pad-1)
		out.tokens++
	}
	return out
}

func (c *call) respond(req *apiRequest, override *string) {
	switch c.ep {
	case epChat:
		c.respondChat(req, override)
	case epCompletions:
		c.respondCompletions(req, override)
	case epEmbeddings:
		c.respondEmbeddings(req)
	case epModerations:
		c.respondModerations(req)
	case epResponses:
		c.respondResponses(req, override)
	}
}

func (c *call) ok(v any) {
	c.record(http.StatusOK)
	writeJSON(c.w, http.StatusOK, v)
}

func clampChoices(n *int) int {
	if n == nil || *n < 1 {
		return 1
	}
	return min(*n, maxChoices)
}

// ---- chat completions ----

type usage struct {
	PromptTokens            int           `json:"prompt_tokens"`
	CompletionTokens        int           `json:"completion_tokens"`
	TotalTokens             int           `json:"total_tokens"`
	PromptTokensDetails     *tokenDetails `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *tokenDetails `json:"completion_tokens_details,omitempty"`
}

type tokenDetails struct {
	CachedTokens    *int `json:"cached_tokens,omitempty"`
	ReasoningTokens *int `json:"reasoning_tokens,omitempty"`
}

var zero = 0

func chatUsage(prompt, completion int) *usage {
	return &usage{
		PromptTokens:            prompt,
		CompletionTokens:        completion,
		TotalTokens:             prompt + completion,
		PromptTokensDetails:     &tokenDetails{CachedTokens: &zero},
		CompletionTokensDetails: &tokenDetails{ReasoningTokens: &zero},
	}
}

type chatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []chatChoice `json:"choices"`
	Usage             *usage       `json:"usage"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      chatMessage `json:"message"`
	FinishReason string      `json:"finish_reason"`
	Logprobs     any         `json:"logprobs"`
}

type chatMessage struct {
	Role        string `json:"role"`
	Content     string `json:"content"`
	Refusal     any    `json:"refusal"`
	Annotations []any  `json:"annotations"`
}

type chatChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint"`
	Choices           []chunkChoice `json:"choices"`
	Usage             *usage        `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	Logprobs     any        `json:"logprobs"`
	FinishReason *string    `json:"finish_reason"`
}

type chunkDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

func finishReason(out outputText) string {
	if out.truncated {
		return "length"
	}
	return "stop"
}

func (c *call) respondChat(req *apiRequest, override *string) {
	limit := req.MaxCompletionTokens
	if limit == nil {
		limit = req.MaxTokens
	}
	out := c.generate(req.last, override, limit)
	n := clampChoices(req.N)
	id := "chatcmpl-" + c.id
	created := time.Now().Unix()
	fr := finishReason(out)
	if req.Stream {
		sw := c.startStream()
		for i := range n {
			empty := ""
			sw.data(chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: req.model,
				SystemFingerprint: systemFingerprint,
				Choices:           []chunkChoice{{Index: i, Delta: chunkDelta{Role: "assistant", Content: &empty}}}})
			for _, d := range splitDeltas(out.text) {
				sw.data(chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: req.model,
					SystemFingerprint: systemFingerprint,
					Choices:           []chunkChoice{{Index: i, Delta: chunkDelta{Content: &d}}}})
			}
			sw.data(chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: req.model,
				SystemFingerprint: systemFingerprint,
				Choices:           []chunkChoice{{Index: i, FinishReason: &fr}}})
		}
		if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
			sw.data(chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: req.model,
				SystemFingerprint: systemFingerprint, Choices: []chunkChoice{},
				Usage: chatUsage(req.promptTokens, out.tokens*n)})
		}
		sw.done()
		return
	}
	choices := make([]chatChoice, n)
	for i := range choices {
		choices[i] = chatChoice{Index: i, FinishReason: fr,
			Message: chatMessage{Role: "assistant", Content: out.text, Annotations: []any{}}}
	}
	c.ok(&chatCompletion{
		ID: id, Object: "chat.completion", Created: created, Model: req.model,
		SystemFingerprint: systemFingerprint, Choices: choices,
		Usage: chatUsage(req.promptTokens, out.tokens*n),
	})
}

// ---- legacy completions ----

type textCompletion struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	SystemFingerprint string             `json:"system_fingerprint"`
	Choices           []completionChoice `json:"choices"`
	Usage             *usage             `json:"usage,omitempty"`
}

type completionChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

func (c *call) respondCompletions(req *apiRequest, override *string) {
	n := clampChoices(req.N)
	id := "cmpl-" + c.id
	created := time.Now().Unix()
	outs := make([]outputText, len(req.items))
	completionTokens := 0
	for i, item := range req.items {
		outs[i] = c.generate(item, override, req.MaxTokens)
		completionTokens += outs[i].tokens * n
	}
	u := &usage{PromptTokens: req.promptTokens, CompletionTokens: completionTokens,
		TotalTokens: req.promptTokens + completionTokens}
	if req.Stream {
		sw := c.startStream()
		for i, out := range outs {
			fr := finishReason(out)
			for j := range n {
				idx := i*n + j
				for _, d := range splitDeltas(out.text) {
					sw.data(textCompletion{ID: id, Object: "text_completion", Created: created, Model: req.model,
						SystemFingerprint: systemFingerprint,
						Choices:           []completionChoice{{Text: d, Index: idx}}})
				}
				sw.data(textCompletion{ID: id, Object: "text_completion", Created: created, Model: req.model,
					SystemFingerprint: systemFingerprint,
					Choices:           []completionChoice{{Index: idx, FinishReason: &fr}}})
			}
		}
		if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
			sw.data(textCompletion{ID: id, Object: "text_completion", Created: created, Model: req.model,
				SystemFingerprint: systemFingerprint, Choices: []completionChoice{}, Usage: u})
		}
		sw.done()
		return
	}
	choices := make([]completionChoice, 0, len(outs)*n)
	for i, out := range outs {
		fr := finishReason(out)
		for j := range n {
			choices = append(choices, completionChoice{Text: out.text, Index: i*n + j, FinishReason: &fr})
		}
	}
	c.ok(&textCompletion{ID: id, Object: "text_completion", Created: created, Model: req.model,
		SystemFingerprint: systemFingerprint, Choices: choices, Usage: u})
}

// ---- embeddings ----

type embeddingList struct {
	Object string            `json:"object"`
	Data   []embeddingObject `json:"data"`
	Model  string            `json:"model"`
	Usage  embeddingUsage    `json:"usage"`
}

type embeddingObject struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

type embeddingUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// embed returns a deterministic unit vector derived from text.
func embed(text string, dims int) []float32 {
	h := sha256.Sum256([]byte(text))
	r := rng{state: binary.LittleEndian.Uint64(h[:8]) ^ binary.LittleEndian.Uint64(h[8:16])}
	v := make([]float32, dims)
	var norm float64
	for i := range v {
		x := r.float64()*2 - 1
		v[i] = float32(x)
		norm += x * x
	}
	if norm > 0 {
		inv := 1 / math.Sqrt(norm)
		for i := range v {
			v[i] = float32(float64(v[i]) * inv)
		}
	}
	return v
}

func encodeBase64(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func (c *call) respondEmbeddings(req *apiRequest) {
	dims := DefaultEmbeddingDimensions
	if req.Dimensions != nil {
		dims = min(*req.Dimensions, MaxEmbeddingDimensions)
	}
	data := make([]embeddingObject, len(req.items))
	for i, item := range req.items {
		vec := embed(item, dims)
		data[i] = embeddingObject{Object: "embedding", Index: i, Embedding: vec}
		if req.EncodingFormat == "base64" {
			data[i].Embedding = encodeBase64(vec)
		}
	}
	c.ok(&embeddingList{Object: "list", Data: data, Model: req.model,
		Usage: embeddingUsage{PromptTokens: req.promptTokens, TotalTokens: req.promptTokens}})
}

// ---- moderations ----

var moderationCategories = []string{
	"harassment", "harassment/threatening", "hate", "hate/threatening",
	"illicit", "illicit/violent", "self-harm", "self-harm/instructions",
	"self-harm/intent", "sexual", "sexual/minors", "violence", "violence/graphic",
}

type moderationList struct {
	ID      string             `json:"id"`
	Model   string             `json:"model"`
	Results []moderationResult `json:"results"`
}

type moderationResult struct {
	Flagged        bool               `json:"flagged"`
	Categories     map[string]bool    `json:"categories"`
	CategoryScores map[string]float64 `json:"category_scores"`
}

func (c *call) respondModerations(req *apiRequest) {
	results := make([]moderationResult, len(req.items))
	for i, item := range req.items {
		h := sha256.Sum256([]byte(item))
		r := rng{state: binary.LittleEndian.Uint64(h[:8])}
		res := moderationResult{
			Categories:     make(map[string]bool, len(moderationCategories)),
			CategoryScores: make(map[string]float64, len(moderationCategories)),
		}
		for _, cat := range moderationCategories {
			res.Categories[cat] = false
			// Small, deterministic scores well below any threshold.
			res.CategoryScores[cat] = math.Round(r.float64()*1e-3*1e8) / 1e8
		}
		results[i] = res
	}
	c.ok(&moderationList{ID: "modr-" + c.id, Model: req.model, Results: results})
}

// ---- responses ----

type responseObject struct {
	ID                 string           `json:"id"`
	Object             string           `json:"object"`
	CreatedAt          int64            `json:"created_at"`
	Status             string           `json:"status"`
	CompletedAt        *int64           `json:"completed_at"`
	Background         bool             `json:"background"`
	Error              any              `json:"error"`
	IncompleteDetails  any              `json:"incomplete_details"`
	Instructions       json.RawMessage  `json:"instructions"`
	MaxOutputTokens    *int             `json:"max_output_tokens"`
	Model              string           `json:"model"`
	Output             []responseOutput `json:"output"`
	ParallelToolCalls  bool             `json:"parallel_tool_calls"`
	PreviousResponseID json.RawMessage  `json:"previous_response_id"`
	Reasoning          reasoning        `json:"reasoning"`
	ServiceTier        string           `json:"service_tier"`
	Store              bool             `json:"store"`
	Temperature        float64          `json:"temperature"`
	Text               textConfig       `json:"text"`
	ToolChoice         string           `json:"tool_choice"`
	Tools              []any            `json:"tools"`
	TopP               float64          `json:"top_p"`
	Truncation         string           `json:"truncation"`
	Usage              *responseUsage   `json:"usage"`
	Metadata           json.RawMessage  `json:"metadata"`
}

type reasoning struct {
	Effort  any `json:"effort"`
	Summary any `json:"summary"`
}

type textConfig struct {
	Format struct {
		Type string `json:"type"`
	} `json:"format"`
}

type responseOutput struct {
	Type    string        `json:"type"`
	ID      string        `json:"id"`
	Status  string        `json:"status"`
	Role    string        `json:"role"`
	Content []contentPart `json:"content"`
}

type contentPart struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
}

type responseUsage struct {
	InputTokens         int                 `json:"input_tokens"`
	InputTokensDetails  inputTokensDetails  `json:"input_tokens_details"`
	OutputTokens        int                 `json:"output_tokens"`
	OutputTokensDetails outputTokensDetails `json:"output_tokens_details"`
	TotalTokens         int                 `json:"total_tokens"`
}

type inputTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

type outputTokensDetails struct {
	ReasoningTokens int `json:"reasoning_tokens"`
}

type incompleteDetails struct {
	Reason string `json:"reason"`
}

var (
	jsonNull     = json.RawMessage("null")
	jsonEmptyObj = json.RawMessage("{}")
	emptyTools   = []any{}
)

func rawOr(raw json.RawMessage, def json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return def
	}
	return raw
}

// baseResponse is the Response object before generation finishes.
func (c *call) baseResponse(req *apiRequest, createdAt int64) *responseObject {
	r := &responseObject{
		ID:                 "resp_" + c.id,
		Object:             "response",
		CreatedAt:          createdAt,
		Status:             "in_progress",
		Instructions:       rawOr(req.Instructions, jsonNull),
		MaxOutputTokens:    req.MaxOutputTokens,
		Model:              req.model,
		Output:             []responseOutput{},
		ParallelToolCalls:  true,
		PreviousResponseID: rawOr(req.PreviousResponseID, jsonNull),
		ServiceTier:        "default",
		Store:              true,
		Temperature:        1,
		ToolChoice:         "auto",
		Tools:              emptyTools,
		TopP:               1,
		Truncation:         "disabled",
		Metadata:           rawOr(req.Metadata, jsonEmptyObj),
	}
	r.Text.Format.Type = "text"
	if req.Store != nil {
		r.Store = *req.Store
	}
	if req.Temperature != nil {
		r.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		r.TopP = *req.TopP
	}
	return r
}

// finish fills in the output and usage of r.
func (c *call) finish(r *responseObject, req *apiRequest, msg responseOutput, out outputText) {
	now := time.Now().Unix()
	r.Output = []responseOutput{msg}
	if out.truncated {
		r.Status = "incomplete"
		r.IncompleteDetails = incompleteDetails{Reason: "max_output_tokens"}
	} else {
		r.Status = "completed"
		r.CompletedAt = &now
	}
	r.Usage = &responseUsage{
		InputTokens:  req.promptTokens,
		OutputTokens: out.tokens,
		TotalTokens:  req.promptTokens + out.tokens,
	}
}

func (c *call) respondResponses(req *apiRequest, override *string) {
	out := c.generate(req.last, override, req.MaxOutputTokens)
	createdAt := time.Now().Unix()
	msgID := "msg_" + c.id
	msgStatus := "completed"
	if out.truncated {
		msgStatus = "incomplete"
	}
	final := responseOutput{Type: "message", ID: msgID, Status: msgStatus, Role: "assistant",
		Content: []contentPart{{Type: "output_text", Text: out.text, Annotations: []any{}}}}
	if !req.Stream {
		r := c.baseResponse(req, createdAt)
		c.finish(r, req, final, out)
		c.ok(r)
		return
	}

	sw := c.startStream()
	seq := 0
	first := 0
	noLogprobs := []any{}
	emit := func(e responseEvent) {
		e.SequenceNumber = seq
		seq++
		sw.event(e.Type, &e)
	}
	part := func(e responseEvent) responseEvent {
		e.ItemID, e.OutputIndex, e.ContentIndex = msgID, &first, &first
		return e
	}
	r := c.baseResponse(req, createdAt)
	emit(responseEvent{Type: "response.created", Response: r})
	emit(responseEvent{Type: "response.in_progress", Response: r})
	emit(responseEvent{Type: "response.output_item.added", OutputIndex: &first,
		Item: &responseOutput{Type: "message", ID: msgID, Status: "in_progress", Role: "assistant", Content: []contentPart{}}})
	emit(part(responseEvent{Type: "response.content_part.added",
		Part: &contentPart{Type: "output_text", Text: "", Annotations: []any{}}}))
	for _, d := range splitDeltas(out.text) {
		emit(part(responseEvent{Type: "response.output_text.delta", Delta: &d, Logprobs: &noLogprobs}))
	}
	emit(part(responseEvent{Type: "response.output_text.done", Text: &out.text, Logprobs: &noLogprobs}))
	emit(part(responseEvent{Type: "response.content_part.done", Part: &final.Content[0]}))
	emit(responseEvent{Type: "response.output_item.done", OutputIndex: &first, Item: &final})
	done := c.baseResponse(req, createdAt)
	c.finish(done, req, final, out)
	if out.truncated {
		emit(responseEvent{Type: "response.incomplete", Response: done})
	} else {
		emit(responseEvent{Type: "response.completed", Response: done})
	}
}

// responseEvent is a Responses API streaming event; fields not used by an
// event type are omitted.
type responseEvent struct {
	Type           string          `json:"type"`
	SequenceNumber int             `json:"sequence_number"`
	Response       *responseObject `json:"response,omitempty"`
	ItemID         string          `json:"item_id,omitempty"`
	OutputIndex    *int            `json:"output_index,omitempty"`
	ContentIndex   *int            `json:"content_index,omitempty"`
	Item           *responseOutput `json:"item,omitempty"`
	Part           *contentPart    `json:"part,omitempty"`
	Delta          *string         `json:"delta,omitempty"`
	Text           *string         `json:"text,omitempty"`
	Logprobs       *[]any          `json:"logprobs,omitempty"`
}

// ---- server-sent events ----

type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
	err error
}

func (c *call) startStream() *sseWriter {
	c.record(http.StatusOK)
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.w.WriteHeader(http.StatusOK)
	return &sseWriter{w: c.w, rc: http.NewResponseController(c.w)}
}

func (s *sseWriter) write(event string, payload []byte) {
	if s.err != nil {
		return
	}
	s.buf.Reset()
	if event != "" {
		s.buf.WriteString("event: ")
		s.buf.WriteString(event)
		s.buf.WriteByte('\n')
	}
	s.buf.WriteString("data: ")
	s.buf.Write(payload)
	s.buf.WriteString("\n\n")
	if _, s.err = s.w.Write(s.buf.Bytes()); s.err == nil {
		s.err = s.rc.Flush()
	}
}

func (s *sseWriter) event(event string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.err = err
		return
	}
	s.write(event, b)
}

func (s *sseWriter) data(v any) { s.event("", v) }

func (s *sseWriter) done() { s.write("", []byte("[DONE]")) }

// splitDeltas splits text into chunks of one word plus the whitespace that
// follows it; concatenated they give back text. It returns at least one
// chunk.
func splitDeltas(text string) []string {
	var out []string
	start := 0
	inSpace := false
	for i, r := range text {
		space := r == ' ' || r == '\n' || r == '\t' || r == '\r'
		if !space && inSpace && i > start {
			out = append(out, text[start:i])
			start = i
		}
		inSpace = space
	}
	if start < len(text) || len(out) == 0 {
		out = append(out, text[start:])
	}
	return out
}
