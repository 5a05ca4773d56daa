package upstream

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRouter(t *testing.T) {
	t.Parallel()
	vllm := &Upstream{Name: "vllm", BaseURL: "http://127.0.0.1:8000/v1"}
	openai := &Upstream{Name: "openai", BaseURL: "https://api.openai.com/v1"}
	cfg := &Config{
		Upstreams: map[string]*Upstream{"vllm": vllm, "openai": openai},
		Routes: []Route{
			{Model: "qwen", Upstream: vllm, Concurrency: 8},
			{Model: "*", Upstream: openai, Concurrency: 32},
			{Model: "llama", Upstream: vllm, Concurrency: 256},
		},
	}
	r := NewRouter(cfg)

	rt, ok := r.Route("llama")
	require.True(t, ok)
	require.Equal(t, Route{Model: "llama", Upstream: vllm, Concurrency: 256}, rt)

	rt, ok = r.Route("gpt-4o-mini")
	require.True(t, ok)
	require.Equal(t, Route{Model: "*", Upstream: openai, Concurrency: 32}, rt)

	_, ok = r.Route("")
	require.False(t, ok, "an empty model name has no route")

	models, limits, catchAll, hasCatchAll := r.Limits()
	require.Equal(t, []string{"llama", "qwen"}, models)
	require.Equal(t, []int32{256, 8}, limits)
	require.Equal(t, int32(32), catchAll)
	require.True(t, hasCatchAll)
}

func TestRouterWithoutCatchAll(t *testing.T) {
	t.Parallel()
	vllm := &Upstream{Name: "vllm"}
	r := NewRouter(&Config{Routes: []Route{{Model: "llama", Upstream: vllm, Concurrency: 4}}})

	_, ok := r.Route("llama")
	require.True(t, ok)
	_, ok = r.Route("Llama")
	require.False(t, ok, "model names match exactly")
	_, ok = r.Route("gpt-4o")
	require.False(t, ok)

	models, limits, catchAll, hasCatchAll := r.Limits()
	require.Equal(t, []string{"llama"}, models)
	require.Equal(t, []int32{4}, limits)
	require.Zero(t, catchAll)
	require.False(t, hasCatchAll)
}

func TestRouterEmpty(t *testing.T) {
	t.Parallel()
	for _, r := range []*Router{NewRouter(nil), NewRouter(&Config{})} {
		_, ok := r.Route("llama")
		require.False(t, ok)
		models, limits, _, hasCatchAll := r.Limits()
		require.Empty(t, models)
		require.Empty(t, limits)
		require.False(t, hasCatchAll)
	}
}
