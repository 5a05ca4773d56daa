package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDashboardServesPagesAndAssetsUnderItsPolicy(t *testing.T) {
	t.Parallel()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(With(api))
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		contentType  string
		body         string
	}{
		{"GET", "/", 200, "text/html", `<script type="module" src="/ui/app.js">`},
		{"GET", "/ui/", 200, "text/html", "<title>Volley</title>"},
		{"GET", "/ui", 200, "text/html", "<title>Volley</title>"},
		{"GET", "/ui/app.js", 200, "text/javascript", "sessionStorage"},
		{"GET", "/ui/style.css", 200, "text/css", "--accent"},
		{"HEAD", "/", 200, "text/html", ""},
		{"GET", "/ui/nope.js", 404, "text/plain", "not found"},
		{"GET", "/ui/../go.mod", 404, "text/plain", "not found"},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, tc.status, res.StatusCode, "%s %s", tc.method, tc.path)
		require.True(t, strings.HasPrefix(res.Header.Get("Content-Type"), tc.contentType), "%s: %s", tc.path, res.Header.Get("Content-Type"))
		require.Contains(t, string(b), tc.body, tc.path)
		require.Equal(t, ContentSecurityPolicy, res.Header.Get("Content-Security-Policy"), tc.path)
		require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	}
	// Everything else is the API's, whatever the method or path.
	for _, tc := range []struct{ method, path string }{{"GET", "/v1/batches"}, {"POST", "/"}, {"DELETE", "/ui/app.js"}, {"GET", "/healthz"}, {"GET", "/uix"}} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusTeapot, res.StatusCode, "%s %s", tc.method, tc.path)
		require.Empty(t, res.Header.Get("Content-Security-Policy"))
	}
}

func TestPolicyAllowsNothingFromElsewhere(t *testing.T) {
	t.Parallel()
	for _, d := range strings.Split(ContentSecurityPolicy, ";") {
		require.NotContains(t, d, "http", d)
		require.NotContains(t, d, "unsafe", d)
		require.NotContains(t, d, "*", d)
	}
	require.Contains(t, ContentSecurityPolicy, "default-src 'none'")
}
