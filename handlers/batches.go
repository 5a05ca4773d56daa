package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/ids"
	"github.com/volleyhq/volley/internal/jsonl"
)

const (
	batchesDefaultLimit = 20
	batchesMaxLimit     = 100
	maxMetadataPairs    = 16
	maxMetadataKey      = 64
	maxMetadataValue    = 512
	minWindow           = time.Minute
	maxWindow           = 168 * time.Hour
)

var windowPattern = regexp.MustCompile(`^([1-9][0-9]{0,5})(m|h)$`)

// parseWindow reads a completion window: "24h" as OpenAI, or any whole number of minutes or
// hours from 1m to 168h.
func parseWindow(s string) (time.Duration, error) {
	m := windowPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, badRequest("invalid_value", "completion_window",
			"Invalid 'completion_window': '%s'. Use '24h', or a whole number of minutes or hours from '1m' to '168h' (e.g. '90m').", truncate(s, 32))
	}
	n, _ := strconv.Atoi(m[1])
	d := time.Duration(n) * time.Minute
	if m[2] == "h" {
		d = time.Duration(n) * time.Hour
	}
	if d < minWindow || d > maxWindow {
		return 0, badRequest("invalid_value", "completion_window",
			"Invalid 'completion_window': '%s'. It must be between '1m' and '168h'.", s)
	}
	return d, nil
}

func checkMetadata(md *map[string]string) ([]byte, error) {
	if md == nil {
		return nil, nil
	}
	if len(*md) > maxMetadataPairs {
		return nil, badRequest("invalid_value", "metadata", "Invalid 'metadata': %d pairs given; at most %d are allowed.", len(*md), maxMetadataPairs)
	}
	for k, v := range *md {
		if utf8.RuneCountInString(k) > maxMetadataKey {
			return nil, badRequest("invalid_value", "metadata", "Invalid 'metadata': key '%s' is longer than %d characters.", truncate(k, 64), maxMetadataKey)
		}
		if utf8.RuneCountInString(v) > maxMetadataValue {
			return nil, badRequest("invalid_value", "metadata", "Invalid 'metadata': the value of '%s' is longer than %d characters.", truncate(k, 64), maxMetadataValue)
		}
	}
	return json.Marshal(*md)
}

func batchNotFound(id string) *APIError {
	return notFound("batch_id", "No batch found with id '%s'.", id)
}

// CreateBatch validates a batch against its input file and creates it with all its requests in one
// transaction.
func (s *Server) CreateBatch(ctx context.Context, req api.CreateBatchRequestObject) (api.CreateBatchResponseObject, error) {
	if req.Body == nil {
		return nil, badRequest("invalid_json", "", "The request body must be a JSON object.")
	}
	in := *req.Body
	switch {
	case in.InputFileId == "":
		return nil, badRequest("missing_required_parameter", "input_file_id", "Missing required parameter: 'input_file_id'.")
	case in.Endpoint == "":
		return nil, badRequest("missing_required_parameter", "endpoint", "Missing required parameter: 'endpoint'.")
	case !jsonl.IsBatchEndpoint(in.Endpoint):
		return nil, badRequest("invalid_value", "endpoint", "Invalid 'endpoint': '%s'. Supported endpoints are %s.", truncate(in.Endpoint, 64), supportedEndpoints())
	case in.CompletionWindow == "":
		return nil, badRequest("missing_required_parameter", "completion_window", "Missing required parameter: 'completion_window'.")
	}
	window, err := parseWindow(in.CompletionWindow)
	if err != nil {
		return nil, err
	}
	metadata, err := checkMetadata(in.Metadata)
	if err != nil {
		return nil, err
	}
	var tier *string
	if t := in.ServiceTier; t != nil {
		if !t.Valid() {
			return nil, badRequest("invalid_value", "service_tier", "Invalid 'service_tier': '%s'. Supported values are 'auto', 'default', 'flex' and 'background'.", truncate(string(*t), 64))
		}
		tier = (*string)(t)
	}
	var outputExpiry *int32
	if oe := in.OutputExpiresAfter; oe != nil {
		if oe.Anchor != "created_at" {
			return nil, badRequest("invalid_value", "output_expires_after.anchor", "Invalid 'output_expires_after.anchor': '%s'. The only supported anchor is 'created_at'.", truncate(oe.Anchor, 64))
		}
		if oe.Seconds < minExpirySeconds || oe.Seconds > maxExpirySeconds {
			return nil, badRequest("invalid_value", "output_expires_after.seconds", "Invalid 'output_expires_after.seconds': %d. It must be from %d to %d.", oe.Seconds, minExpirySeconds, maxExpirySeconds)
		}
		v := int32(oe.Seconds)
		outputExpiry = &v
	}

	owner := ownerFrom(ctx)
	var batch dbsqlc.Batch
	err = s.withTx(ctx, func(_ db.Tx, q *dbsqlc.Queries) error {
		file, err := q.FileGetLiveForShare(ctx, dbsqlc.FileGetLiveForShareParams{ID: in.InputFileId, Owner: owner})
		if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
			return badRequest("invalid_input_file", "input_file_id", "No such File object: %s", in.InputFileId)
		} else if err != nil {
			return err
		}
		if file.Purpose != purposeBatch {
			return badRequest("invalid_input_file", "input_file_id", "File '%s' has purpose '%s'; a batch needs a file uploaded with purpose 'batch'.", file.ID, file.Purpose)
		}
		mismatch, err := q.BatchFileLinesFirstURLMismatch(ctx, dbsqlc.BatchFileLinesFirstURLMismatchParams{FileID: file.ID, Endpoint: &in.Endpoint})
		if err = db.Translate(err); err == nil {
			return badRequest("url_mismatch", "endpoint", "Line %d: url '%s' does not match the batch endpoint '%s'; every line of a batch must use its endpoint.", mismatch.Line, deref(mismatch.Url), in.Endpoint)
		} else if !errors.Is(err, db.ErrNotFound) {
			return err
		}
		models, err := q.BatchFileModels(ctx, file.ID)
		if err != nil {
			return err
		}
		for _, m := range models {
			if !s.routable(m.Model) {
				return badRequest("model_not_found", "input_file_id", "Line %d: model '%s' has no upstream configured; add a route for it (or a catch-all) to the Volley configuration.", m.FirstLine, truncate(m.Model, 128))
			}
		}
		var model *string
		if len(models) == 1 {
			model = &models[0].Model
		}
		id, created := ids.New("batch_")
		expires := created.Add(window)
		n, err := q.RequestsCreateFromFile(ctx, dbsqlc.RequestsCreateFromFileParams{
			BatchID: id, Owner: owner, FileID: file.ID, Deadline: expires, Background: deref(tier) == tierBackground,
		})
		if err != nil {
			return fmt.Errorf("create requests: %w", err)
		}
		batch, err = q.BatchInsert(ctx, dbsqlc.BatchInsertParams{
			ID: id, Owner: owner, InputFileID: file.ID, Endpoint: in.Endpoint, CompletionWindow: in.CompletionWindow,
			Model: model, Metadata: metadata, OutputExpiresSeconds: outputExpiry, CreatedAt: created, ExpiresAt: expires,
			Total: int32(n), ServiceTier: tier,
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
	loggerFrom(ctx).Info("batch created", "batch_id", batch.ID, "requests", batch.Total, "endpoint", batch.Endpoint)
	return api.CreateBatch200JSONResponse(batchObject(batch)), nil
}

func (s *Server) routable(model string) bool {
	_, ok := s.route(model)
	return ok
}

func supportedEndpoints() string {
	out := ""
	for i, e := range jsonl.BatchEndpoints {
		if i > 0 {
			out += ", "
		}
		out += "'" + e + "'"
	}
	return out
}

// RetrieveBatch is one row read: the counters are kept by the daemon.
func (s *Server) RetrieveBatch(ctx context.Context, req api.RetrieveBatchRequestObject) (api.RetrieveBatchResponseObject, error) {
	b, err := s.getBatch(ctx, req.BatchId)
	if err != nil {
		return nil, err
	}
	return api.RetrieveBatch200JSONResponse(batchObject(b)), nil
}

func (s *Server) getBatch(ctx context.Context, id string) (dbsqlc.Batch, error) {
	return s.getBatchOf(ctx, id, ownerFrom(ctx))
}

func (s *Server) getBatchOf(ctx context.Context, id, owner string) (dbsqlc.Batch, error) {
	b, err := s.queries.BatchGet(ctx, dbsqlc.BatchGetParams{ID: id, Owner: owner})
	if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
		return b, batchNotFound(id)
	} else if err != nil {
		return b, fmt.Errorf("get batch: %w", err)
	}
	return b, nil
}

// batchStatusGroups is what a status filter covers, as the seed system has it.
var batchStatusGroups = map[string][]string{
	"validating":  {"validating"},
	"failed":      {"failed"},
	"in_progress": {"in_progress", "validating", "finalizing"},
	"finalizing":  {"finalizing"},
	"completed":   {"completed"},
	"expired":     {"expired"},
	"cancelling":  {"cancelling"},
	"cancelled":   {"cancelled", "cancelling"},
}

var batchStatuses = []string{"validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"}

func unixTime(p *int64) *time.Time {
	if p == nil {
		return nil
	}
	// A bound past what PostgreSQL's timestamps hold means the same as the farthest they do: no
	// batch was created before 1970 or after 9999.
	t := time.Unix(min(max(*p, 0), maxUnixSeconds), 0)
	return &t
}

// maxUnixSeconds is the last second of the year 9999.
const maxUnixSeconds = 253402300799

// ListBatches pages through the caller's batches, newest first (or running ones first), under
// Volley's optional filters.
func (s *Server) ListBatches(ctx context.Context, req api.ListBatchesRequestObject) (api.ListBatchesResponseObject, error) {
	p := req.Params
	limit := batchesDefaultLimit
	if p.Limit != nil {
		limit = *p.Limit
		if limit < 1 || limit > batchesMaxLimit {
			return nil, badRequest("invalid_value", "limit", "Invalid 'limit': %d. It must be between 1 and %d.", limit, batchesMaxLimit)
		}
	}
	var asked []string
	if p.Status != nil {
		for _, st := range *p.Status {
			asked = append(asked, string(st))
		}
	}
	asked = listValues(&asked)
	if err := checkStates("status", asked, batchStatuses); err != nil {
		return nil, err
	}
	statuses := []string{}
	for _, st := range asked {
		statuses = append(statuses, batchStatusGroups[st]...)
	}
	search, err := checkSearch(p.Search)
	if err != nil {
		return nil, err
	}
	owner, err := readOwner(ctx, p.Owner)
	if err != nil {
		return nil, err
	}
	arg := dbsqlc.BatchListParams{
		Owner: owner, Statuses: statuses, InputFileID: p.InputFileId, Search: search,
		CreatedAfter: unixTime(p.CreatedAfter), CreatedBefore: unixTime(p.CreatedBefore),
		After: p.After, ActiveFirst: p.ActiveFirst != nil && *p.ActiveFirst, MaxRows: int32(limit + 1),
	}
	if arg.InputFileID != nil && *arg.InputFileID == "" {
		arg.InputFileID = nil
	}
	if arg.After != nil && *arg.After == "" {
		arg.After = nil
	}
	if arg.ActiveFirst && arg.After != nil {
		arg.AfterActive, err = s.queries.BatchIsActive(ctx, dbsqlc.BatchIsActiveParams{ID: *arg.After, Owner: owner})
		if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
			return nil, badRequest("invalid_value", "after", "Invalid 'after': no batch found with id '%s'. Pass the 'last_id' of the previous page.", truncate(*arg.After, 64))
		} else if err != nil {
			return nil, fmt.Errorf("find cursor: %w", err)
		}
	}
	rows, err := s.queries.BatchList(ctx, arg)
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", db.Translate(err))
	}
	pg := pageOf(rows, limit, batchObject, func(b dbsqlc.Batch) string { return b.ID })
	return api.ListBatches200JSONResponse{Object: "list", Data: pg.data, FirstId: pg.firstID, LastId: pg.lastID, HasMore: pg.hasMore}, nil
}

// CancelBatch moves a running batch to cancelling, ends its pending requests at once and tells
// every replica to abort its in-flight calls.
func (s *Server) CancelBatch(ctx context.Context, req api.CancelBatchRequestObject) (api.CancelBatchResponseObject, error) {
	owner := ownerFrom(ctx)
	err := s.withTx(ctx, func(_ db.Tx, q *dbsqlc.Queries) error {
		if _, err := q.BatchRequestCancel(ctx, dbsqlc.BatchRequestCancelParams{ID: req.BatchId, Owner: owner}); err != nil {
			return err
		}
		if _, err := q.BatchSettlePending(ctx, req.BatchId); err != nil {
			return err
		}
		if err := q.BatchEndRunning(ctx, req.BatchId); err != nil {
			return err
		}
		return q.BatchNotifyAbort(ctx, "cancelled "+req.BatchId)
	})
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return nil, fmt.Errorf("cancel batch: %w", err)
	}
	b, err := s.getBatch(ctx, req.BatchId)
	if err != nil {
		return nil, err
	}
	switch b.Status {
	case "cancelling", "cancelled":
		return api.CancelBatch200JSONResponse(batchObject(b)), nil
	}
	return nil, badRequest("invalid_state", "", "Cannot cancel a batch with status '%s'.", b.Status)
}

func unix(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	v := t.Unix()
	return &v
}

func batchObject(b dbsqlc.Batch) api.Batch {
	out := api.Batch{
		Id: b.ID, Object: "batch", Endpoint: b.Endpoint, Model: b.Model, InputFileId: b.InputFileID,
		CompletionWindow: b.CompletionWindow, Status: api.BatchStatus(b.Status),
		OutputFileId: b.OutputFileID, ErrorFileId: b.ErrorFileID,
		CreatedAt: b.CreatedAt.Unix(), InProgressAt: unix(b.InProgressAt), ExpiresAt: unix(&b.ExpiresAt),
		FinalizingAt: unix(b.FinalizingAt), CompletedAt: unix(b.CompletedAt), FailedAt: unix(b.FailedAt),
		ExpiredAt: unix(b.ExpiredAt), CancellingAt: unix(b.CancellingAt), CancelledAt: unix(b.CancelledAt),
		RequestCounts: api.BatchRequestCounts{Total: int(b.Total), Completed: int(b.Completed), Failed: int(b.Failed)},
	}
	out.Usage.InputTokens = b.InputTokens
	out.Usage.InputTokensDetails.CachedTokens = b.CachedTokens
	out.Usage.OutputTokens = b.OutputTokens
	out.Usage.OutputTokensDetails.ReasoningTokens = b.ReasoningTokens
	out.Usage.TotalTokens = b.TotalTokens
	if len(b.Metadata) > 0 {
		var md map[string]string
		if json.Unmarshal(b.Metadata, &md) == nil {
			out.Metadata = &md
		}
	}
	if b.ServiceTier != nil {
		t := api.BatchServiceTier(*b.ServiceTier)
		out.ServiceTier = &t
	}
	if len(b.Errors) > 0 {
		var e api.BatchErrors
		if json.Unmarshal(b.Errors, &e) == nil {
			out.Errors = &e
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// DeleteBatch cancels a running batch and deletes it with its output and error files; the janitor
// removes its rows for good once it has ended.
func (s *Server) DeleteBatch(ctx context.Context, req api.DeleteBatchRequestObject) (api.DeleteBatchResponseObject, error) {
	owner := ownerFrom(ctx)
	err := s.withTx(ctx, func(_ db.Tx, q *dbsqlc.Queries) error {
		_, err := q.BatchRequestCancel(ctx, dbsqlc.BatchRequestCancelParams{ID: req.BatchId, Owner: owner})
		cancelled := err == nil
		if err = db.Translate(err); err != nil && !errors.Is(err, db.ErrNotFound) {
			return err
		}
		if cancelled {
			if _, err := q.BatchSettlePending(ctx, req.BatchId); err != nil {
				return err
			}
			if err := q.BatchEndRunning(ctx, req.BatchId); err != nil {
				return err
			}
			if err := q.BatchNotifyAbort(ctx, "cancelled "+req.BatchId); err != nil {
				return err
			}
		}
		if _, err := q.BatchMarkDeleted(ctx, dbsqlc.BatchMarkDeletedParams{ID: req.BatchId, Owner: owner}); err != nil {
			return err
		}
		return q.BatchFilesMarkDeleted(ctx, req.BatchId)
	})
	if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
		return nil, batchNotFound(req.BatchId)
	} else if err != nil {
		return nil, fmt.Errorf("delete batch: %w", err)
	}
	loggerFrom(ctx).Info("batch deleted", "batch_id", req.BatchId)
	return api.DeleteBatch200JSONResponse{Id: req.BatchId, Object: "batch", Deleted: true}, nil
}
