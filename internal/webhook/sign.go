// Package webhook delivers Volley's events to the endpoints owners register, the Standard
// Webhooks way that the official SDKs verify (webhooks.unwrap): signed with the endpoint's whsec_
// secret, retried with backoff for a configurable time, at least once, and never to a private
// address unless the operator allows it.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret; the rest is the base64 of the HMAC key.
const SecretPrefix = "whsec_"

// secretBytes is the size of a signing key; Standard Webhooks asks for at least 24.
const secretBytes = 32

// Event types Volley sends.
const (
	BatchCompleted = "batch.completed"
	BatchFailed    = "batch.failed"
	BatchExpired   = "batch.expired"
	BatchCancelled = "batch.cancelled"
)

// EventTypes are the event types an endpoint may subscribe to, in the order they are listed.
var EventTypes = []string{BatchCompleted, BatchFailed, BatchExpired, BatchCancelled}

// IsEventType reports whether Volley sends events of type t.
func IsEventType(t string) bool {
	for _, e := range EventTypes {
		if e == t {
			return true
		}
	}
	return false
}

// NewSecret returns a fresh signing secret.
func NewSecret() string {
	var b [secretBytes]byte
	_, _ = rand.Read(b[:])
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// Hint shows enough of a secret to tell two apart, and nothing that helps to forge a signature.
func Hint(secret string) string {
	key := strings.TrimRight(strings.TrimPrefix(secret, SecretPrefix), "=")
	if len(key) < 8 {
		return SecretPrefix + "…"
	}
	return SecretPrefix + "…" + key[len(key)-4:]
}

func decodeSecret(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, errors.New("signing secret lacks the whsec_ prefix")
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("signing secret: %w", err)
	}
	return key, nil
}

// Sign returns the webhook-signature header for one delivery: a "v1,<base64 HMAC-SHA256>" of
// "{id}.{timestamp}.{body}" under each secret, separated by spaces.
func Sign(secrets []string, id string, timestamp int64, body []byte) (string, error) {
	ts := strconv.FormatInt(timestamp, 10)
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		key, err := decodeSecret(s)
		if err != nil {
			return "", err
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " "), nil
}

// eventBody is the JSON an endpoint receives.
type eventBody struct {
	ID        string          `json:"id"`
	Object    string          `json:"object"`
	Type      string          `json:"type"`
	CreatedAt int64           `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// Body renders an event. The same event always renders to the same bytes, so every redelivery
// carries an identical body.
func Body(id, typ string, createdAt time.Time, data []byte) ([]byte, error) {
	return json.Marshal(eventBody{ID: id, Object: "event", Type: typ, CreatedAt: createdAt.Unix(), Data: data})
}
