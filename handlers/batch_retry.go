package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/ids"
)

const (
	maxRetryIDs     = 50000
	retryOfMetadata = "volley_retry_of"
)

var (
	retryableStates = []string{"completed", "failed", "expired", "cancelled"}
	notCompleted    = []string{"failed", "expired", "cancelled"}
)

// RetryBatch creates a new batch over an ended batch's input file holding only the chosen lines.
// The old batch and its files are left as they are.
func (s *Server) RetryBatch(ctx context.Context, req api.RetryBatchRequestObject) (api.RetryBatchResponseObject, error) {
	old, err := s.getBatch(ctx, req.BatchId)
	if err != nil {
		return nil, err
	}
	var in api.RetryBatchRequest
	if req.Body != nil {
		in = *req.Body
	}
	states := notCompleted
	if in.Statuses != nil {
		states = *in.Statuses
		if len(states) == 0 {
			return nil, badRequest("invalid_value", "statuses", "Invalid 'statuses': name at least one state, or leave it out to retry every line that did not complete.")
		}
		if err := checkStates("statuses", states, retryableStates); err != nil {
			return nil, err
		}
	}
	customIDs := []string{}
	if in.CustomIds != nil {
		if len(*in.CustomIds) > maxRetryIDs {
			return nil, badRequest("invalid_value", "custom_ids", "Invalid 'custom_ids': %d given; at most %d are allowed.", len(*in.CustomIds), maxRetryIDs)
		}
		if customIDs, err = checkCustomIDs(*in.CustomIds); err != nil {
			return nil, err
		}
		if in.Statuses == nil {
			states = retryableStates // the lines named, whatever became of them
		}
	}
	windowText := old.CompletionWindow
	if in.CompletionWindow != nil {
		windowText = *in.CompletionWindow
	}
	window, err := parseWindow(windowText)
	if err != nil {
		return nil, err
	}
	md := map[string]string{}
	if in.Metadata != nil {
		md = *in.Metadata
	} else if len(old.Metadata) > 0 {
		_ = json.Unmarshal(old.Metadata, &md)
	}
	md[retryOfMetadata] = old.ID
	metadata, err := checkMetadata(&md)
	if err != nil {
		return nil, err
	}
	switch old.Status {
	case "completed", "failed", "expired", "cancelled":
	default:
		return nil, badRequest("invalid_state", "", "Cannot retry a batch with status '%s'; wait until it has ended, or cancel it first.", old.Status)
	}
	if old.ResultsRemovedAt != nil {
		return nil, badRequest("invalid_state", "", "Cannot retry batch '%s': its output and error files are gone, and with them what became of its lines.", old.ID)
	}

	owner := ownerFrom(ctx)
	var batch dbsqlc.Batch
	err = s.withTx(ctx, func(_ db.Tx, q *dbsqlc.Queries) error {
		file, err := q.FileGetLiveForShare(ctx, dbsqlc.FileGetLiveForShareParams{ID: old.InputFileID, Owner: owner})
		if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
			return badRequest("invalid_input_file", "", "Cannot retry batch '%s': its input file '%s' was deleted or has expired.", old.ID, old.InputFileID)
		} else if err != nil {
			return err
		}
		if len(customIDs) > 0 {
			found, err := q.RequestsStates(ctx, dbsqlc.RequestsStatesParams{BatchID: old.ID, CustomIds: customIDs})
			if err != nil {
				return fmt.Errorf("read request states: %w", err)
			}
			if len(found) < len(customIDs) {
				known := make(map[string]bool, len(found))
				for _, f := range found {
					known[f.CustomID] = true
				}
				for _, id := range customIDs {
					if !known[id] {
						return badRequest("invalid_value", "custom_ids", "Invalid 'custom_ids': batch '%s' has no request with custom_id '%s'.", old.ID, truncate(id, 64))
					}
				}
			}
		}
		id, created := ids.New("batch_")
		expires := created.Add(window)
		n, err := q.RequestsCreateRetry(ctx, dbsqlc.RequestsCreateRetryParams{
			BatchID: id, Deadline: expires, OldBatchID: old.ID, States: states, CustomIds: customIDs,
		})
		if err != nil {
			return fmt.Errorf("create retry requests: %w", err)
		}
		if n == 0 {
			return badRequest("nothing_to_retry", "", "Batch '%s' has no line to retry in state %s.", old.ID, quoteList(states))
		}
		models, err := q.RequestsBatchModels(ctx, id)
		if err != nil {
			return err
		}
		for _, m := range models {
			if !s.routable(m) {
				return badRequest("model_not_found", "", "Model '%s' has no upstream configured any more; add a route for it (or a catch-all) to the Volley configuration.", truncate(m, 128))
			}
		}
		var model *string
		if len(models) == 1 {
			model = &models[0]
		}
		batch, err = q.BatchInsert(ctx, dbsqlc.BatchInsertParams{
			ID: id, Owner: owner, InputFileID: file.ID, Endpoint: old.Endpoint, CompletionWindow: windowText,
			Model: model, Metadata: metadata, OutputExpiresSeconds: old.OutputExpiresSeconds, CreatedAt: created, ExpiresAt: expires,
			Total: int32(n), ServiceTier: old.ServiceTier,
		})
		if err != nil {
			return fmt.Errorf("insert batch: %w", err)
		}
		return q.BatchNotifyWork(ctx, id)
	})
	if err != nil {
		return nil, err
	}
	s.metrics.BatchCreated()
	loggerFrom(ctx).Info("batch retried", "batch_id", batch.ID, "retry_of", old.ID, "requests", batch.Total)
	return api.RetryBatch200JSONResponse(batchObject(batch)), nil
}
