// Package chaos is Volley's reliability suite: scenarios that run real `volley serve` replicas,
// mockllm and a PostgreSQL cluster of their own, inject faults (killed replicas, a crashed or
// frozen database, rolling restarts, heavy load, hostile requests, requests without the right
// key) and check that no request is lost or duplicated in the results and that no concurrency
// limit is exceeded.
//
// Every scenario is one function taking its size as parameters: internal/tools/cmd/volleychaos (`make chaos`)
// runs them at full size and writes docs/reliability.md; the package's tests run the same
// functions at reduced size, so `make test` guards them.
package chaos

import (
	"context"
	"fmt"
	"strings"
)

// Scenario is one suite of the reliability run.
type Scenario struct {
	Name  string
	Title string
	// Run runs the scenario at full size, or reduced when full is false.
	Run func(ctx context.Context, h *Harness, full bool) *Result
}

// Scenarios lists every scenario in the order `make chaos` runs them.
func Scenarios() []Scenario {
	return []Scenario{
		{"replica-chaos", "Replica chaos", func(ctx context.Context, h *Harness, full bool) *Result {
			return RunReplicaChaos(ctx, h, pick(full, ReplicaChaosFull, ReplicaChaosReduced))
		}},
		{"db-stall", "Database stalls", func(ctx context.Context, h *Harness, full bool) *Result {
			return RunStall(ctx, h, pick(full, StallFull, StallReduced))
		}},
		{"rolling-restart", "Rolling restart", func(ctx context.Context, h *Harness, full bool) *Result {
			return RunRolling(ctx, h, pick(full, RollingFull, RollingReduced))
		}},
		{"load", "Load", func(ctx context.Context, h *Harness, full bool) *Result {
			return RunLoad(ctx, h, pick(full, LoadFull, LoadReduced))
		}},
		{"hostile-input", "Hostile input", func(ctx context.Context, h *Harness, full bool) *Result {
			return RunHostile(ctx, h, pick(full, HostileFull, HostileReduced))
		}},
		{"slow-clients", "Slow clients", func(ctx context.Context, h *Harness, full bool) *Result {
			return RunSlow(ctx, h, pick(full, SlowFull, SlowReduced))
		}},
		{"auth-sweep", "Auth sweep", func(ctx context.Context, h *Harness, _ bool) *Result {
			return RunAuthSweep(ctx, h)
		}},
		{"api-fuzz", "API fuzz", func(ctx context.Context, h *Harness, full bool) *Result {
			return RunAPIFuzz(ctx, h, pick(full, APIFuzzFull, APIFuzzReduced))
		}},
	}
}

func pick[P any](full bool, fullSize, reduced func() P) P {
	if full {
		return fullSize()
	}
	return reduced()
}

// Select returns the scenarios named in names (all when names is empty).
func Select(names []string) ([]Scenario, error) {
	all := Scenarios()
	if len(names) == 0 {
		return all, nil
	}
	var out []Scenario
	for _, n := range names {
		found := false
		for _, s := range all {
			if s.Name == n {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(ScenarioNames(), ", "))
		}
	}
	return out, nil
}

// ScenarioNames are the scenarios' names.
func ScenarioNames() []string {
	var out []string
	for _, s := range Scenarios() {
		out = append(out, s.Name)
	}
	return out
}
