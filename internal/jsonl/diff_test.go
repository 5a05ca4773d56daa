package jsonl

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// This file checks Validate against a slow reference built on encoding/json.

// fieldProbe reports whether encoding/json, decoding into a struct, would store
// the member with the given key in a field tagged with name.
func fieldProbe(name string) func(key string) bool {
	typ := reflect.StructOf([]reflect.StructField{{
		Name: "X",
		Type: reflect.TypeFor[*json.RawMessage](),
		Tag:  reflect.StructTag(`json:"` + name + `"`),
	}})
	return func(key string) bool {
		data, err := json.Marshal(map[string]int{key: 0})
		if err != nil {
			panic(err)
		}
		v := reflect.New(typ)
		if err := json.Unmarshal(data, v.Interface()); err != nil {
			panic(err)
		}
		return !v.Elem().Field(0).IsNil()
	}
}

var probes = func() (p [numFields]func(string) bool) {
	for f := range numFields {
		p[f] = fieldProbe(fieldNames[f])
	}
	return p
}()

// refResult is what the reference expects.
type refResult struct {
	code, param string
	line        Line   // BodyStart and BodyEnd unset
	body        []byte // raw body
}

// maxDepthOf returns the deepest nesting of a valid JSON text.
func maxDepthOf(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return deepest
		}
		if err != nil {
			panic(err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// members decodes the members of a valid JSON object in order.
func members(raw []byte) (keys []string, vals []json.RawMessage) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		panic(err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			panic(err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			panic(err)
		}
		keys = append(keys, tok.(string))
		vals = append(vals, v)
	}
	return keys, vals
}

// reference validates a line the slow way.
func reference(b []byte, lim Limits) refResult {
	lim = lim.withDefaults()
	if !utf8.Valid(b) {
		return refResult{code: CodeInvalidUTF8}
	}
	if !json.Valid(b) || maxDepthOf(b) > lim.MaxDepth {
		return refResult{code: CodeInvalidJSONLine}
	}
	if t := bytes.TrimLeft(b, " \t\r\n"); t[0] != '{' {
		return refResult{code: CodeInvalidJSONLine}
	}

	type occurrence struct {
		count int
		exact bool
		val   json.RawMessage
	}
	var occ [numFields]occurrence
	dup := -1
	see := func(f int, key string, val json.RawMessage) bool {
		o := &occ[f]
		o.count++
		if o.count == 2 && dup < 0 {
			dup = f
		}
		if o.count == 1 && key == fieldNames[f] {
			o.exact = true
			o.val = val
			return true
		}
		return false
	}
	keys, vals := members(b)
	for i, key := range keys {
		for f := fCustomID; f <= fBody; f++ {
			if !probes[f](key) || !see(f, key, vals[i]) || f != fBody || vals[i][0] != '{' {
				continue
			}
			bkeys, bvals := members(vals[i])
			for j, bkey := range bkeys {
				if probes[fModel](bkey) {
					see(fModel, bkey, bvals[j])
				}
			}
		}
	}
	if dup >= 0 {
		return refResult{code: CodeDuplicateKey, param: fieldParams[dup]}
	}

	fail := func(code string, f int) refResult { return refResult{code: code, param: fieldParams[f]} }
	str := func(f int) (string, bool) {
		var s string
		if occ[f].val[0] != '"' {
			return "", false
		}
		if err := json.Unmarshal(occ[f].val, &s); err != nil {
			panic(err)
		}
		return s, true
	}
	var r refResult
	if !occ[fCustomID].exact {
		return fail(CodeMissingCustomID, fCustomID)
	}
	s, ok := str(fCustomID)
	if !ok || s == "" || len(s) > lim.MaxCustomIDBytes || strings.Contains(s, "\x00") || refLoneSurrogate(occ[fCustomID].val) {
		return fail(CodeInvalidCustomID, fCustomID)
	}
	r.line.CustomID = s
	if !occ[fMethod].exact {
		return fail(CodeMissingMethod, fMethod)
	}
	if s, ok := str(fMethod); !ok || s != "POST" {
		return fail(CodeInvalidMethod, fMethod)
	}
	r.line.Method = "POST"
	if !occ[fURL].exact {
		return fail(CodeMissingURL, fURL)
	}
	if s, ok := str(fURL); !ok || !IsBatchEndpoint(s) {
		return fail(CodeUnsupportedURL, fURL)
	} else {
		r.line.URL = s
	}
	if !occ[fBody].exact {
		return fail(CodeMissingBody, fBody)
	}
	if occ[fBody].val[0] != '{' {
		return fail(CodeInvalidBody, fBody)
	}
	r.body = occ[fBody].val
	if !occ[fModel].exact {
		return fail(CodeMissingModel, fModel)
	}
	s, ok = str(fModel)
	if !ok || s == "" || strings.Contains(s, "\x00") {
		return fail(CodeInvalidModel, fModel)
	}
	r.line.Model = s
	return r
}

var positionRE = regexp.MustCompile(`^invalid JSON at byte (\d+): `)

// checkAgainstReference validates b with Validate and with the reference and
// fails if they disagree.
func checkAgainstReference(t *testing.T, b []byte, lim Limits) {
	t.Helper()
	got, gerr := Validate(b, lim)
	want := reference(b, lim)

	if gerr == nil {
		require.Empty(t, want.code, "accepted a line the reference refuses with %s %s: %q", want.code, want.param, b)
		require.True(t, json.Valid(b))
		require.True(t, utf8.Valid(b))
		require.Equal(t, want.line.CustomID, got.CustomID, "%q", b)
		require.Equal(t, want.line.Method, got.Method, "%q", b)
		require.Equal(t, want.line.URL, got.URL, "%q", b)
		require.Equal(t, want.line.Model, got.Model, "%q", b)
		require.Equal(t, string(want.body), string(b[got.BodyStart:got.BodyEnd]), "%q", b)

		// Decoding into structs (case-insensitive, last key wins) agrees too:
		// an accepted line is not ambiguous.
		var st struct {
			CustomID string `json:"custom_id"`
			Method   string `json:"method"`
			URL      string `json:"url"`
			Body     struct {
				Model string `json:"model"`
			} `json:"body"`
		}
		require.NoError(t, json.Unmarshal(b, &st))
		require.Equal(t, got.CustomID, st.CustomID)
		require.Equal(t, got.Method, st.Method)
		require.Equal(t, got.URL, st.URL)
		require.Equal(t, got.Model, st.Body.Model)
		return
	}

	require.NotEmpty(t, want.code, "refused (%s %s: %s) a line the reference accepts: %q", gerr.Code, gerr.Param, gerr.Message, b)
	require.Equal(t, want.code, gerr.Code, "%s; input %q", gerr.Message, b)
	require.Equal(t, want.param, gerr.Param, "%s; input %q", gerr.Message, b)
	require.NotEmpty(t, gerr.Message)
	if !json.Valid(b) {
		require.Contains(t, []string{CodeInvalidJSONLine, CodeInvalidUTF8}, gerr.Code)
	}

	// Where both report the position of a syntax error, it is the same one.
	if m := positionRE.FindStringSubmatch(gerr.Message); m != nil && utf8.Valid(b) && !json.Valid(b) &&
		!strings.Contains(gerr.Message, "nested too deeply") {
		var v any
		var serr *json.SyntaxError
		require.ErrorAs(t, json.Unmarshal(b, &v), &serr)
		require.Equal(t, strconv.FormatInt(serr.Offset, 10), m[1], "%s / encoding/json: %v; input %q", gerr.Message, serr, b)
	}
}

// smallLimits exercise the limits with short inputs.
var smallLimits = Limits{MaxCustomIDBytes: 4, MaxDepth: 4}

// seedLines are interesting lines, valid and not, for the differential test
// and the fuzzer.
var seedLines = []string{
	valid,
	`{"custom_id":"r","method":"POST","url":"/v1/embeddings","body":{"model":"e","input":["a","b"],"dimensions":256}}` + "\r",
	` {"body":{"model":"m","messages":[]},"url":"/v1/responses","method":"POST","custom_id":"x"} `,
	`{"custom_id":"a\"b\\c\/\b\f\n\r\t\u00e9\u20ac\ud83d\ude00","method":"\u0050OST","url":"\/v1\/chat\/completions","body":{"model":"gpt\u002d4"}}`,
	`{"custom_id":"\ud800","method":"POST","url":"/v1/completions","body":{"model":"\udc00\ud800\ud800\udc00\ud800\u0041"}}`,
	`{"custom\u005fid":"x","m\u0065thod":"POST","\u0075rl":"/v1/moderations","bod\u0079":{"mode\u006c":"m"}}`,
	`{"custom_id":"x","custom_id":"y","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`,
	`{"custom_id":"x","Custom_ID":"y","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`,
	`{"custom_id":"x","cuſtom_id":"y","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`,
	`{"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{"model":"m","MODEL":"n"}}`,
	`{"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{"Model":"m"}}`,
	`{"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{"model":"m"},"body":{"model":"n"}}`,
	`{"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{"n":[0,-0,1.5,-2e10,3E+2,4e-2,0.0e0,12345678901234567890123]}}`,
	`{"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{"model":"m","t":true,"f":false,"n":null,"o":{},"a":[]}}`,
	`{"custom_id":1,"method":"GET","url":"/v2","body":[]}`,
	`{"custom_id":"","method":null,"url":null,"body":null}`,
	`{"custom_id":"toolong","method":"POST","url":"/v1/chat/completions","body":{"model":""}}`,
	`{"custom_id":"a\u0000","method":"POST","url":"/v1/chat/completions","body":{"model":"m\u0000"}}`,
	`{"a":[[[[[[1]]]]]]}`,
	`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`,
	`{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":.5}`, `{"a":tru}`, `{"a":nul`, `{"a":"\x"}`, `{"a":"\u12"}`,
	`{"a":1,}`, `[1,]`, `{}{}`, `{} x`, `"s"`, `1`, `null`, ``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{:1}`,
	"{\"a\":\"\t\"}", "{\"a\":\"\x7f\"}", "\ufeff{}", "{\"a\":\"\xff\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xe2\x82\"}",
	"{\"custom_id\":\"caf\xc3\xa9\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"\xe2\x82\xac\"}}",
	"[\xff", "[,\xff", `{"a":"` + strings.Repeat(`\\`, 9) + `"}`,
}

// mutate returns a random small edit of s.
func mutate(rng *rand.Rand, s []byte) []byte {
	pieces := []string{`"`, `\`, `{`, `}`, `[`, `]`, `:`, `,`, ` `, "\t", "\r", "\n", "\x00", "\x1f", "\x7f",
		"\xff", "\xc3", "é", "ſ", "K", `\u`, `\ud800`, `\udc00`, `0`, `-`, `.`, `e`, `1`, `true`, `null`,
		`"custom_id":"z"`, `"model":"z"`, `"body":{}`, `"url":"/v1/responses"`, `"method":"POST"`, `CUSTOM_ID`, `Model`}
	out := bytes.Clone(s)
	for range 1 + rng.IntN(3) {
		pos := 0
		if len(out) > 0 {
			pos = rng.IntN(len(out) + 1)
		}
		switch rng.IntN(4) {
		case 0: // delete a byte
			if pos < len(out) {
				out = append(out[:pos], out[pos+1:]...)
			}
		case 1: // insert a piece
			p := pieces[rng.IntN(len(pieces))]
			out = append(out[:pos], append([]byte(p), out[pos:]...)...)
		case 2: // replace a byte
			if pos < len(out) {
				out[pos] = pieces[rng.IntN(len(pieces))][0]
			}
		case 3: // truncate
			out = out[:pos]
		}
	}
	return out
}

func TestDifferential(t *testing.T) {
	for _, s := range seedLines {
		checkAgainstReference(t, []byte(s), Limits{})
		checkAgainstReference(t, []byte(s), smallLimits)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		in := mutate(rng, []byte(seedLines[rng.IntN(len(seedLines))]))
		checkAgainstReference(t, in, Limits{})
		checkAgainstReference(t, in, smallLimits)
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range seedLines {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkAgainstReference(t, b, Limits{})
		checkAgainstReference(t, b, smallLimits)
	})
}

// refLoneSurrogate reports whether the raw JSON string holds a \u escape of a surrogate that is not
// half of a high-then-low pair, reading the escapes one by one.
func refLoneSurrogate(raw []byte) bool {
	var pendingHigh bool
	for i := 1; i < len(raw)-1; i++ {
		if raw[i] != '\\' {
			if pendingHigh {
				return true
			}
			continue
		}
		i++
		if raw[i] != 'u' {
			if pendingHigh {
				return true
			}
			continue
		}
		n, err := strconv.ParseUint(string(raw[i+1:i+5]), 16, 16)
		if err != nil {
			panic(err)
		}
		i += 4
		switch {
		case n >= 0xD800 && n < 0xDC00:
			if pendingHigh {
				return true
			}
			pendingHigh = true
		case n >= 0xDC00 && n < 0xE000:
			if !pendingHigh {
				return true
			}
			pendingHigh = false
		default:
			if pendingHigh {
				return true
			}
		}
	}
	return pendingHigh
}
