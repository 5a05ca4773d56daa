package jsonl

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

func newError(code, param, msg string) *Error {
	return &Error{Code: code, Param: param, Message: msg}
}

// supportedURLs is the list of BatchEndpoints used in messages.
var supportedURLs = func() string {
	q := make([]string, len(BatchEndpoints))
	for i, e := range BatchEndpoints {
		q[i] = "'" + e + "'"
	}
	return strings.Join(q, ", ")
}()

// context says what the parser expected where it found something else.
type context uint8

const (
	ctxValue      context = iota // a value
	ctxElem                      // a value after ',' in an array
	ctxFirstElem                 // a value or ']' after '['
	ctxFirstKey                  // a key or '}' after '{'
	ctxKey                       // a key after ',' in an object
	ctxColon                     // ':' after a key
	ctxObjectNext                // ',' or '}' after a member
	ctxArrayNext                 // ',' or ']' after an element
	ctxEnd                       // nothing after the top-level value
)

var expectations = [...]string{
	ctxValue:      "a value",
	ctxElem:       "a value",
	ctxFirstElem:  "a value or ']'",
	ctxFirstKey:   "a string key or '}'",
	ctxKey:        "a string key",
	ctxColon:      "':' after the object key",
	ctxObjectNext: "',' or '}' after the object member",
	ctxArrayNext:  "',' or ']' after the array element",
	ctxEnd:        "the end of the line",
}

// at formats a 1-based byte position.
func at(pos int) string {
	return "invalid JSON at byte " + strconv.Itoa(pos+1) + ": "
}

// syntaxError records an unexpected byte (or the end of the line) at pos and
// returns false.
func (s *scanner) syntaxError(pos int, ctx context) bool {
	b := s.b
	var msg string
	if pos >= len(b) {
		msg = "invalid JSON: unexpected end of line, expecting " + expectations[ctx] + "."
	} else {
		r, _ := utf8.DecodeRune(b[pos:])
		if ctx == ctxEnd {
			msg = at(pos) + "unexpected " + describeChar(r) + " after the top-level value; a line must hold exactly one JSON object."
		} else {
			msg = at(pos) + "unexpected " + describeChar(r) + ", expecting " + expectations[ctx]
			switch {
			case (ctx == ctxKey && r == '}') || (ctx == ctxElem && r == ']'):
				msg += " (trailing commas are not allowed)"
			case r == '\'' && ctx != ctxColon && ctx != ctxObjectNext && ctx != ctxArrayNext:
				msg += " (strings must be in double quotes)"
			}
			msg += "."
		}
	}
	s.err = newError(CodeInvalidJSONLine, "", msg)
	return false
}

// describeChar names a character for a syntax error.
func describeChar(r rune) string {
	if r == '\uFEFF' {
		return "byte order mark (U+FEFF)"
	}
	return "character " + strconv.QuoteRune(r)
}

// stringError records the error in the malformed string that starts at start,
// and returns false. It is the slow path of scanString, which only reports
// that something is wrong.
func (s *scanner) stringError(start int) bool {
	b := s.b
	msg := "invalid JSON: unterminated string starting at byte " + strconv.Itoa(start+1) + "."
	for i := start + 1; i < len(b); {
		c := b[i]
		if c < 0x20 {
			msg = at(i) + fmt.Sprintf("unescaped control character U+%04X in string; write it as %s.", c, controlEscape(c))
			break
		}
		if c != '\\' {
			i++
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
			continue
		case 'u':
			for k := i + 2; k < i+6; k++ {
				if k >= len(b) {
					break
				}
				if hexVal(b[k]) < 0 {
					r, _ := utf8.DecodeRune(b[k:])
					s.err = newError(CodeInvalidJSONLine, "", at(k)+"invalid \\u escape in string: expecting a hexadecimal digit, got "+describeChar(r)+".")
					return false
				}
			}
			i += 6
			continue
		default:
			r, _ := utf8.DecodeRune(b[i+1:])
			if strconv.IsPrint(r) {
				msg = at(i+1) + "invalid escape '\\" + string(r) + "' in string."
			} else {
				msg = at(i+1) + "invalid escape in string: backslash followed by " + describeChar(r) + "."
			}
		}
		break
	}
	s.err = newError(CodeInvalidJSONLine, "", msg)
	return false
}

// controlEscape is how a control character is written in a JSON string.
func controlEscape(c byte) string {
	switch c {
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	}
	const hex = "0123456789abcdef"
	return `\u00` + string(hex[c>>4]) + string(hex[c&15])
}

// tokenError records a malformed number or literal of kind k that starts at
// start and goes wrong at pos, and returns false.
func (s *scanner) tokenError(start, pos int, k kind) bool {
	what := "number"
	switch k {
	case kindTrue:
		what = "literal 'true'"
	case kindFalse:
		what = "literal 'false'"
	case kindNull:
		what = "literal 'null'"
	}
	var msg string
	switch {
	case pos >= len(s.b) && k == kindNumber:
		msg = "invalid JSON: unexpected end of line in number, expecting a digit."
	case pos >= len(s.b):
		msg = "invalid JSON: unexpected end of line in " + what + "."
	case k == kindNumber:
		r, _ := utf8.DecodeRune(s.b[pos:])
		msg = at(pos) + "unexpected " + describeChar(r) + " in number, expecting a digit."
	default:
		r, _ := utf8.DecodeRune(s.b[pos:])
		msg = at(pos) + "unexpected " + describeChar(r) + " in " + what + "."
	}
	s.err = newError(CodeInvalidJSONLine, "", msg)
	return false
}

// tooDeep records that the container opening at pos exceeds MaxDepth.
func (s *scanner) tooDeep(pos int) bool {
	s.err = newError(CodeInvalidJSONLine, "", at(pos)+"nested too deeply; objects and arrays may be nested at most "+
		strconv.Itoa(s.maxDepth)+" levels deep.")
	return false
}

// maxQuoted bounds the bytes of a value quoted in a message.
const maxQuoted = 64

// describe renders a value for a message about its type or content.
func (s *scanner) describe(v value) string {
	switch v.kind {
	case kindString:
		return quote(string(appendDecoded(nil, s.b, v)))
	case kindNumber:
		return "the number " + truncate(string(s.b[v.start:v.end]))
	case kindTrue:
		return "true"
	case kindFalse:
		return "false"
	case kindNull:
		return "null"
	case kindObject:
		return "an object"
	case kindArray:
		return "an array"
	}
	return "nothing"
}

// typeName names the type of a value.
func typeName(k kind) string {
	switch k {
	case kindString:
		return "a string"
	case kindNumber:
		return "a number"
	case kindTrue, kindFalse:
		return "a boolean"
	case kindNull:
		return "null"
	case kindObject:
		return "an object"
	case kindArray:
		return "an array"
	}
	return "nothing"
}

// truncate cuts s to at most maxQuoted bytes without splitting a UTF-8 sequence.
func truncate(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	n := maxQuoted
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// quote truncates s and puts it in single quotes, escaping quotes, backslashes
// and non-printable characters.
func quote(s string) string {
	t := truncate(s)
	cut := len(t) < len(s)
	if cut {
		t = t[:len(t)-len("…")]
	}
	var sb strings.Builder
	sb.WriteByte('\'')
	for _, r := range t {
		switch {
		case r == '\'' || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case strconv.IsPrint(r):
			sb.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			sb.WriteString(q[1 : len(q)-1])
		}
	}
	sb.WriteByte('\'')
	if cut {
		sb.WriteString("…")
	}
	return sb.String()
}

// decodedKey returns the decoded text of a key.
func (s *scanner) decodedKey(key value) string {
	return string(appendDecoded(nil, s.b, key))
}

// duplicateError reports the first field named by two keys.
func (s *scanner) duplicateError() *Error {
	f := s.dup
	fl := &s.fields[f]
	first, second := s.decodedKey(fl.key), s.decodedKey(fl.dupKey)
	where := ""
	if f == fModel {
		where = " in body"
	}
	var msg string
	if first == second {
		msg = "duplicate key " + quote(first) + where + "; a key may appear only once."
	} else {
		msg = "keys " + quote(first) + " and " + quote(second) + where +
			" differ only in letter case; JSON parsers disagree on which one counts, so only one is allowed."
	}
	return newError(CodeDuplicateKey, fieldParams[f], msg)
}

// missingError reports that no key is exactly the name of field f.
func (s *scanner) missingError(f int) *Error {
	fl := &s.fields[f]
	var msg string
	if f == fModel {
		msg = "body is missing the required field 'model'"
	} else {
		msg = "missing required field " + quote(fieldNames[f])
	}
	if fl.count > 0 {
		msg += " (found " + quote(s.decodedKey(fl.key)) + "; field names are case-sensitive)"
	}
	msg += "."
	if f == fURL {
		msg += " Supported urls: " + supportedURLs + "."
	}
	return newError(missingCodes[f], fieldParams[f], msg)
}

// urlError reports a url that is present but not a batch endpoint.
func (s *scanner) urlError(v value) *Error {
	var msg string
	if v.kind != kindString {
		msg = "url must be a string, got " + s.describe(v) + "."
	} else {
		url := string(appendDecoded(nil, s.b, v))
		msg = "unsupported url " + quote(url) + "."
		for _, e := range BatchEndpoints {
			if strings.HasSuffix(url, e) {
				msg += " The url is the path only, like " + quote(e) + "."
				break
			}
		}
	}
	return newError(CodeUnsupportedURL, ParamURL, msg+" Supported urls: "+supportedURLs+".")
}

// utf8Error reports the first invalid UTF-8 sequence in b.
func utf8Error(b []byte) *Error {
	i := 0
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	msg := "invalid UTF-8 at byte " + strconv.Itoa(i+1)
	if i < len(b) {
		msg += fmt.Sprintf(" (0x%02X)", b[i])
	}
	return newError(CodeInvalidUTF8, "", msg+"; lines must be UTF-8 encoded.")
}
