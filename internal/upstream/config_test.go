package upstream

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// envOf returns a getenv reading the given name/value pairs.
func envOf(kv ...string) func(string) string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

const twoUpstreams = `
upstreams:
  vllm:
    url: http://10.0.0.5:8000/v1
    api_key_env: VLLM_KEY
    timeout: 5m
    max_connections: 512
    headers: {x-team: research}
  openai:
    url: https://api.openai.com/v1/
    api_key_env: OPENAI_API_KEY
models:
  - name: llama-3.1-8b
    upstream: vllm
    concurrency: 256
  - name: qwen
    upstream: vllm
    timeout: 30s
    retry: {max_attempts: 2}
retry:
  max_attempts: 5
  base_delay: 500ms
  max_delay: 1m
defaults:
  concurrency: 16
  timeout: 2m
`

var twoUpstreamsEnv = []string{"VLLM_KEY", "sk-vllm", "OPENAI_API_KEY", " sk-openai\n"}

func TestParseFile(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(twoUpstreams), "volley.yaml", envOf(twoUpstreamsEnv...))
	require.NoError(t, err)
	require.Equal(t, "volley.yaml", cfg.Source)

	vllm := cfg.Upstreams["vllm"]
	require.Equal(t, &Upstream{
		Name:     "vllm",
		BaseURL:  "http://10.0.0.5:8000/v1",
		APIKey:   "sk-vllm",
		Timeout:  5 * time.Minute,
		MaxConns: 512,
		Headers:  map[string]string{"X-Team": "research"},
	}, vllm)
	openai := cfg.Upstreams["openai"]
	require.Equal(t, &Upstream{
		Name:    "openai",
		BaseURL: "https://api.openai.com/v1", // trailing slash dropped
		APIKey:  "sk-openai",                 // whitespace around the variable's value dropped
		Timeout: 2 * time.Minute,             // defaults.timeout
	}, openai)
	require.Len(t, cfg.Upstreams, 2)

	require.Equal(t, []Route{
		{Model: "llama-3.1-8b", Upstream: vllm, Concurrency: 256},
		// defaults.concurrency; the model's own timeout, and retry over the file's policy
		{Model: "qwen", Upstream: vllm, Concurrency: 16, Timeout: 30 * time.Second,
			Retry: &RetryPolicy{MaxAttempts: 2, BaseDelay: 500 * time.Millisecond, MaxDelay: time.Minute}},
	}, cfg.Routes)
	require.Equal(t, RetryPolicy{MaxAttempts: 5, BaseDelay: 500 * time.Millisecond, MaxDelay: time.Minute}, cfg.Retry)
	require.Equal(t, 16, cfg.DefaultConcurrency)
	require.Equal(t, 2*time.Minute, cfg.DefaultTimeout)

	// No key in what gets printed or logged.
	require.NotContains(t, vllm.String(), "sk-vllm")
	require.NotContains(t, vllm.LogValue().String(), "sk-vllm")
}

func TestParseEnvOnly(t *testing.T) {
	t.Parallel()
	cfg, err := Parse(nil, "", envOf(
		"VOLLEY_UPSTREAM_URL", "http://127.0.0.1:8000/v1",
		"VOLLEY_UPSTREAM_API_KEY", "sk-up",
	))
	require.NoError(t, err)
	def := &Upstream{Name: "default", BaseURL: "http://127.0.0.1:8000/v1", APIKey: "sk-up", Timeout: 10 * time.Minute}
	require.Equal(t, map[string]*Upstream{"default": def}, cfg.Upstreams)
	require.Equal(t, []Route{{Model: "*", Upstream: def, Concurrency: 64}}, cfg.Routes)
	require.Equal(t, RetryPolicy{MaxAttempts: 8, BaseDelay: time.Second, MaxDelay: 5 * time.Minute}, cfg.Retry)
	require.Empty(t, cfg.Source)

	cfg, err = Parse(nil, "", envOf(
		"VOLLEY_UPSTREAM_URL", "https://llm.internal/serving/v1/",
		"VOLLEY_MODEL_CONCURRENCY", "8",
		"VOLLEY_UPSTREAM_TIMEOUT", "30s",
		"VOLLEY_MAX_ATTEMPTS", "3",
	))
	require.NoError(t, err)
	def = cfg.Upstreams["default"]
	require.Equal(t, &Upstream{Name: "default", BaseURL: "https://llm.internal/serving/v1", Timeout: 30 * time.Second}, def)
	require.Equal(t, []Route{{Model: "*", Upstream: def, Concurrency: 8}}, cfg.Routes)
	require.Equal(t, 3, cfg.Retry.MaxAttempts)
}

func TestParseNothing(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{"", "# only a comment\n", "---\n", "~\n"} {
		cfg, err := Parse([]byte(doc), "volley.yaml", envOf())
		require.NoError(t, err, doc)
		require.Empty(t, cfg.Upstreams)
		require.Empty(t, cfg.Routes)
		_, ok := NewRouter(cfg).Route("anything")
		require.False(t, ok)
	}
}

func TestParseFileAndEnv(t *testing.T) {
	t.Parallel()
	env := append([]string{
		"VOLLEY_UPSTREAM_URL", "http://127.0.0.1:9000/v1",
		"VOLLEY_UPSTREAM_API_KEY", "sk-default",
		"VOLLEY_MODEL_CONCURRENCY", "12",
		"VOLLEY_UPSTREAM_TIMEOUT", "90s",
		"VOLLEY_MAX_ATTEMPTS", "2",
	}, twoUpstreamsEnv...)

	t.Run("default upstream becomes the catch-all", func(t *testing.T) {
		t.Parallel()
		cfg, err := Parse([]byte(twoUpstreams), "volley.yaml", envOf(env...))
		require.NoError(t, err)
		def := cfg.Upstreams["default"]
		require.Equal(t, &Upstream{Name: "default", BaseURL: "http://127.0.0.1:9000/v1", APIKey: "sk-default", Timeout: 90 * time.Second}, def)
		require.Len(t, cfg.Routes, 3)
		require.Equal(t, Route{Model: "*", Upstream: def, Concurrency: 12}, cfg.Routes[2])
		// The environment overrides the file's defaults, not what upstreams and models set.
		require.Equal(t, 90*time.Second, cfg.Upstreams["openai"].Timeout)
		require.Equal(t, 5*time.Minute, cfg.Upstreams["vllm"].Timeout)
		require.Equal(t, 256, cfg.Routes[0].Concurrency)
		require.Equal(t, 12, cfg.Routes[1].Concurrency)
		require.Equal(t, RetryPolicy{MaxAttempts: 2, BaseDelay: 500 * time.Millisecond, MaxDelay: time.Minute}, cfg.Retry)
	})

	t.Run("the file's catch-all stays", func(t *testing.T) {
		t.Parallel()
		doc := strings.Replace(twoUpstreams, "\nretry:\n", `
  - name: "*"
    upstream: openai
    concurrency: 32
  - name: local
    upstream: default
retry:
`, 1)
		cfg, err := Parse([]byte(doc), "volley.yaml", envOf(env...))
		require.NoError(t, err)
		require.Len(t, cfg.Routes, 4)
		router := NewRouter(cfg)
		r, ok := router.Route("gpt-4o-mini")
		require.True(t, ok)
		require.Equal(t, "openai", r.Upstream.Name)
		r, ok = router.Route("local")
		require.True(t, ok)
		require.Same(t, cfg.Upstreams["default"], r.Upstream)
		require.Equal(t, 12, r.Concurrency)
	})
}

func TestParseAPIKeys(t *testing.T) {
	t.Parallel()
	const doc = `
upstreams:
  fromenv: {url: "http://127.0.0.1:1/v1", api_key_env: MY_KEY}
  literal: {url: "http://127.0.0.1:2/v1", api_key: sk-literal}
  nokey: {url: "http://127.0.0.1:3/v1"}
  custom: {url: "http://127.0.0.1:4/v1", headers: {authorization: "Basic dTpw"}}
`
	cfg, err := Parse([]byte(doc), "keys.yaml", envOf("MY_KEY", "sk-from-env"))
	require.NoError(t, err)
	require.Equal(t, "sk-from-env", cfg.Upstreams["fromenv"].APIKey)
	require.Equal(t, "sk-literal", cfg.Upstreams["literal"].APIKey)
	require.Empty(t, cfg.Upstreams["nokey"].APIKey)
	require.Equal(t, map[string]string{"Authorization": "Basic dTpw"}, cfg.Upstreams["custom"].Headers)
	require.Empty(t, cfg.Routes)

	_, err = Parse([]byte(doc), "keys.yaml", envOf())
	require.EqualError(t, err, "keys.yaml: upstreams.fromenv.api_key_env: environment variable MY_KEY is not set")
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	const up = "upstreams:\n  vllm: {url: \"http://127.0.0.1:8000/v1\"}\n  openai: {url: \"https://api.openai.com/v1\"}\n"
	cases := []struct {
		name string
		doc  string
		env  []string
		want string // the whole message
	}{
		{"unknown upstream", up + "models:\n  - {name: a, upstream: vllm}\n  - {name: b, upstream: openai}\n  - {name: c, upstream: vlm}\n", nil,
			`volley.yaml: models[2].upstream: unknown upstream "vlm" (known: openai, vllm)`},
		{"no upstreams at all", "models:\n  - {name: a, upstream: vllm}\n", nil,
			`volley.yaml: models[0].upstream: unknown upstream "vllm" (no upstreams are defined)`},
		{"url without /v1", "upstreams:\n  vllm: {url: \"http://127.0.0.1:8000\"}\n", nil,
			`volley.yaml: upstreams.vllm.url: must be an absolute http(s) URL ending in /v1, got "http://127.0.0.1:8000"`},
		{"url not http", "upstreams:\n  vllm: {url: \"ftp://host/v1\"}\n", nil,
			`volley.yaml: upstreams.vllm.url: must be an absolute http(s) URL ending in /v1, got "ftp://host/v1"`},
		{"url relative", "upstreams:\n  vllm: {url: \"/v1\"}\n", nil,
			`volley.yaml: upstreams.vllm.url: must be an absolute http(s) URL ending in /v1, got "/v1"`},
		{"url with query", "upstreams:\n  vllm: {url: \"http://h/v1?x=1\"}\n", nil,
			`volley.yaml: upstreams.vllm.url: must be an absolute http(s) URL ending in /v1 and have no query or fragment, got "http://h/v1?x=1"`},
		{"url with credentials", "upstreams:\n  vllm: {url: \"http://u:p@h/v1\"}\n", nil,
			`volley.yaml: upstreams.vllm.url: must not hold credentials; use api_key_env (or VOLLEY_UPSTREAM_API_KEY)`},
		{"url missing", "upstreams:\n  vllm: {timeout: 5m}\n", nil,
			`volley.yaml: upstreams.vllm.url: is required`},
		{"url a list", "upstreams:\n  vllm: {url: [a]}\n", nil,
			`volley.yaml: upstreams.vllm.url: must be a single value, got a list`},
		{"upstream name", "upstreams:\n  \"my vllm\": {url: \"http://h/v1\"}\n", nil,
			`volley.yaml: upstreams: name "my vllm" must be 1 to 64 letters, digits, '.', '-' or '_'`},
		{"upstreams a list", "upstreams: [a, b]\n", nil,
			`volley.yaml: upstreams: must be a mapping of upstream names to upstreams, got a list`},
		{"concurrency zero", up + "models:\n  - {name: a, upstream: vllm, concurrency: 0}\n", nil,
			`volley.yaml: models[0].concurrency: must be between 1 and 100000, got 0`},
		{"concurrency too high", up + "models:\n  - {name: a, upstream: vllm, concurrency: 100001}\n", nil,
			`volley.yaml: models[0].concurrency: must be between 1 and 100000, got 100001`},
		{"concurrency not a number", up + "models:\n  - {name: a, upstream: vllm, concurrency: lots}\n", nil,
			`volley.yaml: models[0].concurrency: must be a whole number, got "lots"`},
		{"concurrency a fraction", up + "models:\n  - {name: a, upstream: vllm, concurrency: 1.5}\n", nil,
			`volley.yaml: models[0].concurrency: must be a whole number, got "1.5"`},
		{"duplicate model", up + "models:\n  - {name: a, upstream: vllm}\n  - {name: a, upstream: openai}\n", nil,
			`volley.yaml: models[1].name: duplicate model "a" (also models[0])`},
		{"two catch-alls", up + "models:\n  - {name: \"*\", upstream: vllm}\n  - {name: \"*\", upstream: openai}\n", nil,
			`volley.yaml: models[1].name: a second catch-all route (the first is models[0])`},
		{"pattern", up + "models:\n  - {name: \"llama-*\", upstream: vllm}\n", nil,
			`volley.yaml: models[0].name: "llama-*": only the catch-all route "*" may contain '*'`},
		{"model name missing", up + "models:\n  - {upstream: vllm}\n", nil,
			`volley.yaml: models[0].name: is required`},
		{"model upstream missing", up + "models:\n  - {name: a}\n", nil,
			`volley.yaml: models[0].upstream: is required (known: openai, vllm)`},
		{"models a mapping", up + "models: {a: vllm}\n", nil,
			`volley.yaml: models: must be a list of routes (- name: ..., upstream: ...)`},
		{"unknown top-level key", "upstream: {}\n", nil,
			`volley.yaml: upstream: unknown key (known: defaults, models, retry, upstreams)`},
		{"unknown upstream key", "upstreams:\n  vllm: {url: \"http://h/v1\", timout: 5m}\n", nil,
			`volley.yaml: upstreams.vllm.timout: unknown key (known: api_key, api_key_env, headers, max_connections, timeout, url)`},
		{"unknown model key", up + "models:\n  - {name: a, upstream: vllm, upstream_model: b}\n", nil,
			`volley.yaml: models[0].upstream_model: unknown key (known: adaptive, concurrency, escalate_before, fallback, name, price, retry, timeout, upstream)`},
		{"unknown retry key", "retry: {attempts: 3}\n", nil,
			`volley.yaml: retry.attempts: unknown key (known: base_delay, max_attempts, max_delay)`},
		{"key set twice", "upstreams:\n  vllm:\n    url: http://h/v1\n    url: http://g/v1\n", nil,
			`volley.yaml: upstreams.vllm.url: set twice (lines 3 and 4)`},
		{"api key env unset", "upstreams:\n  vllm: {url: \"http://h/v1\", api_key_env: VLLM_KEY}\n", nil,
			`volley.yaml: upstreams.vllm.api_key_env: environment variable VLLM_KEY is not set`},
		{"api key env not a name", "upstreams:\n  vllm: {url: \"http://h/v1\", api_key_env: \"$VLLM_KEY\"}\n", nil,
			`volley.yaml: upstreams.vllm.api_key_env: "$VLLM_KEY" is not an environment variable name`},
		{"both keys", "upstreams:\n  vllm: {url: \"http://h/v1\", api_key: a, api_key_env: K}\n", []string{"K", "b"},
			`volley.yaml: upstreams.vllm.api_key_env: set only one of api_key and api_key_env`},
		{"timeout without unit", "upstreams:\n  vllm: {url: \"http://h/v1\", timeout: 300}\n", nil,
			`volley.yaml: upstreams.vllm.timeout: must be a duration like 30s or 5m, got "300"`},
		{"timeout zero", "defaults: {timeout: 0s}\n", nil,
			`volley.yaml: defaults.timeout: must be between 1ms and 24h, got 0s`},
		{"max connections zero", "upstreams:\n  vllm: {url: \"http://h/v1\", max_connections: 0}\n", nil,
			`volley.yaml: upstreams.vllm.max_connections: must be between 1 and 100000, got 0`},
		{"reserved header", "upstreams:\n  vllm: {url: \"http://h/v1\", headers: {content-type: text/plain}}\n", nil,
			`volley.yaml: upstreams.vllm.headers.content-type: is set by Volley and cannot be configured`},
		{"bad header name", "upstreams:\n  vllm: {url: \"http://h/v1\", headers: {\"x team\": a}}\n", nil,
			`volley.yaml: upstreams.vllm.headers.x team: is not a valid HTTP header name`},
		{"bad header value", "upstreams:\n  vllm: {url: \"http://h/v1\", headers: {x-team: \"a\\r\\nb\"}}\n", nil,
			`volley.yaml: upstreams.vllm.headers.x-team: holds characters not allowed in an HTTP header`},
		{"authorization and key", "upstreams:\n  vllm: {url: \"http://h/v1\", api_key: k, headers: {Authorization: x}}\n", nil,
			`volley.yaml: upstreams.vllm.headers.Authorization: conflicts with the upstream's api_key or api_key_env`},
		{"base delay", "retry: {base_delay: fast}\n", nil,
			`volley.yaml: retry.base_delay: must be a duration like 30s or 5m, got "fast"`},
		{"max delay below base", "retry: {base_delay: 10s, max_delay: 1s}\n", nil,
			`volley.yaml: retry.max_delay: must be at least the base_delay (10s), got 1s`},
		{"base delay above default max", "retry: {base_delay: 10m}\n", nil,
			`volley.yaml: retry.base_delay: must be at most the max_delay (5m unless set), got 10m`},
		{"model timeout", "upstreams:\n  vllm: {url: \"http://h/v1\"}\nmodels:\n  - {name: m, upstream: vllm, timeout: 0s}\n", nil,
			`volley.yaml: models[0].timeout: must be between 1ms and 24h, got 0s`},
		{"model retry", "upstreams:\n  vllm: {url: \"http://h/v1\"}\nmodels:\n  - {name: m, upstream: vllm, retry: {max_attempts: 101}}\n", nil,
			`volley.yaml: models[0].retry.max_attempts: must be between 1 and 100, got 101`},
		{"model retry delays", "upstreams:\n  vllm: {url: \"http://h/v1\"}\nmodels:\n  - {name: m, upstream: vllm, retry: {max_delay: 1ms}}\n", nil,
			`volley.yaml: models[0].retry.max_delay: must be at least the base_delay (1s), got 1ms`},
		{"model retry unknown key", "upstreams:\n  vllm: {url: \"http://h/v1\"}\nmodels:\n  - {name: m, upstream: vllm, retry: {attempts: 3}}\n", nil,
			`volley.yaml: models[0].retry.attempts: unknown key (known: base_delay, max_attempts, max_delay)`},
		{"max attempts", "retry: {max_attempts: 0}\n", nil,
			`volley.yaml: retry.max_attempts: must be between 1 and 100, got 0`},
		{"defaults concurrency", "defaults: {concurrency: -1}\n", nil,
			`volley.yaml: defaults.concurrency: must be between 1 and 100000, got -1`},
		{"merge key", "upstreams:\n  vllm:\n    <<: {url: \"http://h/v1\"}\n", nil,
			`volley.yaml: upstreams.vllm: merge keys (<<) are not supported (line 3)`},
		{"not a mapping", "- a\n", nil,
			`volley.yaml: must be a mapping with the keys upstreams, models, retry and defaults, got a list`},
		{"two documents", "retry: {}\n---\nretry: {}\n", nil,
			`volley.yaml: must hold a single YAML document`},
		{"syntax", "upstreams:\n  vllm: {url: \n", nil,
			"volley.yaml: yaml: line 2: did not find expected node content"},
		{"env url", "", []string{"VOLLEY_UPSTREAM_URL", "localhost:8000"},
			`VOLLEY_UPSTREAM_URL: must be an absolute http(s) URL ending in /v1, got "localhost:8000"`},
		{"env concurrency", "", []string{"VOLLEY_MODEL_CONCURRENCY", "many"},
			`VOLLEY_MODEL_CONCURRENCY: "many" is not a whole number`},
		{"env concurrency range", "", []string{"VOLLEY_MODEL_CONCURRENCY", "0"},
			`VOLLEY_MODEL_CONCURRENCY: must be between 1 and 100000, got 0`},
		{"env timeout", "", []string{"VOLLEY_UPSTREAM_TIMEOUT", "10"},
			`VOLLEY_UPSTREAM_TIMEOUT: "10" is not a duration like 30s or 5m`},
		{"env attempts", "", []string{"VOLLEY_MAX_ATTEMPTS", "1000"},
			`VOLLEY_MAX_ATTEMPTS: must be between 1 and 100, got 1000`},
		{"env key without url", "", []string{"VOLLEY_UPSTREAM_API_KEY", "sk"},
			`VOLLEY_UPSTREAM_API_KEY: is set but VOLLEY_UPSTREAM_URL is not`},
		{"env default clashes with the file", "upstreams:\n  default: {url: \"http://h/v1\"}\n", []string{"VOLLEY_UPSTREAM_URL", "http://g/v1"},
			`VOLLEY_UPSTREAM_URL: defines upstream "default", which volley.yaml.upstreams.default also defines; remove one`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			source := "volley.yaml"
			cfg, err := Parse([]byte(tc.doc), source, envOf(tc.env...))
			require.Nil(t, cfg)
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "volley.yaml")
	require.NoError(t, os.WriteFile(path, []byte(twoUpstreams), 0o600))

	cfg, err := Load(envOf(append([]string{"VOLLEY_CONFIG", path}, twoUpstreamsEnv...)...))
	require.NoError(t, err)
	require.Equal(t, path, cfg.Source)
	require.Len(t, cfg.Routes, 2)

	_, err = Load(envOf("VOLLEY_CONFIG", path))
	require.EqualError(t, err, path+": upstreams.vllm.api_key_env: environment variable VLLM_KEY is not set")

	_, err = Load(envOf("VOLLEY_CONFIG", filepath.Join(dir, "missing.yaml")))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "VOLLEY_CONFIG: ")

	cfg, err = Load(envOf("VOLLEY_UPSTREAM_URL", "http://127.0.0.1:8000/v1"))
	require.NoError(t, err)
	require.Len(t, cfg.Routes, 1)
}

func TestExampleFile(t *testing.T) {
	t.Parallel()
	const path = "../../docs/volley.example.yaml"
	data, err := os.ReadFile(path)
	require.NoError(t, err)

	_, err = Parse(data, "volley.example.yaml", envOf())
	require.EqualError(t, err, "volley.example.yaml: upstreams.vllm.api_key_env: environment variable VLLM_API_KEY is not set")

	cfg, err := Parse(data, "volley.example.yaml", envOf("VLLM_API_KEY", "sk-vllm", "OPENAI_API_KEY", "sk-openai"))
	require.NoError(t, err)
	require.Len(t, cfg.Upstreams, 3)
	require.Equal(t, "sk-vllm", cfg.Upstreams["vllm"].APIKey)
	require.Equal(t, 512, cfg.Upstreams["vllm"].MaxConns)
	router := NewRouter(cfg)
	r, ok := router.Route("llama-3.1-8b")
	require.True(t, ok)
	require.Equal(t, "vllm", r.Upstream.Name)
	require.Equal(t, 256, r.Concurrency)
	require.Equal(t, &Adaptive{Min: 16, Max: 256, Decrease: 0.9, Increase: 1, LatencyTarget: 30 * time.Second}, r.Adaptive)
	r, ok = router.Route("gpt-4o-mini")
	require.True(t, ok)
	require.Equal(t, "openai", r.Upstream.Name)
	require.Equal(t, 32, r.Concurrency)
	require.Equal(t, RetryPolicy{MaxAttempts: 8, BaseDelay: time.Second, MaxDelay: 5 * time.Minute}, cfg.Retry)
}

func TestPriceConfigIsChecked(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ price, message string }{
		{`{input: -1}`, "price.input: must be between 0 and 1e+06, got -1"},
		{`{output: lots}`, "price.output: must be a number"},
		{`{batch_discount: 2}`, "price.batch_discount: must be between 0 and 1"},
		{`{inputs: 1}`, "unknown key"},
		{`3`, "price: must be a mapping"},
	} {
		_, err := Parse([]byte("upstreams:\n  u:\n    url: http://127.0.0.1:9/v1\nmodels:\n  - name: m\n    upstream: u\n    price: "+c.price+"\n"), "v.yaml", func(string) string { return "" })
		require.Error(t, err, c.price)
		require.Contains(t, err.Error(), c.message, c.price)
	}
}

func TestAdaptiveConfig(t *testing.T) {
	t.Parallel()
	parse := func(adaptive string) (*Config, error) {
		return Parse([]byte("upstreams:\n  u:\n    url: http://127.0.0.1:9/v1\nmodels:\n  - name: m\n    upstream: u\n    concurrency: 400\n    adaptive: "+adaptive+"\n"),
			"v.yaml", func(string) string { return "" })
	}
	cfg, err := parse("{}")
	require.NoError(t, err)
	require.Equal(t, &Adaptive{Min: 1, Max: 400, Decrease: 0.9, Increase: 1}, cfg.Routes[0].Adaptive, "every default; the ceiling is the route's concurrency")

	cfg, err = parse("{min: 10, max: 200, decrease: 0.5, increase: 4, latency_target: 2s}")
	require.NoError(t, err)
	require.Equal(t, &Adaptive{Min: 10, Max: 200, Decrease: 0.5, Increase: 4, LatencyTarget: 2 * time.Second}, cfg.Routes[0].Adaptive)

	cfg, err = parse("{max: 1}")
	require.NoError(t, err)
	require.Equal(t, 1, cfg.Routes[0].Adaptive.Min, "the default min follows a lower max")

	cfg, err = Parse([]byte("upstreams:\n  u:\n    url: http://127.0.0.1:9/v1\nmodels:\n  - name: m\n    upstream: u\n"), "v.yaml", func(string) string { return "" })
	require.NoError(t, err)
	require.Nil(t, cfg.Routes[0].Adaptive, "off unless configured")

	for _, c := range []struct{ adaptive, message string }{
		{`{max: 401}`, "models[0].adaptive.max: must be between 1 and 400, got 401"},
		{`{min: 0}`, "models[0].adaptive.min: must be between 1 and 400, got 0"},
		{`{min: 50, max: 20}`, "models[0].adaptive.min: must be at most the max (20), got 50"},
		{`{decrease: 1}`, "models[0].adaptive.decrease: must be between 0 and 1, both excluded"},
		{`{decrease: 0}`, "models[0].adaptive.decrease: must be between 0 and 1, both excluded"},
		{`{increase: 0}`, "models[0].adaptive.increase: must be between 1 and 400, got 0"},
		{`{latency_target: soon}`, "models[0].adaptive.latency_target"},
		{`{mins: 1}`, "models[0].adaptive.mins: unknown key"},
		{`true`, "models[0].adaptive: must be a mapping"},
	} {
		_, err := parse(c.adaptive)
		require.Error(t, err, c.adaptive)
		require.Contains(t, err.Error(), c.message, c.adaptive)
	}
}

func TestFallbackConfig(t *testing.T) {
	t.Parallel()
	parse := func(route string) (*Config, error) {
		return Parse([]byte("upstreams:\n  local:\n    url: http://127.0.0.1:9/v1\n  cloud:\n    url: http://127.0.0.1:10/v1\n"+
			"models:\n  - name: llama\n    upstream: local\n"+route), "v.yaml", func(string) string { return "" })
	}
	cfg, err := parse("    fallback: {upstream: cloud, model: gpt-4o-mini}\n    escalate_before: 30m\n")
	require.NoError(t, err)
	r := cfg.Routes[0]
	require.Equal(t, "cloud", r.Fallback.Upstream.Name)
	require.Equal(t, "gpt-4o-mini", r.Fallback.Model)
	require.Equal(t, 30*time.Minute, r.EscalateBefore)

	cfg, err = parse("    fallback: {upstream: cloud}\n")
	require.NoError(t, err)
	require.Empty(t, cfg.Routes[0].Fallback.Model, "the body's model is kept")
	require.Zero(t, cfg.Routes[0].EscalateBefore)

	for _, c := range []struct{ route, message string }{
		{"    fallback: {upstream: nowhere}\n", `models[0].fallback.upstream: unknown upstream "nowhere" (known: cloud, local)`},
		{"    fallback: {model: x}\n", "models[0].fallback.upstream: is required"},
		{"    fallback: {upstream: cloud, model: \"*\"}\n", "models[0].fallback.model: must be a model name"},
		{"    fallback: cloud\n", "models[0].fallback: must be a mapping"},
		{"    escalate_before: 30m\n", "models[0].escalate_before: needs a fallback to escalate to"},
		{"    fallback: {upstream: cloud}\n    escalate_before: soon\n", "models[0].escalate_before"},
	} {
		_, err := parse(c.route)
		require.Error(t, err, c.route)
		require.Contains(t, err.Error(), c.message, c.route)
	}
}
