package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/tools/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// seed stores an input file of n requests for model and a batch over it, returning the batch id.
func seed(t *testing.T, pool *pgxpool.Pool, owner, model string, n int) string {
	t.Helper()
	ctx := context.Background()
	fileID := fmt.Sprintf("file-%s-%d", owner, time.Now().UnixNano())
	for i := 1; i <= n; i++ {
		body := fmt.Sprintf(`{"model":%q}`, model)
		data := fmt.Sprintf(`{"custom_id":"c%d","method":"POST","url":"/v1/chat/completions","body":%s}`+"\n", i, body)
		_, err := pool.Exec(ctx, `INSERT INTO file_lines (file_id, line, custom_id, url, model, body_start, body_end, data)
			VALUES ($1, $2, $3, '/v1/chat/completions', $4, $5, $6, $7)`,
			fileID, i, fmt.Sprint("c", i), model, len(data)-len(body)-2, len(data)-2, []byte(data))
		require.NoError(t, err)
	}
	q := dbsqlc.New(pool)
	batchID := "batch_" + fileID
	deadline := time.Now().Add(time.Hour)
	total, err := q.RequestsCreateFromFile(ctx, dbsqlc.RequestsCreateFromFileParams{BatchID: batchID, Owner: owner, FileID: fileID, Deadline: deadline})
	require.NoError(t, err)
	_, err = q.BatchInsert(ctx, dbsqlc.BatchInsertParams{ID: batchID, Owner: owner, InputFileID: fileID, Endpoint: "/v1/chat/completions",
		CompletionWindow: "1h", CreatedAt: time.Now(), ExpiresAt: deadline, Total: int32(total)})
	require.NoError(t, err)
	return batchID
}

// claim runs one claim round, claiming nothing ahead of the limit.
func claim(t *testing.T, pool *pgxpool.Pool, daemonID int64, limit, max int) []dbsqlc.RequestClaimRow {
	t.Helper()
	return claimRound(t, pool, dbsqlc.RequestClaimParams{
		DaemonID: daemonID, DefaultLimit: int32(limit), MaxClaim: int32(max), FreshSeconds: 60,
	}).Rows
}

// claimRound runs one claim round with p, in a transaction of its own.
func claimRound(t *testing.T, pool *pgxpool.Pool, p dbsqlc.RequestClaimParams) db.Claim {
	t.Helper()
	var c db.Claim
	require.NoError(t, db.WithTx(t.Context(), pool, func(_ db.Tx, q *dbsqlc.Queries) error {
		var err error
		c, err = db.ClaimRound(t.Context(), q, p)
		return err
	}))
	return c
}

func register(t *testing.T, q *dbsqlc.Queries) int64 {
	t.Helper()
	id, err := q.DaemonRegister(context.Background(), dbsqlc.DaemonRegisterParams{Host: "test", Pid: 1})
	require.NoError(t, err)
	return id
}

// record writes a completed result of row, with two tokens.
func record(t *testing.T, q *dbsqlc.Queries, daemonID int64, row dbsqlc.RequestClaimRow, attempt int32) []dbsqlc.RequestsRecordRow {
	t.Helper()
	return recordRetry(t, q, daemonID, row, attempt, false)
}

// recordRetry writes a completed result of row, or with retry a failure to be tried again now.
func recordRetry(t *testing.T, q *dbsqlc.Queries, daemonID int64, row dbsqlc.RequestClaimRow, attempt int32, retry bool) []dbsqlc.RequestsRecordRow {
	t.Helper()
	p := dbsqlc.RequestsRecordParams{
		DaemonID: daemonID, Ids: []int64{row.ID}, Attempts: []int32{attempt}, States: []string{"completed"},
		Results: [][]byte{[]byte("{}\n")}, Failures: []int32{0}, NotBefore: []time.Time{time.Unix(0, 0)},
		InputTokens: []int64{1}, CachedTokens: []int64{0}, OutputTokens: []int64{1}, ReasoningTokens: []int64{0}, TotalTokens: []int64{2},
		ServedUpstream: []string{"u"}, ServedModel: []string{row.Model}, ServedFallback: []bool{false},
	}
	if retry {
		p.States, p.Results, p.Failures, p.NotBefore = []string{"pending"}, [][]byte{nil}, []int32{1}, []time.Time{time.Now()}
		p.InputTokens, p.OutputTokens, p.TotalTokens = []int64{0}, []int64{0}, []int64{0}
		p.ServedUpstream, p.ServedModel = []string{""}, []string{""}
	}
	rows, err := q.RequestsRecord(context.Background(), p)
	require.NoError(t, err)
	return rows
}

func batchCounts(t *testing.T, q *dbsqlc.Queries, id, owner string) (completed, failed int32, totalTokens int64) {
	t.Helper()
	b, err := q.BatchGet(context.Background(), dbsqlc.BatchGetParams{ID: id, Owner: owner})
	require.NoError(t, err)
	return b.Completed, b.Failed, b.TotalTokens
}

func TestClaimReturnsTheVerbatimBody(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	seed(t, pool, "alice", "m", 1)
	rows := claim(t, pool, register(t, dbsqlc.New(pool)), 10, 10)
	require.Len(t, rows, 1)
	require.Equal(t, `{"model":"m"}`, string(rows[0].Body))
	require.Equal(t, int32(1), rows[0].Attempt)
}

func TestLineIDMatchesTheDatabaseRendering(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	var fromDB string
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT 'batch_req_' || md5('batch_x' || ':' || 12)").Scan(&fromDB))
	require.Equal(t, fromDB, lineID("batch_x", 12))
}

func TestResultWritesAreFenced(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	batchID := seed(t, pool, "alice", "m", 1)
	first := register(t, q)
	row := claim(t, pool, first, 10, 10)[0]

	require.Empty(t, record(t, q, first, row, row.Attempt+1), "a write for another attempt is refused")
	second := register(t, q)
	require.Empty(t, record(t, q, second, row, row.Attempt), "a write from another daemon is refused")

	// The first daemon is declared dead; its request goes back to the queue and is claimed again.
	require.NoError(t, q.DaemonStop(t.Context(), first))
	n, err := q.DaemonsRescue(t.Context(), 3600)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	again := claim(t, pool, second, 10, 10)
	require.Len(t, again, 1)
	require.Equal(t, row.Attempt+1, again[0].Attempt)

	require.Empty(t, record(t, q, first, row, row.Attempt), "the dead daemon's late answer is refused")
	got := record(t, q, second, again[0], again[0].Attempt)
	require.Equal(t, []dbsqlc.RequestsRecordRow{{ID: batchID, Settled: true}}, got)
	require.Empty(t, record(t, q, second, again[0], again[0].Attempt), "a duplicate write cannot bring a finished request back")

	completed, failed, tokens := batchCounts(t, q, batchID, "alice")
	require.Equal(t, int32(1), completed)
	require.Zero(t, failed)
	require.Equal(t, int64(2), tokens, "counted once")
}

func TestClaimsHoldTheLimitAcrossDaemons(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	seed(t, pool, "alice", "m", 20)
	a, b := register(t, q), register(t, q)
	require.Len(t, claim(t, pool, a, 3, 100), 3)
	require.Empty(t, claim(t, pool, b, 3, 100), "the model's limit is global")
	require.Empty(t, claim(t, pool, a, 3, 100))
}

func TestClaimSharesSlotsBetweenOwners(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	seed(t, pool, "big", "m", 50)
	seed(t, pool, "small", "m", 5)
	rows := claim(t, pool, register(t, q), 6, 100)
	require.Len(t, rows, 6)
	per := map[string]int{}
	for _, r := range rows {
		per[r.Owner]++
	}
	require.Equal(t, map[string]int{"big": 3, "small": 3}, per)
}

// Slots go to the owners with the fewest requests running, counting what every replica runs:
// an owner running none comes first, then owners level with each other share what is left.
func TestClaimFillsUpFromTheOwnersRunningFewest(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	other, me := register(t, q), register(t, q)
	seed(t, pool, "a", "m", 10)
	require.Len(t, claim(t, pool, other, 2, 100), 2, "a runs 2")
	seed(t, pool, "c", "m", 10)
	require.Len(t, claim(t, pool, other, 3, 100), 1, "c runs 1")
	seed(t, pool, "b", "m", 10)

	per := map[string]int{}
	for _, r := range claim(t, pool, me, 6, 100) {
		per[r.Owner]++
	}
	// b goes from 0 to 1, then b and c from 1 to 2, level with a.
	require.Equal(t, map[string]int{"b": 2, "c": 1}, per)
	require.Empty(t, claim(t, pool, me, 6, 100), "the limit is reached")
}

// Regression: a replica declared dead could still claim under its old id until its next heartbeat,
// so the next rescue handed its in-flight requests to another replica: twice the model's limit.
func TestOnlyAReplicaWithAFreshLeaseClaims(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	seed(t, pool, "alice", "m", 20)
	stale, dead, live := register(t, q), register(t, q), register(t, q)
	_, err := pool.Exec(t.Context(), "UPDATE daemons SET heartbeat_at = now() - interval '2 minutes' WHERE id = $1", stale)
	require.NoError(t, err)
	require.NoError(t, q.DaemonStop(t.Context(), dead))
	require.Empty(t, claim(t, pool, stale, 4, 100), "a replica whose heartbeat is stale claims nothing")
	require.Empty(t, claim(t, pool, dead, 4, 100), "a replica declared dead claims nothing")
	require.Len(t, claim(t, pool, live, 4, 100), 4)
}

// Within one owner and model, the earliest deadline is claimed first.
func TestClaimTakesTheEarliestDeadlineFirst(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := t.Context()
	late := seed(t, pool, "alice", "m", 3)
	soon := seed(t, pool, "alice", "m", 3)
	_, err := pool.Exec(ctx, "UPDATE requests SET deadline = now() + interval '10 minutes' WHERE batch_id = $1", soon)
	require.NoError(t, err)
	daemonID := register(t, dbsqlc.New(pool))
	rows := claim(t, pool, daemonID, 3, 10)
	require.Len(t, rows, 3)
	for _, r := range rows {
		require.Equal(t, soon, *r.BatchID, "the batch due sooner goes first, though it was created later")
	}
	rows = claim(t, pool, daemonID, 6, 10)
	require.Len(t, rows, 3)
	for _, r := range rows {
		require.Equal(t, late, *r.BatchID)
	}
}

// A claim round gives no owner more than its even share of the free slots; an owner with fewer
// pending than that leaves slots over, which the next round of the same claim hands to the others.
func TestClaimRoundsFillTheSlotsAnOwnerLeaves(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	seed(t, pool, "big", "m", 50)
	seed(t, pool, "small", "m", 1)
	daemonID := register(t, q)
	require.Len(t, claim(t, pool, daemonID, 6, 100), 4, "one round: 3 for big, the 1 small has")
	_, err := pool.Exec(t.Context(), "UPDATE requests SET state = 'pending', daemon_id = NULL WHERE state = 'running'")
	require.NoError(t, err)

	p := dbsqlc.RequestClaimParams{DaemonID: daemonID, DefaultLimit: 6, MaxClaim: 100, FreshSeconds: 60}
	c, err := db.ClaimRequests(t.Context(), pool, p)
	require.NoError(t, err)
	rows := c.Rows
	per := map[string]int{}
	for _, r := range rows {
		per[r.Owner]++
	}
	require.Equal(t, map[string]int{"big": 5, "small": 1}, per)
	require.Empty(t, claim(t, pool, daemonID, 6, 100), "the limit is reached")
}

// A claim cut short by its size shares it between models: the model whose requests are due
// sooner does not take it all.
func TestClaimSharesItsSizeBetweenModels(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := t.Context()
	for _, owner := range []string{"a1", "a2", "a3", "a4", "a5", "a6"} {
		seed(t, pool, owner, "a", 2)
	}
	seed(t, pool, "bob", "b", 10)
	// Model a's six owners each have a request at the lowest level, due before any of b's.
	_, err := pool.Exec(ctx, "UPDATE requests SET deadline = now() + interval '10 minutes' WHERE model = 'a'")
	require.NoError(t, err)
	rows := claim(t, pool, register(t, dbsqlc.New(pool)), 10, 6)
	per := map[string]int{}
	for _, r := range rows {
		per[r.Model]++
	}
	require.Equal(t, map[string]int{"a": 3, "b": 3}, per)
}

// A cancel asked while a call runs holds even when the abort never reaches the call: whatever the
// call returns, the request ends as request_cancelled, counted as failed, with no tokens.
func TestACancelAskedWhileRunningHoldsWhateverTheCallReturns(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	batchID := seed(t, pool, "alice", "m", 3)
	daemonID := register(t, q)
	rows := claim(t, pool, daemonID, 10, 10)
	require.Len(t, rows, 3)
	marked, err := q.RequestsMarkCancelRunning(t.Context(), dbsqlc.RequestsMarkCancelRunningParams{BatchID: batchID, CustomIds: []string{"c1", "c2"}})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"c1", "c2"}, marked)

	byCustomID := map[string]dbsqlc.RequestClaimRow{}
	for _, r := range rows {
		byCustomID[*r.CustomID] = r
	}
	// c1 completes, c2 comes back for a retry, c3 (not marked) completes.
	record(t, q, daemonID, byCustomID["c1"], byCustomID["c1"].Attempt)
	recordRetry(t, q, daemonID, byCustomID["c2"], byCustomID["c2"].Attempt, true)
	got := record(t, q, daemonID, byCustomID["c3"], byCustomID["c3"].Attempt)
	require.Equal(t, []dbsqlc.RequestsRecordRow{{ID: batchID, Settled: true}}, got)

	type line struct {
		CustomID string    `json:"custom_id"`
		Response *struct{} `json:"response"`
		Error    *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	for _, id := range []string{"c1", "c2"} {
		var state string
		var result []byte
		var served *string
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT state, result, served_upstream FROM requests WHERE batch_id = $1 AND custom_id = $2",
			batchID, id).Scan(&state, &result, &served))
		require.Equal(t, "cancelled", state, id)
		require.Nil(t, served, "%s: no answer is delivered, so none is said to be served", id)
		var l line
		require.NoError(t, json.Unmarshal(result, &l), id)
		require.Equal(t, id, l.CustomID)
		require.Nil(t, l.Response)
		require.NotNil(t, l.Error, id)
		require.Equal(t, "request_cancelled", l.Error.Code)
		require.True(t, bytes.HasSuffix(result, []byte("\n")))
	}
	completed, failed, tokens := batchCounts(t, q, batchID, "alice")
	require.Equal(t, int32(1), completed)
	require.Equal(t, int32(2), failed)
	require.Equal(t, int64(2), tokens, "only c3's tokens count")
}

// Calls waiting at a replica's gate get a fresh allowance from the next claim even once their
// model has nothing pending: the claim locks the models it is told of and reads their allowance.
func TestAClaimReadsTheAllowanceOfModelsWithWaitingCalls(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	seed(t, pool, "alice", "m", 3)
	other, me := register(t, q), register(t, q)
	rows := claim(t, pool, other, 3, 10)
	require.Len(t, rows, 3)

	round := func(waiting []string) db.Claim {
		c := claimRound(t, pool, dbsqlc.RequestClaimParams{DaemonID: me, DefaultLimit: 3, MaxClaim: 10, FreshSeconds: 60, Locked: waiting})
		require.Empty(t, c.Rows, "nothing is pending")
		return c
	}
	require.NotContains(t, round(nil).Allowance, "m", "without waiting calls a model with nothing pending is not read")
	require.Equal(t, map[string]int{"m": 0}, round([]string{"m"}).Allowance, "the other replica holds the whole limit")
	for _, r := range rows {
		record(t, q, other, r, r.Attempt)
	}
	require.Equal(t, map[string]int{"m": 3}, round([]string{"m"}).Allowance, "its calls have ended")
}

func TestGateListsTheModelsWithWaitingCalls(t *testing.T) {
	t.Parallel()
	g := newGate()
	g.setAllowance("m", 0)
	require.Empty(t, g.waiting())
	acquired := make(chan error, 1)
	go func() { acquired <- g.acquire(t.Context(), "m") }()
	require.Eventually(t, func() bool { return len(g.waiting()) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []string{"m"}, g.waiting())
	g.setAllowance("m", 1)
	require.NoError(t, <-acquired)
	require.Empty(t, g.waiting())
}

// A claim takes past a model's limit what it is told to for that model, never more than the limit
// again, and nothing past it once another replica holds requests of the model.
func TestAClaimTakesAheadPerModel(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := dbsqlc.New(pool)
	seed(t, pool, "alice", "fast", 30)
	seed(t, pool, "alice", "slow", 30)
	seed(t, pool, "alice", "greedy", 30)
	me, other := register(t, q), register(t, q)
	round := func(daemonID int64, models []string, ahead []int32) map[string]int {
		c := claimRound(t, pool, dbsqlc.RequestClaimParams{
			DaemonID: daemonID, DefaultLimit: 4, MaxClaim: 100, FreshSeconds: 60, AheadModels: models, Ahead: ahead})
		per := map[string]int{}
		for _, r := range c.Rows {
			per[r.Model]++
		}
		return per
	}
	require.Equal(t, map[string]int{"fast": 4 + 3, "slow": 4, "greedy": 4 + 4}, round(me, []string{"fast", "greedy"}, []int32{3, 50}),
		"fast takes its 3 ahead, slow none, greedy at most its limit again")
	require.Empty(t, round(me, []string{"fast", "greedy"}, []int32{3, 50}), "what is held ahead counts against the limit")

	// Another replica holding requests of a model turns ahead off for it, for everyone.
	for _, m := range []string{"fast", "slow", "greedy"} {
		_, err := pool.Exec(t.Context(), "UPDATE requests SET state = 'pending', daemon_id = NULL WHERE model = $1 AND state = 'running'", m)
		require.NoError(t, err)
	}
	require.Equal(t, map[string]int{"fast": 4, "slow": 4, "greedy": 4}, round(other, nil, nil))
	_, err := pool.Exec(t.Context(), "UPDATE requests SET state = 'pending', daemon_id = NULL WHERE model = 'fast' AND state = 'running' AND id IN (SELECT id FROM requests WHERE model = 'fast' AND state = 'running' LIMIT 2)")
	require.NoError(t, err)
	require.Equal(t, map[string]int{"fast": 2}, round(me, []string{"fast"}, []int32{3}), "the other replica holds 2 of fast's 4: only the limit is taken")
}
