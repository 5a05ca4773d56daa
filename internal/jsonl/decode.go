package jsonl

import (
	"bytes"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// appendDecoded appends the decoded value of the well-formed string v to dst,
// resolving escapes the way encoding/json does: a \u escape that is not part of
// a valid surrogate pair yields U+FFFD.
func appendDecoded(dst, b []byte, v value) []byte {
	s := b[v.start+1 : v.end-1]
	if !v.esc {
		return append(dst, s...)
	}
	for {
		k := bytes.IndexByte(s, '\\')
		if k < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:k]...)
		s = s[k:]
		switch c := s[1]; c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[2:6])
			s = s[6:]
			if utf16.IsSurrogate(r) {
				if len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
					if dec := utf16.DecodeRune(r, hex4(s[2:6])); dec != unicode.ReplacementChar {
						dst = utf8.AppendRune(dst, dec)
						s = s[6:]
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
		s = s[2:]
	}
}

// hex4 decodes four hexadecimal digits, already known to be valid.
func hex4(h []byte) rune {
	return hexVal(h[0])<<12 | hexVal(h[1])<<8 | hexVal(h[2])<<4 | hexVal(h[3])
}

// classify returns the field that the key with raw content k (the bytes between
// its quotes) names, exactly or up to letter case, or -1. Letter case is folded
// as encoding/json folds names when matching struct fields: besides ASCII case,
// U+017F (ſ) folds to S and U+212A (Kelvin sign) to K.
func classify(k []byte, esc, inBody bool) int {
	lo, hi, longest := fCustomID, fBody, len("custom_id")
	if inBody {
		lo, hi, longest = fModel, fModel, len("model")
	}
	if !esc {
		// The exact names and their ASCII variants have the length of the name.
		for f := lo; f <= hi; f++ {
			if name := fieldNames[f]; len(k) == len(name) && asciiFoldEqual(k, name) {
				return f
			}
		}
		// Other variants contain multi-byte characters, which take at most
		// three bytes each.
		if len(k) > 3*longest || !hasNonASCII(k) {
			return -1
		}
		return foldMatch(k, lo, hi)
	}
	// An escape takes at most six bytes per decoded byte, so a longer key
	// decodes to more than 3*longest bytes and cannot match.
	if len(k) > 6*3*longest {
		return -1
	}
	var tmp [64]byte
	return foldMatch(appendDecoded(tmp[:0], k, value{esc: true, start: -1, end: len(k) + 1}), lo, hi)
}

// foldMatch returns the first field in [lo, hi] whose name equals the decoded key
// up to case folding, or -1.
func foldMatch(key []byte, lo, hi int) int {
	for f := lo; f <= hi; f++ {
		if foldEqual(key, fieldNames[f]) {
			return f
		}
	}
	return -1
}

// asciiFoldEqual reports whether k equals the lower-case ASCII name up to ASCII
// letter case.
func asciiFoldEqual(k []byte, name string) bool {
	for i := range len(k) {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

func hasNonASCII(k []byte) bool {
	for _, c := range k {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// foldEqual reports whether the UTF-8 key equals the ASCII name when both are
// folded the way encoding/json folds names.
func foldEqual(key []byte, name string) bool {
	n := 0
	for len(key) > 0 {
		r, size := utf8.DecodeRune(key)
		key = key[size:]
		if n >= len(name) || foldRune(r) != foldRune(rune(name[n])) {
			return false
		}
		n++
	}
	return n == len(name)
}

// foldRune returns the smallest rune in r's simple case-folding orbit, as
// encoding/json does.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// hasLoneSurrogate reports whether the well-formed string v holds a \u escape naming a UTF-16
// surrogate that is not half of a valid pair: one that encoding/json, and appendDecoded, turn
// into U+FFFD.
func hasLoneSurrogate(b []byte, v value) bool {
	if !v.esc {
		return false
	}
	s := b[v.start+1 : v.end-1]
	for {
		k := bytes.IndexByte(s, '\\')
		if k < 0 {
			return false
		}
		s = s[k:]
		if s[1] != 'u' {
			s = s[2:]
			continue
		}
		r := hex4(s[2:6])
		s = s[6:]
		if !utf16.IsSurrogate(r) {
			continue
		}
		if len(s) < 6 || s[0] != '\\' || s[1] != 'u' || utf16.DecodeRune(r, hex4(s[2:6])) == unicode.ReplacementChar {
			return true
		}
		s = s[6:]
	}
}
