package daemon

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// steady feeds the plan returns of each model at the given rates per second for d, in plans
// every step, and gives the last plan.
func steady(a *aheadPlan, now time.Time, d, step time.Duration, rates map[string]float64) (time.Time, map[string]int32) {
	got := map[string]int32{}
	for end := now.Add(d); now.Before(end); {
		now = now.Add(step)
		returned := map[string]int{}
		for m, r := range rates {
			returned[m] = int(r * step.Seconds())
		}
		models, ahead := a.plan(now, returned)
		clear(got)
		for i, m := range models {
			got[m] = ahead[i]
		}
	}
	return now, got
}

func TestAheadFollowsWhatReturnsDuringAReplacement(t *testing.T) {
	a := newAheadPlan(1000, 5*time.Millisecond)
	a.claimed(10 * time.Millisecond)
	a.wrote(5 * time.Millisecond)
	// A replacement takes 5 + 5 + 2×10 = 30 ms.
	now, got := steady(a, time.Unix(1000, 0), 5*time.Second, 10*time.Millisecond, map[string]float64{
		"fast": 10000, // 300 return during a replacement
		"mid":  100,   // 3
		"slow": 5,     // 0.15: none, its running requests are its calls
	})
	require.InDelta(t, 300, got["fast"], 3)
	require.InDelta(t, 3, got["mid"], 0)
	require.NotContains(t, got, "slow")

	// A model whose calls stop returning soon needs none ahead, and is forgotten.
	_, got = steady(a, now, 5*time.Second, 10*time.Millisecond, map[string]float64{"mid": 100})
	require.NotContains(t, got, "fast")
	require.Equal(t, int32(3), got["mid"])
	require.NotContains(t, a.rates, "fast")
}

func TestAheadIsCappedAndCanBeOff(t *testing.T) {
	capped := newAheadPlan(50, 5*time.Millisecond)
	capped.claimed(10 * time.Millisecond)
	_, got := steady(capped, time.Unix(1000, 0), 3*time.Second, 10*time.Millisecond, map[string]float64{"fast": 10000})
	require.Equal(t, int32(50), got["fast"])

	off := newAheadPlan(0, 5*time.Millisecond)
	off.claimed(10 * time.Millisecond)
	_, got = steady(off, time.Unix(1000, 0), 3*time.Second, 10*time.Millisecond, map[string]float64{"fast": 10000})
	require.Empty(t, got)
}

func TestAheadStartsAfreshAfterAQuiet(t *testing.T) {
	a := newAheadPlan(1000, 0)
	a.claimed(10 * time.Millisecond)
	now, got := steady(a, time.Unix(1000, 0), 3*time.Second, 10*time.Millisecond, map[string]float64{"fast": 10000})
	require.NotEmpty(t, got)
	// No plan for a minute: the old rate says nothing of now.
	models, _ := a.plan(now.Add(time.Minute), map[string]int{"fast": 5})
	require.Empty(t, models)
}

func TestGateCountsTheCallsThatReturned(t *testing.T) {
	g := newGate()
	g.setAllowance("a", 3)
	g.setAllowance("b", 3)
	for range 3 {
		require.NoError(t, g.acquire(t.Context(), "a"))
	}
	require.NoError(t, g.acquire(t.Context(), "b"))
	require.Empty(t, g.returns(), "nothing has returned")
	g.release("a")
	g.release("a")
	g.release("b")
	require.Equal(t, map[string]int{"a": 2, "b": 1}, g.returns())
	require.Empty(t, g.returns(), "each return is counted once")
	g.release("a")
	require.Equal(t, map[string]int{"a": 1}, g.returns())
}
