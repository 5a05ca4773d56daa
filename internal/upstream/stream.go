package upstream

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Open posts body, unchanged, to endpoint on route's upstream asking for server-sent events, and
// returns the live answer for the caller to read and close. Unlike Send it does not read the
// body and applies no timeout of its own beyond ctx: a stream lasts as long as the upstream
// keeps writing.
func (c *Client) Open(ctx context.Context, route Route, endpoint string, body []byte) (*http.Response, error) {
	var uc *upstreamClient
	if route.Upstream != nil {
		uc = c.upstreams[route.Upstream.Name]
	}
	if uc == nil {
		return nil, fmt.Errorf("no upstream client for the route of model %q", route.Model)
	}
	target, ok := uc.urls[endpoint]
	if !ok {
		target = uc.base + strings.TrimPrefix(endpoint, "/v1")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", uc.name, err)
	}
	req.Header = uc.header.Clone()
	req.Header.Set("Accept", "text/event-stream")
	resp, err := uc.transport.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", uc.name, err)
	}
	return resp, nil
}
