package handlers

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
)

// Bounds of an availability event, as openapi.yaml states them.
const (
	maxModelNameChars        = 256
	maxAvailabilityNoteChars = 1000
)

// SetModelAvailability appends an availability event for a model. Marking a model live wakes the
// dispatchers, so that its held requests go at once rather than at the next poll.
func (s *Server) SetModelAvailability(ctx context.Context, req api.SetModelAvailabilityRequestObject) (api.SetModelAvailabilityResponseObject, error) {
	owner := ownerFrom(ctx)
	if !isAdmin(ctx) {
		// As every admin route, it does not exist for a plain key.
		return nil, notFound("", "Invalid URL (POST /v1/models/%s/availability)", req.Model)
	}
	b := req.Body
	if !b.State.Valid() {
		return nil, badRequest("invalid_value", "state", "state must be live, coming or absent, got %q", string(b.State))
	}
	if utf8.RuneCountInString(req.Model) > maxModelNameChars {
		return nil, badRequest("invalid_value", "model", "model must be at most %d characters", maxModelNameChars)
	}
	note := ""
	if b.Note != nil {
		note = *b.Note
	}
	if n := utf8.RuneCountInString(note); n > maxAvailabilityNoteChars {
		return nil, badRequest("invalid_value", "note", "note must be at most %d characters, got %d", maxAvailabilityNoteChars, n)
	}
	var ev dbsqlc.ModelAvailabilityEvent
	err := s.withTx(ctx, func(_ db.Tx, q *dbsqlc.Queries) error {
		var err error
		ev, err = q.ModelAvailabilityInsert(ctx, dbsqlc.ModelAvailabilityInsertParams{
			Model: req.Model, State: string(b.State), Note: note, CreatedBy: owner})
		if err != nil {
			return err
		}
		if b.State == api.SetModelAvailabilityRequestStateLive {
			return q.BatchNotifyWork(ctx, "")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("set model availability: %w", err)
	}
	return api.SetModelAvailability200JSONResponse{Object: "model.availability", Id: ev.ID, Model: ev.Model,
		State: api.ModelAvailabilityState(ev.State), Note: ev.Note, CreatedBy: ev.CreatedBy, CreatedAt: ev.CreatedAt.Unix()}, nil
}
