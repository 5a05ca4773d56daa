package handlers

import (
	"context"
	"sync"
	"time"
)

// How GET /v1/models learns the models behind the catch-all route: it asks that route's upstream,
// keeps the answer a while, and after a failure waits a little before asking again, so that a
// listing never waits on an upstream more than once per period.
const (
	catchAllModelsTTL     = 30 * time.Second
	catchAllModelsRetry   = 5 * time.Second
	catchAllModelsTimeout = 3 * time.Second
)

// catchAllModels caches the catch-all upstream's model list.
type catchAllModels struct {
	mu      sync.Mutex // held while asking, so that concurrent listings ask once
	models  []string
	fetched time.Time
	fresh   time.Duration // how long the last answer (or failure) stands
	// now is the clock, for tests.
	now func() time.Time
}

// list returns the models the catch-all upstream serves, asking it when the last answer is stale.
// On failure it returns the last good list, or none.
func (c *catchAllModels) list(ctx context.Context, s *Server, upstreamName string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	if !c.fetched.IsZero() && now().Sub(c.fetched) < c.fresh {
		return c.models
	}
	models, err := s.client.Models(ctx, upstreamName, catchAllModelsTimeout)
	c.fetched = now()
	if err != nil {
		s.logger.Warn("list the catch-all upstream's models", "upstream", upstreamName, "error", err.Error())
		c.fresh = catchAllModelsRetry
		return c.models
	}
	c.models, c.fresh = models, catchAllModelsTTL
	return models
}
