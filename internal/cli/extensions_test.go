package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// A server without Volley's retry route, answering as OpenAI and Volley answer an unknown route
// (or with a bare 404), is named as lacking the extension; a batch that does not exist is not.
func TestRetryOnAServerWithoutTheRoute(t *testing.T) {
	t.Parallel()
	const batch = `{"id":"batch_a","object":"batch","endpoint":"/v1/chat/completions","input_file_id":"file-a",
		"completion_window":"24h","status":"failed","created_at":1,"request_counts":{"total":1,"completed":0,"failed":1}}`
	notFound := func(w http.ResponseWriter, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"message":%q,"type":"invalid_request_error","param":null,"code":null}}`, msg)
	}
	for _, tc := range []struct {
		name, retryMessage, id, want string
	}{
		{"unknown route", "Invalid URL (POST /v1/batches/batch_a/retry)", "batch_a", "does not offer batch retry"},
		{"bare 404, batch exists", "Not found", "batch_a", "does not offer batch retry"},
		{"no such batch", "No batch found with id 'batch_b'.", "batch_b", "retry batch: 404 No batch found with id 'batch_b'."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodPost && r.URL.Path == "/v1/batches/"+tc.id+"/retry":
					notFound(w, tc.retryMessage)
				case r.Method == http.MethodGet && r.URL.Path == "/v1/batches/batch_a":
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprint(w, batch)
				default:
					notFound(w, "No batch found with id '"+tc.id+"'.")
				}
			}))
			defer srv.Close()
			var stdout, stderr bytes.Buffer
			env := map[string]string{"OPENAI_BASE_URL": srv.URL + "/v1", "OPENAI_API_KEY": "sk-test"}
			err := Batch(t.Context(), []string{"retry", tc.id}, IO{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }})
			require.ErrorContains(t, err, tc.want)
			require.Empty(t, stdout.String())
		})
	}
}

// Watching on a server without the requests route shows the counts alone, asking once.
func TestWatchOnAServerWithoutRequestsRoute(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	asked := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/batches/batch_a":
			fmt.Fprint(w, `{"id":"batch_a","object":"batch","endpoint":"/v1/chat/completions","input_file_id":"file-a",
				"completion_window":"24h","status":"completed","created_at":1,"completed_at":2,
				"request_counts":{"total":2,"completed":1,"failed":1}}`)
		default:
			mu.Lock()
			asked++
			mu.Unlock()
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":{"message":"Invalid URL (GET %s)","type":"invalid_request_error","param":null,"code":null}}`, r.URL.Path)
		}
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	env := map[string]string{"OPENAI_BASE_URL": srv.URL + "/v1", "OPENAI_API_KEY": "sk-test"}
	err := Batch(t.Context(), []string{"watch", "batch_a"}, IO{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }})
	var exit *ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 1, exit.Code, "one request failed")
	require.Equal(t, "batch_a completed: 1 of 2 requests completed, 1 failed\n", stdout.String())
	require.Contains(t, stderr.String(), "batch_a completed: 2/2 done (100%), 1 completed, 1 failed")
	require.NotContains(t, stderr.String(), "Invalid URL")
	require.Equal(t, 1, asked)
}
