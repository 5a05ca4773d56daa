package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/chaos"
)

// Against a running Volley: every admin operation of openapi.yaml is a 404 in the OpenAI envelope
// for a plain key and works for an admin key, and the admin-only reach of the other routes (owner=
// on the list routes, everyone's queue) is refused to a plain key and read-only for an admin.
func TestAdminRoutesAndParametersNeedAnAdminKey(t *testing.T) {
	t.Parallel()
	m := startMock(t)
	v := startVolley(t, append(dispatchEnv(t, m, 10), "VOLLEY_MODEL_TRICKLE_INTERVAL=1h")...)
	ops, ok := v.adminKey("ops")
	require.True(t, ok, "volley keys create --admin")
	alice, bob := v.key("alice"), v.key("bob")

	spec, err := chaos.Operations()
	require.NoError(t, err)
	admin := 0
	for _, op := range spec {
		if !op.Admin {
			continue
		}
		admin++
		path := op.URL("", map[string]string{"model": "held"}, func(string) string { return "x" })
		body := ""
		if op.Method == http.MethodPost {
			body = `{"state":"coming","note":"scaled to zero"}`
		}
		status, b := v.api(op.Method, path, alice, body, nil)
		require.Equal(t, http.StatusNotFound, status, "%s with a plain key: %s", op, b)
		var env struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(b, &env), "%s: %s", op, b)
		require.Equal(t, "invalid_request_error", env.Error.Type, op.String())
		require.Contains(t, env.Error.Message, "Invalid URL", op.String())

		status, b = v.api(op.Method, path, ops, body, nil)
		require.Equal(t, http.StatusOK, status, "%s with an admin key: %s", op, b)
	}
	require.GreaterOrEqual(t, admin, 2, "the spec marks its admin operations")

	// The POST above marked "held" coming: bob's requests for it wait (one passes as the trickle).
	bobClient := v.client(bob)
	batch := createBatch(t, bobClient, uploadLines(t, bobClient, reqLine("b1", "held", ""), reqLine("b2", "held", ""), reqLine("b3", "held", "")), "24h")

	for _, path := range []string{"/v1/batches", "/v1/files", "/v1/batches/" + batch.ID + "/requests"} {
		withOwner := path + "?owner=bob"
		status, b := v.api(http.MethodGet, withOwner, alice, "", nil)
		require.Equal(t, http.StatusBadRequest, status, "%s with a plain key: %s", withOwner, b)
		require.Contains(t, string(b), `"param":"owner"`, withOwner)

		var list struct {
			Data []json.RawMessage `json:"data"`
		}
		status, b = v.api(http.MethodGet, withOwner, ops, "", &list)
		require.Equal(t, http.StatusOK, status, "%s with an admin key: %s", withOwner, b)
		require.NotEmpty(t, list.Data, "an admin reads bob's %s", path)
		status, _ = v.api(http.MethodGet, path, ops, "", &list)
		if strings.Contains(path, "/requests") {
			require.Equal(t, http.StatusNotFound, status, "without owner= an admin reads its own objects")
		} else {
			require.Equal(t, http.StatusOK, status)
			require.Empty(t, list.Data, "ops itself has no %s", path)
		}
	}
	// Read-only: owner= does not reach the routes that act.
	status, b := v.api(http.MethodPost, "/v1/batches/"+batch.ID+"/cancel?owner=bob", ops, "", nil)
	require.Equal(t, http.StatusNotFound, status, string(b))

	// The queue: every key sees a model's totals, and its own share; the deadline windows count
	// the caller's own requests, or everyone's for an admin key.
	type queue struct {
		Scope string `json:"windows_scope"`
		Data  []struct {
			Model      string `json:"model"`
			Pending    int64  `json:"pending"`
			OwnPending int64  `json:"own_pending"`
			Windows    []struct {
				Pending int64 `json:"pending"`
			} `json:"deadline_windows"`
		} `json:"data"`
	}
	held := func(key string) (scope string, pending, own, windowed int64) {
		var q queue
		status, b := v.api(http.MethodGet, "/v1/queue", key, "", &q)
		require.Equal(t, http.StatusOK, status, string(b))
		for _, d := range q.Data {
			if d.Model == "held" {
				for _, w := range d.Windows {
					windowed += w.Pending
				}
				return q.Scope, d.Pending, d.OwnPending, windowed
			}
		}
		return q.Scope, 0, 0, 0
	}
	// Once the trickle has let bob's one request through, the other two wait for good.
	require.Eventually(t, func() bool {
		b, err := bobClient.Batches.Get(ctx(t), batch.ID)
		require.NoError(t, err)
		return b.RequestCounts.Completed == 1
	}, 20*time.Second, 20*time.Millisecond, "the trickle lets one request of bob's through")
	scope, pending, own, windowed := held(ops)
	require.Equal(t, int64(2), pending)
	require.Equal(t, "all", scope)
	require.Zero(t, own)
	require.Equal(t, pending, windowed, "an admin's windows count everyone's")
	scope, pending2, own, windowed := held(bob)
	require.Equal(t, "own", scope)
	require.Equal(t, pending, pending2)
	require.Equal(t, pending, own)
	require.Equal(t, pending, windowed)
	scope, pending2, own, windowed = held(alice)
	require.Equal(t, "own", scope)
	require.Equal(t, pending, pending2, "the model's total is everyone's")
	require.Zero(t, own, "alice has none of bob's")
	require.Zero(t, windowed, "alice's windows count only hers")
}
