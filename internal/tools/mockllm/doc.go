// Package mockllm implements a simulated OpenAI-compatible inference server
// used as an upstream for Volley demos, tests and benchmarks.
//
// The server answers POST requests on /v1/chat/completions, /v1/completions,
// /v1/embeddings, /v1/moderations and /v1/responses (the /v1 prefix is
// optional) with deterministic bodies derived from the request: generated
// text is "echo: " followed by the last user input, token usage is a
// whitespace word count, and embedding vectors are derived from a hash of
// each input.
//
// Behaviour can be shaped in two ways:
//
//   - Server-wide, through Config: latency (fixed, uniform jitter or
//     exponential), and random faults (error statuses, 429 rate limiting,
//     connection resets, hangs) drawn from a seeded generator so that a
//     given seed always produces the same sequence of outcomes.
//   - As an upstream of limited capacity, through Config.Capacity: above N
//     calls served at once it either refuses calls at once with 429, 503 or
//     529 (CapacityReject) or serves them all with latency stretched by
//     calls/N (CapacitySlow), so throughput stays at N/latency. Every
//     answer carries X-Mockllm-Latency, the latency applied to it.
//   - Per request, through a top-level "mock" object in the request body
//     (see Directive), which real upstreams ignore. For example
//     {"mock":{"status":500,"times":2}} fails the first two calls carrying
//     an identical body and lets later ones succeed.
//
// GET /stats reports call counts, in-flight and peak concurrency (global and
// per model), calls in a capacity slot and those over capacity, status counts, duplicate bodies and the last Authorization
// header seen per model; POST /stats/reset clears them. GET /healthz
// answers 200. With -record-starts, GET /stats/starts gives each call's start
// time and its model's calls in flight then. GET /v1/models lists Config.Models (flag -models), checking
// the key as the API routes do.
//
// The hot path only touches atomic counters, a sync.Map of per-model state
// and a sharded body-hash table, so a single process can sustain thousands
// of concurrent connections.
package mockllm
