// Package ids makes the opaque, OpenAI-style identifiers Volley hands out. Identifiers of stored
// objects are UUIDv7 in base62 under a prefix, so that they sort in creation order.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/google/uuid"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// encodedLen is the number of base62 digits needed for 128 bits.
const encodedLen = 22

// New returns prefix + a time-ordered id and the instant it encodes (millisecond precision).
// Ids made later sort after ids made earlier, byte by byte.
func New(prefix string) (string, time.Time) {
	u := uuid.Must(uuid.NewV7())
	sec, nsec := u.Time().UnixTime()
	return prefix + encode(u), time.Unix(sec, nsec).Truncate(time.Millisecond)
}

// encode writes the 128 bits of u as fixed-width base62, most significant digit first.
func encode(u uuid.UUID) string {
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(u[i])
		lo = lo<<8 | uint64(u[8+i])
	}
	var out [encodedLen]byte
	for i := encodedLen - 1; i >= 0; i-- {
		// Divide the 128-bit number hi:lo by 62, keeping the remainder.
		qhi := hi / 62
		r := hi % 62
		// (r<<64 + lo) / 62 without overflow: split lo into two 32-bit halves.
		mid := r<<32 | lo>>32
		qmid := mid / 62
		r = mid % 62
		low := r<<32 | lo&0xffffffff
		qlow := low / 62
		r = low % 62
		hi, lo = qhi, qmid<<32|qlow
		out[i] = base62[r]
	}
	return string(out[:])
}

// RequestID returns a fresh "req_" identifier for an HTTP request.
func RequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}
