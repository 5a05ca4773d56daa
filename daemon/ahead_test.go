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
	owed := map[string]float64{} // the part of a return each step carries to the next
	for end := now.Add(d); now.Before(end); {
		now = now.Add(step)
		returned := map[string]int{}
		for m, r := range rates {
			owed[m] += r * step.Seconds()
			returned[m] = int(owed[m])
			owed[m] -= float64(returned[m])
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
	// A replacement takes 5 + 5 + 2×10 = 30 ms, and two are held.
	now, got := steady(a, time.Unix(1000, 0), 5*time.Second, 10*time.Millisecond, map[string]float64{
		"fast": 10000, // 600 return during two replacements
		"mid":  100,   // 6
		"slow": 5,     // 0.3: none, its running requests are its calls
	})
	require.InDelta(t, 600, got["fast"], 6)
	require.InDelta(t, 6, got["mid"], 0)
	require.NotContains(t, got, "slow")
	require.InDelta(t, 5, a.rates["slow"], 2, "slow's calls do return, less often than once a replacement")

	// A model whose calls stop returning soon needs none ahead, and is forgotten.
	_, got = steady(a, now, 5*time.Second, 10*time.Millisecond, map[string]float64{"mid": 100})
	require.NotContains(t, got, "fast")
	require.Equal(t, int32(6), got["mid"])
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

func TestAheadAveragesClaimsAndWrites(t *testing.T) {
	a := newAheadPlan(1000, 0)
	a.claimed(10 * time.Millisecond)
	for range 40 {
		a.claimed(20 * time.Millisecond)
		a.wrote(10 * time.Millisecond)
	}
	require.InDelta(t, float64(20*time.Millisecond), float64(a.claim), float64(100*time.Microsecond), "the average follows the durations")
	require.Equal(t, 10*time.Millisecond, a.write)
	// A replacement now takes 10 + 2×20 = 50 ms: 1,000 returns a second is 100 ahead.
	_, got := steady(a, time.Unix(1000, 0), 5*time.Second, 10*time.Millisecond, map[string]float64{"m": 1000})
	require.InDelta(t, 100, got["m"], 2)
}

func TestAheadKeepsReturnsOfAPlanWithNoTimePassed(t *testing.T) {
	a := newAheadPlan(1000, 0)
	a.claimed(10 * time.Millisecond)
	now, _ := steady(a, time.Unix(1000, 0), 3*time.Second, 10*time.Millisecond, map[string]float64{"m": 1000})
	before := a.rates["m"]
	models, _ := a.plan(now, map[string]int{"m": 10})
	require.Equal(t, []string{"m"}, models, "the rates stand")
	require.Equal(t, before, a.rates["m"])
	a.plan(now.Add(10*time.Millisecond), map[string]int{"m": 10})
	require.Greater(t, a.rates["m"], before, "the held returns count at the next plan: 20 in 10 ms")
}
