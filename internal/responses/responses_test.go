package responses

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	sdkresponses "github.com/openai/openai-go/v3/responses"
	"github.com/stretchr/testify/require"
)

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "%s", b)
	return m
}

func TestWithIDReplacesTheIDAndKeepsEverythingElse(t *testing.T) {
	t.Parallel()
	obj := decode(t, WithID([]byte(`{"id":"resp_upstream","object":"response","status":"completed","output":[{"type":"message"}],"usage":{"total_tokens":3}}`), "resp_ours"))
	require.Equal(t, "resp_ours", obj["id"])
	require.Equal(t, "completed", obj["status"])
	require.Len(t, obj["output"], 1)
	require.Equal(t, map[string]any{"total_tokens": float64(3)}, obj["usage"])

	for _, body := range []string{`{"id":"x","output":null}`, `{"id":"x"}`} {
		require.Equal(t, []any{}, decode(t, WithID([]byte(body), "resp_ours"))["output"], "output is always an array")
	}
	failed := decode(t, WithID([]byte(`not json`), "resp_ours"))
	require.Equal(t, "server_error", failed["code"])
}

func TestAsCreatedSetsTheClientsModeAndTier(t *testing.T) {
	t.Parallel()
	upstream := []byte(`{"id":"resp_ours","background":false,"status":"completed","output":[]}`)
	obj := decode(t, AsCreated(upstream, true, ""))
	require.Equal(t, true, obj["background"])
	require.Equal(t, "resp_ours", obj["id"])
	require.Equal(t, "completed", obj["status"])
	require.Equal(t, false, decode(t, AsCreated([]byte(`{"id":"r"}`), false, ""))["background"], "set even when the upstream left it out")
	require.Equal(t, "not json", string(AsCreated([]byte("not json"), true, "")), "what is not an object is left alone")
	require.Equal(t, "default", decode(t, AsCreated([]byte(`{"service_tier":"default"}`), true, ""))["service_tier"], "the upstream's tier stays")
	require.Equal(t, "background", decode(t, AsCreated([]byte(`{"service_tier":"default"}`), true, "background"))["service_tier"])
}

func TestFromUpstreamError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status     int
		body, code string
		message    string
	}{
		{400, `{"error":{"message":"bad","code":"invalid_prompt"}}`, "invalid_prompt", "bad"},
		{400, `{"error":{"message":"bad","code":null}}`, "invalid_prompt", "bad"},
		{429, `{"error":{"message":"slow down"}}`, "rate_limit_exceeded", "slow down"},
		{503, `<html>`, "server_error", "HTTP status 503"},
	} {
		got := decode(t, FromUpstreamError(tc.status, []byte(tc.body)))
		require.Equal(t, tc.code, got["code"], tc.body)
		require.Contains(t, got["message"], tc.message, tc.body)
	}
}

func TestSkeletonEchoesTheRequestAndDefaultsTheRest(t *testing.T) {
	t.Parallel()
	params := []byte(`{"model":"m","input":"hi","instructions":"be brief","temperature":0.2,"metadata":{"k":"v"},"store":false}`)
	obj := decode(t, Skeleton{ID: "resp_1", CreatedAt: 42, Status: "queued", Params: params, Background: true}.Render())
	require.Equal(t, "resp_1", obj["id"])
	require.Equal(t, "response", obj["object"])
	require.Equal(t, float64(42), obj["created_at"])
	require.Equal(t, "queued", obj["status"])
	require.Equal(t, true, obj["background"])
	require.Equal(t, "m", obj["model"])
	require.Equal(t, "be brief", obj["instructions"])
	require.Equal(t, 0.2, obj["temperature"])
	require.Equal(t, false, obj["store"])
	require.Equal(t, map[string]any{"k": "v"}, obj["metadata"])
	require.Equal(t, []any{}, obj["output"])
	require.Equal(t, []any{}, obj["tools"])
	require.Equal(t, 1.0, obj["top_p"])
	require.Equal(t, "auto", obj["tool_choice"])
	for _, k := range []string{"usage", "error", "completed_at", "incomplete_details", "previous_response_id", "max_output_tokens"} {
		v, ok := obj[k]
		require.True(t, ok, k)
		require.Nil(t, v, k)
	}

	failed := decode(t, Skeleton{ID: "resp_2", Status: "failed", Params: params, Error: Failure("server_error", "boom")}.Render())
	require.Equal(t, map[string]any{"code": "server_error", "message": "boom"}, failed["error"])
}

// Every field the official Go SDK marks as required of a Response object is present, whether the
// object is Volley's own skeleton or an upstream's that left fields out.
func TestObjectsCarryEveryFieldTheSDKRequires(t *testing.T) {
	t.Parallel()
	var want []string
	typ := reflect.TypeFor[sdkresponses.Response]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if strings.Contains(f.Tag.Get("api"), "required") {
			want = append(want, strings.Split(f.Tag.Get("json"), ",")[0])
		}
	}
	require.Contains(t, want, "access_programs")
	objects := map[string][]byte{
		"skeleton": Skeleton{ID: "resp_1", Status: "queued", Params: []byte(`{"model":"m","input":"hi"}`)}.Render(),
		"upstream": WithID([]byte(`{"id":"u","status":"completed","model":"m","created_at":1,"output":[]}`), "resp_1"),
	}
	for name, b := range objects {
		obj := decode(t, b)
		for _, field := range want {
			require.Contains(t, obj, field, "%s: %s", name, field)
		}
	}
}
