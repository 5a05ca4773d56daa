package handlers

import (
	"context"
	"fmt"
	"slices"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/internal/upstream"
)

// ListDaemons lists every dispatcher replica, for admin keys.
func (s *Server) ListDaemons(ctx context.Context, _ api.ListDaemonsRequestObject) (api.ListDaemonsResponseObject, error) {
	if !isAdmin(ctx) {
		return nil, notFound("", "Invalid URL (GET /v1/daemons)")
	}
	rows, err := s.queries.DaemonsList(ctx, s.cfg.Dispatch.LeaseTimeout.Seconds())
	if err != nil {
		return nil, fmt.Errorf("list daemons: %w", db.Translate(err))
	}
	out := api.ListDaemons200JSONResponse{Object: "list", Data: make([]api.Daemon, len(rows))}
	for i, d := range rows {
		status := api.DaemonStatusRunning
		switch {
		case d.Dead:
			status = api.DaemonStatusDead
		case d.StoppedAt != nil:
			status = api.DaemonStatusStopped
		}
		out.Data[i] = api.Daemon{
			Id: d.ID, Object: "daemon", Host: d.Host, Pid: int(d.Pid), StartedAt: d.StartedAt.Unix(), HeartbeatAt: d.HeartbeatAt.Unix(),
			StoppedAt: unix(d.StoppedAt), Status: status, InFlight: d.InFlight, Completed: d.Completed, Failed: d.Failed,
		}
	}
	return out, nil
}

// ListModels lists the models Volley routes, as OpenAI's model list: those with a route of their
// own, then those the catch-all route's upstream says it serves (GET /v1/models there), each
// owned by the upstream that serves it.
func (s *Server) ListModels(ctx context.Context, _ api.ListModelsRequestObject) (api.ListModelsResponseObject, error) {
	out := api.ListModels200JSONResponse{Object: "list", Data: []api.Model{}}
	if s.router == nil {
		return out, nil
	}
	effective, err := s.effectiveLimits(ctx)
	if err != nil {
		return nil, err
	}
	add := func(m string, route upstream.Route) {
		limit := route.Ceiling()
		out.Data = append(out.Data, api.Model{Id: m, Object: "model", Created: s.started.Unix(), OwnedBy: route.Upstream.Name,
			ConcurrencyLimit: &limit, EffectiveLimit: effective.of(m, route)})
	}
	models, _, _, _ := s.router.Limits()
	for _, m := range models {
		route, _ := s.router.Route(m)
		add(m, route)
	}
	if catchAll, ok := s.router.CatchAll(); ok && catchAll.Upstream != nil && s.client != nil {
		for _, m := range s.catchAll.list(ctx, s, catchAll.Upstream.Name) {
			if route, _ := s.router.Route(m); route.Model == upstream.CatchAll && !slices.ContainsFunc(out.Data, func(d api.Model) bool { return d.Id == m }) {
				add(m, route)
			}
		}
	}
	return out, nil
}
