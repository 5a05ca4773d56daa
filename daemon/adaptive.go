package daemon

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/upstream"
)

// adapter moves the effective limit of the models whose limit adapts to their upstream (a route
// with Adaptive set), between its Min and its Max, which is the limit its claims start from. The
// limit lives in model_limits, shared by every replica; each replica
// keeps the value and the epoch its latest claim read, and:
//   - cuts the limit (to Decrease of itself, at least Min) when a call signals overload: 429, 503
//     or 529, a timeout, no connection, or an answer slower than LatencyTarget. The cut names the
//     epoch the call started under and applies only if no cut came since, so an overload episode
//     costs one cut however many calls of it fail, on however many replicas.
//   - raises the limit (by Increase, at most Max) after as many healthy answers as the limit, each
//     answered while every call this replica may make of the model was in use.
//
// A cut lowers this replica's call allowance at once; the other replicas, and any raise, take
// effect with their next claims, which read the limit under the model's claim lock.
type adapter struct {
	q      *dbsqlc.Queries
	gate   *gate
	onSet  func(model string, limit int)
	mu     sync.Mutex
	models map[string]*adaptState
}

type adaptState struct {
	limit   int
	epoch   int64
	healthy int  // healthy answers at full use since the limit last moved
	busy    bool // a cut or a raise is being written
}

func newAdapter(q *dbsqlc.Queries, g *gate, onSet func(string, int)) *adapter {
	return &adapter{q: q, gate: g, onSet: onSet, models: make(map[string]*adaptState)}
}

func (a *adapter) state(model string, ceiling int) *adaptState {
	s := a.models[model]
	if s == nil {
		s = &adaptState{limit: ceiling}
		a.models[model] = s
	}
	return s
}

// learn records the limit a claim read for model.
func (a *adapter) learn(model string, l db.ModelLimit) {
	a.mu.Lock()
	s := a.state(model, l.Effective)
	moved := s.limit != l.Effective || s.epoch != l.Epoch
	if l.Epoch >= s.epoch {
		s.limit, s.epoch = l.Effective, l.Epoch
	}
	if moved {
		s.healthy = 0
	}
	limit := s.limit
	a.mu.Unlock()
	a.onSet(model, limit)
}

// epoch is the epoch a call of model starting now runs under.
func (a *adapter) epoch(model string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.models[model]; s != nil {
		return s.epoch
	}
	return 0
}

// overloaded reports whether a call's outcome says its upstream is overloaded.
func overloaded(out upstream.Outcome, cfg *upstream.Adaptive) bool {
	switch out.StatusCode {
	case 429, 503, 529:
		return true
	case 0:
		return out.ErrCode == upstream.ErrCodeTimeout || out.ErrCode == upstream.ErrCodeUnreachable
	}
	return out.OK() && cfg.LatencyTarget > 0 && out.Duration > cfg.LatencyTarget
}

// observe adapts model's limit to a finished call that started under epoch; full says whether
// every call this replica may make of the model was in use when it finished.
func (a *adapter) observe(ctx context.Context, route upstream.Route, model string, epoch int64, out upstream.Outcome, full bool) {
	cfg := route.Adaptive
	if cfg == nil {
		return
	}
	// The call's own context may have ended (its batch cancelled): the write still goes, briefly.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), adaptTimeout)
	defer cancel()
	switch {
	case cfg == nil:
	case overloaded(out, cfg):
		a.cut(ctx, route, model, epoch)
	case out.OK() && full:
		a.healthy(ctx, route, model)
	}
}

func (a *adapter) cut(ctx context.Context, route upstream.Route, model string, epoch int64) {
	cfg := route.Adaptive
	a.mu.Lock()
	ceiling := cfg.Max
	s := a.state(model, ceiling)
	if s.busy || s.epoch > epoch {
		a.mu.Unlock()
		return // cut already, for this episode
	}
	s.busy = true
	from := min(s.limit, ceiling)
	a.mu.Unlock()

	var got dbsqlc.ModelLimitCutRow
	var err error
	if epoch == 0 {
		var first dbsqlc.ModelLimitFirstCutRow
		first, err = a.q.ModelLimitFirstCut(ctx, dbsqlc.ModelLimitFirstCutParams{
			Model: model, Effective: int32(max(cfg.Min, int(float64(from)*cfg.Decrease))),
		})
		got = dbsqlc.ModelLimitCutRow(first)
	}
	if epoch > 0 || errors.Is(err, pgx.ErrNoRows) {
		got, err = a.q.ModelLimitCut(ctx, dbsqlc.ModelLimitCutParams{
			Model: model, Epoch: epoch, Decrease: cfg.Decrease, MinLimit: int32(cfg.Min), Ceiling: int32(ceiling),
		})
	}
	a.mu.Lock()
	s.busy = false
	if err != nil { // another cut came first, or the database did not answer: nothing moves here
		a.mu.Unlock()
		return
	}
	delta := s.limit - int(got.Effective)
	s.limit, s.epoch, s.healthy = int(got.Effective), got.Epoch, 0
	limit := s.limit
	a.mu.Unlock()
	if delta > 0 {
		a.gate.lower(model, delta)
	}
	a.onSet(model, limit)
}

func (a *adapter) healthy(ctx context.Context, route upstream.Route, model string) {
	cfg := route.Adaptive
	a.mu.Lock()
	s := a.state(model, cfg.Max)
	s.healthy++
	if s.busy || s.healthy < s.limit || s.limit >= cfg.Max {
		a.mu.Unlock()
		return
	}
	s.busy = true
	epoch := s.epoch
	a.mu.Unlock()

	got, err := a.q.ModelLimitRaise(ctx, dbsqlc.ModelLimitRaiseParams{
		Model: model, Epoch: epoch, Increase: int32(cfg.Increase), MaxLimit: int32(cfg.Max),
	})
	a.mu.Lock()
	s.busy = false
	s.healthy = 0
	if err == nil && got.Epoch >= s.epoch {
		s.limit, s.epoch = int(got.Effective), got.Epoch
	}
	limit := s.limit
	a.mu.Unlock()
	if err == nil {
		a.onSet(model, limit)
	}
}

// adaptTimeout bounds a cut's or a raise's write, so that a slow database does not hold a call.
const adaptTimeout = 5 * time.Second
