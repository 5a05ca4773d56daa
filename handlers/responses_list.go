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
	pg := pageOf(rows, limit,
		func(row dbsqlc.ResponseListRow) api.Response {
			obj, _ := renderStored(dbsqlc.ResponseGetRow(row))
			return obj
		},
		func(row dbsqlc.ResponseListRow) string { return row.ID })
	return api.ListResponses200JSONResponse{Object: "list", Data: pg.data, FirstId: pg.firstID, LastId: pg.lastID, HasMore: pg.hasMore}, nil
}
