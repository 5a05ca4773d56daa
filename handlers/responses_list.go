package handlers

import (
	"context"
	"fmt"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
)

const (
	responsesDefaultLimit = 20
	responsesMaxLimit     = 100
)

// ListResponses lists the caller's stored responses, newest first, each as RetrieveResponse would
// answer it now. A Volley extension: the hosted API has no such route.
func (s *Server) ListResponses(ctx context.Context, req api.ListResponsesRequestObject) (api.ListResponsesResponseObject, error) {
	limit := responsesDefaultLimit
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
		if limit < 1 || limit > responsesMaxLimit {
			return nil, badRequest("invalid_value", "limit", "Invalid 'limit': %d. It must be between 1 and %d.", limit, responsesMaxLimit)
		}
	}
	rows, err := s.queries.ResponseList(ctx, dbsqlc.ResponseListParams{
		Owner: ownerFrom(ctx), After: req.Params.After, Background: req.Params.Background, MaxRows: int32(limit + 1),
	})
	if err != nil {
		return nil, fmt.Errorf("list responses: %w", db.Translate(err))
	}
	hasMore := len(rows) > limit
	if hasMore {
		rows = rows[:limit]
	}
	out := api.ListResponses200JSONResponse{Object: "list", Data: make([]api.Response, len(rows)), HasMore: hasMore}
	for i, row := range rows {
		obj, _ := renderStored(dbsqlc.ResponseGetRow(row))
		out.Data[i] = obj
	}
	if len(rows) > 0 {
		out.FirstId, out.LastId = &rows[0].ID, &rows[len(rows)-1].ID
	}
	return out, nil
}
