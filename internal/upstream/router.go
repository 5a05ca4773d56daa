package upstream

import "slices"

// Router finds the route of a model. It is immutable and safe for concurrent use.
type Router struct {
	exact       map[string]Route
	catchAll    Route
	hasCatchAll bool
	models      []string
	limits      []int32
}

// NewRouter indexes cfg's routes. A nil cfg gives a router without routes.
func NewRouter(cfg *Config) *Router {
	r := &Router{exact: make(map[string]Route)}
	if cfg == nil {
		return r
	}
	for _, rt := range cfg.Routes {
		if rt.Model == CatchAll {
			r.catchAll, r.hasCatchAll = rt, true
			continue
		}
		r.exact[rt.Model] = rt
	}
	r.models = make([]string, 0, len(r.exact))
	for m := range r.exact {
		r.models = append(r.models, m)
	}
	slices.Sort(r.models)
	r.limits = make([]int32, len(r.models))
	for i, m := range r.models {
		r.limits[i] = int32(r.exact[m].Ceiling())
	}
	return r
}

// Route returns the route of model: its exact route if it has one, the catch-all otherwise. It
// reports false when neither exists, or for an empty model name.
func (r *Router) Route(model string) (Route, bool) {
	if rt, ok := r.exact[model]; ok {
		return rt, true
	}
	if r.hasCatchAll && model != "" {
		return r.catchAll, true
	}
	return Route{}, false
}

// CatchAll returns the catch-all route, if there is one.
func (r *Router) CatchAll() (Route, bool) { return r.catchAll, r.hasCatchAll }

// Limits returns what a claim needs to respect the concurrency limits: the models with an exact
// route, sorted, with their limits (Route.Ceiling) at the same index, and the limit that applies to each other
// model when there is a catch-all route. The slices are shared: callers must not modify them.
func (r *Router) Limits() (models []string, limits []int32, catchAll int32, hasCatchAll bool) {
	if r.hasCatchAll {
		catchAll = int32(r.catchAll.Ceiling())
	}
	return r.models, r.limits, catchAll, r.hasCatchAll
}

// Ceiling is the most of the model's requests in flight at once: Concurrency, or the adaptive
// maximum (at most Concurrency) when the limit adapts.
func (rt Route) Ceiling() int {
	if rt.Adaptive != nil {
		return rt.Adaptive.Max
	}
	return rt.Concurrency
}
