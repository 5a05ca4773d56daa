// Package handlers implements Volley's HTTP API (api.StrictServerInterface): authentication, the
// Files API with streaming JSONL ingestion and downloads, and the OpenAI error envelope for every
// failure from every layer.
package handlers

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/volleyhq/volley/api"
	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/config"
	"github.com/volleyhq/volley/internal/metrics"
	"github.com/volleyhq/volley/internal/upstream"
	"github.com/volleyhq/volley/internal/webhook"
)

// Server serves the API over one database pool.
type Server struct {
	pool    *pgxpool.Pool
	queries *dbsqlc.Queries
	cfg     config.Config
	logger  *slog.Logger
	router  *upstream.Router // nil: no model is routable
	client  *upstream.Client
	hub     *hub
	ready   atomic.Bool
	// turns are the ingest turns of uploads; nil means no limit.
	turns *turns
	// flexRecheck is how often a waiting flex call looks for its answer without a notification.
	flexRecheck time.Duration
	// metrics records what the API serves; nil records nothing.
	metrics *metrics.Metrics
	// webhooks sends test deliveries; resolver checks endpoint hosts.
	webhooks *webhook.Sender
	resolver webhook.Resolver
	// started is when the server was made: the "created" of the models it lists.
	started time.Time
	// catchAll caches the models the catch-all route's upstream serves, for GET /v1/models.
	catchAll catchAllModels
}

var _ api.StrictServerInterface = (*Server)(nil)

// New returns a server; call MarkReady once migrations are applied, and Close when done. router
// decides which models may be used; client calls upstreams for synchronous responses.
func New(pool *pgxpool.Pool, cfg config.Config, router *upstream.Router, client *upstream.Client, logger *slog.Logger) *Server {
	s := &Server{pool: pool, queries: dbsqlc.New(db.Bounded(pool, cfg.DBTimeout)), cfg: cfg, router: router, client: client,
		hub: newHub(pool, logger), logger: logger, flexRecheck: flexRecheck,
		webhooks: webhook.NewSender(cfg.Webhook.Timeout, cfg.Webhook.AllowPrivate, cfg.Webhook.AllowHosts), resolver: net.DefaultResolver, started: time.Now()}
	s.turns = newTurns(cfg.Files.MaxConcurrent)
	return s
}

// withTx runs fn in a transaction whose statements are bounded by VOLLEY_DB_TIMEOUT.
func (s *Server) withTx(ctx context.Context, fn func(tx db.Tx, q *dbsqlc.Queries) error) error {
	return db.WithBoundedTx(ctx, s.pool, s.cfg.DBTimeout, fn)
}

// dbBound limits ctx to VOLLEY_DB_TIMEOUT, for the statements not sent through s.queries or withTx.
func (s *Server) dbBound(ctx context.Context) (context.Context, context.CancelFunc) {
	return db.Bound(ctx, s.cfg.DBTimeout)
}

// UseMetrics records the API's requests, uploads and batches in m. Call it before Handler.
func (s *Server) UseMetrics(m *metrics.Metrics) { s.metrics = m }

// Close stops the server's background listener.
func (s *Server) Close() { s.hub.close() }

// MarkReady records that the schema is migrated, which /readyz reports.
func (s *Server) MarkReady() { s.ready.Store(true) }

// Handler returns the whole HTTP surface: the generated routes behind observation, body limits and
// authentication, with unknown routes and methods answered in the error envelope.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	// Authentication runs before routing and the route's own checks before the body limit, so that
	// nothing of a body is read for a request that has no key, no route or the wrong method.
	r.Use(s.observe, s.authenticate, checkQuery)
	r.NotFound(notFoundRoute)
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", strings.Join(allowedMethods(r, req), ", "))
		methodNotAllowed(w, req)
	})
	strict := api.NewStrictHandlerWithOptions(s, nil, api.StrictHTTPServerOptions{
		RequestErrorHandlerFunc:  requestErrorHandler,
		ResponseErrorHandlerFunc: writeError,
	})
	return headAsGet(api.HandlerWithOptions(strict, api.ChiServerOptions{
		BaseRouter:       r,
		ErrorHandlerFunc: requestErrorHandler,
		Middlewares:      []api.MiddlewareFunc{s.limitBody},
	}))
}

// allowedMethods are the methods mux serves on req's path, as a 405's Allow header lists them
// (RFC 9110 §15.5.6).
func allowedMethods(mux *chi.Mux, req *http.Request) []string {
	path := req.URL.RawPath
	if path == "" {
		path = req.URL.Path
	}
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if mux.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
			if m == http.MethodGet && isProbe(req.URL.Path) {
				allowed = append(allowed, http.MethodHead)
			}
		}
	}
	return allowed
}

func isProbe(path string) bool { return path == "/healthz" || path == "/readyz" }

// headAsGet serves HEAD on the probes as their GET, which health checkers expect; net/http sends
// the headers of the answer without its body.
func headAsGet(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && isProbe(r.URL.Path) {
			r = r.Clone(r.Context())
			r.Method = http.MethodGet
		}
		next.ServeHTTP(w, r)
	})
}

// Healthz reports that the process serves HTTP.
func (s *Server) Healthz(context.Context, api.HealthzRequestObject) (api.HealthzResponseObject, error) {
	return api.Healthz200JSONResponse{Status: "ok"}, nil
}

// Readyz reports whether the database answers and the schema is migrated.
func (s *Server) Readyz(ctx context.Context, _ api.ReadyzRequestObject) (api.ReadyzResponseObject, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	dbState, migState := "ok", "applied"
	if !s.ready.Load() {
		migState = "pending"
	}
	if err := s.pool.Ping(ctx); err != nil {
		dbState = "unreachable: " + err.Error()
	}
	if dbState != "ok" || !s.ready.Load() {
		return api.Readyz503JSONResponse{Status: "not ready", Database: &dbState, Migrations: &migState}, nil
	}
	return api.Readyz200JSONResponse{Status: "ok", Database: &dbState, Migrations: &migState}, nil
}
