package daemon

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBudgetRoomCountsCallsAwaitingTheirAnswer(t *testing.T) {
	t.Parallel()
	b := newBudget(8 << 20)
	require.Equal(t, 8, b.room(), "before any call finished, a call is expected to hold 1 MiB")
	for range 3 {
		b.sent(1 << 10)
	}
	require.Equal(t, 4, b.room(), "three calls awaiting their answers and their bodies leave room for four")

	b.answered(1<<10, 2<<20) // a 2 MiB answer: the estimate rises to it at once
	require.Equal(t, int64(2<<20), b.estimate.Load())
	require.Zero(t, b.room(), "8 MiB less 2 MiB held, 2 × 2 MiB expected and 2 KiB of bodies leave less than one call")

	b.release(2 << 20)
	b.answered(1<<10, 1<<10)
	b.answered(1<<10, 1<<10)
	require.Less(t, b.estimate.Load(), int64(2<<20), "small answers lower the estimate")
	require.Greater(t, b.estimate.Load(), int64(1<<20), "but slowly")
	b.release(2 << 10)
	require.Zero(t, b.held.Load())
	require.Zero(t, b.awaiting.Load())
}

func TestBudgetEstimateHasAFloor(t *testing.T) {
	t.Parallel()
	b := newBudget(1 << 20)
	for range 200 {
		b.sent(10)
		b.answered(10, 10)
		b.release(10)
	}
	require.Equal(t, int64(budgetLeastEstimate), b.estimate.Load())
	require.Equal(t, (1<<20)/budgetLeastEstimate, b.room())
}

func TestNoBudgetNeverLimits(t *testing.T) {
	t.Parallel()
	b := newBudget(0)
	b.sent(1 << 30)
	require.Greater(t, b.room(), 1<<30)
}
