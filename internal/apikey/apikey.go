// Package apikey makes and recognises Volley API keys. A key is shown once when it is made; only
// its SHA-256 is stored.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Prefix starts every key, so that keys are recognisable in logs and secret scanners.
const Prefix = "sk-volley-"

// New returns a fresh key, its hash for storage and a short display prefix.
func New() (key string, hash []byte, display string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	key = Prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, Hash(key), Mask(key)
}

// Hash is what is stored and looked up.
func Hash(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// Mask shows a key's start and end only, as error messages and listings may.
func Mask(key string) string {
	if len(key) <= 12 {
		return strings.Repeat("*", len(key))
	}
	head := key[:min(len(key)-4, len(Prefix)+4)]
	return head + "****" + key[len(key)-4:]
}
