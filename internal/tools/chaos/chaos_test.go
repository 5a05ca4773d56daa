package chaos

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// harness builds the binaries once per test process and gives the test a scratch directory.
func harness(t *testing.T) *Harness {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos suites start real processes; skipped with -short")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "volley-chaos-bin-")
		if buildErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			built, buildErr = Build(ctx, binDir)
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	work, err := NewWorkDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	return &Harness{Bin: built, WorkDir: work, Logf: t.Logf}
}

// requireCorrect fails the test with every failed correctness condition of res, and logs the
// figures (performance targets are reported, not enforced, at reduced size).
func requireCorrect(t *testing.T, res *Result) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s in %s: lost %d, duplicated %d, violations %d, upstream duplicates %d\n",
		res.Name, fmtDur(res.Duration), res.Lost, res.Duplicated, res.Violations, res.UpstreamDuplicates)
	for _, m := range res.Metrics {
		fmt.Fprintf(&b, "  %s: %s", m.Name, m.Value)
		if m.Target != "" {
			fmt.Fprintf(&b, " (target %s, met %v)", m.Target, m.Met)
		}
		b.WriteString("\n")
	}
	for _, c := range res.Checks {
		fmt.Fprintf(&b, "  check %v: %s: %s\n", c.OK, c.Name, c.Detail)
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(&b, "  skipped: %s\n", s)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	t.Log(b.String())
	if failures := res.CorrectnessFailures(); len(failures) > 0 {
		t.Fatalf("%s failed:\n  %s", res.Name, strings.Join(failures, "\n  "))
	}
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestReplicaChaos(t *testing.T) {
	h := harness(t)
	requireCorrect(t, RunReplicaChaos(testContext(t, 2*time.Minute), h, ReplicaChaosReduced()))
}

func TestDatabaseStall(t *testing.T) {
	h := harness(t)
	requireCorrect(t, RunStall(testContext(t, 2*time.Minute), h, StallReduced()))
}

func TestRollingRestart(t *testing.T) {
	h := harness(t)
	res := RunRolling(testContext(t, 2*time.Minute), h, RollingReduced())
	requireCorrect(t, res)
	if res.UpstreamDuplicates != 0 {
		t.Fatalf("a rolling restart sent %d requests upstream twice", res.UpstreamDuplicates)
	}
}

func TestLoad(t *testing.T) {
	h := harness(t)
	requireCorrect(t, RunLoad(testContext(t, 2*time.Minute), h, LoadReduced()))
}

func TestHostileInput(t *testing.T) {
	h := harness(t)
	requireCorrect(t, RunHostile(testContext(t, 2*time.Minute), h, HostileReduced()))
}

func TestSlowClients(t *testing.T) {
	h := harness(t)
	requireCorrect(t, RunSlow(testContext(t, 2*time.Minute), h, SlowReduced()))
}

func TestAuthSweep(t *testing.T) {
	h := harness(t)
	requireCorrect(t, RunAuthSweep(testContext(t, 2*time.Minute), h))
}

func TestAPIFuzz(t *testing.T) {
	h := harness(t)
	requireCorrect(t, RunAPIFuzz(testContext(t, 5*time.Minute), h, APIFuzzReduced()))
}
