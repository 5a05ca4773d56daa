package handlers

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

type responsePage struct {
	Object  string           `json:"object"`
	Data    []map[string]any `json:"data"`
	FirstID *string          `json:"first_id"`
	LastID  *string          `json:"last_id"`
	HasMore bool             `json:"has_more"`
}

func (f *fixture) listResponses(t *testing.T, key, query string) responsePage {
	t.Helper()
	status, _, body := f.do(http.MethodGet, "/v1/responses"+query, key, nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	var p responsePage
	require.NoError(t, json.Unmarshal(body, &p))
	require.Equal(t, "list", p.Object)
	return p
}

func (f *fixture) queueResponse(t *testing.T, key string) string {
	t.Helper()
	status, body := f.postJSON("/v1/responses", key, `{"model":"m1","input":"hi","background":true}`)
	require.Equal(t, http.StatusOK, status, string(body))
	var r struct{ ID string }
	require.NoError(t, json.Unmarshal(body, &r))
	return r.ID
}

func TestListResponsesPagesNewestFirstPerOwner(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	var ids []string
	for range 4 {
		ids = append(ids, f.queueResponse(t, f.alice))
	}
	bobs := f.queueResponse(t, f.bob)
	status, _ := f.postJSON("/v1/responses/"+ids[1]+"/cancel", f.alice, `{}`)
	require.Equal(t, http.StatusOK, status)
	status, _, body := f.do(http.MethodDelete, "/v1/responses/"+ids[0], f.alice, nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))

	all := f.listResponses(t, f.alice, "")
	require.False(t, all.HasMore)
	var got []string
	for _, r := range all.Data {
		got = append(got, r["id"].(string))
		require.Equal(t, "response", r["object"])
	}
	require.Equal(t, []string{ids[3], ids[2], ids[1]}, got, "newest first, the deleted one absent")
	require.Equal(t, "queued", all.Data[0]["status"])
	require.Equal(t, "cancelled", all.Data[2]["status"], "each item as GET answers it")
	require.Equal(t, ids[3], *all.FirstID)
	require.Equal(t, ids[1], *all.LastID)

	first := f.listResponses(t, f.alice, "?limit=2")
	require.True(t, first.HasMore)
	require.Len(t, first.Data, 2)
	rest := f.listResponses(t, f.alice, "?limit=2&after="+*first.LastID)
	require.False(t, rest.HasMore)
	require.Len(t, rest.Data, 1)
	require.Equal(t, ids[1], rest.Data[0]["id"])

	bob := f.listResponses(t, f.bob, "")
	require.Len(t, bob.Data, 1)
	require.Equal(t, bobs, bob.Data[0]["id"], "another owner's responses are not listed")

	require.Len(t, f.listResponses(t, f.alice, "?background=true").Data, 3)
	none := f.listResponses(t, f.alice, "?background=false")
	require.Empty(t, none.Data)
	require.Nil(t, none.FirstID)
	require.Nil(t, none.LastID)
}

func TestListResponsesRejectsBadParameters(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	for _, tc := range []struct{ query, param, message string }{
		{"?limit=0", "limit", "between 1 and 100"},
		{"?limit=101", "limit", "between 1 and 100"},
		{"?limit=ten", "limit", "limit"},
		{"?background=maybe", "background", "background"},
	} {
		status, _, body := f.do(http.MethodGet, "/v1/responses"+tc.query, f.alice, nil, nil)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", tc.query, body)
		e := decodeEnvelope(t, body)
		require.Equal(t, tc.param, strOrEmpty(e.Error.Param), tc.query)
		require.Contains(t, e.Error.Message, tc.message, tc.query)
	}
	status, _, _ := f.do(http.MethodGet, "/v1/responses", "", nil, nil)
	require.Equal(t, http.StatusUnauthorized, status)
}
