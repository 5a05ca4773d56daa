package mockllm

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Latency distributions accepted by Config.LatencyDist.
const (
	// DistUniform draws latency uniformly from
	// [Latency-LatencyJitter, Latency+LatencyJitter] (clamped at zero).
	// With no jitter it is a fixed delay. It is the default.
	DistUniform = "uniform"
	// DistFixed always waits exactly Latency; LatencyJitter is ignored.
	DistFixed = "fixed"
	// DistExp draws latency from an exponential distribution with mean
	// Latency, capped at 20 times the mean; LatencyJitter is ignored.
	DistExp = "exp"
)

// Capacity modes accepted by Config.CapacityMode.
const (
	// CapacityReject answers a call with CapacityStatus when Capacity calls
	// are already being served. It is the default.
	CapacityReject = "reject"
	// CapacitySlow serves every call but stretches its latency by the
	// ratio of calls being served to Capacity, as an upstream with Capacity
	// slots does: throughput stays at Capacity/Latency however many calls
	// arrive.
	CapacitySlow = "slow"
)

// Defaults applied by New for zero-valued Config fields.
const (
	DefaultHangMax      = 10 * time.Minute
	DefaultMaxBodyBytes = 64 << 20
	DefaultEchoMaxRunes = 200
	// MaxEmbeddingDimensions caps the "dimensions" request field.
	MaxEmbeddingDimensions = 4096
	// DefaultEmbeddingDimensions is the vector length when the request does
	// not ask for one.
	DefaultEmbeddingDimensions = 8
	maxChoices                 = 16
)

// Failure is a randomly injected error status and the probability that a
// request is answered with it.
type Failure struct {
	Status int
	Rate   float64
}

// Config configures a Server. The zero value is a valid configuration: no
// latency, no faults, any bearer key accepted.
type Config struct {
	// APIKey, when non-empty, is the only bearer token accepted.
	APIKey string
	// NoAuth disables the Authorization header check entirely.
	NoAuth bool

	// Latency is the base (or mean, for DistExp) delay applied to every
	// API request while it counts as in flight.
	Latency time.Duration
	// LatencyJitter is the half-width of the uniform jitter around Latency.
	LatencyJitter time.Duration
	// LatencyDist is one of DistUniform (default), DistFixed, DistExp.
	LatencyDist string

	// Seed seeds the random fault and latency draws. The draws for the i-th
	// valid, authorized API request (counted since start or the last stats
	// reset) depend only on Seed and i. Faults are mutually exclusive: one
	// uniform draw per request picks reset, hang, 429 or one of Failures
	// with exactly their configured probabilities, so the rates must add
	// up to at most 1.
	Seed uint64

	// Failures lists error statuses injected at random.
	Failures []Failure
	// RateLimitRate is the probability of a 429 answer.
	RateLimitRate float64
	// RetryAfter is sent with random 429 answers as Retry-After (whole
	// seconds, rounded up) and retry-after-ms. Zero omits both headers.
	RetryAfter time.Duration
	// ResetRate is the probability that the connection is reset without
	// an answer.
	ResetRate float64
	// HangRate is the probability that the request is never answered
	// (until the client goes away, HangMax elapses or the server closes).
	HangRate float64
	// HangMax bounds a hang; afterwards the request is answered with 504.
	// Zero means DefaultHangMax.
	HangMax time.Duration

	// MaxConcurrency, when positive, counts a violation in the stats every
	// time a request starts while more than MaxConcurrency requests are in
	// flight. Requests are still served.
	MaxConcurrency int
	// Capacity, when positive, is how many API calls the upstream serves
	// at once; beyond it CapacityMode decides what happens. Calls answered
	// by a "mock" directive's fault are not counted.
	Capacity int
	// CapacityMode is CapacityReject (default) or CapacitySlow.
	CapacityMode string
	// CapacityStatus is the status of a call refused for capacity: 429
	// (default), 503 or 529. RetryAfter is sent with it, as with random
	// 429s.
	CapacityStatus int

	// MaxBodyBytes bounds request bodies (413 beyond). Zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// EchoMaxRunes truncates the echoed user text. Zero means
	// DefaultEchoMaxRunes; negative disables truncation.
	EchoMaxRunes int
	// PadBytes pads every generated text with filler to at least this many bytes (after any token
	// limit), to produce answers of a known, large size. Zero leaves texts as generated.
	PadBytes int

	// RecordStarts keeps, per model, each call's start time and the model's calls in flight at
	// that start (GET /stats/starts), for checking concurrency against a limit that moves.
	RecordStarts bool

	// Models are the model names GET /v1/models lists, in this order. Calls for any other model
	// are served as well, as they always are.
	Models []string

	// Verbose logs one line per API request.
	Verbose bool
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	var errs []error
	rate := func(name string, v float64) {
		if math.IsNaN(v) || v < 0 || v > 1 {
			errs = append(errs, fmt.Errorf("%s must be within [0,1], got %v", name, v))
		}
	}
	rate("rate-limit rate", c.RateLimitRate)
	rate("reset rate", c.ResetRate)
	rate("hang rate", c.HangRate)
	sum := c.RateLimitRate + c.ResetRate + c.HangRate
	for _, f := range c.Failures {
		rate(fmt.Sprintf("failure rate for status %d", f.Status), f.Rate)
		if f.Status < 400 || f.Status > 599 {
			errs = append(errs, fmt.Errorf("failure status must be within 400..599, got %d", f.Status))
		}
		sum += f.Rate
	}
	if sum > 1+1e-9 {
		errs = append(errs, fmt.Errorf("fault rates add up to %v, more than 1", sum))
	}
	switch c.LatencyDist {
	case "", DistUniform, DistFixed, DistExp:
	default:
		errs = append(errs, fmt.Errorf("latency distribution must be fixed, uniform or exp, got %q", c.LatencyDist))
	}
	if c.Latency < 0 || c.LatencyJitter < 0 || c.RetryAfter < 0 || c.HangMax < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.MaxConcurrency < 0 {
		errs = append(errs, errors.New("max concurrency must not be negative"))
	}
	if c.Capacity < 0 {
		errs = append(errs, errors.New("capacity must not be negative"))
	}
	switch c.CapacityMode {
	case "", CapacityReject, CapacitySlow:
	default:
		errs = append(errs, fmt.Errorf("capacity mode must be reject or slow, got %q", c.CapacityMode))
	}
	switch c.CapacityStatus {
	case 0, 429, 503, 529:
	default:
		errs = append(errs, fmt.Errorf("capacity status must be 429, 503 or 529, got %d", c.CapacityStatus))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("max body bytes must not be negative"))
	}
	return errors.Join(errs...)
}

// ParseFailures parses a failure specification: a comma separated list of
// STATUS or STATUS:RATE entries, e.g. "500", "500,503" or
// "500:0.05,503:0.01,400:0.01". Entries without an explicit rate share
// defaultRate equally, so "-fail-rate 0.05 -fail-status 500,503" fails 5% of
// requests, half with 500 and half with 503. Entries with a zero rate are
// dropped.
func ParseFailures(spec string, defaultRate float64) ([]Failure, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	var out []Failure
	var implicit []int
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		statusText, rateText, hasRate := strings.Cut(part, ":")
		status, err := strconv.Atoi(strings.TrimSpace(statusText))
		if err != nil || status < 400 || status > 599 {
			return nil, fmt.Errorf("invalid failure status %q: want an HTTP status within 400..599", statusText)
		}
		if !hasRate {
			implicit = append(implicit, len(out))
			out = append(out, Failure{Status: status})
			continue
		}
		r, err := strconv.ParseFloat(strings.TrimSpace(rateText), 64)
		if err != nil || math.IsNaN(r) || r < 0 || r > 1 {
			return nil, fmt.Errorf("invalid failure rate %q for status %d: want a number within [0,1]", rateText, status)
		}
		out = append(out, Failure{Status: status, Rate: r})
	}
	for _, i := range implicit {
		out[i].Rate = defaultRate / float64(len(implicit))
	}
	kept := out[:0]
	for _, f := range out {
		if f.Rate > 0 {
			kept = append(kept, f)
		}
	}
	if len(kept) == 0 {
		return nil, nil
	}
	return kept, nil
}

func (c Config) withDefaults() Config {
	if c.HangMax == 0 {
		c.HangMax = DefaultHangMax
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.EchoMaxRunes == 0 {
		c.EchoMaxRunes = DefaultEchoMaxRunes
	}
	if c.LatencyDist == "" {
		c.LatencyDist = DistUniform
	}
	if c.CapacityMode == "" {
		c.CapacityMode = CapacityReject
	}
	if c.CapacityStatus == 0 {
		c.CapacityStatus = 429
	}
	return c
}
