package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
)

const (
	requestsDefaultLimit = 100
	requestsMaxLimit     = 1000
	maxSearchLength      = 256
)

// requestStates are the states a batch's request can be in, as the API names them.
var requestStates = []string{"pending", "running", "completed", "failed", "cancelled", "expired"}

// likeContains turns text into an ILIKE pattern matching it anywhere, with LIKE's own
// metacharacters (%, _ and the escape \) matching literally.
func likeContains(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// checkSearch validates a search parameter and returns its pattern (nil: no search).
func checkSearch(s *string) (*string, error) {
	if s == nil || *s == "" {
		return nil, nil
	}
	if len(*s) > maxSearchLength {
		return nil, badRequest("invalid_value", "search", "Invalid 'search': it is %d bytes long; at most %d are allowed.", len(*s), maxSearchLength)
	}
	p := likeContains(*s)
	return &p, nil
}

// listValues flattens a repeated query parameter whose values may also be comma-separated.
func listValues(in *[]string) []string {
	if in == nil {
		return nil
	}
	var out []string
	for _, v := range *in {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// checkStates validates request states named by param.
func checkStates(param string, states []string, allowed []string) error {
	for _, st := range states {
		ok := false
		for _, a := range allowed {
			ok = ok || st == a
		}
		if !ok {
			return badRequest("invalid_value", param, "Invalid '%s': '%s'. It must be one of %s.", param, truncate(st, 32), quoteList(allowed))
		}
	}
	return nil
}

func quoteList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = "'" + v + "'"
	}
	return strings.Join(q, ", ")
}

// ListBatchRequests pages through a batch's requests in input order.
func (s *Server) ListBatchRequests(ctx context.Context, req api.ListBatchRequestsRequestObject) (api.ListBatchRequestsResponseObject, error) {
	p := req.Params
	limit := requestsDefaultLimit
	if p.Limit != nil {
		limit = *p.Limit
		if limit < 1 || limit > requestsMaxLimit {
			return nil, badRequest("invalid_value", "limit", "Invalid 'limit': %d. It must be between 1 and %d.", limit, requestsMaxLimit)
		}
	}
	states := listValues(p.Status)
	if err := checkStates("status", states, requestStates); err != nil {
		return nil, err
	}
	withBody := false
	for _, inc := range listValues(p.Include) {
		if inc != "body" {
			return nil, badRequest("invalid_value", "include", "Invalid 'include': '%s'. The only value is 'body'.", truncate(inc, 32))
		}
		withBody = true
	}
	search, err := checkSearch(p.Search)
	if err != nil {
		return nil, err
	}
	owner, err := readOwner(ctx, p.Owner)
	if err != nil {
		return nil, err
	}
	b, err := s.getBatchOf(ctx, req.BatchId, owner)
	if err != nil {
		return nil, err
	}
	afterLine := int32(0)
	if p.After != nil && *p.After != "" {
		afterLine, err = s.queries.RequestLineByCustomID(ctx, dbsqlc.RequestLineByCustomIDParams{BatchID: b.ID, CustomID: *p.After})
		if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
			return nil, badRequest("invalid_value", "after", "Invalid 'after': batch '%s' has no request with custom_id '%s'. Pass the 'last_id' of the previous page.", b.ID, truncate(*p.After, 64))
		} else if err != nil {
			return nil, fmt.Errorf("find cursor: %w", err)
		}
	}
	var model *string
	if p.Model != nil && *p.Model != "" {
		model = p.Model
	}
	if states == nil {
		states = []string{}
	}
	rows, err := s.queries.RequestsBrowse(ctx, dbsqlc.RequestsBrowseParams{
		WithBody: withBody, BatchID: b.ID, AfterLine: afterLine, States: states, Model: model, Search: search,
		MaxRows: int32(limit + 1),
	})
	if err != nil {
		return nil, fmt.Errorf("browse requests: %w", db.Translate(err))
	}
	pg := pageOf(rows, limit,
		func(r dbsqlc.RequestsBrowseRow) api.BatchRequest {
			return requestObject(b.CreatedAt, dbsqlc.RequestGetByCustomIDRow(r), withBody)
		},
		func(r dbsqlc.RequestsBrowseRow) string { return r.CustomID })
	return api.ListBatchRequests200JSONResponse{Object: "list", Data: pg.data, FirstId: pg.firstID, LastId: pg.lastID, HasMore: pg.hasMore}, nil
}

// RetrieveBatchRequest returns one request of a batch with its body.
func (s *Server) RetrieveBatchRequest(ctx context.Context, req api.RetrieveBatchRequestRequestObject) (api.RetrieveBatchRequestResponseObject, error) {
	b, err := s.getBatch(ctx, req.BatchId)
	if err != nil {
		return nil, err
	}
	r, err := s.queries.RequestGetByCustomID(ctx, dbsqlc.RequestGetByCustomIDParams{BatchID: b.ID, CustomID: req.CustomId})
	if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
		return nil, notFound("custom_id", "Batch '%s' has no request with custom_id '%s'.", b.ID, truncate(req.CustomId, 64))
	} else if err != nil {
		return nil, fmt.Errorf("get request: %w", err)
	}
	return api.RetrieveBatchRequest200JSONResponse(requestObject(b.CreatedAt, r, true)), nil
}

// resultLine is what an output or error line holds besides its ids.
type resultLine struct {
	Response *api.BatchRequestResponse `json:"response"`
	Error    *api.BatchRequestError    `json:"error"`
}

func requestObject(created time.Time, r dbsqlc.RequestGetByCustomIDRow, withBody bool) api.BatchRequest {
	out := api.BatchRequest{
		Object: "batch.request", CustomId: r.CustomID, Line: int(r.Line), Model: r.Model,
		Status: api.BatchRequestStatus(r.State), Attempts: int(r.Attempt), CreatedAt: created.Unix(),
		StartedAt: unix(r.ClaimedAt), FinishedAt: unix(r.FinishedAt),
	}
	if len(r.Result) > 0 {
		var res resultLine
		if json.Unmarshal(r.Result, &res) == nil {
			out.Response, out.Error = res.Response, res.Error
		}
	}
	if r.ServedUpstream != nil {
		out.ServedBy = &api.ServedBy{Upstream: *r.ServedUpstream, Model: deref(r.ServedModel), Fallback: r.ServedFallback}
	}
	if withBody && r.Body != nil {
		body := json.RawMessage(r.Body)
		out.Body = &body
	}
	return out
}
