package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/ids"
	"github.com/volleyhq/volley/internal/webhook"
)

const (
	webhookEndpointsPerOwner = 50
	webhookNameMaxChars      = 128
	webhookDefaultLimit      = 20
	webhookMaxLimit          = 100
)

func webhookEndpointNotFound(id string) *APIError {
	return notFound("webhook_endpoint_id", "No webhook endpoint found with id '%s'.", truncate(id, 64))
}

func webhookEndpointObject(e dbsqlc.WebhookEndpoint) api.WebhookEndpoint {
	return api.WebhookEndpoint{
		Id: e.ID, Object: "webhook_endpoint", CreatedAt: e.CreatedAt.Unix(), UpdatedAt: e.UpdatedAt.Unix(),
		Name: e.Name, Url: e.Url, EventTypes: e.EventTypes, SigningSecretHint: webhook.Hint(e.Secret),
	}
}

func webhookEndpointWithSecret(e dbsqlc.WebhookEndpoint) api.WebhookEndpointWithSecret {
	o := webhookEndpointObject(e)
	return api.WebhookEndpointWithSecret{
		Id: o.Id, Object: "webhook_endpoint", CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt, Name: o.Name,
		Url: o.Url, EventTypes: o.EventTypes, SigningSecretHint: o.SigningSecretHint, SigningSecret: e.Secret,
	}
}

func checkWebhookName(name string) error {
	switch n := utf8.RuneCountInString(name); {
	case strings.TrimSpace(name) == "":
		return badRequest("missing_required_parameter", "name", "Missing required parameter: 'name'.")
	case !utf8.ValidString(name):
		return badRequest("invalid_value", "name", "Invalid 'name': it is not valid UTF-8.")
	case n > webhookNameMaxChars:
		return badRequest("invalid_value", "name", "Invalid 'name': %d characters; at most %d are allowed.", n, webhookNameMaxChars)
	}
	return nil
}

func eventTypeStrings(in []api.WebhookEventType) []string {
	out := make([]string, len(in))
	for i, t := range in {
		out[i] = string(t)
	}
	return out
}

// checkEventTypes validates a subscription and returns it without repeats, in the order given.
func checkEventTypes(types []string) ([]string, error) {
	if len(types) == 0 {
		return nil, badRequest("missing_required_parameter", "event_types",
			"Missing required parameter: 'event_types' (at least one of %s).", strings.Join(webhook.EventTypes, ", "))
	}
	out := make([]string, 0, len(types))
	for i, t := range types {
		if !webhook.IsEventType(t) {
			return nil, badRequest("invalid_value", fmt.Sprintf("event_types[%d]", i),
				"Invalid 'event_types[%d]': '%s' is not an event type Volley sends; use %s.", i, truncate(t, 64), strings.Join(webhook.EventTypes, ", "))
		}
		dup := false
		for _, o := range out {
			dup = dup || o == t
		}
		if !dup {
			out = append(out, t)
		}
	}
	return out, nil
}

func (s *Server) checkWebhookURL(ctx context.Context, raw string) error {
	if raw == "" {
		return badRequest("missing_required_parameter", "url", "Missing required parameter: 'url'.")
	}
	if err := webhook.CheckURL(ctx, raw, s.cfg.Webhook.AllowPrivate, s.cfg.Webhook.AllowHosts, s.resolver); err != nil {
		var urlErr *webhook.URLError
		if errors.As(err, &urlErr) {
			// The reason is Volley's own text (any host in it is already clipped): not clipped again.
			return &APIError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Code: "invalid_url", Param: "url",
				Message: "Invalid 'url': " + urlErr.Reason + "."}
		}
		return err
	}
	return nil
}

// getWebhookEndpoint returns the caller's endpoint or a 404 that says nothing about other owners'.
func (s *Server) getWebhookEndpoint(ctx context.Context, q *dbsqlc.Queries, id string) (dbsqlc.WebhookEndpoint, error) {
	e, err := q.WebhookEndpointGet(ctx, dbsqlc.WebhookEndpointGetParams{ID: id, Owner: ownerFrom(ctx)})
	if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
		return e, webhookEndpointNotFound(id)
	} else if err != nil {
		return e, fmt.Errorf("get webhook endpoint: %w", err)
	}
	return e, nil
}

func pageLimit(limit *int) (int, error) {
	if limit == nil {
		return webhookDefaultLimit, nil
	}
	if *limit < 1 || *limit > webhookMaxLimit {
		return 0, badRequest("invalid_value", "limit", "Invalid 'limit': %d. It must be between 1 and %d.", *limit, webhookMaxLimit)
	}
	return *limit, nil
}

// CreateWebhookEndpoint registers an endpoint with a fresh signing secret.
func (s *Server) CreateWebhookEndpoint(ctx context.Context, req api.CreateWebhookEndpointRequestObject) (api.CreateWebhookEndpointResponseObject, error) {
	if req.Body == nil {
		return nil, badRequest("invalid_json", "", "The request body must be a JSON object.")
	}
	in := *req.Body
	if err := checkWebhookName(in.Name); err != nil {
		return nil, err
	}
	if err := s.checkWebhookURL(ctx, in.Url); err != nil {
		return nil, err
	}
	types, err := checkEventTypes(eventTypeStrings(in.EventTypes))
	if err != nil {
		return nil, err
	}
	owner := ownerFrom(ctx)
	var e dbsqlc.WebhookEndpoint
	err = s.withTx(ctx, func(_ db.Tx, q *dbsqlc.Queries) error {
		// Creates of one owner queue behind each other here, so the limit holds.
		if err := q.WebhookEndpointLockOwner(ctx, owner); err != nil {
			return err
		}
		n, err := q.WebhookEndpointCount(ctx, owner)
		if err != nil {
			return err
		}
		if n >= webhookEndpointsPerOwner {
			return badRequest("limit_exceeded", "", "You already have %d webhook endpoints, the most allowed; delete one first.", n)
		}
		id, now := ids.New("whe_")
		e, err = q.WebhookEndpointInsert(ctx, dbsqlc.WebhookEndpointInsertParams{
			ID: id, Owner: owner, Name: in.Name, Url: in.Url, EventTypes: types,
			Secret: webhook.NewSecret(), CreatedAt: now.Truncate(time.Second),
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create webhook endpoint: %w", db.Translate(err))
	}
	return api.CreateWebhookEndpoint200JSONResponse(webhookEndpointWithSecret(e)), nil
}

// ListWebhookEndpoints pages through the caller's endpoints, newest first.
func (s *Server) ListWebhookEndpoints(ctx context.Context, req api.ListWebhookEndpointsRequestObject) (api.ListWebhookEndpointsResponseObject, error) {
	limit, err := pageLimit(req.Params.Limit)
	if err != nil {
		return nil, err
	}
	rows, err := s.queries.WebhookEndpointList(ctx, dbsqlc.WebhookEndpointListParams{Owner: ownerFrom(ctx), After: req.Params.After, MaxRows: int32(limit + 1)})
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", db.Translate(err))
	}
	pg := pageOf(rows, limit, webhookEndpointObject, func(e dbsqlc.WebhookEndpoint) string { return e.ID })
	return api.ListWebhookEndpoints200JSONResponse{Object: "list", Data: pg.data, FirstId: pg.firstID, LastId: pg.lastID, HasMore: pg.hasMore}, nil
}

// RetrieveWebhookEndpoint returns one of the caller's endpoints.
func (s *Server) RetrieveWebhookEndpoint(ctx context.Context, req api.RetrieveWebhookEndpointRequestObject) (api.RetrieveWebhookEndpointResponseObject, error) {
	e, err := s.getWebhookEndpoint(ctx, s.queries, req.WebhookEndpointId)
	if err != nil {
		return nil, err
	}
	return api.RetrieveWebhookEndpoint200JSONResponse(webhookEndpointObject(e)), nil
}

// UpdateWebhookEndpoint changes what the request names.
func (s *Server) UpdateWebhookEndpoint(ctx context.Context, req api.UpdateWebhookEndpointRequestObject) (api.UpdateWebhookEndpointResponseObject, error) {
	if req.Body == nil {
		return nil, badRequest("invalid_json", "", "The request body must be a JSON object.")
	}
	in := *req.Body
	if in.Name != nil {
		if err := checkWebhookName(*in.Name); err != nil {
			return nil, err
		}
	}
	if in.Url != nil {
		if err := s.checkWebhookURL(ctx, *in.Url); err != nil {
			return nil, err
		}
	}
	var types []string
	if in.EventTypes != nil {
		var err error
		if types, err = checkEventTypes(eventTypeStrings(*in.EventTypes)); err != nil {
			return nil, err
		}
	}
	e, err := s.queries.WebhookEndpointUpdate(ctx, dbsqlc.WebhookEndpointUpdateParams{
		ID: req.WebhookEndpointId, Owner: ownerFrom(ctx), Name: in.Name, Url: in.Url, EventTypes: types,
	})
	if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
		return nil, webhookEndpointNotFound(req.WebhookEndpointId)
	} else if err != nil {
		return nil, fmt.Errorf("update webhook endpoint: %w", err)
	}
	return api.UpdateWebhookEndpoint200JSONResponse(webhookEndpointObject(e)), nil
}

// DeleteWebhookEndpoint removes an endpoint and what was still to be delivered to it.
func (s *Server) DeleteWebhookEndpoint(ctx context.Context, req api.DeleteWebhookEndpointRequestObject) (api.DeleteWebhookEndpointResponseObject, error) {
	id, err := s.queries.WebhookEndpointDelete(ctx, dbsqlc.WebhookEndpointDeleteParams{ID: req.WebhookEndpointId, Owner: ownerFrom(ctx)})
	if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
		return nil, webhookEndpointNotFound(req.WebhookEndpointId)
	} else if err != nil {
		return nil, fmt.Errorf("delete webhook endpoint: %w", err)
	}
	return api.DeleteWebhookEndpoint200JSONResponse{Id: id, Object: "webhook_endpoint.deleted", Deleted: true}, nil
}

// RotateWebhookEndpointSecret gives an endpoint a new secret, keeping the old one for a day if asked.
func (s *Server) RotateWebhookEndpointSecret(ctx context.Context, req api.RotateWebhookEndpointSecretRequestObject) (api.RotateWebhookEndpointSecretResponseObject, error) {
	keep := req.Body != nil && req.Body.KeepOldSecretActiveFor24Hours != nil && *req.Body.KeepOldSecretActiveFor24Hours
	e, err := s.queries.WebhookEndpointRotateSecret(ctx, dbsqlc.WebhookEndpointRotateSecretParams{
		ID: req.WebhookEndpointId, Owner: ownerFrom(ctx), Secret: webhook.NewSecret(), KeepOld: keep,
	})
	if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
		return nil, webhookEndpointNotFound(req.WebhookEndpointId)
	} else if err != nil {
		return nil, fmt.Errorf("rotate webhook secret: %w", err)
	}
	return api.RotateWebhookEndpointSecret200JSONResponse(webhookEndpointWithSecret(e)), nil
}

// TestWebhookEndpoint sends one signed sample event now and reports the endpoint's answer.
func (s *Server) TestWebhookEndpoint(ctx context.Context, req api.TestWebhookEndpointRequestObject) (api.TestWebhookEndpointResponseObject, error) {
	if req.Body == nil {
		return nil, badRequest("invalid_json", "", "The request body must be a JSON object.")
	}
	e, err := s.getWebhookEndpoint(ctx, s.queries, req.WebhookEndpointId)
	if err != nil {
		return nil, err
	}
	typ := string(req.Body.EventType)
	if typ == "" {
		return nil, badRequest("missing_required_parameter", "event_type", "Missing required parameter: 'event_type'.")
	}
	if !webhook.IsEventType(typ) {
		return nil, badRequest("invalid_value", "event_type", "Invalid 'event_type': '%s' is not an event type Volley sends; use %s.", truncate(typ, 64), strings.Join(webhook.EventTypes, ", "))
	}
	eventID, now := ids.New("evt_")
	sample, _ := ids.New("batch_")
	body, err := webhook.Body(eventID, typ, now, fmt.Appendf(nil, `{"id":%q}`, sample))
	if err != nil {
		return nil, err
	}
	secrets := []string{e.Secret}
	if e.PreviousSecret != nil && e.PreviousSecretUntil != nil && e.PreviousSecretUntil.After(time.Now()) {
		secrets = append(secrets, *e.PreviousSecret)
	}
	out := s.webhooks.Send(ctx, webhook.Message{URL: e.Url, ID: eventID, Body: body, Secrets: secrets})
	if out.Status == 0 {
		return nil, badRequest("webhook_unreachable", "", "The test delivery to %s failed: %s.", e.Url, out.Err)
	}
	return api.TestWebhookEndpoint200JSONResponse{
		Object: "webhook_endpoint.test", EventType: typ, StatusCode: out.Status, Success: true, WebhookEndpointId: e.ID,
	}, nil
}

// ListWebhookDeliveries pages through an endpoint's deliveries, newest event first.
func (s *Server) ListWebhookDeliveries(ctx context.Context, req api.ListWebhookDeliveriesRequestObject) (api.ListWebhookDeliveriesResponseObject, error) {
	limit, err := pageLimit(req.Params.Limit)
	if err != nil {
		return nil, err
	}
	e, err := s.getWebhookEndpoint(ctx, s.queries, req.WebhookEndpointId)
	if err != nil {
		return nil, err
	}
	rows, err := s.queries.WebhookDeliveryList(ctx, dbsqlc.WebhookDeliveryListParams{EndpointID: e.ID, After: req.Params.After, MaxRows: int32(limit + 1)})
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", db.Translate(err))
	}
	pg := pageOf(rows, limit, webhookDeliveryObject, func(d dbsqlc.WebhookDeliveryListRow) string { return d.EventID })
	return api.ListWebhookDeliveries200JSONResponse{Object: "list", Data: pg.data, FirstId: pg.firstID, LastId: pg.lastID, HasMore: pg.hasMore}, nil
}

func webhookDeliveryObject(d dbsqlc.WebhookDeliveryListRow) api.WebhookDelivery {
	out := api.WebhookDelivery{
		Id: d.EventID, Object: "webhook_endpoint.delivery", EventType: d.EventType, WebhookEndpointId: d.EndpointID,
		Status: api.WebhookDeliveryStatus(d.State), Attempts: int(d.Attempts), CreatedAt: d.CreatedAt.Unix(),
		LastAttemptAt: unixOrNil(d.LastAttemptAt), DeliveredAt: unixOrNil(d.DeliveredAt), LastError: d.LastError,
	}
	if d.State == "pending" {
		next := d.NextAttemptAt.Unix()
		out.NextAttemptAt = &next
	}
	if d.LastStatus != nil {
		st := int(*d.LastStatus)
		out.LastStatusCode = &st
	}
	return out
}

func unixOrNil(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	u := t.Unix()
	return &u
}

// ListWebhookEventTypes lists what an endpoint may subscribe to.
func (s *Server) ListWebhookEventTypes(context.Context, api.ListWebhookEventTypesRequestObject) (api.ListWebhookEventTypesResponseObject, error) {
	return api.ListWebhookEventTypes200JSONResponse{Object: "list", Data: webhook.EventTypes}, nil
}
