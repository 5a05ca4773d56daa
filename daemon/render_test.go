package daemon

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRenderResponseIsOneJSONLine(t *testing.T) {
	t.Parallel()
	body := []byte("{\n  \"id\": \"x\",\n  \"text\": \"a\\nb\"\n}\n")
	line := renderResponse("batch_1", 7, `quote"d`, 200, "req_1", body)
	require.True(t, strings.HasSuffix(string(line), "}\n"))
	require.Equal(t, 1, strings.Count(string(line), "\n"), "pretty upstream JSON is compacted onto one line")
	var got resultJSON
	require.NoError(t, json.Unmarshal(line, &got))
	require.Equal(t, lineID("batch_1", 7), got.ID)
	require.Equal(t, `quote"d`, got.CustomID)
	require.Equal(t, 200, got.Response.StatusCode)
	require.JSONEq(t, string(body), string(got.Response.Body))
	require.Nil(t, got.Error)

	// A body that is not JSON is kept, as a string.
	line = renderResponse("batch_1", 8, "c", 502, "req_2", []byte("<html>bad gateway</html>\n"))
	require.NoError(t, json.Unmarshal(line, &got))
	require.JSONEq(t, `"<html>bad gateway</html>\n"`, string(got.Response.Body))
}

func TestRenderErrorLine(t *testing.T) {
	t.Parallel()
	line := renderError("batch_1", 3, "c", "request_timeout", "took too long")
	require.JSONEq(t, `{"id":"`+lineID("batch_1", 3)+`","custom_id":"c","response":null,"error":{"code":"request_timeout","message":"took too long"}}`, string(line))
}

type resultJSON struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct{ Code string } `json:"error"`
}

func TestUsageOfEveryEndpointShape(t *testing.T) {
	t.Parallel()
	chat := `{"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}`
	require.Equal(t, usage{input: 10, cached: 4, output: 5, reasoning: 2, total: 15}, usageOf([]byte(chat)))
	responses := `{"usage":{"input_tokens":7,"output_tokens":3,"total_tokens":10,"input_tokens_details":{"cached_tokens":1},"output_tokens_details":{"reasoning_tokens":1}}}`
	require.Equal(t, usage{input: 7, cached: 1, output: 3, reasoning: 1, total: 10}, usageOf([]byte(responses)))
	embeddings := `{"usage":{"prompt_tokens":8,"total_tokens":8}}`
	require.Equal(t, usage{input: 8, total: 8}, usageOf([]byte(embeddings)))
	require.Equal(t, usage{input: 2, output: 3, total: 5}, usageOf([]byte(`{"usage":{"prompt_tokens":2,"completion_tokens":3}}`)))
	require.Equal(t, usage{}, usageOf([]byte(`{"results":[]}`)))
	require.Equal(t, usage{}, usageOf([]byte(`not json`)))
	require.Equal(t, usage{}, usageOf([]byte(`{"usage":{"prompt_tokens":2,"completion_tokens":3}`)), "cut short")
	require.Equal(t, usage{}, usageOf([]byte(`{"usage":null}`)))
	require.Equal(t, usage{}, usageOf([]byte(`{"usage":[1,2]}`)))
	// A count that is not a whole number spoils the whole usage, as it would not decode.
	require.Equal(t, usage{}, usageOf([]byte(`{"usage":{"prompt_tokens":"2","completion_tokens":3}}`)))
	require.Equal(t, usage{}, usageOf([]byte(`{"usage":{"prompt_tokens":2.5,"completion_tokens":3}}`)))
	require.Equal(t, usage{}, usageOf([]byte(`{"usage":{"prompt_tokens":2,"prompt_tokens_details":7}}`)))
	require.Equal(t, usage{}, usageOf([]byte(`{"usage":{"prompt_tokens":99999999999999999999}}`)))
	// Nulls count as nothing.
	require.Equal(t, usage{input: 2, output: 3, total: 5},
		usageOf([]byte(`{"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":null,"prompt_tokens_details":null}}`)))
	// Other fields and nesting around usage are skipped, whatever they hold.
	require.Equal(t, usage{input: 1, output: 1, total: 2},
		usageOf([]byte(`{"choices":[{"message":{"content":"{\"usage\":{\"prompt_tokens\":9}}"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)))
}
