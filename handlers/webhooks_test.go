package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/webhooks"
	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/config"
)

type endpointJSON struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	CreatedAt         int64    `json:"created_at"`
	UpdatedAt         int64    `json:"updated_at"`
	Name              string   `json:"name"`
	URL               string   `json:"url"`
	EventTypes        []string `json:"event_types"`
	SigningSecret     *string  `json:"signing_secret"`
	SigningSecretHint string   `json:"signing_secret_hint"`
}

func allowPrivate(c *config.Config) { c.Webhook.AllowPrivate = true }

func (f *fixture) jsonCall(method, path, key, body string) (int, []byte) {
	f.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	status, _, b := f.do(method, path, key, r, http.Header{"Content-Type": {"application/json"}})
	return status, b
}

func (f *fixture) createEndpoint(key, url string, types ...string) endpointJSON {
	f.t.Helper()
	tb, _ := json.Marshal(types)
	status, body := f.jsonCall(http.MethodPost, "/v1/webhook_endpoints", key, fmt.Sprintf(`{"name":"hooks","url":%q,"event_types":%s}`, url, tb))
	require.Equal(f.t, http.StatusOK, status, string(body))
	var e endpointJSON
	require.NoError(f.t, json.Unmarshal(body, &e))
	return e
}

func (f *fixture) endpointCount() int {
	f.t.Helper()
	var n int
	require.NoError(f.t, f.pool.QueryRow(context.Background(), "SELECT count(*) FROM webhook_endpoints").Scan(&n))
	return n
}

func TestWebhookEndpointLifecycle(t *testing.T) {
	t.Parallel()
	f := setup(t, allowPrivate)
	e := f.createEndpoint(f.alice, "http://127.0.0.1:9/hook", "batch.completed", "batch.failed", "batch.completed")
	require.True(t, strings.HasPrefix(e.ID, "whe_"))
	require.Equal(t, "webhook_endpoint", e.Object)
	require.Equal(t, []string{"batch.completed", "batch.failed"}, e.EventTypes, "repeats are dropped")
	require.NotNil(t, e.SigningSecret)
	require.True(t, strings.HasPrefix(*e.SigningSecret, "whsec_"))
	require.True(t, strings.HasSuffix(strings.TrimRight(*e.SigningSecret, "="), strings.TrimPrefix(e.SigningSecretHint, "whsec_…")))
	require.Equal(t, e.CreatedAt, e.UpdatedAt)

	// Get and list never show the secret again.
	status, body := f.jsonCall(http.MethodGet, "/v1/webhook_endpoints/"+e.ID, f.alice, "")
	require.Equal(t, http.StatusOK, status, string(body))
	require.NotContains(t, string(body), "signing_secret\"")
	require.NotContains(t, string(body), *e.SigningSecret)
	var got endpointJSON
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, e.SigningSecretHint, got.SigningSecretHint)

	// An update that changes nothing leaves updated_at alone; event_types replaces the set.
	status, body = f.jsonCall(http.MethodPost, "/v1/webhook_endpoints/"+e.ID, f.alice, `{"name":"hooks"}`)
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, e.UpdatedAt, got.UpdatedAt)
	_, err := f.pool.Exec(context.Background(), "UPDATE webhook_endpoints SET updated_at = updated_at - interval '1 hour'")
	require.NoError(t, err)
	status, body = f.jsonCall(http.MethodPost, "/v1/webhook_endpoints/"+e.ID, f.alice, `{"name":"renamed","event_types":["batch.expired"],"url":"http://127.0.0.1:10/x"}`)
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, "renamed", got.Name)
	require.Equal(t, "http://127.0.0.1:10/x", got.URL)
	require.Equal(t, []string{"batch.expired"}, got.EventTypes)
	require.GreaterOrEqual(t, got.UpdatedAt, e.UpdatedAt)
	require.Greater(t, got.UpdatedAt, e.UpdatedAt-3600)

	// Rotation returns a new secret once.
	status, body = f.jsonCall(http.MethodPost, "/v1/webhook_endpoints/"+e.ID+"/rotate_secret", f.alice, "")
	require.Equal(t, http.StatusOK, status, string(body))
	var rotated endpointJSON
	require.NoError(t, json.Unmarshal(body, &rotated))
	require.NotEqual(t, *e.SigningSecret, *rotated.SigningSecret)
	var prev *string
	require.NoError(t, f.pool.QueryRow(context.Background(), "SELECT previous_secret FROM webhook_endpoints").Scan(&prev))
	require.Nil(t, prev, "without keep_old_secret_active_for_24_hours the old secret stops at once")
	status, body = f.jsonCall(http.MethodPost, "/v1/webhook_endpoints/"+e.ID+"/rotate_secret", f.alice, `{"keep_old_secret_active_for_24_hours":true}`)
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, f.pool.QueryRow(context.Background(), "SELECT previous_secret FROM webhook_endpoints").Scan(&prev))
	require.Equal(t, *rotated.SigningSecret, *prev)

	// Event types.
	status, body = f.jsonCall(http.MethodGet, "/v1/webhook_event_types", f.alice, "")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"object":"list","data":["batch.completed","batch.failed","batch.expired","batch.cancelled"]}`, string(body))

	// Delete.
	status, body = f.jsonCall(http.MethodDelete, "/v1/webhook_endpoints/"+e.ID, f.alice, "")
	require.Equal(t, http.StatusOK, status, string(body))
	require.JSONEq(t, fmt.Sprintf(`{"id":%q,"object":"webhook_endpoint.deleted","deleted":true}`, e.ID), string(body))
	status, _ = f.jsonCall(http.MethodGet, "/v1/webhook_endpoints/"+e.ID, f.alice, "")
	require.Equal(t, http.StatusNotFound, status)
	require.Zero(t, f.endpointCount())
}

func TestWebhookEndpointsBelongToTheirOwner(t *testing.T) {
	t.Parallel()
	f := setup(t, allowPrivate)
	e := f.createEndpoint(f.alice, "http://127.0.0.1:9/hook", "batch.completed")
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/webhook_endpoints/" + e.ID, ""},
		{http.MethodPost, "/v1/webhook_endpoints/" + e.ID, `{"name":"mine"}`},
		{http.MethodDelete, "/v1/webhook_endpoints/" + e.ID, ""},
		{http.MethodPost, "/v1/webhook_endpoints/" + e.ID + "/rotate_secret", `{}`},
		{http.MethodPost, "/v1/webhook_endpoints/" + e.ID + "/test", `{"event_type":"batch.completed"}`},
		{http.MethodGet, "/v1/webhook_endpoints/" + e.ID + "/deliveries", ""},
	} {
		status, body := f.jsonCall(c.method, c.path, f.bob, c.body)
		require.Equal(t, http.StatusNotFound, status, "%s %s: %s", c.method, c.path, body)
		env := decodeEnvelope(t, body)
		require.Equal(t, "webhook_endpoint_id", strOrEmpty(env.Error.Param))
		require.Contains(t, env.Error.Message, e.ID)
	}
	status, body := f.jsonCall(http.MethodGet, "/v1/webhook_endpoints", f.bob, "")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}`, string(body))
	status, body = f.jsonCall(http.MethodGet, "/v1/webhook_endpoints/"+e.ID, f.alice, "")
	require.Equal(t, http.StatusOK, status, string(body))
	require.Contains(t, string(body), `"name":"hooks"`, "bob's update did not land")
	status, _ = f.jsonCall(http.MethodGet, "/v1/webhook_endpoints", "", "")
	require.Equal(t, http.StatusUnauthorized, status)
}

func TestWebhookEndpointListPages(t *testing.T) {
	t.Parallel()
	f := setup(t, allowPrivate)
	var made []string
	for i := 0; i < 3; i++ {
		made = append(made, f.createEndpoint(f.alice, "http://127.0.0.1:9/hook", "batch.completed").ID)
	}
	c := openai.NewClient(option.WithBaseURL(f.url+"/v1"), option.WithAPIKey(f.alice), option.WithMaxRetries(0))
	var seen []string
	iter := c.Webhooks.ListAutoPaging(context.Background(), webhooksListParams(1))
	for iter.Next() {
		seen = append(seen, iter.Current().ID)
	}
	require.NoError(t, iter.Err())
	require.Equal(t, []string{made[2], made[1], made[0]}, seen, "newest first, one per page")
}

func TestWebhookEndpointBadInput(t *testing.T) {
	t.Parallel()
	f := setup(t, allowPrivate)
	e := f.createEndpoint(f.alice, "http://127.0.0.1:9/hook", "batch.completed")
	long := strings.Repeat("n", 129)
	cases := []struct {
		name, method, path, body string
		status                   int
		code, param, msg         string
	}{
		{"no body", "POST", "/v1/webhook_endpoints", ``, 400, "invalid_json", "", "JSON"},
		{"not JSON", "POST", "/v1/webhook_endpoints", `{"name":`, 400, "invalid_json", "", "could not parse"},
		{"no name", "POST", "/v1/webhook_endpoints", `{"url":"http://127.0.0.1/","event_types":["batch.completed"]}`, 400, "missing_required_parameter", "name", "'name'"},
		{"long name", "POST", "/v1/webhook_endpoints", `{"name":"` + long + `","url":"http://127.0.0.1/","event_types":["batch.completed"]}`, 400, "invalid_value", "name", "129 characters; at most 128"},
		{"no url", "POST", "/v1/webhook_endpoints", `{"name":"a","event_types":["batch.completed"]}`, 400, "missing_required_parameter", "url", "'url'"},
		{"bad scheme", "POST", "/v1/webhook_endpoints", `{"name":"a","url":"ftp://127.0.0.1/","event_types":["batch.completed"]}`, 400, "invalid_url", "url", "scheme must be https or http"},
		{"relative url", "POST", "/v1/webhook_endpoints", `{"name":"a","url":"/hook","event_types":["batch.completed"]}`, 400, "invalid_url", "url", "not an absolute URL"},
		{"no event types", "POST", "/v1/webhook_endpoints", `{"name":"a","url":"http://127.0.0.1/"}`, 400, "missing_required_parameter", "event_types", "at least one of batch.completed"},
		{"empty event types", "POST", "/v1/webhook_endpoints", `{"name":"a","url":"http://127.0.0.1/","event_types":[]}`, 400, "missing_required_parameter", "event_types", "'event_types'"},
		{"unknown event type", "POST", "/v1/webhook_endpoints", `{"name":"a","url":"http://127.0.0.1/","event_types":["batch.completed","response.completed"]}`, 400, "invalid_value", "event_types[1]", "'response.completed' is not an event type Volley sends"},
		{"event types not a list", "POST", "/v1/webhook_endpoints", `{"name":"a","url":"http://127.0.0.1/","event_types":"batch.completed"}`, 400, "invalid_json", "", "could not parse"},
		{"update empty name", "POST", "/v1/webhook_endpoints/" + e.ID, `{"name":" "}`, 400, "missing_required_parameter", "name", "'name'"},
		{"update bad url", "POST", "/v1/webhook_endpoints/" + e.ID, `{"url":"https://user:pw@example.com/"}`, 400, "invalid_url", "url", "user name or password"},
		{"update no event types", "POST", "/v1/webhook_endpoints/" + e.ID, `{"event_types":[]}`, 400, "missing_required_parameter", "event_types", "'event_types'"},
		{"update missing", "POST", "/v1/webhook_endpoints/whe_nope", `{"name":"x"}`, 404, "", "webhook_endpoint_id", "whe_nope"},
		{"rotate bad body", "POST", "/v1/webhook_endpoints/" + e.ID + "/rotate_secret", `{"keep_old_secret_active_for_24_hours":"yes"}`, 400, "invalid_json", "", "could not parse"},
		{"test no type", "POST", "/v1/webhook_endpoints/" + e.ID + "/test", `{}`, 400, "missing_required_parameter", "event_type", "'event_type'"},
		{"test unknown type", "POST", "/v1/webhook_endpoints/" + e.ID + "/test", `{"event_type":"batch.started"}`, 400, "invalid_value", "event_type", "'batch.started'"},
		{"list bad limit", "GET", "/v1/webhook_endpoints?limit=0", ``, 400, "invalid_value", "limit", "between 1 and 100"},
		{"list limit not a number", "GET", "/v1/webhook_endpoints?limit=many", ``, 400, "invalid_value", "limit", "'limit'"},
		{"deliveries bad limit", "GET", "/v1/webhook_endpoints/" + e.ID + "/deliveries?limit=101", ``, 400, "invalid_value", "limit", "between 1 and 100"},
		{"get missing", "GET", "/v1/webhook_endpoints/whe_nope", ``, 404, "", "webhook_endpoint_id", "No webhook endpoint found with id 'whe_nope'"},
		{"delete missing", "DELETE", "/v1/webhook_endpoints/whe_nope", ``, 404, "", "webhook_endpoint_id", "whe_nope"},
	}
	for _, c := range cases {
		status, body := f.jsonCall(c.method, c.path, f.alice, c.body)
		require.Equal(t, c.status, status, "%s: %s", c.name, body)
		env := decodeEnvelope(t, body)
		require.Equal(t, c.code, strOrEmpty(env.Error.Code), c.name)
		require.Equal(t, c.param, strOrEmpty(env.Error.Param), c.name)
		require.Contains(t, env.Error.Message, c.msg, c.name)
	}
	require.Equal(t, 1, f.endpointCount(), "nothing was written")
	status, body := f.jsonCall(http.MethodGet, "/v1/webhook_endpoints/"+e.ID, f.alice, "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `"url":"http://127.0.0.1:9/hook"`, "refused updates changed nothing")
}

func TestWebhookEndpointsAtMostFiftyPerOwner(t *testing.T) {
	t.Parallel()
	f := setup(t, allowPrivate)
	_, err := f.pool.Exec(context.Background(), `INSERT INTO webhook_endpoints (id, owner, name, url, event_types, secret, created_at, updated_at)
		SELECT 'whe_' || i, 'alice', 'n', 'http://127.0.0.1/', '{batch.completed}', 'whsec_x', now(), now() FROM generate_series(1, 50) i`)
	require.NoError(t, err)
	status, body := f.jsonCall(http.MethodPost, "/v1/webhook_endpoints", f.alice, `{"name":"a","url":"http://127.0.0.1/","event_types":["batch.completed"]}`)
	require.Equal(t, http.StatusBadRequest, status)
	env := decodeEnvelope(t, body)
	require.Equal(t, "limit_exceeded", strOrEmpty(env.Error.Code))
	require.Contains(t, env.Error.Message, "50 webhook endpoints")
	f.createEndpoint(f.bob, "http://127.0.0.1/", "batch.completed") // another owner has room
}

// By default an endpoint may not point into the operator's network.
func TestWebhookEndpointPrivateAddressRefusedByDefault(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, u := range []string{"http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.0.0.5/", "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://192.168.1.20/"} {
		status, body := f.jsonCall(http.MethodPost, "/v1/webhook_endpoints", f.alice, fmt.Sprintf(`{"name":"a","url":%q,"event_types":["batch.completed"]}`, u))
		require.Equal(t, http.StatusBadRequest, status, u)
		env := decodeEnvelope(t, body)
		require.Equal(t, "invalid_url", strOrEmpty(env.Error.Code), u)
		require.Equal(t, "url", strOrEmpty(env.Error.Param), u)
		require.Contains(t, env.Error.Message, "VOLLEY_WEBHOOK_ALLOW_PRIVATE", u)
	}
	require.Zero(t, f.endpointCount())

	// An endpoint registered while private addresses were allowed is still not reached.
	_, err := f.pool.Exec(context.Background(), `INSERT INTO webhook_endpoints (id, owner, name, url, event_types, secret, created_at, updated_at)
		VALUES ('whe_old', 'alice', 'n', 'http://127.0.0.1:9/', '{batch.completed}', 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', now(), now())`)
	require.NoError(t, err)
	status, body := f.jsonCall(http.MethodPost, "/v1/webhook_endpoints/whe_old/test", f.alice, `{"event_type":"batch.completed"}`)
	require.Equal(t, http.StatusBadRequest, status)
	env := decodeEnvelope(t, body)
	require.Equal(t, "webhook_unreachable", strOrEmpty(env.Error.Code))
	require.Contains(t, env.Error.Message, "not a public address")
}

func TestWebhookTestDelivery(t *testing.T) {
	t.Parallel()
	f := setup(t, allowPrivate)
	var secret atomic.Value
	var got atomic.Value
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := openai.NewClient(option.WithAPIKey("x"), option.WithWebhookSecret(secret.Load().(string)))
		ev, err := c.Webhooks.Unwrap(body, r.Header)
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		got.Store(ev.Type + " " + ev.Data.ID)
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	e := f.createEndpoint(f.alice, srv.URL+"/hook", "batch.completed")
	secret.Store(*e.SigningSecret)

	c := openai.NewClient(option.WithBaseURL(f.url+"/v1"), option.WithAPIKey(f.alice), option.WithMaxRetries(0))
	for _, typ := range []string{"batch.completed", "batch.failed", "batch.expired", "batch.cancelled"} {
		res, err := c.Webhooks.Test(context.Background(), e.ID, webhooksTestParams(typ))
		require.NoError(t, err, typ)
		require.True(t, res.Success)
		require.EqualValues(t, http.StatusOK, res.StatusCode)
		require.Equal(t, typ, res.EventType)
		require.Equal(t, e.ID, res.WebhookEndpointID)
		require.True(t, strings.HasPrefix(got.Load().(string), typ+" batch_"), "the receiver verified a %s", typ)
	}
	status.Store(http.StatusTeapot)
	res, err := c.Webhooks.Test(context.Background(), e.ID, webhooksTestParams("batch.failed"))
	require.NoError(t, err)
	require.True(t, res.Success, "the endpoint answered")
	require.EqualValues(t, http.StatusTeapot, res.StatusCode)

	// After a rotation the receiver still holding the old secret refuses the sample.
	rotated, err := c.Webhooks.RotateSecret(context.Background(), e.ID, webhooksRotateParams(false))
	require.NoError(t, err)
	res, err = c.Webhooks.Test(context.Background(), e.ID, webhooksTestParams("batch.completed"))
	require.NoError(t, err)
	require.EqualValues(t, http.StatusUnauthorized, res.StatusCode)
	secret.Store(rotated.SigningSecret)
	status.Store(http.StatusOK)
	res, err = c.Webhooks.Test(context.Background(), e.ID, webhooksTestParams("batch.completed"))
	require.NoError(t, err)
	require.EqualValues(t, http.StatusOK, res.StatusCode)
	// Rotating while keeping the old secret: a receiver with either verifies.
	kept, err := c.Webhooks.RotateSecret(context.Background(), e.ID, webhooksRotateParams(true))
	require.NoError(t, err)
	for _, s := range []string{rotated.SigningSecret, kept.SigningSecret} {
		secret.Store(s)
		res, err = c.Webhooks.Test(context.Background(), e.ID, webhooksTestParams("batch.completed"))
		require.NoError(t, err)
		require.EqualValues(t, http.StatusOK, res.StatusCode)
	}

	srv.Close()
	st, body := f.jsonCall(http.MethodPost, "/v1/webhook_endpoints/"+e.ID+"/test", f.alice, `{"event_type":"batch.completed"}`)
	require.Equal(t, http.StatusBadRequest, st)
	env := decodeEnvelope(t, body)
	require.Equal(t, "webhook_unreachable", strOrEmpty(env.Error.Code))
	require.Contains(t, env.Error.Message, "cannot connect")
}

func TestWebhookDeliveriesAreListed(t *testing.T) {
	t.Parallel()
	f := setup(t, allowPrivate)
	e := f.createEndpoint(f.alice, "http://127.0.0.1:9/hook", "batch.completed")
	ctx := context.Background()
	_, err := f.pool.Exec(ctx, `INSERT INTO webhook_events (id, owner, type, data, created_at) VALUES
		('evt_1', 'alice', 'batch.completed', '{"id":"batch_1"}', now()), ('evt_2', 'alice', 'batch.cancelled', '{"id":"batch_2"}', now()),
		('evt_3', 'alice', 'batch.expired', '{"id":"batch_3"}', now())`)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `INSERT INTO webhook_deliveries (endpoint_id, event_id, state, attempts, last_status, last_error, last_attempt_at, delivered_at) VALUES
		($1, 'evt_1', 'succeeded', 1, 200, NULL, now(), now()),
		($1, 'evt_2', 'pending', 3, 503, 'the endpoint answered 503', now(), NULL),
		($1, 'evt_3', 'failed', 9, NULL, 'no answer within 15s', now(), NULL)`, e.ID)
	require.NoError(t, err)

	status, body := f.jsonCall(http.MethodGet, "/v1/webhook_endpoints/"+e.ID+"/deliveries?limit=2", f.alice, "")
	require.Equal(t, http.StatusOK, status, string(body))
	var page struct {
		Data []struct {
			ID             string  `json:"id"`
			Object         string  `json:"object"`
			EventType      string  `json:"event_type"`
			EndpointID     string  `json:"webhook_endpoint_id"`
			Status         string  `json:"status"`
			Attempts       int     `json:"attempts"`
			NextAttemptAt  *int64  `json:"next_attempt_at"`
			DeliveredAt    *int64  `json:"delivered_at"`
			LastStatusCode *int    `json:"last_status_code"`
			LastError      *string `json:"last_error"`
		} `json:"data"`
		HasMore bool    `json:"has_more"`
		LastID  *string `json:"last_id"`
	}
	require.NoError(t, json.Unmarshal(body, &page))
	require.True(t, page.HasMore)
	require.Len(t, page.Data, 2)
	d3, d2 := page.Data[0], page.Data[1]
	require.Equal(t, "evt_3", d3.ID)
	require.Equal(t, "webhook_endpoint.delivery", d3.Object)
	require.Equal(t, "failed", d3.Status)
	require.Equal(t, 9, d3.Attempts)
	require.Nil(t, d3.NextAttemptAt)
	require.Nil(t, d3.LastStatusCode)
	require.Equal(t, "no answer within 15s", *d3.LastError)
	require.Equal(t, "evt_2", d2.ID)
	require.Equal(t, "batch.cancelled", d2.EventType)
	require.Equal(t, "pending", d2.Status)
	require.NotNil(t, d2.NextAttemptAt)
	require.Equal(t, 503, *d2.LastStatusCode)
	require.Equal(t, e.ID, d2.EndpointID)

	status, body = f.jsonCall(http.MethodGet, "/v1/webhook_endpoints/"+e.ID+"/deliveries?limit=2&after="+*page.LastID, f.alice, "")
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, json.Unmarshal(body, &page))
	require.False(t, page.HasMore)
	require.Len(t, page.Data, 1)
	require.Equal(t, "succeeded", page.Data[0].Status)
	require.NotNil(t, page.Data[0].DeliveredAt)
	require.Nil(t, page.Data[0].LastError)

	// Deleting the endpoint drops its deliveries.
	status, _ = f.jsonCall(http.MethodDelete, "/v1/webhook_endpoints/"+e.ID, f.alice, "")
	require.Equal(t, http.StatusOK, status)
	var n int
	require.NoError(t, f.pool.QueryRow(ctx, "SELECT count(*) FROM webhook_deliveries").Scan(&n))
	require.Zero(t, n)
}

func webhooksListParams(limit int64) webhooks.WebhookListParams {
	return webhooks.WebhookListParams{Limit: openai.Int(limit)}
}

func webhooksTestParams(typ string) webhooks.WebhookTestParams {
	return webhooks.WebhookTestParams{EventType: webhooks.WebhookTestParamsEventType(typ)}
}

func webhooksRotateParams(keep bool) webhooks.WebhookRotateSecretParams {
	return webhooks.WebhookRotateSecretParams{KeepOldSecretActiveFor24Hours: openai.Bool(keep)}
}
