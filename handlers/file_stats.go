package handlers

import (
	"context"
	"fmt"
	"math"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
)

// bytesPerToken is the estimate's rule: about four bytes of JSON body per input token.
const bytesPerToken = 4

// FileStats summarises an input file per model, with a cost estimate from the configured prices.
func (s *Server) FileStats(ctx context.Context, req api.FileStatsRequestObject) (api.FileStatsResponseObject, error) {
	f, err := s.getFile(ctx, req.FileId)
	if err != nil {
		return nil, err
	}
	if f.Purpose != purposeBatch {
		return nil, badRequest("invalid_value", "file_id", "File '%s' has purpose '%s'; stats are kept for input files (purpose 'batch').", f.ID, f.Purpose)
	}
	rows, err := s.queries.FileStatsByModel(ctx, f.ID)
	if err != nil {
		return nil, fmt.Errorf("file stats: %w", db.Translate(err))
	}
	out := api.FileStats200JSONResponse{Object: "file.stats", Id: f.ID, Lines: int64(f.LineCount), Bytes: f.Bytes, Models: make([]api.ModelStats, len(rows))}
	for i, r := range rows {
		m := api.ModelStats{Model: r.Model, Requests: r.Requests, BodyBytes: r.BodyBytes,
			EstimatedInputTokens: (r.BodyBytes + bytesPerToken - 1) / bytesPerToken}
		out.Requests += r.Requests
		output := r.CapTokens
		known := true
		if uncapped := r.Requests - r.Capped; uncapped > 0 {
			avg, err := s.queries.ModelAverageCompletionTokens(ctx, r.Model)
			if err != nil {
				return nil, fmt.Errorf("average completion tokens: %w", db.Translate(err))
			}
			if avg.Completed == 0 {
				known = false
			} else {
				output += int64(math.Round(float64(uncapped) * float64(avg.OutputTokens) / float64(avg.Completed)))
			}
		}
		if known {
			m.EstimatedOutputTokens = &output
			if route, ok := s.route(r.Model); ok && route.Price != nil {
				p := route.Price
				cost := (float64(m.EstimatedInputTokens)*p.InputPer1M + float64(output)*p.OutputPer1M) / 1e6 * (1 - p.BatchDiscount)
				cost = math.Round(cost*1e6) / 1e6
				m.EstimatedCost = &cost
			}
		}
		out.Models[i] = m
	}
	return out, nil
}
