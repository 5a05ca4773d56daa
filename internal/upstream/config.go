package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Names of the environment variables read by Load.
const (
	EnvConfig           = "VOLLEY_CONFIG"
	EnvUpstreamURL      = "VOLLEY_UPSTREAM_URL"
	EnvUpstreamAPIKey   = "VOLLEY_UPSTREAM_API_KEY"
	EnvModelConcurrency = "VOLLEY_MODEL_CONCURRENCY"
	EnvUpstreamTimeout  = "VOLLEY_UPSTREAM_TIMEOUT"
	EnvMaxAttempts      = "VOLLEY_MAX_ATTEMPTS"
)

// CatchAll is the model name of the route serving every model that has no route of its own.
const CatchAll = "*"

// DefaultUpstream is the name of the upstream that VOLLEY_UPSTREAM_URL defines.
const DefaultUpstream = "default"

// Defaults, used when neither the environment nor the file says otherwise.
const (
	DefaultConcurrency = 64
	DefaultTimeout     = 10 * time.Minute
	DefaultMaxAttempts = 8
	DefaultBaseDelay   = time.Second
	DefaultMaxDelay    = 5 * time.Minute
)

// Bounds checked at load.
const (
	MaxConcurrency = 100_000 // per model, and for max_connections
	MaxAttempts    = 100
	maxTimeout     = 24 * time.Hour
	maxDelayBound  = 24 * time.Hour
	maxNameLen     = 64
)

// Upstream is one OpenAI-compatible server.
type Upstream struct {
	// Name identifies the upstream in the file, in routes and in logs.
	Name string
	// BaseURL is an absolute http(s) URL ending in /v1, without a trailing slash. A request for
	// endpoint /v1/chat/completions goes to BaseURL + "/chat/completions".
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <APIKey>" when it is not empty.
	APIKey string
	// Timeout bounds one request: connecting, sending, waiting for and reading the whole answer.
	Timeout time.Duration
	// MaxConns caps the connections open to the upstream (max_connections). Zero sizes the pool
	// from the concurrency routed to the upstream; see NewClient.
	MaxConns int
	// Headers are added to every request, after Volley's own (so they may replace User-Agent or
	// Accept). Names are in canonical form.
	Headers map[string]string
}

// String describes the upstream without its key.
func (u *Upstream) String() string {
	if u == nil {
		return "<nil>"
	}
	return u.Name + " (" + u.BaseURL + ")"
}

// LogValue logs the upstream without its key.
func (u *Upstream) LogValue() slog.Value {
	if u == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(
		slog.String("name", u.Name),
		slog.String("url", u.BaseURL),
		slog.Bool("api_key_set", u.APIKey != ""),
		slog.Duration("timeout", u.Timeout),
	)
}

// Route sends a model's requests to an upstream under a concurrency limit.
type Route struct {
	// Model is the exact model name of the requests served, or CatchAll ("*").
	Model string
	// Upstream receives the requests; it is one of Config.Upstreams.
	Upstream *Upstream
	// Concurrency is how many of the model's requests may be in flight at once, across every
	// replica. For the catch-all route it applies to each model separately.
	Concurrency int
	// Timeout bounds one request of the model, in place of the upstream's; zero keeps the
	// upstream's.
	Timeout time.Duration
	// Retry is the model's retry policy; nil means Config.Retry.
	Retry *RetryPolicy
	// Price is what the model's tokens cost, for estimates; nil when none is set.
	Price *Price
	// Adaptive, when set, lets the model's limit follow its upstream below Concurrency, the
	// ceiling; nil keeps the limit fixed at Concurrency.
	Adaptive *Adaptive
	// Fallback, when set, is where requests go that should not wait for the model's own
	// upstream: those whose deadline is nearer than EscalateBefore.
	Fallback *Fallback
	// EscalateBefore, when set with a Fallback, sends every request whose deadline is nearer
	// than this to the fallback, whatever the model's state.
	EscalateBefore time.Duration
}

// Fallback is another upstream, and optionally another model name, for a model's requests.
type Fallback struct {
	Upstream *Upstream
	// Model replaces the body's "model" when set; empty keeps it.
	Model string
}

// Adaptive bounds and paces a model's effective limit. It is cut to Decrease of itself (at
// least Min) when the upstream signals overload, once per episode, and raised by Increase (at
// most Max) after a limit's worth of healthy answers with every slot in use.
type Adaptive struct {
	Min, Max int
	// Decrease is the factor of a cut, between 0 and 1 exclusive.
	Decrease float64
	// Increase is the step of a raise.
	Increase int
	// LatencyTarget, when set, also counts an answer slower than it as overload.
	LatencyTarget time.Duration
}

// Adaptive defaults, for the keys a model's adaptive mapping leaves out.
const (
	DefaultAdaptiveMin      = 1
	DefaultAdaptiveDecrease = 0.9
	DefaultAdaptiveIncrease = 1
)

// Price is a model's price per million tokens, and the discount its batches get.
type Price struct {
	InputPer1M  float64
	OutputPer1M float64
	// BatchDiscount is the fraction taken off for batch requests (0.5: half price).
	BatchDiscount float64
}

// RetryPolicy bounds how often and how soon a failed request is tried again.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included.
	MaxAttempts int
	// BaseDelay is the backoff ceiling after the first failed attempt; it doubles with each
	// further attempt up to MaxDelay.
	BaseDelay time.Duration
	MaxDelay  time.Duration
}

// Config is the routing configuration: upstreams, routes and the retry policy.
type Config struct {
	// Source names the YAML file the configuration came from (Parse's source); empty when the
	// configuration came from the environment alone.
	Source string
	// Upstreams by name.
	Upstreams map[string]*Upstream
	// Routes in the order of the file; at most one has Model == CatchAll. The catch-all added for
	// VOLLEY_UPSTREAM_URL comes last. Model names are unique.
	Routes []Route
	Retry  RetryPolicy
	// DefaultConcurrency is the limit of routes that set none (VOLLEY_MODEL_CONCURRENCY,
	// defaults.concurrency).
	DefaultConcurrency int
	// DefaultTimeout is the timeout of upstreams that set none (VOLLEY_UPSTREAM_TIMEOUT,
	// defaults.timeout).
	DefaultTimeout time.Duration
}

// Load reads the environment through getenv and, when VOLLEY_CONFIG names one, the YAML file.
func Load(getenv func(string) string) (*Config, error) {
	path := strings.TrimSpace(getenv(EnvConfig))
	if path == "" {
		return Parse(nil, "", getenv)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvConfig, err)
	}
	return Parse(data, path, getenv)
}

// Parse builds the configuration from a YAML document (nil or empty for none) and the
// environment read through getenv. source names the document in error messages, usually its
// file name.
func Parse(yamlBytes []byte, source string, getenv func(string) string) (*Config, error) {
	env, err := readEnv(getenv)
	if err != nil {
		return nil, err
	}
	if source == "" && len(yamlBytes) > 0 {
		source = EnvConfig
	}
	p := &parser{source: source, getenv: getenv}
	root, err := p.document(yamlBytes)
	if err != nil {
		return nil, err
	}
	var sections struct{ upstreams, models, retry, defaults *entry }
	for i := range root {
		e := &root[i]
		switch e.key {
		case "upstreams":
			sections.upstreams = e
		case "models":
			sections.models = e
		case "retry":
			sections.retry = e
		case "defaults":
			sections.defaults = e
		}
	}

	cfg := &Config{
		Upstreams:          make(map[string]*Upstream),
		DefaultConcurrency: DefaultConcurrency,
		DefaultTimeout:     DefaultTimeout,
		Retry: RetryPolicy{
			MaxAttempts: DefaultMaxAttempts,
			BaseDelay:   DefaultBaseDelay,
			MaxDelay:    DefaultMaxDelay,
		},
	}
	cfg.Source = source
	if err := p.defaults(sections.defaults, cfg); err != nil {
		return nil, err
	}
	if err := p.retry(sections.retry, cfg); err != nil {
		return nil, err
	}
	// The environment overrides the file's defaults; values set on an upstream or a model are
	// more specific and win over both.
	if env.concurrency != 0 {
		cfg.DefaultConcurrency = env.concurrency
	}
	if env.timeout != 0 {
		cfg.DefaultTimeout = env.timeout
	}
	if env.maxAttempts != 0 {
		cfg.Retry.MaxAttempts = env.maxAttempts
	}
	if err := p.upstreams(sections.upstreams, cfg); err != nil {
		return nil, err
	}
	if env.url != "" {
		if _, ok := cfg.Upstreams[DefaultUpstream]; ok {
			return nil, fmt.Errorf("%s: defines upstream %q, which %s.upstreams.%s also defines; remove one",
				EnvUpstreamURL, DefaultUpstream, p.source, DefaultUpstream)
		}
		cfg.Upstreams[DefaultUpstream] = &Upstream{
			Name:    DefaultUpstream,
			BaseURL: env.url,
			APIKey:  env.apiKey,
			Timeout: cfg.DefaultTimeout,
		}
	} else if env.apiKey != "" && len(yamlBytes) == 0 {
		return nil, fmt.Errorf("%s: is set but %s is not", EnvUpstreamAPIKey, EnvUpstreamURL)
	}
	if err := p.models(sections.models, cfg); err != nil {
		return nil, err
	}
	if env.url != "" && !slices.ContainsFunc(cfg.Routes, func(r Route) bool { return r.Model == CatchAll }) {
		cfg.Routes = append(cfg.Routes, Route{
			Model:       CatchAll,
			Upstream:    cfg.Upstreams[DefaultUpstream],
			Concurrency: cfg.DefaultConcurrency,
		})
	}
	return cfg, nil
}

// envConfig holds the environment's values; zero means unset.
type envConfig struct {
	url         string
	apiKey      string
	concurrency int
	timeout     time.Duration
	maxAttempts int
}

func readEnv(getenv func(string) string) (envConfig, error) {
	var e envConfig
	if v := strings.TrimSpace(getenv(EnvUpstreamURL)); v != "" {
		u, err := checkBaseURL(v)
		if err != nil {
			return e, fmt.Errorf("%s: %w", EnvUpstreamURL, err)
		}
		e.url = u
	}
	e.apiKey = strings.TrimSpace(getenv(EnvUpstreamAPIKey))
	if !validHeaderValue(e.apiKey) {
		return e, fmt.Errorf("%s: holds characters not allowed in an HTTP header", EnvUpstreamAPIKey)
	}
	var err error
	if e.concurrency, err = envInt(getenv, EnvModelConcurrency, 1, MaxConcurrency); err != nil {
		return e, err
	}
	if e.maxAttempts, err = envInt(getenv, EnvMaxAttempts, 1, MaxAttempts); err != nil {
		return e, err
	}
	if v := strings.TrimSpace(getenv(EnvUpstreamTimeout)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return e, fmt.Errorf("%s: %q is not a duration like 30s or 5m", EnvUpstreamTimeout, v)
		}
		if d < time.Millisecond || d > maxTimeout {
			return e, fmt.Errorf("%s: must be between 1ms and %s, got %s", EnvUpstreamTimeout, fmtDuration(maxTimeout), v)
		}
		e.timeout = d
	}
	return e, nil
}

func envInt(getenv func(string) string, name string, lo, hi int) (int, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a whole number", name, v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%s: must be between %d and %d, got %d", name, lo, hi, n)
	}
	return n, nil
}

// parser turns the YAML node tree into a Config, naming the key path in every error.
type parser struct {
	source string
	getenv func(string) string
}

// entry is one key of a YAML mapping (or one item of a list) with its key path.
type entry struct {
	key  string
	path string
	node *yaml.Node
}

func (p *parser) errorf(path, format string, args ...any) error {
	if path == "" {
		return fmt.Errorf("%s: %s", p.source, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("%s: %s: %s", p.source, path, fmt.Sprintf(format, args...))
}

// document parses the YAML text and returns the top-level keys.
func (p *parser) document(data []byte) ([]entry, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", p.source, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, p.errorf("", "must hold a single YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	return p.mapping(root, "", "a mapping with the keys upstreams, models, retry and defaults",
		"upstreams", "models", "retry", "defaults")
}

func (p *parser) defaults(e *entry, cfg *Config) error {
	if e == nil {
		return nil
	}
	fields, err := p.mapping(e.node, e.path, "a mapping", "concurrency", "timeout")
	if err != nil {
		return err
	}
	for _, f := range fields {
		switch f.key {
		case "concurrency":
			cfg.DefaultConcurrency, err = p.intIn(f, 1, MaxConcurrency)
		case "timeout":
			cfg.DefaultTimeout, err = p.durationIn(f, time.Millisecond, maxTimeout)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) retry(e *entry, cfg *Config) error {
	if e == nil {
		return nil
	}
	policy, err := p.retryPolicy(e.node, e.path, cfg.Retry)
	if err != nil {
		return err
	}
	cfg.Retry = policy
	return nil
}

// retryPolicy reads a retry mapping at path; the keys it leaves out keep their values in base.
func (p *parser) retryPolicy(node *yaml.Node, path string, base RetryPolicy) (RetryPolicy, error) {
	fields, err := p.mapping(node, path, "a mapping", "max_attempts", "base_delay", "max_delay")
	if err != nil {
		return base, err
	}
	r := base
	maxSet := false
	for _, f := range fields {
		switch f.key {
		case "max_attempts":
			r.MaxAttempts, err = p.intIn(f, 1, MaxAttempts)
		case "base_delay":
			r.BaseDelay, err = p.durationIn(f, time.Millisecond, maxDelayBound)
		case "max_delay":
			r.MaxDelay, err = p.durationIn(f, time.Millisecond, maxDelayBound)
			maxSet = true
		}
		if err != nil {
			return base, err
		}
	}
	if r.MaxDelay < r.BaseDelay {
		if maxSet {
			return base, p.errorf(path+".max_delay", "must be at least the base_delay (%s), got %s",
				fmtDuration(r.BaseDelay), fmtDuration(r.MaxDelay))
		}
		return base, p.errorf(path+".base_delay", "must be at most the max_delay (%s unless set), got %s",
			fmtDuration(r.MaxDelay), fmtDuration(r.BaseDelay))
	}
	return r, nil
}

func (p *parser) upstreams(e *entry, cfg *Config) error {
	if e == nil {
		return nil
	}
	named, err := p.mapping(e.node, e.path, "a mapping of upstream names to upstreams")
	if err != nil {
		return err
	}
	for _, n := range named {
		if !validName(n.key) {
			return p.errorf(e.path, "name %q must be 1 to %d letters, digits, '.', '-' or '_'", n.key, maxNameLen)
		}
		u, err := p.upstream(n, cfg.DefaultTimeout)
		if err != nil {
			return err
		}
		cfg.Upstreams[u.Name] = u
	}
	return nil
}

func (p *parser) upstream(e entry, defaultTimeout time.Duration) (*Upstream, error) {
	fields, err := p.mapping(e.node, e.path, "a mapping",
		"url", "api_key", "api_key_env", "timeout", "max_connections", "headers")
	if err != nil {
		return nil, err
	}
	u := &Upstream{Name: e.key, Timeout: defaultTimeout}
	var keyPath string // the key setting APIKey, if any
	var headers *entry
	for _, f := range fields {
		switch f.key {
		case "url":
			var raw string
			if raw, err = p.str(f); err == nil {
				if u.BaseURL, err = checkBaseURL(raw); err != nil {
					err = p.errorf(f.path, "%v", err)
				}
			}
		case "api_key":
			if keyPath != "" {
				return nil, p.errorf(f.path, "set only one of api_key and api_key_env")
			}
			keyPath = f.path
			if u.APIKey, err = p.str(f); err == nil && !validHeaderValue(u.APIKey) {
				err = p.errorf(f.path, "holds characters not allowed in an HTTP header")
			}
		case "api_key_env":
			if keyPath != "" {
				return nil, p.errorf(f.path, "set only one of api_key and api_key_env")
			}
			keyPath = f.path
			u.APIKey, err = p.keyFromEnv(f)
		case "timeout":
			u.Timeout, err = p.durationIn(f, time.Millisecond, maxTimeout)
		case "max_connections":
			u.MaxConns, err = p.intIn(f, 1, MaxConcurrency)
		case "headers":
			headers = &f
		}
		if err != nil {
			return nil, err
		}
	}
	if u.BaseURL == "" {
		return nil, p.errorf(e.path+".url", "is required")
	}
	if headers != nil {
		if u.Headers, err = p.headers(*headers, u.APIKey != ""); err != nil {
			return nil, err
		}
	}
	return u, nil
}

func (p *parser) keyFromEnv(f entry) (string, error) {
	name, err := p.str(f)
	if err != nil {
		return "", err
	}
	if !validEnvName(name) {
		return "", p.errorf(f.path, "%q is not an environment variable name", name)
	}
	key := strings.TrimSpace(p.getenv(name))
	if key == "" {
		return "", p.errorf(f.path, "environment variable %s is not set", name)
	}
	if !validHeaderValue(key) {
		return "", p.errorf(f.path, "environment variable %s holds characters not allowed in an HTTP header", name)
	}
	return key, nil
}

// reservedHeaders are set by Volley or by the HTTP transport and may not be configured.
// Accept-Encoding is the transport's: it asks for gzip and decompresses, so that bodies are
// recorded as the upstream meant them.
var reservedHeaders = []string{
	"Accept-Encoding", "Connection", "Content-Length", "Content-Type", "Host", "Keep-Alive",
	"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func (p *parser) headers(e entry, hasKey bool) (map[string]string, error) {
	fields, err := p.mapping(e.node, e.path, "a mapping of header names to values")
	if err != nil {
		return nil, err
	}
	h := make(map[string]string, len(fields))
	for _, f := range fields {
		if !validToken(f.key) {
			return nil, p.errorf(f.path, "is not a valid HTTP header name")
		}
		name := http.CanonicalHeaderKey(f.key)
		if slices.Contains(reservedHeaders, name) {
			return nil, p.errorf(f.path, "is set by Volley and cannot be configured")
		}
		if name == "Authorization" && hasKey {
			return nil, p.errorf(f.path, "conflicts with the upstream's api_key or api_key_env")
		}
		if _, dup := h[name]; dup {
			return nil, p.errorf(f.path, "is set twice (header names are case-insensitive)")
		}
		if isNull(f.node) {
			return nil, p.errorf(f.path, "needs a value")
		}
		v, err := p.str(f)
		if err != nil {
			return nil, err
		}
		if !validHeaderValue(v) {
			return nil, p.errorf(f.path, "holds characters not allowed in an HTTP header")
		}
		h[name] = v
	}
	return h, nil
}

func (p *parser) models(e *entry, cfg *Config) error {
	if e == nil {
		return nil
	}
	n := deref(e.node)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return p.errorf(e.path, "must be a list of routes (- name: ..., upstream: ...)")
	}
	seen := make(map[string]string, len(n.Content))
	for i, item := range n.Content {
		path := e.path + "[" + strconv.Itoa(i) + "]"
		fields, err := p.mapping(item, path, "a mapping with the keys name, upstream, concurrency, timeout, retry, price, adaptive, fallback and escalate_before",
			"name", "upstream", "concurrency", "timeout", "retry", "price", "adaptive", "fallback", "escalate_before")
		if err != nil {
			return err
		}
		r := Route{Concurrency: cfg.DefaultConcurrency}
		var upstream string
		var adaptive, escalate *entry
		for _, f := range fields {
			switch f.key {
			case "name":
				if r.Model, err = p.str(f); err == nil {
					err = p.checkModel(f.path, r.Model, seen)
				}
			case "upstream":
				if upstream, err = p.str(f); err == nil {
					if r.Upstream = cfg.Upstreams[upstream]; r.Upstream == nil {
						err = p.errorf(f.path, "unknown upstream %q (%s)", upstream, knownUpstreams(cfg))
					}
				}
			case "concurrency":
				r.Concurrency, err = p.intIn(f, 1, MaxConcurrency)
			case "timeout":
				r.Timeout, err = p.durationIn(f, time.Millisecond, maxTimeout)
			case "retry":
				var policy RetryPolicy
				if policy, err = p.retryPolicy(f.node, f.path, cfg.Retry); err == nil {
					r.Retry = &policy
				}
			case "price":
				r.Price, err = p.price(f)
			case "adaptive":
				adaptive = &f
			case "fallback":
				r.Fallback, err = p.fallback(f, cfg)
			case "escalate_before":
				escalate = &f
				r.EscalateBefore, err = p.durationIn(f, time.Second, maxTimeout)
			}
			if err != nil {
				return err
			}
		}
		if adaptive != nil {
			// Read last: its bounds default to, and are checked against, the route's concurrency.
			if r.Adaptive, err = p.adaptive(*adaptive, r.Concurrency); err != nil {
				return err
			}
		}
		if escalate != nil && r.Fallback == nil {
			return p.errorf(escalate.path, "needs a fallback to escalate to (fallback: {upstream: ...})")
		}
		if r.Model == "" {
			return p.errorf(path+".name", "is required")
		}
		if r.Upstream == nil {
			return p.errorf(path+".upstream", "is required (%s)", knownUpstreams(cfg))
		}
		seen[r.Model] = path
		cfg.Routes = append(cfg.Routes, r)
	}
	return nil
}

func (p *parser) checkModel(path, model string, seen map[string]string) error {
	switch {
	case model == "":
		return p.errorf(path, "must not be empty")
	case model != CatchAll && strings.Contains(model, CatchAll):
		return p.errorf(path, "%q: only the catch-all route %q may contain '*'", model, CatchAll)
	case seen[model] != "":
		if model == CatchAll {
			return p.errorf(path, "a second catch-all route (the first is %s)", seen[model])
		}
		return p.errorf(path, "duplicate model %q (also %s)", model, seen[model])
	}
	return nil
}

func knownUpstreams(cfg *Config) string {
	if len(cfg.Upstreams) == 0 {
		return "no upstreams are defined"
	}
	names := make([]string, 0, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		names = append(names, name)
	}
	slices.Sort(names)
	return "known: " + strings.Join(names, ", ")
}

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// mapping returns the keys of the mapping n in order. With known keys, any other key is an error
// and keys without a value are left out (as if absent); with none, every key is returned.
func (p *parser) mapping(n *yaml.Node, path, want string, known ...string) ([]entry, error) {
	n = deref(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errorf(path, "must be %s, got %s", want, describe(n))
	}
	entries := make([]entry, 0, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, p.errorf(path, "keys must be plain strings (line %d)", k.Line)
		}
		if k.ShortTag() == "!!merge" {
			return nil, p.errorf(path, "merge keys (<<) are not supported (line %d)", k.Line)
		}
		kp := k.Value
		if path != "" {
			kp = path + "." + k.Value
		}
		if known != nil && !slices.Contains(known, k.Value) {
			return nil, p.errorf(kp, "unknown key (known: %s)", strings.Join(sortedCopy(known), ", "))
		}
		if line, dup := lines[k.Value]; dup {
			return nil, p.errorf(kp, "set twice (lines %d and %d)", line, k.Line)
		}
		lines[k.Value] = k.Line
		if known != nil && isNull(v) {
			continue
		}
		entries = append(entries, entry{key: k.Value, path: kp, node: v})
	}
	return entries, nil
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// str returns a single value as written.
func (p *parser) str(e entry) (string, error) {
	n := deref(e.node)
	if isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", p.errorf(e.path, "must be a single value, got %s", describe(n))
	}
	return n.Value, nil
}

// price reads a model's price: {input: USD per 1M input tokens, output: USD per 1M output tokens,
// batch_discount: fraction off for batches}.
func (p *parser) price(e entry) (*Price, error) {
	fields, err := p.mapping(e.node, e.path, "a mapping with the keys input, output and batch_discount", "input", "output", "batch_discount")
	if err != nil {
		return nil, err
	}
	var pr Price
	for _, f := range fields {
		switch f.key {
		case "input":
			pr.InputPer1M, err = p.floatIn(f, 0, 1e6)
		case "output":
			pr.OutputPer1M, err = p.floatIn(f, 0, 1e6)
		case "batch_discount":
			pr.BatchDiscount, err = p.floatIn(f, 0, 1)
		}
		if err != nil {
			return nil, err
		}
	}
	return &pr, nil
}

// fallback reads a model's fallback mapping: an upstream defined in the file, and optionally the
// model name it knows the model by.
func (p *parser) fallback(e entry, cfg *Config) (*Fallback, error) {
	fields, err := p.mapping(e.node, e.path, "a mapping with the keys upstream and model", "upstream", "model")
	if err != nil {
		return nil, err
	}
	fb := &Fallback{}
	for _, f := range fields {
		switch f.key {
		case "upstream":
			var name string
			if name, err = p.str(f); err == nil {
				if fb.Upstream = cfg.Upstreams[name]; fb.Upstream == nil {
					err = p.errorf(f.path, "unknown upstream %q (%s)", name, knownUpstreams(cfg))
				}
			}
		case "model":
			if fb.Model, err = p.str(f); err == nil && (fb.Model == "" || strings.Contains(fb.Model, CatchAll)) {
				err = p.errorf(f.path, "must be a model name, got %q", fb.Model)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if fb.Upstream == nil {
		return nil, p.errorf(e.path+".upstream", "is required (%s)", knownUpstreams(cfg))
	}
	return fb, nil
}

// adaptive reads a model's adaptive mapping; ceiling is the route's concurrency, which max may
// not exceed and defaults to. An empty mapping ({}) takes every default.
func (p *parser) adaptive(e entry, ceiling int) (*Adaptive, error) {
	a := &Adaptive{Min: DefaultAdaptiveMin, Max: ceiling, Decrease: DefaultAdaptiveDecrease, Increase: DefaultAdaptiveIncrease}
	if isNull(deref(e.node)) {
		return a, nil
	}
	fields, err := p.mapping(e.node, e.path, "a mapping with the keys min, max, decrease, increase and latency_target",
		"min", "max", "decrease", "increase", "latency_target")
	if err != nil {
		return nil, err
	}
	minSet := false
	for _, f := range fields {
		switch f.key {
		case "min":
			a.Min, err = p.intIn(f, 1, ceiling)
			minSet = true
		case "max":
			a.Max, err = p.intIn(f, 1, ceiling)
		case "decrease":
			if a.Decrease, err = p.floatIn(f, 0, 1); err == nil && (a.Decrease <= 0 || a.Decrease >= 1) {
				err = p.errorf(f.path, "must be between 0 and 1, both excluded (a cut keeps that share of the limit), got %g", a.Decrease)
			}
		case "increase":
			a.Increase, err = p.intIn(f, 1, ceiling)
		case "latency_target":
			a.LatencyTarget, err = p.durationIn(f, time.Millisecond, maxTimeout)
		}
		if err != nil {
			return nil, err
		}
	}
	if a.Min > a.Max {
		if minSet {
			return nil, p.errorf(e.path+".min", "must be at most the max (%d), got %d", a.Max, a.Min)
		}
		a.Min = a.Max
	}
	return a, nil
}

func (p *parser) floatIn(e entry, lo, hi float64) (float64, error) {
	n := deref(e.node)
	var v float64
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&v) != nil {
		return 0, p.errorf(e.path, "must be a number, got %s", describe(n))
	}
	if v < lo || v > hi {
		return 0, p.errorf(e.path, "must be between %g and %g, got %g", lo, hi, v)
	}
	return v, nil
}

func (p *parser) intIn(e entry, lo, hi int) (int, error) {
	n := deref(e.node)
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		return 0, p.errorf(e.path, "must be a whole number, got %s", describe(n))
	}
	if v < int64(lo) || v > int64(hi) {
		return 0, p.errorf(e.path, "must be between %d and %d, got %d", lo, hi, v)
	}
	return int(v), nil
}

func (p *parser) durationIn(e entry, lo, hi time.Duration) (time.Duration, error) {
	n := deref(e.node)
	if n.Kind != yaml.ScalarNode {
		return 0, p.errorf(e.path, "must be a duration like 30s or 5m, got %s", describe(n))
	}
	d, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return 0, p.errorf(e.path, "must be a duration like 30s or 5m, got %q", n.Value)
	}
	if d < lo || d > hi {
		return 0, p.errorf(e.path, "must be between %s and %s, got %s", fmtDuration(lo), fmtDuration(hi), n.Value)
	}
	return d, nil
}

// fmtDuration prints whole hours and minutes the way people write them ("24h", "5m").
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// checkBaseURL returns the base URL without a trailing slash, or why it is not acceptable.
func checkBaseURL(raw string) (string, error) {
	const want = "must be an absolute http(s) URL ending in /v1"
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%s, got %q", want, raw)
	}
	if u.User != nil {
		return "", errors.New("must not hold credentials; use api_key_env (or VOLLEY_UPSTREAM_API_KEY)")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.Contains(raw, "#") {
		return "", fmt.Errorf("%s and have no query or fragment, got %q", want, raw)
	}
	trimmed := strings.TrimSuffix(raw, "/")
	if !strings.HasSuffix(trimmed, "/v1") {
		return "", fmt.Errorf("%s, got %q", want, raw)
	}
	return trimmed, nil
}

func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validToken reports whether s is an HTTP token (RFC 9110), as header names must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validHeaderValue rejects control characters other than tab, which HTTP does not allow.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
