package db

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/volleyhq/volley/db/dbsqlc"
)

// Claim is what one claim took: the requests, now running under the claiming replica, and for
// each model whose claim lock it held, how many calls the replica may have in flight (the model's
// limit minus what the other replicas hold). A model absent from Allowance keeps its last one.
type Claim struct {
	Rows      []dbsqlc.RequestClaimRow
	Allowance map[string]int
	// Limits holds, for the same models, the limit the claim ran under: the configured one, or
	// the effective one of a model whose limit adapts, with the epoch of its last cut.
	Limits map[string]ModelLimit
}

// ModelLimit is a model's limit as a claim read it.
type ModelLimit struct {
	Effective int
	Epoch     int64
}

// ClaimRound is one round of a claim inside the caller's transaction: it takes the claim lock of
// every model with pending requests that no other replica is claiming, claims from those models
// and reads the replica's allowance for each. The locks last until the transaction ends, so the
// allowance holds until then. On the way in, p.Locked names the models whose calls wait at the
// replica's gate: they are locked and their allowance read even when nothing of theirs is
// pending, since no other claim would read it again. It is then set to the models locked; none
// means every model with work is being claimed by another replica, or there is none.
func ClaimRound(ctx context.Context, q *dbsqlc.Queries, p dbsqlc.RequestClaimParams) (Claim, error) {
	// The claim's statements run with their generic plans, which do not depend on the arguments
	// (the claim looks rows up by key and bounds every step itself): planning the claim afresh
	// for each call, as PostgreSQL otherwise chooses to, costs more than executing it.
	if err := q.SetGenericPlans(ctx); err != nil {
		return Claim{}, err
	}
	waiting := p.Locked
	if waiting == nil {
		waiting = []string{}
	}
	locked, err := q.RequestClaimLockModels(ctx, waiting)
	if err != nil || len(locked) == 0 {
		return Claim{}, err
	}
	p.Locked = locked
	// The allowance counts only the other replicas' requests, which the claim does not change, so
	// it is read first: the claim's update then holds its row locks for less of the transaction,
	// and the claim takes from it which models another replica holds requests of.
	allow, err := q.RequestClaimAllowance(ctx, dbsqlc.RequestClaimAllowanceParams{
		Limits: p.Limits, Models: p.Models, DefaultLimit: p.DefaultLimit, DaemonID: p.DaemonID, Locked: locked,
	})
	if err != nil {
		return Claim{}, err
	}
	p.Shared = []string{}
	for _, a := range allow {
		if a.Shared {
			p.Shared = append(p.Shared, a.Model)
		}
	}
	rows, err := q.RequestClaim(ctx, p)
	if err != nil {
		return Claim{}, err
	}
	c := Claim{Rows: rows, Allowance: make(map[string]int, len(allow)), Limits: make(map[string]ModelLimit, len(allow))}
	for _, a := range allow {
		c.Allowance[a.Model] = int(a.Allowance)
		c.Limits[a.Model] = ModelLimit{Effective: int(a.EffectiveLimit), Epoch: a.Epoch}
	}
	return c, nil
}

// ClaimRequests claims up to p.MaxClaim requests in rounds, each its own transaction. A round may
// take fewer than the free slots allow when an owner has fewer ready than its share; the next one
// sees those running and hands the rest to the others, so the rounds together hand out slots as
// one unbounded water-filling would. Rounds go on while one took less of some model than it meant
// to, and stop once a round took all it meant to (the free slots are used up: chasing the slots
// results free meanwhile is the next claim's work), took nothing, or the claim is complete. Each
// round touching the queue counters in one statement keeps claims and result writes from
// deadlocking.
func ClaimRequests(ctx context.Context, pool *pgxpool.Pool, p dbsqlc.RequestClaimParams) (Claim, error) {
	want := p.MaxClaim
	all := Claim{Allowance: map[string]int{}, Limits: map[string]ModelLimit{}}
	for int32(len(all.Rows)) < want {
		p.MaxClaim = want - int32(len(all.Rows))
		var got Claim
		err := WithTx(ctx, pool, func(_ Tx, q *dbsqlc.Queries) error {
			var err error
			got, err = ClaimRound(ctx, q, p)
			return err
		})
		if err != nil {
			return all, err
		}
		all.Rows = append(all.Rows, got.Rows...)
		for m, a := range got.Allowance {
			all.Allowance[m] = a
		}
		for m, l := range got.Limits {
			all.Limits[m] = l
		}
		if !shortOfWant(got.Rows) {
			break
		}
	}
	return all, nil
}

// shortOfWant reports whether a round took fewer requests of some model than it meant to.
func shortOfWant(rows []dbsqlc.RequestClaimRow) bool {
	took := make(map[string]int32)
	want := make(map[string]int32)
	for _, r := range rows {
		took[r.Model]++
		want[r.Model] = r.ModelWant
	}
	for m, n := range took {
		if n < want[m] {
			return true
		}
	}
	return false
}
