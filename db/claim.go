package db

import (
	"context"

	"github.com/volleyhq/volley/db/dbsqlc"
)

// ClaimRequests claims up to p.MaxClaim pending requests for p.DaemonID inside the caller's
// transaction: it takes the lock that serialises claims, then runs RequestClaim until it has
// p.MaxClaim or a round takes nothing. Each round sees the rows the previous ones claimed as
// running, so the rounds together hand out slots as one unbounded water-filling would.
func ClaimRequests(ctx context.Context, q *dbsqlc.Queries, p dbsqlc.RequestClaimParams) ([]dbsqlc.RequestClaimRow, error) {
	if err := q.RequestClaimLock(ctx); err != nil {
		return nil, err
	}
	want := p.MaxClaim
	var rows []dbsqlc.RequestClaimRow
	for int32(len(rows)) < want {
		p.MaxClaim = want - int32(len(rows))
		got, err := q.RequestClaim(ctx, p)
		if err != nil {
			return nil, err
		}
		if len(got) == 0 {
			break
		}
		rows = append(rows, got...)
	}
	return rows, nil
}
