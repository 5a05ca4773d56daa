package jsonl

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// TestDecodingMatchesEncodingJSON builds strings from random escapes (including
// every kind of surrogate mistake) and checks that the decoded custom_id and
// model equal what encoding/json decodes.
func TestDecodingMatchesEncodingJSON(t *testing.T) {
	pieces := []string{
		`a`, `Z`, ` `, `é`, `€`, `𝄞`, "\u2028", "\x7f",
		`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`,
		`\u0000`, `\u001f`, `\u0041`, `\u00e9`, `\u00E9`, `\u20ac`, `\uFFFD`, `\uffff`, `\ufeff`,
		`\ud800`, `\udbff`, `\udc00`, `\udfff`, `\ud83d\ude00`, `\uD834\uDD1E`, `\ud800\u0041`, `\ud800\ud800`,
		`\udc00\ud800`, `\ud800\\u0041`, `\ud800\n`,
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		var sb strings.Builder
		for range 1 + rng.IntN(8) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		raw := `"` + sb.String() + `"`
		var want string
		require.NoError(t, json.Unmarshal([]byte(raw), &want), raw)
		line := `{"custom_id":` + raw + `,"method":"POST","url":"/v1/chat/completions","body":{"model":` + raw + `}}`
		l, err := Validate([]byte(line), Limits{})
		if strings.Contains(want, "\x00") || refLoneSurrogate([]byte(raw)) {
			require.NotNil(t, err, raw)
			require.Equal(t, CodeInvalidCustomID, err.Code)
			continue
		}
		require.Nil(t, err, raw)
		require.Equal(t, want, l.CustomID, raw)
		require.Equal(t, want, l.Model, raw)
	}
}

// TestValidUTF8 compares validUTF8 with utf8.Valid on long inputs that mix
// ASCII runs with multi-byte and invalid sequences at every alignment.
func TestValidUTF8(t *testing.T) {
	pieces := []string{"é", "€", "𝄞", "\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", "\xc0\xaf"}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		var sb strings.Builder
		for range rng.IntN(6) {
			sb.WriteString(strings.Repeat("x", rng.IntN(150)))
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		sb.WriteString(strings.Repeat("y", rng.IntN(40)))
		b := []byte(sb.String())
		require.Equal(t, utf8.Valid(b), validUTF8(b), "%q", b)
	}
}

// TestCaseFolding checks the key variants that count as a field against
// encoding/json's own struct field matching.
func TestCaseFolding(t *testing.T) {
	keys := []string{"custom_id", "CUSTOM_ID", "Custom_Id", "cuſtom_id", "CUſTOM_ID", "custom_id ", "custom-id", "customid",
		"method", "METHOD", "methoD", "méthod", "url", "URL", "uRl", "ur1", "body", "BODY", "bodŷ", "bod",
		"model", "MODEL", "moDel", "modeſ", "models", "K", "ſ", "", "custom_İd", "custom_ıd"}
	for _, key := range keys {
		raw, err := json.Marshal(key)
		require.NoError(t, err)
		for _, inBody := range []bool{false, true} {
			want := -1
			lo, hi := fCustomID, fBody
			if inBody {
				lo, hi = fModel, fModel
			}
			for f := lo; f <= hi; f++ {
				if probes[f](key) {
					want = f
				}
			}
			require.Equal(t, want, classify(raw[1:len(raw)-1], false, inBody), "%q inBody=%v", key, inBody)
			// The same key written with escapes.
			var esc strings.Builder
			for _, r := range key {
				if r < utf8.RuneSelf {
					fmt.Fprintf(&esc, `\u%04x`, r)
				} else {
					esc.WriteRune(r)
				}
			}
			require.Equal(t, want, classify([]byte(esc.String()), true, inBody), "%q inBody=%v", esc.String(), inBody)
		}
	}
}
