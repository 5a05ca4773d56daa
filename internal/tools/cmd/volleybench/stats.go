package main

import (
	"slices"
	"strconv"
	"time"
)

// number is what median and maxOf work on.
type number interface {
	~int64 | ~float64
}

// median returns the middle value (the lower of the two middle ones for an even count, so that
// it is always a value that was measured). xs must not be empty.
func median[T number](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func maxOf[T number](xs []T) T { return slices.Max(xs) }

func collect[R any, T any](rs []R, f func(R) T) []T {
	out := make([]T, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

// mb is bytes in decimal megabytes (10^6 bytes), the unit of every size and rate reported.
func mb(bytes int64) float64 { return float64(bytes) / 1e6 }

func mbPerSec(bytes int64, d time.Duration) float64 { return mb(bytes) / d.Seconds() }

// thousands formats n with comma separators: 50000 → "50,000".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
