// Package upstream knows where each model's requests go and makes the HTTP call to that
// OpenAI-compatible inference server, classifying what came back so that the caller can decide
// between recording a result, retrying and giving up.
//
// # Configuration
//
// The simple case needs only environment variables:
//
//	VOLLEY_UPSTREAM_URL       base URL ending in /v1; every model routes to it (upstream "default")
//	VOLLEY_UPSTREAM_API_KEY   bearer key sent to that upstream (optional)
//	VOLLEY_MODEL_CONCURRENCY  default per-model concurrency limit (64)
//	VOLLEY_UPSTREAM_TIMEOUT   default per-request timeout (10m)
//	VOLLEY_MAX_ATTEMPTS       attempts per request, the first included (8)
//
// VOLLEY_CONFIG names a YAML file for several upstreams and per-model routes; see
// docs/volley.example.yaml for every key. When both are used:
//
//   - VOLLEY_UPSTREAM_URL adds an upstream named "default" (so the file must not define one). Routes
//     in the file may name it; it becomes the catch-all only when the file has no "*" route.
//     VOLLEY_UPSTREAM_API_KEY is that upstream's key; without VOLLEY_UPSTREAM_URL it is ignored
//     when there is a file (whose upstreams may name it in api_key_env), and an error otherwise.
//   - VOLLEY_MODEL_CONCURRENCY, VOLLEY_UPSTREAM_TIMEOUT and VOLLEY_MAX_ATTEMPTS override the file's
//     defaults.concurrency, defaults.timeout and retry.max_attempts. A value written on an upstream
//     (timeout) or a model (concurrency) is more specific and wins over both.
//
// Everything is validated by Load, and every error names the environment variable or the key path
// in the file ("volley.yaml: models[2].upstream: unknown upstream ..."). Unknown keys are errors.
// A configuration with no routes at all is valid: Router.Route then reports false for every model.
//
// # Sending
//
// Client keeps one http.Transport per upstream, with keep-alive connections sized to the
// concurrency routed to it. Client.Send posts a request body verbatim and returns an Outcome: the
// upstream's status and body, or why no answer came (request_timeout, upstream_unreachable, or
// cancellation by the caller's context), whether a retry may succeed, and the server's
// Retry-After hint. RetryPolicy.Backoff turns an attempt number and that hint into a delay.
package upstream
