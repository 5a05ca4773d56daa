package webhook

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"
)

// unwrap verifies a delivery exactly as a receiver using the official Go SDK does.
func unwrap(t *testing.T, secret string, body []byte, h http.Header) error {
	t.Helper()
	c := openai.NewClient(option.WithAPIKey("unused"), option.WithWebhookSecret(secret))
	_, err := c.Webhooks.Unwrap(body, h)
	return err
}

func signedHeaders(t *testing.T, secrets []string, id string, ts int64, body []byte) http.Header {
	t.Helper()
	sig, err := Sign(secrets, id, ts, body)
	require.NoError(t, err)
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", sig)
	return h
}

func TestSignaturesVerifyWithTheGoSDK(t *testing.T) {
	t.Parallel()
	secret, other := NewSecret(), NewSecret()
	require.True(t, strings.HasPrefix(secret, "whsec_"))
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	require.Len(t, key, 32)
	require.NotEqual(t, secret, other)

	now := time.Now()
	for _, typ := range EventTypes {
		body, err := Body("evt_1", typ, now, []byte(`{"id": "batch_1"}`))
		require.NoError(t, err)
		require.JSONEq(t, `{"id":"evt_1","object":"event","type":"`+typ+`","created_at":`+strconv.FormatInt(now.Unix(), 10)+`,"data":{"id":"batch_1"}}`, string(body))
		h := signedHeaders(t, []string{secret}, "evt_1", now.Unix(), body)
		require.NoError(t, unwrap(t, secret, body, h), typ)

		c := openai.NewClient(option.WithAPIKey("unused"), option.WithWebhookSecret(secret))
		ev, err := c.Webhooks.Unwrap(body, h)
		require.NoError(t, err)
		require.Equal(t, typ, ev.Type)
		require.Equal(t, "evt_1", ev.ID)
		require.Equal(t, "batch_1", ev.Data.ID)
	}

	body, _ := Body("evt_2", BatchCompleted, now, []byte(`{"id":"batch_2"}`))
	h := signedHeaders(t, []string{secret}, "evt_2", now.Unix(), body)
	require.Error(t, unwrap(t, other, body, h), "another secret does not verify")
	require.Error(t, unwrap(t, secret, append(body[:len(body):len(body)], ' '), h), "a changed body does not verify")
	stale := signedHeaders(t, []string{secret}, "evt_2", now.Add(-10*time.Minute).Unix(), body)
	require.Error(t, unwrap(t, secret, body, stale), "the timestamp is signed and checked")

	// During a rotation that keeps the old secret, each of the two verifies.
	both := signedHeaders(t, []string{other, secret}, "evt_2", now.Unix(), body)
	require.Len(t, strings.Fields(both.Get("webhook-signature")), 2)
	require.NoError(t, unwrap(t, secret, body, both))
	require.NoError(t, unwrap(t, other, body, both))
}

func TestBodyIsTheSameOnEveryRendering(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0)
	a, err := Body("evt_x", BatchExpired, at, []byte("{\"id\" : \"batch_x\"}"))
	require.NoError(t, err)
	b, err := Body("evt_x", BatchExpired, at, []byte(`{"id":"batch_x"}`))
	require.NoError(t, err)
	require.Equal(t, string(a), string(b))
	require.Equal(t, `{"id":"evt_x","object":"event","type":"batch.expired","created_at":1700000000,"data":{"id":"batch_x"}}`, string(a))
}

func TestHintShowsLittle(t *testing.T) {
	t.Parallel()
	s := NewSecret()
	h := Hint(s)
	require.True(t, strings.HasPrefix(h, "whsec_…"))
	require.Len(t, []rune(h), len("whsec_")+1+4)
	require.True(t, strings.HasSuffix(strings.TrimRight(s, "="), h[len(h)-4:]))
	_, err := Sign([]string{"nope"}, "evt", 1, nil)
	require.Error(t, err)
}

func TestEventTypes(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"batch.completed", "batch.failed", "batch.expired", "batch.cancelled"} {
		require.True(t, IsEventType(typ))
	}
	require.False(t, IsEventType("response.completed"))
	require.False(t, IsEventType(""))
}
