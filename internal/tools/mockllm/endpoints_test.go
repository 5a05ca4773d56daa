package mockllm

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestChatCompletions(t *testing.T) {
	h := New(Config{}, nil).Handler()

	r := callHandler(t, h, "/v1/chat/completions", `{"model":"gpt-x","messages":[
		{"role":"system","content":"be brief"},
		{"role":"user","content":"hello there"},
		{"role":"assistant","content":"hi"},
		{"role":"user","content":[{"type":"text","text":"what is"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"two plus two"}]}]}`)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Equal(t, "application/json", r.header.Get("Content-Type"))

	var resp struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
		Choices []struct {
			Index   int `json:"index"`
			Message struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
			Logprobs     any    `json:"logprobs"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
			TotalTokens      int `json:"total_tokens"`
		} `json:"usage"`
	}
	require.NoError(t, json.Unmarshal(r.body, &resp))
	require.True(t, strings.HasPrefix(resp.ID, "chatcmpl-"), resp.ID)
	require.Equal(t, "chat.completion", resp.Object)
	require.NotZero(t, resp.Created)
	require.Equal(t, "gpt-x", resp.Model)
	require.Len(t, resp.Choices, 1)
	c := resp.Choices[0]
	require.Equal(t, 0, c.Index)
	require.Equal(t, "assistant", c.Message.Role)
	require.Equal(t, "echo: what is two plus two", c.Message.Content)
	require.Equal(t, "stop", c.FinishReason)
	require.Nil(t, c.Logprobs)
	require.Contains(t, r.json(t)["choices"].([]any)[0].(map[string]any), "logprobs")
	// "be brief" (2) + "hello there" (2) + "hi" (1) + "what is two plus two" (5)
	require.Equal(t, 10, resp.Usage.PromptTokens)
	require.Equal(t, 6, resp.Usage.CompletionTokens) // "echo: what is two plus two"
	require.Equal(t, 16, resp.Usage.TotalTokens)

	// Same body, same content and usage; the id changes with the call count.
	body := `{"model":"m","messages":[{"role":"user","content":"ping"}]}`
	a := callHandler(t, h, "/v1/chat/completions", body).json(t)
	b := callHandler(t, h, "/v1/chat/completions", body).json(t)
	require.Equal(t, a["choices"], b["choices"])
	require.Equal(t, a["usage"], b["usage"])
	require.NotEqual(t, a["id"], b["id"])
}

func TestChatCompletionsNoUserMessage(t *testing.T) {
	h := New(Config{}, nil).Handler()
	r := callHandler(t, h, "/v1/chat/completions", `{"model":"m","messages":[{"role":"system","content":""}]}`)
	require.Equal(t, http.StatusOK, r.status)
	m := r.json(t)
	require.Equal(t, "echo: ", m["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"])
	u := m["usage"].(map[string]any)
	require.EqualValues(t, 1, u["prompt_tokens"], "prompt tokens are at least 1")
	require.EqualValues(t, 1, u["completion_tokens"])
}

func TestChatCompletionsTruncation(t *testing.T) {
	h := New(Config{EchoMaxRunes: 5}, nil).Handler()
	r := callHandler(t, h, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"héllo world and more"}]}`)
	require.Equal(t, http.StatusOK, r.status)
	choice := r.json(t)["choices"].([]any)[0].(map[string]any)
	require.Equal(t, "echo: héllo", choice["message"].(map[string]any)["content"])

	h = New(Config{}, nil).Handler()
	r = callHandler(t, h, "/v1/chat/completions", `{"model":"m","max_tokens":3,"n":2,"messages":[{"role":"user","content":"one two three four"}]}`)
	require.Equal(t, http.StatusOK, r.status)
	m := r.json(t)
	choices := m["choices"].([]any)
	require.Len(t, choices, 2)
	for i, c := range choices {
		c := c.(map[string]any)
		require.EqualValues(t, i, c["index"])
		require.Equal(t, "length", c["finish_reason"])
		require.Equal(t, "echo: one two", c["message"].(map[string]any)["content"])
	}
	require.EqualValues(t, 6, m["usage"].(map[string]any)["completion_tokens"])
}

func TestChatCompletionsStream(t *testing.T) {
	h := New(Config{}, nil).Handler()
	r := callHandler(t, h, "/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true},
		"messages":[{"role":"user","content":"stream me please"}]}`)
	require.Equal(t, http.StatusOK, r.status)
	require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream"))
	events := parseSSE(t, r.body)
	require.GreaterOrEqual(t, len(events), 5)
	require.Equal(t, "[DONE]", events[len(events)-1].data)

	var text strings.Builder
	var finish string
	var usage map[string]any
	for i, ev := range events[:len(events)-1] {
		require.Empty(t, ev.event)
		var chunk map[string]any
		require.NoError(t, json.Unmarshal([]byte(ev.data), &chunk))
		require.Equal(t, "chat.completion.chunk", chunk["object"])
		require.Equal(t, "m", chunk["model"])
		choices := chunk["choices"].([]any)
		if u, ok := chunk["usage"].(map[string]any); ok {
			usage = u
			require.Empty(t, choices)
			continue
		}
		require.Len(t, choices, 1)
		ch := choices[0].(map[string]any)
		delta := ch["delta"].(map[string]any)
		if i == 0 {
			require.Equal(t, "assistant", delta["role"])
		}
		if s, ok := delta["content"].(string); ok {
			text.WriteString(s)
		}
		if f, ok := ch["finish_reason"].(string); ok {
			finish = f
		}
	}
	require.Equal(t, "echo: stream me please", text.String())
	require.Equal(t, "stop", finish)
	require.NotNil(t, usage)
	require.EqualValues(t, 3, usage["prompt_tokens"])
	require.EqualValues(t, 4, usage["completion_tokens"])
	require.EqualValues(t, 7, usage["total_tokens"])
}

func TestCompletions(t *testing.T) {
	h := New(Config{}, nil).Handler()
	r := callHandler(t, h, "/v1/completions", `{"model":"davinci","prompt":"say this"}`)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	m := r.json(t)
	require.True(t, strings.HasPrefix(m["id"].(string), "cmpl-"))
	require.Equal(t, "text_completion", m["object"])
	require.Equal(t, "davinci", m["model"])
	choices := m["choices"].([]any)
	require.Len(t, choices, 1)
	c := choices[0].(map[string]any)
	require.Equal(t, "echo: say this", c["text"])
	require.Equal(t, "stop", c["finish_reason"])
	require.Contains(t, c, "logprobs")
	u := m["usage"].(map[string]any)
	require.EqualValues(t, 2, u["prompt_tokens"])
	require.EqualValues(t, 3, u["completion_tokens"])
	require.EqualValues(t, 5, u["total_tokens"])

	r = callHandler(t, h, "/v1/completions", `{"model":"davinci","prompt":["a b","c"]}`)
	require.Equal(t, http.StatusOK, r.status)
	m = r.json(t)
	choices = m["choices"].([]any)
	require.Len(t, choices, 2)
	require.Equal(t, "echo: a b", choices[0].(map[string]any)["text"])
	require.Equal(t, "echo: c", choices[1].(map[string]any)["text"])
	require.EqualValues(t, 1, choices[1].(map[string]any)["index"])
	require.EqualValues(t, 3, m["usage"].(map[string]any)["prompt_tokens"])

	r = callHandler(t, h, "/v1/completions", `{"model":"davinci","prompt":[1,2,3,4]}`)
	require.Equal(t, http.StatusOK, r.status)
	m = r.json(t)
	require.Equal(t, "echo: 1 2 3 4", m["choices"].([]any)[0].(map[string]any)["text"])
	require.EqualValues(t, 4, m["usage"].(map[string]any)["prompt_tokens"])

	r = callHandler(t, h, "/v1/completions", `{"model":"davinci","stream":true,"prompt":"x y"}`)
	require.Equal(t, http.StatusOK, r.status)
	events := parseSSE(t, r.body)
	require.Equal(t, "[DONE]", events[len(events)-1].data)
	var text strings.Builder
	for _, ev := range events[:len(events)-1] {
		var chunk textCompletion
		require.NoError(t, json.Unmarshal([]byte(ev.data), &chunk))
		require.Equal(t, "text_completion", chunk.Object)
		text.WriteString(chunk.Choices[0].Text)
	}
	require.Equal(t, "echo: x y", text.String())
}

func decodeEmbeddings(t *testing.T, r result) (vecs [][]float64, usage map[string]any) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	m := r.json(t)
	require.Equal(t, "list", m["object"])
	for i, d := range m["data"].([]any) {
		d := d.(map[string]any)
		require.Equal(t, "embedding", d["object"])
		require.EqualValues(t, i, d["index"])
		var v []float64
		for _, x := range d["embedding"].([]any) {
			v = append(v, x.(float64))
		}
		vecs = append(vecs, v)
	}
	return vecs, m["usage"].(map[string]any)
}

func TestEmbeddings(t *testing.T) {
	h := New(Config{}, nil).Handler()

	vecs, usage := decodeEmbeddings(t, callHandler(t, h, "/v1/embeddings", `{"model":"emb","input":"hello world"}`))
	require.Len(t, vecs, 1)
	require.Len(t, vecs[0], DefaultEmbeddingDimensions)
	var norm float64
	for _, x := range vecs[0] {
		norm += x * x
	}
	require.InDelta(t, 1, norm, 1e-5)
	require.EqualValues(t, 2, usage["prompt_tokens"])
	require.EqualValues(t, 2, usage["total_tokens"])

	again, _ := decodeEmbeddings(t, callHandler(t, h, "/v1/embeddings", `{"model":"emb","input":["hello world","other"]}`))
	require.Len(t, again, 2)
	require.Equal(t, vecs[0], again[0], "same input, same vector")
	require.NotEqual(t, again[0], again[1])

	dims, _ := decodeEmbeddings(t, callHandler(t, h, "/v1/embeddings", `{"model":"emb","input":"x","dimensions":3}`))
	require.Len(t, dims[0], 3)
	capped, _ := decodeEmbeddings(t, callHandler(t, h, "/v1/embeddings", `{"model":"emb","input":"x","dimensions":100000}`))
	require.Len(t, capped[0], MaxEmbeddingDimensions)

	toks, usage := decodeEmbeddings(t, callHandler(t, h, "/v1/embeddings", `{"model":"emb","input":[[1,2,3],[4]]}`))
	require.Len(t, toks, 2)
	require.EqualValues(t, 4, usage["prompt_tokens"])

	r := callHandler(t, h, "/v1/embeddings", `{"model":"emb","input":"hello world","encoding_format":"base64"}`)
	require.Equal(t, http.StatusOK, r.status)
	enc := r.json(t)["data"].([]any)[0].(map[string]any)["embedding"].(string)
	raw, err := base64.StdEncoding.DecodeString(enc)
	require.NoError(t, err)
	require.Len(t, raw, 4*DefaultEmbeddingDimensions)
	for i, want := range vecs[0] {
		got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		require.InDelta(t, want, float64(got), 1e-6)
	}
}

func TestModerations(t *testing.T) {
	h := New(Config{}, nil).Handler()
	r := callHandler(t, h, "/v1/moderations", `{"model":"omni-moderation-latest","input":["a","b"]}`)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	m := r.json(t)
	require.True(t, strings.HasPrefix(m["id"].(string), "modr-"))
	require.Equal(t, "omni-moderation-latest", m["model"])
	results := m["results"].([]any)
	require.Len(t, results, 2)
	for _, res := range results {
		res := res.(map[string]any)
		require.Equal(t, false, res["flagged"])
		cats := res["categories"].(map[string]any)
		scores := res["category_scores"].(map[string]any)
		require.Len(t, cats, len(moderationCategories))
		require.Len(t, scores, len(moderationCategories))
		for _, c := range moderationCategories {
			require.Equal(t, false, cats[c])
			require.Less(t, scores[c].(float64), 0.01)
		}
	}

	r = callHandler(t, h, "/v1/moderations", `{"model":"omni-moderation-latest","input":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"u"}}]}`)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Len(t, r.json(t)["results"].([]any), 1)
}

func TestResponses(t *testing.T) {
	h := New(Config{}, nil).Handler()
	r := callHandler(t, h, "/v1/responses", `{"model":"gpt-r","input":"tell me a joke","instructions":"be funny","metadata":{"k":"v"}}`)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	m := r.json(t)
	for _, k := range []string{"id", "object", "created_at", "status", "completed_at", "model", "output", "usage", "error",
		"incomplete_details", "instructions", "metadata", "parallel_tool_calls", "temperature", "top_p", "tool_choice",
		"tools", "background", "service_tier", "store", "text", "truncation", "reasoning", "max_output_tokens",
		"previous_response_id"} {
		require.Contains(t, m, k)
	}
	require.True(t, strings.HasPrefix(m["id"].(string), "resp_"))
	require.Equal(t, "response", m["object"])
	require.Equal(t, "completed", m["status"])
	require.NotNil(t, m["completed_at"])
	require.Equal(t, "gpt-r", m["model"])
	require.Nil(t, m["error"])
	require.Nil(t, m["incomplete_details"])
	require.Equal(t, "be funny", m["instructions"])
	require.Equal(t, map[string]any{"k": "v"}, m["metadata"])
	require.Equal(t, true, m["parallel_tool_calls"])
	require.EqualValues(t, 1, m["temperature"])
	require.EqualValues(t, 1, m["top_p"])
	require.Equal(t, "auto", m["tool_choice"])
	require.Equal(t, []any{}, m["tools"])
	require.Equal(t, false, m["background"])
	require.Equal(t, "default", m["service_tier"])
	require.Equal(t, true, m["store"])
	require.Equal(t, map[string]any{"format": map[string]any{"type": "text"}}, m["text"])
	require.Equal(t, "disabled", m["truncation"])
	require.Equal(t, map[string]any{"effort": nil, "summary": nil}, m["reasoning"])
	require.Nil(t, m["max_output_tokens"])
	require.Nil(t, m["previous_response_id"])

	out := m["output"].([]any)
	require.Len(t, out, 1)
	msg := out[0].(map[string]any)
	require.Equal(t, "message", msg["type"])
	require.True(t, strings.HasPrefix(msg["id"].(string), "msg_"))
	require.Equal(t, "completed", msg["status"])
	require.Equal(t, "assistant", msg["role"])
	require.Equal(t, []any{map[string]any{"type": "output_text", "text": "echo: tell me a joke", "annotations": []any{}}}, msg["content"])

	u := m["usage"].(map[string]any)
	require.EqualValues(t, 6, u["input_tokens"]) // 4 input words + 2 instruction words
	require.EqualValues(t, 5, u["output_tokens"])
	require.EqualValues(t, 11, u["total_tokens"])
	require.Equal(t, map[string]any{"cached_tokens": 0.0}, u["input_tokens_details"])
	require.Equal(t, map[string]any{"reasoning_tokens": 0.0}, u["output_tokens_details"])

	// Array input: the last user item is echoed.
	r = callHandler(t, h, "/v1/responses", `{"model":"gpt-r","input":[
		{"role":"user","content":"first"},
		{"type":"message","role":"assistant","content":[{"type":"output_text","text":"reply"}]},
		{"type":"message","role":"user","content":[{"type":"input_text","text":"second"},{"type":"input_text","text":"question"}]},
		{"type":"function_call_output","call_id":"c1","output":"tool says hi"}]}`)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	m = r.json(t)
	text := m["output"].([]any)[0].(map[string]any)["content"].([]any)[0].(map[string]any)["text"]
	require.Equal(t, "echo: second question", text)
	require.EqualValues(t, 7, m["usage"].(map[string]any)["input_tokens"])

	// A token limit makes the response incomplete.
	r = callHandler(t, h, "/v1/responses", `{"model":"gpt-r","input":"a b c d","max_output_tokens":2}`)
	require.Equal(t, http.StatusOK, r.status)
	m = r.json(t)
	require.Equal(t, "incomplete", m["status"])
	require.Equal(t, map[string]any{"reason": "max_output_tokens"}, m["incomplete_details"])
	require.EqualValues(t, 2, m["max_output_tokens"])
}

func TestResponsesStream(t *testing.T) {
	h := New(Config{}, nil).Handler()
	r := callHandler(t, h, "/v1/responses", `{"model":"gpt-r","stream":true,"input":"one two three"}`)
	require.Equal(t, http.StatusOK, r.status)
	require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream"))
	events := parseSSE(t, r.body)

	var types []string
	var deltas strings.Builder
	var doneText string
	var completed map[string]any
	for i, ev := range events {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(ev.data), &m), ev.data)
		require.Equal(t, ev.event, m["type"], "event name matches data type")
		require.True(t, strings.HasPrefix(ev.data, `{"type":"`+ev.event+`","sequence_number":`), ev.data)
		require.EqualValues(t, i, m["sequence_number"])
		types = append(types, ev.event)
		switch ev.event {
		case "response.created", "response.in_progress":
			require.Equal(t, "in_progress", m["response"].(map[string]any)["status"])
		case "response.output_text.delta":
			deltas.WriteString(m["delta"].(string))
			require.Contains(t, m, "item_id")
		case "response.output_text.done":
			doneText = m["text"].(string)
		case "response.completed":
			completed = m["response"].(map[string]any)
		}
	}
	require.Equal(t, []string{
		"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
	}, types)
	require.Equal(t, "echo: one two three", deltas.String())
	require.Equal(t, deltas.String(), doneText)
	require.Equal(t, "completed", completed["status"])
	out := completed["output"].([]any)[0].(map[string]any)
	require.Equal(t, doneText, out["content"].([]any)[0].(map[string]any)["text"])
	require.EqualValues(t, 4, completed["usage"].(map[string]any)["output_tokens"])
}

func TestSplitDeltas(t *testing.T) {
	for _, s := range []string{"", "a", "echo: a b", "  lead", "trail  ", "x\ny\tz"} {
		parts := splitDeltas(s)
		require.NotEmpty(t, parts)
		require.Equal(t, s, strings.Join(parts, ""))
	}
	require.Equal(t, []string{"echo: ", "a ", "b"}, splitDeltas("echo: a b"))
}

func TestWords(t *testing.T) {
	require.Equal(t, 0, countWords(""))
	require.Equal(t, 0, countWords(" \n\t "))
	require.Equal(t, 3, countWords(" a  b\u00a0c "))
	got, cut := truncateWords("a b  c d", 3)
	require.True(t, cut)
	require.Equal(t, "a b  c", got)
	got, cut = truncateWords("a b", 3)
	require.False(t, cut)
	require.Equal(t, "a b", got)
	require.Equal(t, "hé", truncateRunes("héllo", 2))
	require.Equal(t, "héllo", truncateRunes("héllo", -1))
}

func TestV1PrefixOptional(t *testing.T) {
	h := New(Config{}, nil).Handler()
	r := callHandler(t, h, "/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}]}`)
	require.Equal(t, http.StatusOK, r.status)
	st := New(Config{}, nil)
	callHandler(t, st.Handler(), "/embeddings", `{"model":"m","input":"x"}`)
	require.Equal(t, map[string]int64{"/v1/embeddings": 1}, st.Stats().Endpoints)
}

func TestModelsListsTheConfiguredModels(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, Config{APIKey: testKey, Models: []string{"llama-3", "qwen-2"}})
	get := func(key string) (int, map[string]any) {
		req, err := http.NewRequest(http.MethodGet, ts.URL+"/v1/models", nil)
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return resp.StatusCode, m
	}
	status, list := get(testKey)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "list", list["object"])
	var ids []string
	for _, d := range list["data"].([]any) {
		ids = append(ids, d.(map[string]any)["id"].(string))
	}
	require.Equal(t, []string{"llama-3", "qwen-2"}, ids)

	status, _ = get("sk-wrong-key-1234")
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = get("")
	require.Equal(t, http.StatusUnauthorized, status)

	resp, err := http.Post(ts.URL+"/v1/models", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}
