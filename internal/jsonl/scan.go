package jsonl

import (
	"encoding/binary"
	"unicode/utf8"
)

// kind is the type of a JSON value, as told by its first byte.
type kind uint8

const (
	kindNone kind = iota // absent
	kindString
	kindNumber
	kindTrue
	kindFalse
	kindNull
	kindObject
	kindArray
)

// value locates a JSON value in the line.
type value struct {
	kind  kind
	esc   bool // a string containing backslash escapes
	start int  // b[start:end] is the raw JSON text; strings include their quotes
	end   int
}

// The fields the rules look at. The first four are top-level keys, fModel is a key
// of the body.
const (
	fCustomID = iota
	fMethod
	fURL
	fBody
	fModel
	numFields
)

var fieldNames = [numFields]string{"custom_id", "method", "url", "body", "model"}

var fieldParams = [numFields]string{ParamCustomID, ParamMethod, ParamURL, ParamBody, ParamModel}

var missingCodes = [numFields]string{CodeMissingCustomID, CodeMissingMethod, CodeMissingURL, CodeMissingBody, CodeMissingModel}

// field records the keys that name one field.
type field struct {
	count  int   // keys naming the field, exactly or up to letter case
	exact  bool  // the first such key is the exact name
	key    value // the first such key
	val    value // its value, recorded only if exact
	dupKey value // the second such key
}

// scanner holds the state of one Validate call.
type scanner struct {
	b        []byte
	i        int // read position
	depth    int // objects and arrays currently open
	maxDepth int
	fields   [numFields]field
	dup      int // the first field with two keys, or -1
	err      *Error
}

// line parses the whole line. It reports success; on failure s.err is set.
func (s *scanner) line() bool {
	b := s.b
	s.i = skipWS(b, 0)
	if s.i == len(b) {
		s.err = newError(CodeInvalidJSONLine, "", "invalid JSON: the line is empty.")
		return false
	}
	if b[s.i] != '{' {
		k, ok := s.skipValue()
		if !ok || !s.end() {
			return false
		}
		s.err = newError(CodeInvalidJSONLine, "", "line must be a JSON object, got "+typeName(k)+".")
		return false
	}
	return s.object(false) && s.end()
}

// end checks that only whitespace follows the top-level value.
func (s *scanner) end() bool {
	s.i = skipWS(s.b, s.i)
	if s.i < len(s.b) {
		return s.syntaxError(s.i, ctxEnd)
	}
	return true
}

// object parses the object at s.i, either the line itself or (inBody) its body,
// recording the keys that name fields. The recursion is at most one level deep:
// only the top level calls object for the body.
func (s *scanner) object(inBody bool) bool {
	b := s.b
	if s.depth >= s.maxDepth {
		return s.tooDeep(s.i)
	}
	s.depth++
	i := skipWS(b, s.i+1)
	if i >= len(b) {
		return s.syntaxError(i, ctxFirstKey)
	}
	if b[i] == '}' {
		s.i = i + 1
		s.depth--
		return true
	}
	ctx := ctxFirstKey
	for {
		if b[i] != '"' {
			return s.syntaxError(i, ctx)
		}
		j, esc, ok := scanString(b, i)
		if !ok {
			return s.stringError(i)
		}
		key := value{kind: kindString, esc: esc, start: i, end: j}
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return s.syntaxError(i, ctxColon)
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return s.syntaxError(i, ctxValue)
		}
		s.i = i
		f := classify(b[key.start+1:key.end-1], esc, inBody)
		if f < 0 {
			if _, ok := s.skipValue(); !ok {
				return false
			}
		} else if !s.member(f, key) {
			return false
		}
		i = skipWS(b, s.i)
		if i >= len(b) {
			return s.syntaxError(i, ctxObjectNext)
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
			if i >= len(b) {
				return s.syntaxError(i, ctxKey)
			}
			ctx = ctxKey
		case '}':
			s.i = i + 1
			s.depth--
			return true
		default:
			return s.syntaxError(i, ctxObjectNext)
		}
	}
}

// member parses the value at s.i of a key that names field f.
func (s *scanner) member(f int, key value) bool {
	fl := &s.fields[f]
	fl.count++
	exact := fl.count == 1 && keyIs(s.b, key, fieldNames[f])
	if fl.count == 1 {
		fl.exact = exact
		fl.key = key
	} else if fl.count == 2 {
		fl.dupKey = key
		if s.dup < 0 {
			s.dup = f
		}
	}
	if !exact {
		_, ok := s.skipValue()
		return ok
	}
	start := s.i
	if f == fBody && s.b[start] == '{' {
		if !s.object(true) {
			return false
		}
		fl.val = value{kind: kindObject, start: start, end: s.i}
		return true
	}
	if s.b[start] == '"' {
		j, esc, ok := scanString(s.b, start)
		if !ok {
			return s.stringError(start)
		}
		s.i = j
		fl.val = value{kind: kindString, esc: esc, start: start, end: j}
		return true
	}
	k, ok := s.skipValue()
	fl.val = value{kind: k, start: start, end: s.i}
	return ok
}

// keyIs reports whether the raw key decodes to name.
func keyIs(b []byte, key value, name string) bool {
	if !key.esc {
		return string(b[key.start+1:key.end-1]) == name
	}
	var tmp [32]byte
	return string(appendDecoded(tmp[:0], b, key)) == name
}

// skipValue parses the value at s.i (which is not whitespace and not past the
// end) and reports its kind.
func (s *scanner) skipValue() (kind, bool) {
	b := s.b
	i := s.i
	var k kind
	var j int
	ok := true
	switch c := b[i]; c {
	case '"':
		k = kindString
		j, _, ok = scanString(b, i)
		if !ok {
			return k, s.stringError(i)
		}
	case '{', '[':
		k = kindObject
		if c == '[' {
			k = kindArray
		}
		return k, s.container()
	case 't':
		k = kindTrue
		j, ok = scanLiteral(b, i, "true")
	case 'f':
		k = kindFalse
		j, ok = scanLiteral(b, i, "false")
	case 'n':
		k = kindNull
		j, ok = scanLiteral(b, i, "null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		k = kindNumber
		j, ok = scanNumber(b, i)
	default:
		return kindNone, s.syntaxError(i, ctxValue)
	}
	if !ok {
		return k, s.tokenError(i, j, k)
	}
	s.i = j
	return k, true
}

// container parses the object or array at s.i without recursion, keeping the
// kinds of the open containers in a bit stack.
func (s *scanner) container() bool {
	b := s.b
	i := s.i
	limit := s.maxDepth - s.depth // containers this value may open
	var small [4]uint64
	stack := small[:]
	if limit > 64*len(small) {
		stack = make([]uint64, (limit+63)/64)
	}
	n := 0 // containers open within this value; bit n-1 of stack is set for an object
	for {
		// A value starts at b[i].
		switch c := b[i]; c {
		case '{':
			if n >= limit {
				return s.tooDeep(i)
			}
			stack[n>>6] |= 1 << (n & 63)
			n++
			i = skipWS(b, i+1)
			if i >= len(b) {
				return s.syntaxError(i, ctxFirstKey)
			}
			if b[i] == '}' {
				i++
				n--
				break
			}
			if b[i] != '"' {
				return s.syntaxError(i, ctxFirstKey)
			}
			j, _, ok := scanString(b, i)
			if !ok {
				return s.stringError(i)
			}
			i = skipWS(b, j)
			if i >= len(b) || b[i] != ':' {
				return s.syntaxError(i, ctxColon)
			}
			i = skipWS(b, i+1)
			if i >= len(b) {
				return s.syntaxError(i, ctxValue)
			}
			continue
		case '[':
			if n >= limit {
				return s.tooDeep(i)
			}
			stack[n>>6] &^= 1 << (n & 63)
			n++
			i = skipWS(b, i+1)
			if i >= len(b) {
				return s.syntaxError(i, ctxFirstElem)
			}
			if b[i] == ']' {
				i++
				n--
				break
			}
			continue
		case '"':
			j, _, ok := scanString(b, i)
			if !ok {
				return s.stringError(i)
			}
			i = j
		case 't', 'f', 'n':
			k, lit := kindTrue, "true"
			if c == 'f' {
				k, lit = kindFalse, "false"
			} else if c == 'n' {
				k, lit = kindNull, "null"
			}
			j, ok := scanLiteral(b, i, lit)
			if !ok {
				return s.tokenError(i, j, k)
			}
			i = j
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			j, ok := scanNumber(b, i)
			if !ok {
				return s.tokenError(i, j, kindNumber)
			}
			i = j
		default:
			ctx := ctxValue
			if n > 0 && stack[(n-1)>>6]&(1<<((n-1)&63)) == 0 {
				ctx = ctxElem
			}
			return s.syntaxError(i, ctx)
		}
		// A value ends before b[i]: close containers until one continues.
		for {
			if n == 0 {
				s.i = i
				return true
			}
			i = skipWS(b, i)
			inObject := stack[(n-1)>>6]&(1<<((n-1)&63)) != 0
			if i >= len(b) {
				if inObject {
					return s.syntaxError(i, ctxObjectNext)
				}
				return s.syntaxError(i, ctxArrayNext)
			}
			c := b[i]
			if inObject {
				if c == '}' {
					i++
					n--
					continue
				}
				if c != ',' {
					return s.syntaxError(i, ctxObjectNext)
				}
				i = skipWS(b, i+1)
				if i >= len(b) || b[i] != '"' {
					return s.syntaxError(i, ctxKey)
				}
				j, _, ok := scanString(b, i)
				if !ok {
					return s.stringError(i)
				}
				i = skipWS(b, j)
				if i >= len(b) || b[i] != ':' {
					return s.syntaxError(i, ctxColon)
				}
				i = skipWS(b, i+1)
				if i >= len(b) {
					return s.syntaxError(i, ctxValue)
				}
				break
			}
			if c == ']' {
				i++
				n--
				continue
			}
			if c != ',' {
				return s.syntaxError(i, ctxArrayNext)
			}
			i = skipWS(b, i+1)
			if i >= len(b) {
				return s.syntaxError(i, ctxElem)
			}
			break
		}
	}
}

// skipWS returns the index of the first non-whitespace byte at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// needsAttention marks the bytes that stop the fast scan of a string.
var needsAttention = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'] = true
	t['\\'] = true
	return t
}()

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// scanString scans the string whose opening quote is at b[i]. It returns the
// index just after the closing quote and whether the string contains escapes.
// If the string is malformed it returns ok == false; stringError then finds out
// what is wrong.
func scanString(b []byte, i int) (j int, esc, ok bool) {
	i++
	for {
		// Skip eight bytes at a time while none is a quote, a backslash or a
		// control character. Each term of the OR has its high bit set in a byte
		// only if some byte (that one or a lower one) matches; masking with ^w
		// ignores bytes that have their own high bit set.
		for i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			if ((w-ones*0x20)|((w^(ones*'"'))-ones)|((w^(ones*'\\'))-ones))&^w&highs != 0 {
				break
			}
			i += 8
		}
		for i < len(b) && !needsAttention[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, esc, false
		}
		switch b[i] {
		case '"':
			return i + 1, esc, true
		case '\\':
			esc = true
			if i+1 >= len(b) {
				return len(b), esc, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return len(b), esc, false
				}
				if hexVal(b[i+2])|hexVal(b[i+3])|hexVal(b[i+4])|hexVal(b[i+5]) < 0 {
					return i, esc, false
				}
				i += 6
			default:
				return i, esc, false
			}
		default: // a control character
			return i, esc, false
		}
	}
}

// hexVal returns the value of a hexadecimal digit, or -1.
func hexVal(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// scanLiteral scans lit (true, false or null) at b[i]. It returns the index
// after it, or ok == false and the index of the first wrong byte.
func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	for k := 1; k < len(lit); k++ {
		if i+k >= len(b) || b[i+k] != lit[k] {
			return i + k, false
		}
	}
	panic("unreachable")
}

// scanNumber scans the number at b[i] per the JSON grammar. It returns the index
// after it, or ok == false and the index of the byte where a digit was needed.
func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i++
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validUTF8 is utf8.Valid with a faster path for long runs of ASCII.
func validUTF8(b []byte) bool {
	i := 0
	for {
		for i+16 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:]) | binary.LittleEndian.Uint64(b[i+8:])
			if w&highs != 0 {
				break
			}
			i += 16
		}
		// Validate from here up to the next run of ASCII.
		j := min(i+64, len(b))
		if j == len(b) {
			return utf8.Valid(b[i:])
		}
		// Do not split a sequence: extend to the next ASCII byte.
		for j < len(b) && b[j] >= utf8.RuneSelf {
			j++
		}
		if !utf8.Valid(b[i:j]) {
			return false
		}
		i = j
	}
}
