package handlers

import (
	"context"
	"fmt"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
)

const maxCancelIDs = 1000

// CancelBatchRequests ends the named requests of a running batch: pending ones at once, running
// ones by marking them and telling every replica to abort their calls.
func (s *Server) CancelBatchRequests(ctx context.Context, req api.CancelBatchRequestsRequestObject) (api.CancelBatchRequestsResponseObject, error) {
	if req.Body == nil {
		return nil, badRequest("invalid_json", "", "The request body must be a JSON object.")
	}
	// The batch first: another owner's batch is a 404 whatever the body says.
	b, err := s.getBatch(ctx, req.BatchId)
	if err != nil {
		return nil, err
	}
	ids, err := checkCustomIDs(req.Body.CustomIds)
	if err != nil {
		return nil, err
	}
	if b.Status != "in_progress" {
		return nil, badRequest("invalid_state", "", "Cannot cancel requests of a batch with status '%s'; only an in-progress batch's requests can be cancelled.", b.Status)
	}
	outcome := make(map[string]api.RequestCancelOutcomeResult, len(ids))
	err = s.withTx(ctx, func(_ db.Tx, q *dbsqlc.Queries) error {
		cancelled, err := q.RequestsCancelPending(ctx, dbsqlc.RequestsCancelPendingParams{BatchID: b.ID, CustomIds: ids})
		if err != nil {
			return fmt.Errorf("cancel pending requests: %w", err)
		}
		for _, id := range cancelled {
			outcome[id] = api.RequestCancelOutcomeResultCancelled
		}
		running, err := q.RequestsMarkCancelRunning(ctx, dbsqlc.RequestsMarkCancelRunningParams{BatchID: b.ID, CustomIds: ids})
		if err != nil {
			return fmt.Errorf("mark running requests: %w", err)
		}
		for _, id := range running {
			outcome[id] = api.RequestCancelOutcomeResultCancelling
		}
		states, err := q.RequestsStates(ctx, dbsqlc.RequestsStatesParams{BatchID: b.ID, CustomIds: ids})
		if err != nil {
			return fmt.Errorf("read request states: %w", err)
		}
		for _, st := range states {
			if _, done := outcome[st.CustomID]; !done {
				outcome[st.CustomID] = api.RequestCancelOutcomeResult("already_" + st.State)
			}
		}
		if len(running) > 0 || len(cancelled) > 0 {
			// Replicas abort the marked calls, and finalize the batch if nothing of it is left.
			return q.BatchNotifyAbort(ctx, "lines "+b.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := api.CancelBatchRequests200JSONResponse{Object: "list", BatchId: b.ID, Data: make([]api.RequestCancelOutcome, len(ids))}
	n := 0
	for i, id := range ids {
		r, ok := outcome[id]
		if !ok {
			r = api.RequestCancelOutcomeResultNotFound
		}
		if r == api.RequestCancelOutcomeResultCancelled || r == api.RequestCancelOutcomeResultCancelling {
			n++
		}
		out.Data[i] = api.RequestCancelOutcome{CustomId: id, Result: r}
	}
	loggerFrom(ctx).Info("batch requests cancelled", "batch_id", b.ID, "asked", len(ids), "cancelled", n)
	return out, nil
}

// checkCustomIDs validates a list of custom_ids and drops repeats, keeping the first order.
func checkCustomIDs(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, badRequest("missing_required_parameter", "custom_ids", "Missing required parameter: 'custom_ids' must name at least one request.")
	}
	if len(in) > maxCancelIDs {
		return nil, badRequest("invalid_value", "custom_ids", "Invalid 'custom_ids': %d given; at most %d are allowed in one call.", len(in), maxCancelIDs)
	}
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for i, id := range in {
		if id == "" {
			return nil, badRequest("invalid_value", "custom_ids", "Invalid 'custom_ids[%d]': a custom_id is never empty.", i)
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}
