package ids

import (
	"math/big"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestEncodeMatchesBigInt(t *testing.T) {
	t.Parallel()
	for i := 0; i < 1000; i++ {
		u := uuid.New()
		n := new(big.Int).SetBytes(u[:])
		want := n.Text(62)
		// big.Int's base-62 alphabet is 0-9a-zA-Z; ours puts upper case first so that ASCII order
		// is numeric order. Map between them.
		mapped := strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z':
				return r - 'a' + 'A'
			case r >= 'A' && r <= 'Z':
				return r - 'A' + 'a'
			}
			return r
		}, want)
		mapped = strings.Repeat("0", encodedLen-len(mapped)) + mapped
		require.Equal(t, mapped, encode(u))
	}
}

func TestNewSortsInCreationOrder(t *testing.T) {
	t.Parallel()
	prev, prevAt := New("file-")
	for i := 0; i < 10000; i++ {
		id, at := New("file-")
		require.Len(t, id, len("file-")+encodedLen)
		require.Greater(t, id, prev)
		require.False(t, at.Before(prevAt))
		prev, prevAt = id, at
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	a, b := RequestID(), RequestID()
	require.True(t, strings.HasPrefix(a, "req_"))
	require.Len(t, a, 36)
	require.NotEqual(t, a, b)
}
