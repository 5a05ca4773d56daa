package handlers

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/db/dbsqlc"
)

func TestSetModelAvailability(t *testing.T) {
	t.Parallel()
	f := setup(t)
	admin := f.newAdminKey("ops")
	post := func(key, model, body string) (int, []byte) {
		status, _, b := f.do(http.MethodPost, "/v1/models/"+model+"/availability", key, strings.NewReader(body),
			http.Header{"Content-Type": {"application/json"}})
		return status, b
	}

	status, body := post(admin, "llama-70b", `{"state":"coming","note":"scaling up"}`)
	require.Equal(t, http.StatusOK, status, string(body))
	var ev struct {
		Object, Model, State, Note string
		CreatedBy                  string `json:"created_by"`
		CreatedAt                  int64  `json:"created_at"`
		ID                         int64
	}
	require.NoError(t, json.Unmarshal(body, &ev))
	require.Equal(t, "model.availability", ev.Object)
	require.Equal(t, "llama-70b", ev.Model)
	require.Equal(t, "coming", ev.State)
	require.Equal(t, "scaling up", ev.Note)
	require.Equal(t, "ops", ev.CreatedBy)
	require.NotZero(t, ev.CreatedAt)

	status, body = post(admin, "llama-70b", `{"state":"live","note":null}`)
	require.Equal(t, http.StatusOK, status, string(body))
	latest, err := dbsqlc.New(f.pool).ModelAvailabilityGet(t.Context(), "llama-70b")
	require.NoError(t, err)
	require.Equal(t, "live", latest.State, "the latest event is the state")

	for _, tc := range []struct {
		name, key, body string
		status          int
		code, fragment  string
	}{
		{"a plain key", f.bob, `{"state":"absent"}`, http.StatusNotFound, "", "Invalid URL"},
		{"no key", "", `{"state":"absent"}`, http.StatusUnauthorized, "", ""},
		{"unknown state", admin, `{"state":"sleeping"}`, http.StatusBadRequest, "", "state"},
		{"no state", admin, `{}`, http.StatusBadRequest, "", "state"},
		{"long note", admin, `{"state":"live","note":"` + strings.Repeat("x", 1001) + `"}`, http.StatusBadRequest, "", "note"},
		{"not JSON", admin, `{"state":`, http.StatusBadRequest, "", ""},
	} {
		status, body := post(tc.key, "m", tc.body)
		require.Equal(t, tc.status, status, "%s: %s", tc.name, body)
		e := decodeEnvelope(t, body)
		if tc.code != "" {
			require.NotNil(t, e.Error.Code, tc.name)
			require.Equal(t, tc.code, *e.Error.Code, tc.name)
		}
		require.Contains(t, e.Error.Message, tc.fragment, tc.name)
	}
	var n int
	require.NoError(t, f.pool.QueryRow(t.Context(), "SELECT count(*) FROM model_availability_events WHERE model = 'm'").Scan(&n))
	require.Zero(t, n, "refused calls write nothing")
}
