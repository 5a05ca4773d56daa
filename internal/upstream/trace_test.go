package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSendCarriesTheCallsIdentity(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	c, route := setup(t, srv.URL+"/v1", nil)

	call := Call{RequestID: "batch_req_abc", BatchID: "batch_1", CustomID: "q/1 é%", Attempt: 1}
	for range 2 {
		out := c.Send(WithCall(context.Background(), call), route, "/v1/chat/completions", []byte(`{}`))
		require.Equal(t, 200, out.StatusCode)
	}
	out := c.Send(context.Background(), route, "/v1/chat/completions", []byte(`{}`))
	require.Equal(t, 200, out.StatusCode)

	require.Len(t, seen, 3)
	traceparent := regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-01$`)
	first := traceparent.FindStringSubmatch(seen[0].Get("traceparent"))
	second := traceparent.FindStringSubmatch(seen[1].Get("traceparent"))
	require.NotNil(t, first, seen[0].Get("traceparent"))
	require.NotNil(t, second)
	require.Equal(t, TraceID("batch_req_abc"), first[1])
	require.Equal(t, first[1], second[1], "attempts of one request share a trace")
	require.NotEqual(t, first[2], second[2], "each attempt is a span of its own")

	require.Equal(t, "batch_req_abc", seen[0].Get(HeaderRequestID))
	require.Equal(t, "batch_1", seen[0].Get(HeaderBatchID))
	customID, err := url.PathUnescape(seen[0].Get(HeaderCustomID))
	require.NoError(t, err)
	require.Equal(t, "q/1 é%", customID, "a custom_id that is not plain ASCII is percent-encoded and decodes back")
	require.Equal(t, "research", seen[0].Get("X-Team"), "the upstream's own headers are kept")
	require.Equal(t, "Bearer sk-upstream", seen[0].Get("Authorization"))

	require.Empty(t, seen[2].Get("traceparent"), "a call that names no request carries no identity")
	require.Empty(t, seen[2].Get(HeaderRequestID))
	require.Equal(t, "research", seen[2].Get("X-Team"))
}

func TestHeaderSafe(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain-id_1": "plain-id_1",
		"a b/c":      "a b/c",
		"100%":       "100%25",
		"é":          "%C3%A9",
		"line\nfeed": "line%0Afeed",
	} {
		require.Equal(t, want, headerSafe(in), in)
	}
}
