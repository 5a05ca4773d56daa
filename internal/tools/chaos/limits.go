package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// CheckEffectiveLimit names the check of each adaptive model's calls against the limit in force.
const CheckEffectiveLimit = "upstream concurrency of each adaptive model within its effective limit at every call's start"

// limitLag is how long after a move of an effective limit a call may still start under the limit
// before it: a claim reads the limit under the model's lock and its calls start once it has
// committed, so calls of a claim made just before a cut start just after it. It is generous, for
// replicas on a loaded machine; the check reports how many starts needed it.
const limitLag = time.Second

// Start is one call's start as mockllm records it (-record-starts).
type Start struct {
	At       int64 `json:"at"`
	InFlight int64 `json:"in_flight"`
}

// Starts reads GET /stats/starts: each model's starts, in the order the mock counted them.
func (m *Mock) Starts(ctx context.Context) (map[string][]Start, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.Proc.Announced+"/stats/starts", nil)
	if err != nil {
		return nil, 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	var s struct {
		Models  map[string][]Start `json:"models"`
		Dropped int64              `json:"dropped"`
	}
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		return nil, 0, fmt.Errorf("mock starts: %w", err)
	}
	return s.Models, s.Dropped, nil
}

// LimitChange is one move of a model's effective limit, from model_limit_changes.
type LimitChange struct {
	At        time.Time
	Effective int
}

// LimitChanges reads the history of model's effective limit, oldest first.
func (pg *Postgres) LimitChanges(ctx context.Context, model string) ([]LimitChange, error) {
	conn, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT at, effective FROM model_limit_changes WHERE model = $1 ORDER BY at, id", model)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (LimitChange, error) {
		var c LimitChange
		err := r.Scan(&c.At, &c.Effective)
		return c, err
	})
}

// limitAudit is what the check found for one model.
type limitAudit struct {
	starts int // starts checked
	over   int // starts above the highest limit in force over [start - lag, start]
	late   int // starts above the limit in force at that instant, within the lag of a higher one
	worst  string
	moves  int
	lowest int
}

// auditLimits checks each start against the effective limit: the ceiling until the first move,
// then each move's value. A start's in-flight count (itself included) may not exceed the highest
// limit in force at any moment of [start - lag, start].
func auditLimits(starts []Start, changes []LimitChange, ceiling int, lag time.Duration) limitAudit {
	a := limitAudit{starts: len(starts), moves: len(changes), lowest: ceiling}
	for _, c := range changes {
		a.lowest = min(a.lowest, c.Effective)
	}
	// at returns the index of the last change at or before t (-1: none, the ceiling).
	at := func(t int64) int {
		return sort.Search(len(changes), func(i int) bool { return changes[i].At.UnixNano() > t }) - 1
	}
	limitOf := func(i int) int {
		if i < 0 {
			return ceiling
		}
		return min(changes[i].Effective, ceiling)
	}
	for _, s := range starts {
		now := at(s.At)
		allowed := limitOf(now)
		if s.InFlight <= int64(allowed) {
			continue
		}
		// The highest limit in force over the lag before: the one at its beginning and every
		// move within it.
		highest := allowed
		for i := at(s.At - lag.Nanoseconds()); i <= now; i++ {
			highest = max(highest, limitOf(i))
		}
		if s.InFlight <= int64(highest) {
			a.late++
			continue
		}
		a.over++
		if a.worst == "" {
			a.worst = fmt.Sprintf("%d calls at once at %s under a limit of %d (at most %d in the %s before)",
				s.InFlight, time.Unix(0, s.At).UTC().Format("15:04:05.000000"), allowed, highest, lag)
		}
	}
	return a
}

// checkEffectiveLimits checks every adaptive model of models against its limit's history, from
// the mock's record of starts and the database's log of moves.
func checkEffectiveLimits(ctx context.Context, res *Result, e *Env, models []Model) {
	var adaptive []Model
	for _, m := range models {
		if m.Adaptive {
			adaptive = append(adaptive, m)
		}
	}
	if len(adaptive) == 0 {
		return
	}
	starts, dropped, err := e.Mock.Starts(ctx)
	if err != nil {
		res.Check(CheckEffectiveLimit, false, "reading the mock's starts: %v", err)
		return
	}
	ok := dropped == 0
	var parts []string
	if dropped > 0 {
		parts = append(parts, fmt.Sprintf("the mock dropped %d starts past its record's bound", dropped))
	}
	for _, m := range adaptive {
		changes, err := e.PG.LimitChanges(ctx, m.Name)
		if err != nil {
			res.Check(CheckEffectiveLimit, false, "reading %s's limit history: %v", m.Name, err)
			return
		}
		a := auditLimits(starts[m.Name], changes, m.Limit, limitLag)
		ok = ok && a.over == 0 && a.starts > 0
		part := fmt.Sprintf("%s: %d starts against %d moves of its limit (lowest %d, ceiling %d), %d over, %d within %s of a higher limit",
			m.Name, a.starts, a.moves, a.lowest, m.Limit, a.over, a.late, limitLag)
		if a.worst != "" {
			part += "; first over: " + a.worst
		}
		parts = append(parts, part)
	}
	res.Check(CheckEffectiveLimit, ok, "%s", strings.Join(parts, "; "))
}
