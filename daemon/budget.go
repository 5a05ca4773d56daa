package daemon

import "sync/atomic"

// budget bounds the request and answer bytes this replica holds in memory: the bodies of its
// calls in flight, their answers, and rendered results waiting to be written. A claim may take
// only as many requests as fit in what is left, counting each call still waiting for its answer at
// the size recent calls held, so that a slow upstream with large answers cannot make the replica
// hold more than the budget.
type budget struct {
	max      int64        // 0: no budget
	held     atomic.Int64 // bytes held now
	awaiting atomic.Int64 // calls sent and not yet answered
	estimate atomic.Int64 // bytes one call is expected to hold, learnt from finished calls
}

const (
	// budgetFirstEstimate is what a call is expected to hold before any has finished.
	budgetFirstEstimate = 1 << 20
	// budgetLeastEstimate keeps small answers from letting one claim take a huge number.
	budgetLeastEstimate = 4 << 10
)

func newBudget(max int64) *budget {
	b := &budget{max: max}
	b.estimate.Store(budgetFirstEstimate)
	return b
}

// room is how many more requests may be claimed now.
func (b *budget) room() int {
	if b.max <= 0 {
		return int(^uint(0) >> 1)
	}
	est := b.estimate.Load()
	free := b.max - b.held.Load() - b.awaiting.Load()*est
	if free < est {
		return 0
	}
	return int(free / est)
}

// sent accounts for a claimed call's body.
func (b *budget) sent(body int) {
	b.held.Add(int64(body))
	b.awaiting.Add(1)
}

// answered accounts for a call's answer having arrived: held is what the call holds now (body,
// answer and rendered result), which also teaches the estimate.
func (b *budget) answered(body, held int) {
	b.awaiting.Add(-1)
	b.held.Add(int64(held - body))
	// It rises at once to a larger call, so that a run of large answers is never underestimated,
	// and falls as a moving average over about the last eight calls.
	est, h := b.estimate.Load(), int64(held)
	next := h
	if h < est {
		next = max(est+(h-est)/8, budgetLeastEstimate)
	}
	b.estimate.Store(next)
}

// release gives back bytes no longer held.
func (b *budget) release(n int) { b.held.Add(-int64(n)) }
