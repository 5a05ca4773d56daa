package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestModelsSetAvailability(t *testing.T) {
	t.Parallel()
	var gotPath, gotAuth string
	var gotBody map[string]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotAuth = r.URL.EscapedPath(), r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &gotBody)
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer sk-admin" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":{"message":"Invalid URL (POST /v1/models/m/availability)","type":"invalid_request_error","param":null,"code":null}}`)
			return
		}
		fmt.Fprintf(w, `{"object":"model.availability","id":7,"model":"llama/70b","state":%q,"note":%q,"created_by":"ops","created_at":1}`, gotBody["state"], gotBody["note"])
	}))
	defer srv.Close()
	run := func(key string, args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		env := map[string]string{"OPENAI_BASE_URL": srv.URL + "/v1", "OPENAI_API_KEY": key}
		err := Models(t.Context(), args, IO{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }})
		return stdout.String(), err
	}

	out, err := run("sk-admin", "set-availability", "llama/70b", "coming", "--note", "scaling up")
	require.NoError(t, err)
	require.Equal(t, "llama/70b is coming (event 7)\n", out)
	require.Equal(t, "/v1/models/llama%2F70b/availability", gotPath)
	require.Equal(t, "Bearer sk-admin", gotAuth)
	require.Equal(t, map[string]string{"state": "coming", "note": "scaling up"}, gotBody)

	out, err = run("sk-admin", "set-availability", "--json", "llama/70b", "live")
	require.NoError(t, err)
	require.Contains(t, out, `"state": "live"`)

	_, err = run("sk-user", "set-availability", "m", "live")
	require.EqualError(t, err, "set availability: 404 Invalid URL (POST /v1/models/m/availability)")

	for _, args := range [][]string{
		{},
		{"nope"},
		{"set-availability", "m"},
		{"set-availability", "m", "sleeping"},
		{"set-availability", "m", "live", "extra"},
	} {
		_, err := run("sk-admin", args...)
		var usage *UsageError
		require.ErrorAs(t, err, &usage, "%v", args)
	}
	_, err = run("", "set-availability", "m", "live")
	require.ErrorContains(t, err, "OPENAI_API_KEY is not set")
}
