package chaos

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// NotMeasured marks a count a scenario does not measure.
const NotMeasured = -1

// Result is what one scenario found.
type Result struct {
	Name  string
	Title string
	// Load and Faults say what the scenario held and injected, for the report; Held and Injected
	// say it in a few words, for the summary.
	Load     []string
	Faults   []string
	Held     string
	Injected string
	// Lost, Duplicated and Violations must be zero (NotMeasured where they do not apply):
	// requests missing from the result files, custom_ids on more than one result line, and calls
	// beyond a model's concurrency limit as the upstream counted them.
	Lost, Duplicated, Violations int64
	// UpstreamDuplicates counts calls the upstream received for a body it had seen before,
	// beyond the retries of injected faults (NotMeasured where it does not apply).
	UpstreamDuplicates int64
	Duration           time.Duration
	// Metrics are figures, some with a performance target.
	Metrics []Metric
	// Checks are the correctness conditions, each of which must hold.
	Checks []Check
	// Skipped lists what could not be exercised, and why.
	Skipped []string
	Notes   []string
	// Err is set when the scenario could not run to its end.
	Err error

	mu sync.Mutex
}

// Metric is one figure; Target and Met are set when it has a target.
type Metric struct {
	Name   string
	Value  string
	Target string
	Met    bool
}

// Check is one correctness condition.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

func newResult(name, title string) *Result {
	return &Result{Name: name, Title: title, Lost: NotMeasured, Duplicated: NotMeasured,
		Violations: NotMeasured, UpstreamDuplicates: NotMeasured}
}

// Check records a correctness condition.
func (r *Result) Check(name string, ok bool, detail string, args ...any) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(detail, args...)})
	return ok
}

// Metric records a figure without a target.
func (r *Result) Metric(name, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: fmt.Sprintf(format, args...)})
}

// Target records a figure with a target.
func (r *Result) Target(name, value, target string, met bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: value, Target: target, Met: met})
}

// Note adds a remark to the report.
func (r *Result) Note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Skip records something the scenario could not exercise.
func (r *Result) Skip(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Skipped = append(r.Skipped, fmt.Sprintf(format, args...))
}

// Fail records that the scenario could not run to its end.
func (r *Result) Fail(err error) *Result {
	if r.Err == nil {
		r.Err = err
	}
	return r
}

// Correct reports whether every correctness condition held: no error, no failed check, and
// zero lost, duplicated and limit violations.
func (r *Result) Correct() bool { return len(r.correctnessFailures()) == 0 }

// Pass reports Correct and every performance target met.
func (r *Result) Pass() bool { return len(r.Failures()) == 0 }

func (r *Result) correctnessFailures() []string {
	var out []string
	if r.Err != nil {
		out = append(out, "did not run to its end: "+r.Err.Error())
	}
	for _, c := range []struct {
		name string
		n    int64
	}{{"lost", r.Lost}, {"duplicated", r.Duplicated}, {"limit violations", r.Violations}} {
		if c.n > 0 {
			out = append(out, fmt.Sprintf("%s: %d", c.name, c.n))
		}
	}
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name+": "+c.Detail)
		}
	}
	return out
}

// CorrectnessFailures describes every failed correctness condition.
func (r *Result) CorrectnessFailures() []string { return r.correctnessFailures() }

// Failures describes every failed condition and missed target.
func (r *Result) Failures() []string {
	out := r.correctnessFailures()
	for _, m := range r.Metrics {
		if m.Target != "" && !m.Met {
			out = append(out, fmt.Sprintf("target missed: %s %s (target %s)", m.Name, m.Value, m.Target))
		}
	}
	return out
}

// Verdict is PASS or FAIL.
func (r *Result) Verdict() string {
	if r.Pass() {
		return "PASS"
	}
	return "FAIL"
}

// Latencies collects durations for percentiles.
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one duration.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// Count is how many durations were recorded.
func (l *Latencies) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// Percentile returns the p-th percentile (0 < p ≤ 100), nearest rank.
func (l *Latencies) Percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), l.d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// fmtDur prints a duration rounded for reports.
func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.String()
}

// fmtMB prints bytes in MB (10^6).
func fmtMB(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

// fmtInt prints n with thousands separators.
func fmtInt(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// errSuffix is ": err" or nothing.
func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}
