package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/tools/testdb"
	"github.com/volleyhq/volley/internal/upstream"
)

// One overload episode costs one cut: every call that started under the epoch of the last cut
// reports overload, on either of two replicas, and the limit is cut once; a call started after
// the cut cuts again. Healthy answers at full use raise it by one step per limit's worth.
func TestAdaptiveLimitCutsOncePerEpisode(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	ctx := context.Background()
	route := upstream.Route{Model: "m", Concurrency: 100, Adaptive: &upstream.Adaptive{Min: 5, Max: 100, Decrease: 0.5, Increase: 2}}
	var set []int
	a := newAdapter(q, newGate(), func(_ string, n int) { set = append(set, n) })
	b := newAdapter(q, newGate(), func(string, int) {})
	limit := func() (int, int64) {
		rows, err := q.ModelLimitsList(ctx)
		require.NoError(t, err)
		require.Len(t, rows, 1)
		return int(rows[0].Effective), rows[0].Epoch
	}
	refused := upstream.Outcome{StatusCode: 429}

	for range 3 {
		a.observe(ctx, route, "m", 0, refused, true)
		b.observe(ctx, route, "m", 0, refused, true)
	}
	n, epoch := limit()
	require.Equal(t, 50, n, "cut once, to half of the ceiling")
	require.EqualValues(t, 1, epoch)
	require.Equal(t, []int{50}, set, "the replica that cut knows at once")

	b.learn("m", db.ModelLimit{Effective: 50, Epoch: 1}) // its next claim
	b.observe(ctx, route, "m", b.epoch("m"), upstream.Outcome{StatusCode: 0, ErrCode: upstream.ErrCodeTimeout}, false)
	n, epoch = limit()
	require.Equal(t, 25, n, "a call started after the cut cuts again")
	require.EqualValues(t, 2, epoch)

	started := b.epoch("m")
	for range 20 {
		b.observe(ctx, route, "m", started, upstream.Outcome{StatusCode: 503}, true)
	}
	n, _ = limit()
	require.Equal(t, 12, n, "twenty calls started under one limit: one cut")
	b.learn("m", db.ModelLimit{Effective: 12, Epoch: 3})
	b.observe(ctx, route, "m", 3, upstream.Outcome{StatusCode: 500}, true)
	b.observe(ctx, route, "m", 3, upstream.Outcome{StatusCode: 400}, true)
	n, _ = limit()
	require.Equal(t, 12, n, "other failures are not overload")

	healthy := upstream.Outcome{StatusCode: 200, Duration: time.Millisecond}
	for range 11 {
		b.observe(ctx, route, "m", 3, healthy, true)
	}
	b.observe(ctx, route, "m", 3, healthy, false)
	n, _ = limit()
	require.Equal(t, 12, n, "eleven at full use, and one with a slot free, are not yet a limit's worth")
	b.observe(ctx, route, "m", 3, healthy, true)
	n, _ = limit()
	require.Equal(t, 14, n, "a limit's worth of healthy answers at full use raises it one step")

	slow := *route.Adaptive
	slow.LatencyTarget = 10 * time.Millisecond
	slowRoute := route
	slowRoute.Adaptive = &slow
	b.learn("m", db.ModelLimit{Effective: 14, Epoch: 3})
	b.observe(ctx, slowRoute, "m", 3, upstream.Outcome{StatusCode: 200, Duration: 50 * time.Millisecond}, true)
	n, _ = limit()
	require.Equal(t, 7, n, "an answer slower than the latency target is overload")

	for range 10 {
		b.learn("m", func() db.ModelLimit { n, e := limit(); return db.ModelLimit{Effective: n, Epoch: e} }())
		b.observe(ctx, route, "m", b.epoch("m"), refused, true)
	}
	n, _ = limit()
	require.Equal(t, 5, n, "never below the min")

	// The history holds every move, in order, with its cause; a cut that did not lower the limit
	// (at the min already) is a move to the same value.
	history, err := q.ModelLimitChanges(ctx, dbsqlc.ModelLimitChangesParams{Model: "m", Since: time.Unix(0, 0)})
	require.NoError(t, err)
	var moves []string
	for i, c := range history {
		moves = append(moves, fmt.Sprintf("%s %d", c.Cause, c.Effective))
		if i > 0 {
			require.False(t, c.At.Before(history[i-1].At))
		}
	}
	require.Equal(t, []string{"cut 50", "cut 25", "cut 12", "raise 14", "cut 7", "cut 5", "cut 5", "cut 5", "cut 5", "cut 5", "cut 5", "cut 5", "cut 5", "cut 5", "cut 5"}, moves)
	since := history[3].At
	tail, err := q.ModelLimitChanges(ctx, dbsqlc.ModelLimitChangesParams{Model: "m", Since: since})
	require.NoError(t, err)
	require.Equal(t, history[3:], tail, "from @since: the move in force then, and every later one")

	// Retention keeps each model's latest move however old.
	_, err = pool.Exec(ctx, "UPDATE model_limit_changes SET at = at - interval '2 days'")
	require.NoError(t, err)
	pruned, err := q.ModelLimitChangesPrune(ctx, limitChangesRetention.Seconds())
	require.NoError(t, err)
	require.EqualValues(t, len(history)-1, pruned)
	left, err := q.ModelLimitChanges(ctx, dbsqlc.ModelLimitChangesParams{Model: "m", Since: time.Now()})
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.EqualValues(t, 5, left[0].Effective)
}
