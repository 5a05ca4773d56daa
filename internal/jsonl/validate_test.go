package jsonl

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// req builds a line from the given top-level members, in order.
func req(members ...string) string {
	return "{" + strings.Join(members, ",") + "}"
}

const (
	cid   = `"custom_id":"req-1"`
	post  = `"method":"POST"`
	chat  = `"url":"/v1/chat/completions"`
	body  = `"body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`
	valid = `{"custom_id":"req-1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}}`
)

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		lim  Limits
		want Line // BodyStart/BodyEnd are checked separately
	}{
		{"minimal", valid, Limits{}, Line{"req-1", "POST", "/v1/chat/completions", "gpt-4o-mini", 0, 0}},
		{"key order irrelevant", req(body, chat, post, cid), Limits{}, Line{"req-1", "POST", "/v1/chat/completions", "gpt-4o-mini", 0, 0}},
		{"whitespace and CR", " \t{ \"custom_id\" : \"a\" ,\n\"method\":\"POST\", \"url\":\"/v1/embeddings\",\"body\":{ \"model\" : \"e\" } } \r",
			Limits{}, Line{"a", "POST", "/v1/embeddings", "e", 0, 0}},
		{"unknown keys ignored", req(`"extra":[1,{"custom_id":5}]`, cid, post, chat, `"body":{"x":{"model":1},"model":"m"}`, `"z":null`),
			Limits{}, Line{"req-1", "POST", "/v1/chat/completions", "m", 0, 0}},
		{"every endpoint: completions", req(cid, post, `"url":"/v1/completions"`, body), Limits{}, Line{"req-1", "POST", "/v1/completions", "gpt-4o-mini", 0, 0}},
		{"every endpoint: embeddings", req(cid, post, `"url":"/v1/embeddings"`, body), Limits{}, Line{"req-1", "POST", "/v1/embeddings", "gpt-4o-mini", 0, 0}},
		{"every endpoint: responses", req(cid, post, `"url":"/v1/responses"`, body), Limits{}, Line{"req-1", "POST", "/v1/responses", "gpt-4o-mini", 0, 0}},
		{"every endpoint: moderations", req(cid, post, `"url":"/v1/moderations"`, body), Limits{}, Line{"req-1", "POST", "/v1/moderations", "gpt-4o-mini", 0, 0}},
		{"escaped values are decoded", req(`"custom_id":"a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC"`, `"method":"\u0050OST"`, `"url":"\/v1\/chat\/completions"`, `"body":{"model":"gpt\u002d4"}`),
			Limits{}, Line{"a\"b\\c/d\b\f\n\r\té€", "POST", "/v1/chat/completions", "gpt-4", 0, 0}},
		{"surrogate pair", req(`"custom_id":"\ud83d\ude00"`, post, chat, body), Limits{}, Line{"😀", "POST", "/v1/chat/completions", "gpt-4o-mini", 0, 0}},
		{"lone surrogate in the model", req(cid, post, chat, `"body":{"model":"m\ud800"}`), Limits{}, Line{"req-1", "POST", "/v1/chat/completions", "m\uFFFD", 0, 0}},
		{"raw UTF-8", req(`"custom_id":"日本語 ✓"`, post, chat, `"body":{"model":"мод"}`), Limits{}, Line{"日本語 ✓", "POST", "/v1/chat/completions", "мод", 0, 0}},
		{"escaped key names", req(`"custom\u005fid":"a"`, `"m\u0065thod":"POST"`, `"\u0075rl":"/v1/chat/completions"`, `"bod\u0079":{"mode\u006c":"m"}`),
			Limits{}, Line{"a", "POST", "/v1/chat/completions", "m", 0, 0}},
		{"custom_id exactly at limit", req(`"custom_id":"`+strings.Repeat("x", 512)+`"`, post, chat, body), Limits{}, Line{strings.Repeat("x", 512), "POST", "/v1/chat/completions", "gpt-4o-mini", 0, 0}},
		{"custom_id limit counts decoded bytes", req(`"custom_id":"\u0041\u0042\u0043"`, post, chat, body), Limits{MaxCustomIDBytes: 3}, Line{"ABC", "POST", "/v1/chat/completions", "gpt-4o-mini", 0, 0}},
		{"numbers of every shape", req(cid, post, chat, `"body":{"model":"m","n":[0,-0,1,-1,10,0.5,-0.5e10,1E+2,1e-2,123456789012345678901234567890]}`),
			Limits{}, Line{"req-1", "POST", "/v1/chat/completions", "m", 0, 0}},
		{"literals", req(cid, post, chat, `"body":{"model":"m","a":true,"b":false,"c":null,"d":[true,false,null],"e":{},"f":[]}`),
			Limits{}, Line{"req-1", "POST", "/v1/chat/completions", "m", 0, 0}},
		{"nesting at the limit", req(cid, post, chat, `"body":{"model":"m","x":[[1]]}`), Limits{MaxDepth: 4}, Line{"req-1", "POST", "/v1/chat/completions", "m", 0, 0}},
		{"nesting at the default limit", req(cid, post, chat, `"body":{"model":"m","a":`+strings.Repeat("[", 62)+strings.Repeat("]", 62)+`}`), Limits{}, Line{"req-1", "POST", "/v1/chat/completions", "m", 0, 0}},
		{"deep objects at the limit", req(cid, post, chat, `"body":{"model":"m","a":`+strings.Repeat(`{"a":`, 62)+"1"+strings.Repeat("}", 62)+`}`), Limits{}, Line{"req-1", "POST", "/v1/chat/completions", "m", 0, 0}},
		{"other keys may repeat", req(cid, post, chat, `"a":1`, `"a":2`, `"body":{"model":"m","t":1,"t":2}`), Limits{}, Line{"req-1", "POST", "/v1/chat/completions", "m", 0, 0}},
		{"non-ASCII key unrelated to fields", req(cid, post, chat, `"ſ":1`, `"bodý":2`, body), Limits{}, Line{"req-1", "POST", "/v1/chat/completions", "gpt-4o-mini", 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Validate([]byte(tt.in), tt.lim)
			require.Nil(t, err)
			require.Equal(t, tt.want.CustomID, got.CustomID)
			require.Equal(t, tt.want.Method, got.Method)
			require.Equal(t, tt.want.URL, got.URL)
			require.Equal(t, tt.want.Model, got.Model)
			raw := tt.in[got.BodyStart:got.BodyEnd]
			require.True(t, strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}"), "body span %q", raw)
		})
	}
}

func TestValidateBodySpan(t *testing.T) {
	in := `{"custom_id":"a","method":"POST","url":"/v1/embeddings","body": {"model":"e","input":"x"} }`
	l, err := Validate([]byte(in), Limits{})
	require.Nil(t, err)
	require.Equal(t, `{"model":"e","input":"x"}`, in[l.BodyStart:l.BodyEnd])
}

func TestValidateRejects(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name  string
		in    string
		lim   Limits
		code  string
		param string
		msg   string // a fragment of the message
	}{
		// custom_id with an unpaired surrogate escape: it could not be given back exactly
		{"lone high surrogate in custom_id", req(`"custom_id":"a\ud800b"`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "unpaired UTF-16 surrogate"},
		{"lone low surrogate in custom_id", req(`"custom_id":"\udc00"`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "unpaired UTF-16 surrogate"},
		{"high surrogate then non-surrogate escape in custom_id", req(`"custom_id":"\ud800\u0041"`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "unpaired"},
		{"two high surrogates in custom_id", req(`"custom_id":"\ud800\ud800\udc00"`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "unpaired"},
		{"high surrogate at the end of custom_id", req(`"custom_id":"x\ud83d"`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "unpaired"},
		// UTF-8
		{"invalid byte", "{\"custom_id\":\"\xff\"}", Limits{}, CodeInvalidUTF8, "", "invalid UTF-8 at byte 15 (0xFF)"},
		{"latin-1 text", req(cid, post, chat, "\"body\":{\"model\":\"caf\xe9\"}"), Limits{}, CodeInvalidUTF8, "", "(0xE9)"},
		{"truncated sequence", "{\"a\":\"\xe2\x82\"}", Limits{}, CodeInvalidUTF8, "", "at byte 7"},
		{"encoded surrogate", "{\"a\":\"\xed\xa0\x80\"}", Limits{}, CodeInvalidUTF8, "", "at byte 7"},
		{"overlong encoding", "{\"a\":\"\xc0\xaf\"}", Limits{}, CodeInvalidUTF8, "", "at byte 7"},
		{"invalid UTF-8 wins over a syntax error before it", "[,\xff", Limits{}, CodeInvalidUTF8, "", "at byte 3"},
		{"invalid UTF-8 outside a string", "{\xff}", Limits{}, CodeInvalidUTF8, "", "at byte 2"},

		// JSON syntax
		{"empty", "", Limits{}, CodeInvalidJSONLine, "", "the line is empty"},
		{"blank", " \t\r", Limits{}, CodeInvalidJSONLine, "", "the line is empty"},
		{"array", `[1,2]`, Limits{}, CodeInvalidJSONLine, "", "line must be a JSON object, got an array"},
		{"string", `"x"`, Limits{}, CodeInvalidJSONLine, "", "got a string"},
		{"number", `12`, Limits{}, CodeInvalidJSONLine, "", "got a number"},
		{"true", `true`, Limits{}, CodeInvalidJSONLine, "", "got a boolean"},
		{"null", `null`, Limits{}, CodeInvalidJSONLine, "", "got null"},
		{"invalid non-object", `[1,`, Limits{}, CodeInvalidJSONLine, "", "unexpected end of line, expecting a value"},
		{"two objects", `{}{}`, Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 3: unexpected character '{' after the top-level value"},
		{"trailing garbage", valid + ` x`, Limits{}, CodeInvalidJSONLine, "", "unexpected character 'x' after the top-level value"},
		{"unclosed object", `{"custom_id":"a"`, Limits{}, CodeInvalidJSONLine, "", "unexpected end of line, expecting ',' or '}'"},
		{"missing colon", `{"a" 1}`, Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 6: unexpected character '1', expecting ':'"},
		{"missing value", `{"a":}`, Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 6: unexpected character '}', expecting a value"},
		{"unquoted key", `{a:1}`, Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 2: unexpected character 'a', expecting a string key or '}'"},
		{"single quotes", `{'a':1}`, Limits{}, CodeInvalidJSONLine, "", "strings must be in double quotes"},
		{"trailing comma in object", `{"a":1,}`, Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 8: unexpected character '}', expecting a string key (trailing commas are not allowed)"},
		{"trailing comma in array", `{"a":[1,]}`, Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 9: unexpected character ']', expecting a value (trailing commas are not allowed)"},
		{"missing comma", `{"a":1 "b":2}`, Limits{}, CodeInvalidJSONLine, "", "expecting ',' or '}' after the object member"},
		{"missing comma in array", `{"a":[1 2]}`, Limits{}, CodeInvalidJSONLine, "", "expecting ',' or ']' after the array element"},
		{"mismatched bracket", `{"a":[1}`, Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 8: unexpected character '}', expecting ',' or ']'"},
		{"byte order mark", "\ufeff" + valid, Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 1: unexpected byte order mark (U+FEFF)"},
		{"NUL outside string", "{\x00}", Limits{}, CodeInvalidJSONLine, "", `unexpected character '\x00'`},
		{"non-ASCII outside string", `{"a":é}`, Limits{}, CodeInvalidJSONLine, "", "unexpected character 'é', expecting a value"},
		{"unterminated string", `{"custom_id":"abc`, Limits{}, CodeInvalidJSONLine, "", "unterminated string starting at byte 14"},
		{"unterminated key", `{"abc`, Limits{}, CodeInvalidJSONLine, "", "unterminated string starting at byte 2"},
		{"backslash at end", `{"a":"\`, Limits{}, CodeInvalidJSONLine, "", "unterminated string"},
		{"raw tab in string", "{\"a\":\"x\ty\"}", Limits{}, CodeInvalidJSONLine, "", `invalid JSON at byte 8: unescaped control character U+0009 in string; write it as \t`},
		{"raw newline in string", "{\"a\":\"x\ny\"}", Limits{}, CodeInvalidJSONLine, "", `write it as \n`},
		{"raw NUL in string", "{\"a\":\"\x00\"}", Limits{}, CodeInvalidJSONLine, "", `U+0000 in string; write it as \u0000`},
		{"raw control in long string", `{"a":"` + strings.Repeat("x", 100) + "\x1f" + `"}`, Limits{}, CodeInvalidJSONLine, "", "byte 107: unescaped control character U+001F"},
		{"DEL is fine but invalid escape is not", "{\"a\":\"\x7f\\a\"}", Limits{}, CodeInvalidJSONLine, "", `invalid JSON at byte 9: invalid escape '\a' in string`},
		{"single-quote escape", `{"a":"\'"}`, Limits{}, CodeInvalidJSONLine, "", `invalid escape '\''`},
		{"backslash before control", "{\"a\":\"\\\n\"}", Limits{}, CodeInvalidJSONLine, "", `backslash followed by character '\n'`},
		{"short unicode escape", `{"a":"\u12"}`, Limits{}, CodeInvalidJSONLine, "", `invalid JSON at byte 11: invalid \u escape in string: expecting a hexadecimal digit, got character '"'`},
		{"bad hex", `{"a":"\u00g0"}`, Limits{}, CodeInvalidJSONLine, "", `byte 11: invalid \u escape`},
		{"capital U escape", `{"a":"\U0041"}`, Limits{}, CodeInvalidJSONLine, "", `invalid escape '\U'`},
		{"leading zero", `{"a":01}`, Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 7: unexpected character '1'"},
		{"lone minus", `{"a":-}`, Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 7: unexpected character '}' in number, expecting a digit"},
		{"dot without digits", `{"a":1.}`, Limits{}, CodeInvalidJSONLine, "", "in number, expecting a digit"},
		{"leading dot", `{"a":.5}`, Limits{}, CodeInvalidJSONLine, "", "unexpected character '.', expecting a value"},
		{"exponent without digits", `{"a":1e+}`, Limits{}, CodeInvalidJSONLine, "", "byte 9: unexpected character '}' in number"},
		{"plus sign", `{"a":+1}`, Limits{}, CodeInvalidJSONLine, "", "unexpected character '+'"},
		{"hex number", `{"a":0x1}`, Limits{}, CodeInvalidJSONLine, "", "unexpected character 'x'"},
		{"NaN", `{"a":NaN}`, Limits{}, CodeInvalidJSONLine, "", "unexpected character 'N', expecting a value"},
		{"number at end", `{"a":1`, Limits{}, CodeInvalidJSONLine, "", "unexpected end of line, expecting ',' or '}'"},
		{"minus at end", `{"a":-`, Limits{}, CodeInvalidJSONLine, "", "unexpected end of line in number"},
		{"bad literal", `{"a":tru}`, Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 9: unexpected character '}' in literal 'true'"},
		{"capitalised literal", `{"a":True}`, Limits{}, CodeInvalidJSONLine, "", "unexpected character 'T', expecting a value"},
		{"truncated literal", `{"a":nul`, Limits{}, CodeInvalidJSONLine, "", "unexpected end of line in literal 'null'"},
		{"literal in nested array", `{"a":[fals]}`, Limits{}, CodeInvalidJSONLine, "", "in literal 'false'"},
		{"comment", `{"a":1 /* x */}`, Limits{}, CodeInvalidJSONLine, "", "unexpected character '/'"},
		{"syntax error after fields", req(cid, post, chat, body) + `,`, Limits{}, CodeInvalidJSONLine, "", "after the top-level value"},
		{"syntax error wins over field errors", `{"custom_id":1,"x":[}`, Limits{}, CodeInvalidJSONLine, "", "unexpected character '}'"},
		{"syntax error in body", req(cid, post, chat, `"body":{"model":"m","x":[1,]}`), Limits{}, CodeInvalidJSONLine, "", "trailing commas"},
		{"syntax error in body key", req(cid, post, chat, `"body":{model:"m"}`), Limits{}, CodeInvalidJSONLine, "", "expecting a string key or '}'"},
		{"unclosed body", `{"body":{"model":"m"`, Limits{}, CodeInvalidJSONLine, "", "unexpected end of line, expecting ',' or '}'"},

		// Depth
		{"too deep default", `{"a":` + deep(64) + `}`, Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 69: nested too deeply; objects and arrays may be nested at most 64 levels deep"},
		{"too deep in body", req(cid, post, chat, `"body":{"model":"m","a":`+deep(63)+`}`), Limits{}, CodeInvalidJSONLine, "", "nested too deeply"},
		{"too deep objects", strings.Repeat(`{"a":`, 65) + strings.Repeat("}", 65), Limits{}, CodeInvalidJSONLine, "", "nested too deeply"},
		{"hostile nesting", strings.Repeat("[", 100000), Limits{}, CodeInvalidJSONLine, "", "invalid JSON at byte 65: nested too deeply"},
		{"custom depth", `{"a":[[]]}`, Limits{MaxDepth: 2}, CodeInvalidJSONLine, "", "invalid JSON at byte 7: nested too deeply; objects and arrays may be nested at most 2 levels deep"},
		{"body beyond depth 1", `{"body":{}}`, Limits{MaxDepth: 1}, CodeInvalidJSONLine, "", "at byte 9: nested too deeply"},
		{"depth checked before fields", `{"a":[[]]}`, Limits{MaxDepth: 2}, CodeInvalidJSONLine, "", "nested too deeply"},

		// Duplicates
		{"duplicate custom_id", req(cid, post, chat, body, `"custom_id":"req-2"`), Limits{}, CodeDuplicateKey, ParamCustomID, "duplicate key 'custom_id'; a key may appear only once"},
		{"duplicate method", req(cid, post, post, chat, body), Limits{}, CodeDuplicateKey, ParamMethod, "duplicate key 'method'"},
		{"duplicate url", req(cid, post, chat, `"url":"/v1/embeddings"`, body), Limits{}, CodeDuplicateKey, ParamURL, "duplicate key 'url'"},
		{"duplicate body", req(cid, post, chat, body, body), Limits{}, CodeDuplicateKey, ParamBody, "duplicate key 'body'"},
		{"duplicate body of another type", req(cid, post, chat, `"body":null`, body), Limits{}, CodeDuplicateKey, ParamBody, "duplicate key 'body'"},
		{"duplicate model", req(cid, post, chat, `"body":{"model":"a","model":"b"}`), Limits{}, CodeDuplicateKey, ParamModel, "duplicate key 'model' in body"},
		{"duplicate through an escape", req(cid, `"custom\u005fid":"x"`, post, chat, body), Limits{}, CodeDuplicateKey, ParamCustomID, "duplicate key 'custom_id'"},
		{"case variant after exact", req(cid, `"Custom_ID":"x"`, post, chat, body), Limits{}, CodeDuplicateKey, ParamCustomID, "keys 'custom_id' and 'Custom_ID' differ only in letter case"},
		{"case variant before exact", req(`"URL":"/v1/embeddings"`, cid, post, chat, body), Limits{}, CodeDuplicateKey, ParamURL, "keys 'URL' and 'url' differ only in letter case"},
		{"two case variants", req(cid, `"Method":"POST"`, `"METHOD":"POST"`, chat, body), Limits{}, CodeDuplicateKey, ParamMethod, "keys 'Method' and 'METHOD'"},
		{"long s variant", req(cid, `"cuſtom_id":"x"`, post, chat, body), Limits{}, CodeDuplicateKey, ParamCustomID, "keys 'custom_id' and 'cuſtom_id'"},
		{"escaped case variant", req(cid, post, chat, body, `"bod\u0059":1`), Limits{}, CodeDuplicateKey, ParamBody, "keys 'body' and 'bodY'"},
		{"model case variant", req(cid, post, chat, `"body":{"model":"a","MODEL":"b"}`), Limits{}, CodeDuplicateKey, ParamModel, "keys 'model' and 'MODEL' in body differ only in letter case"},
		{"escaped long s variant", req(`"cu\u017ftom_id":"x"`, post, chat, body), Limits{}, CodeMissingCustomID, ParamCustomID, "(found 'cuſtom_id'; field names are case-sensitive)"},
		{"duplicate wins over invalid values", req(`"custom_id":1`, `"method":"GET"`, `"method":"GET"`), Limits{}, CodeDuplicateKey, ParamMethod, "duplicate key 'method'"},
		{"first duplicate in the line is reported", req(cid, post, chat, `"body":{"model":"a","model":"b"}`, cid), Limits{}, CodeDuplicateKey, ParamModel, "'model'"},
		{"first duplicate in the line is reported 2", req(cid, cid, post, chat, `"body":{"model":"a","model":"b"}`), Limits{}, CodeDuplicateKey, ParamCustomID, "'custom_id'"},

		// custom_id
		{"missing custom_id", req(post, chat, body), Limits{}, CodeMissingCustomID, ParamCustomID, "missing required field 'custom_id'"},
		{"custom_id wrong case only", req(`"Custom_Id":"a"`, post, chat, body), Limits{}, CodeMissingCustomID, ParamCustomID, "missing required field 'custom_id' (found 'Custom_Id'; field names are case-sensitive)"},
		{"custom_id number", req(`"custom_id":42`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "custom_id must be a string, got the number 42"},
		{"custom_id null", req(`"custom_id":null`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "custom_id must be a string, got null"},
		{"custom_id object", req(`"custom_id":{"a":1}`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "got an object"},
		{"custom_id array", req(`"custom_id":[]`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "got an array"},
		{"custom_id bool", req(`"custom_id":false`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "got false"},
		{"custom_id empty", req(`"custom_id":""`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "custom_id must not be empty"},
		{"custom_id too long", req(`"custom_id":"`+strings.Repeat("x", 513)+`"`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "custom_id is 513 bytes long, more than the maximum of 512 bytes"},
		{"custom_id too long multibyte", req(`"custom_id":"ééé"`, post, chat, body), Limits{MaxCustomIDBytes: 5}, CodeInvalidCustomID, ParamCustomID, "custom_id is 6 bytes long, more than the maximum of 5 bytes"},
		{"custom_id too long after decoding", req(`"custom_id":"\u00e9\u00e9\u00e9"`, post, chat, body), Limits{MaxCustomIDBytes: 5}, CodeInvalidCustomID, ParamCustomID, "is 6 bytes long"},
		{"custom_id with NUL", req(`"custom_id":"a\u0000b"`, post, chat, body), Limits{}, CodeInvalidCustomID, ParamCustomID, "must not contain a NUL character"},
		{"custom_id checked before method", req(`"custom_id":7`, `"method":"GET"`), Limits{}, CodeInvalidCustomID, ParamCustomID, "must be a string"},

		// method
		{"missing method", req(cid, chat, body), Limits{}, CodeMissingMethod, ParamMethod, "missing required field 'method'"},
		{"method wrong case key", req(cid, `"METHOD":"POST"`, chat, body), Limits{}, CodeMissingMethod, ParamMethod, "(found 'METHOD'; field names are case-sensitive)"},
		{"method GET", req(cid, `"method":"GET"`, chat, body), Limits{}, CodeInvalidMethod, ParamMethod, "method must be 'POST', got 'GET'"},
		{"method lower case", req(cid, `"method":"post"`, chat, body), Limits{}, CodeInvalidMethod, ParamMethod, "got 'post'"},
		{"method padded", req(cid, `"method":"POST "`, chat, body), Limits{}, CodeInvalidMethod, ParamMethod, "got 'POST '"},
		{"method number", req(cid, `"method":1`, chat, body), Limits{}, CodeInvalidMethod, ParamMethod, "got the number 1"},
		{"method null", req(cid, `"method":null`, chat, body), Limits{}, CodeInvalidMethod, ParamMethod, "got null"},
		{"method long value truncated", req(cid, `"method":"`+strings.Repeat("A", 100)+`"`, chat, body), Limits{}, CodeInvalidMethod, ParamMethod, "'" + strings.Repeat("A", 64) + "'…"},
		{"method value escaped in message", req(cid, `"method":"P\nO'S\\T"`, chat, body), Limits{}, CodeInvalidMethod, ParamMethod, `got 'P\nO\'S\\T'`},
		{"method checked before url", req(cid, `"method":"PUT"`), Limits{}, CodeInvalidMethod, ParamMethod, "'PUT'"},

		// url
		{"missing url", req(cid, post, body), Limits{}, CodeMissingURL, ParamURL, "missing required field 'url'. Supported urls: '/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses', '/v1/moderations'."},
		{"unsupported url", req(cid, post, `"url":"/v1/images/generations"`, body), Limits{}, CodeUnsupportedURL, ParamURL, "unsupported url '/v1/images/generations'. Supported urls: '/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses', '/v1/moderations'."},
		{"absolute url", req(cid, post, `"url":"https://api.openai.com/v1/chat/completions"`, body), Limits{}, CodeUnsupportedURL, ParamURL, "The url is the path only, like '/v1/chat/completions'."},
		{"url with trailing slash", req(cid, post, `"url":"/v1/chat/completions/"`, body), Limits{}, CodeUnsupportedURL, ParamURL, "unsupported url '/v1/chat/completions/'"},
		{"url with query", req(cid, post, `"url":"/v1/embeddings?x=1"`, body), Limits{}, CodeUnsupportedURL, ParamURL, "unsupported url"},
		{"url upper case", req(cid, post, `"url":"/V1/CHAT/COMPLETIONS"`, body), Limits{}, CodeUnsupportedURL, ParamURL, "unsupported url"},
		{"url empty", req(cid, post, `"url":""`, body), Limits{}, CodeUnsupportedURL, ParamURL, "unsupported url ''"},
		{"url number", req(cid, post, `"url":5`, body), Limits{}, CodeUnsupportedURL, ParamURL, "url must be a string, got the number 5. Supported urls:"},
		{"url array", req(cid, post, `"url":["/v1/embeddings"]`, body), Limits{}, CodeUnsupportedURL, ParamURL, "got an array"},
		{"url checked before body", req(cid, post, `"url":"/x"`), Limits{}, CodeUnsupportedURL, ParamURL, "'/x'"},

		// body
		{"missing body", req(cid, post, chat), Limits{}, CodeMissingBody, ParamBody, "missing required field 'body'"},
		{"body wrong case key", req(cid, post, chat, `"Body":{"model":"m"}`), Limits{}, CodeMissingBody, ParamBody, "(found 'Body'; field names are case-sensitive)"},
		{"body string", req(cid, post, chat, `"body":"{\"model\":\"m\"}"`), Limits{}, CodeInvalidBody, ParamBody, "body must be a JSON object, got '{\"model\":\"m\"}'"},
		{"body array", req(cid, post, chat, `"body":[{"model":"m"}]`), Limits{}, CodeInvalidBody, ParamBody, "body must be a JSON object, got an array"},
		{"body null", req(cid, post, chat, `"body":null`), Limits{}, CodeInvalidBody, ParamBody, "got null"},
		{"body number", req(cid, post, chat, `"body":1.5e3`), Limits{}, CodeInvalidBody, ParamBody, "got the number 1.5e3"},

		// model
		{"missing model", req(cid, post, chat, `"body":{}`), Limits{}, CodeMissingModel, ParamModel, "body is missing the required field 'model'"},
		{"model only nested deeper", req(cid, post, chat, `"body":{"x":{"model":"m"}}`), Limits{}, CodeMissingModel, ParamModel, "missing the required field 'model'"},
		{"model at top level only", req(cid, post, chat, `"model":"m"`, `"body":{}`), Limits{}, CodeMissingModel, ParamModel, "missing"},
		{"model wrong case", req(cid, post, chat, `"body":{"Model":"m"}`), Limits{}, CodeMissingModel, ParamModel, "(found 'Model'; field names are case-sensitive)"},
		{"model number", req(cid, post, chat, `"body":{"model":4}`), Limits{}, CodeInvalidModel, ParamModel, "body.model must be a string, got the number 4"},
		{"model null", req(cid, post, chat, `"body":{"model":null}`), Limits{}, CodeInvalidModel, ParamModel, "got null"},
		{"model object", req(cid, post, chat, `"body":{"model":{"name":"m"}}`), Limits{}, CodeInvalidModel, ParamModel, "got an object"},
		{"model empty", req(cid, post, chat, `"body":{"model":""}`), Limits{}, CodeInvalidModel, ParamModel, "body.model must not be empty"},
		{"model with NUL", req(cid, post, chat, `"body":{"model":"gpt\u0000"}`), Limits{}, CodeInvalidModel, ParamModel, "must not contain a NUL character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Validate([]byte(tt.in), tt.lim)
			require.NotNil(t, err, "accepted: %+v", l)
			require.Equal(t, tt.code, err.Code, err.Message)
			require.Equal(t, tt.param, err.Param, err.Message)
			require.Contains(t, err.Message, tt.msg)
			require.Equal(t, err.Message, err.Error())
			require.True(t, strings.HasSuffix(err.Message, "."), "message %q should be a sentence", err.Message)
			require.Equal(t, Line{}, l)
		})
	}
}
