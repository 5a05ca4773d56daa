package cli

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// ANSI sequences, written only to a terminal.
const (
	ansiReset    = "\x1b[0m"
	ansiBold     = "\x1b[1m"
	ansiDim      = "\x1b[2m"
	ansiRed      = "\x1b[31m"
	ansiGreen    = "\x1b[32m"
	ansiYellow   = "\x1b[33m"
	ansiCyan     = "\x1b[36m"
	ansiClearEOL = "\x1b[K"
)

// screen is where progress goes (stderr). On a terminal one line is redrawn in place, with colour;
// anywhere else each update is a plain line, at most one per period, without control characters.
type screen struct {
	w      io.Writer
	tty    bool
	colour bool
	width  func() int
	period time.Duration // plain mode: least time between two lines
	now    func() time.Time

	drawn     bool      // tty: a line is on screen and not yet ended
	lastPlain time.Time // plain: when the last line was printed
	lastText  string
}

// paint wraps s in an ANSI colour when colour is on.
func (s *screen) paint(code, text string) string {
	if !s.colour || text == "" {
		return text
	}
	return code + text + ansiReset
}

// update shows a progress line: redrawn at once on a terminal; elsewhere printed when the period has
// passed since the last line, or when force is set (a change worth a line of its own).
func (s *screen) update(tty, plain string, force bool) {
	if s.tty {
		fmt.Fprint(s.w, "\r"+s.fit(tty)+ansiClearEOL)
		s.drawn = true
		return
	}
	now := s.now()
	if plain == s.lastText && !force {
		return
	}
	if !force && !s.lastPlain.IsZero() && now.Sub(s.lastPlain) < s.period {
		return
	}
	fmt.Fprintln(s.w, plain)
	s.lastPlain, s.lastText = now, plain
}

// end finishes the progress line; on a terminal the last drawn line stays on screen.
func (s *screen) end() {
	if s.tty && s.drawn {
		fmt.Fprintln(s.w)
		s.drawn = false
	}
}

// note prints a message above the progress line: on a terminal the bar's line is cleared first, so
// the bar is redrawn under the message rather than left behind in the scrollback.
func (s *screen) note(tty, plain string) {
	if !s.tty {
		fmt.Fprintln(s.w, plain)
		return
	}
	if s.drawn {
		fmt.Fprint(s.w, "\r"+ansiClearEOL)
		s.drawn = false
	}
	fmt.Fprintln(s.w, s.fit(tty))
}

// say prints a message on a line of its own, ending any progress line first.
func (s *screen) say(format string, args ...any) {
	s.end()
	fmt.Fprintf(s.w, format+"\n", args...)
}

// fit cuts a line that is wider than the terminal, counting only visible characters, so that a
// redraw never wraps (a wrapped line cannot be redrawn with \r).
func (s *screen) fit(line string) string {
	width := 80
	if s.width != nil {
		if w := s.width(); w > 0 {
			width = w
		}
	}
	max := width - 1
	var b strings.Builder
	visible := 0
	for i := 0; i < len(line); {
		if line[i] == '\x1b' {
			j := strings.IndexByte(line[i:], 'm')
			if j < 0 {
				break
			}
			b.WriteString(line[i : i+j+1])
			i += j + 1
			continue
		}
		r, size := utf8.DecodeRuneInString(line[i:])
		if visible == max {
			if s.colour {
				b.WriteString(ansiReset)
			}
			break
		}
		b.WriteRune(r)
		visible++
		i += size
	}
	return b.String()
}

// visible is the number of characters of line a terminal shows (ANSI sequences take none).
func visible(line string) int {
	n := 0
	for i := 0; i < len(line); {
		if line[i] == '\x1b' {
			if j := strings.IndexByte(line[i:], 'm'); j >= 0 {
				i += j + 1
				continue
			}
		}
		_, size := utf8.DecodeRuneInString(line[i:])
		n++
		i += size
	}
	return n
}

// room is how wide a bar can be next to the rest of the line, within lo..hi cells.
func (s *screen) room(rest string, lo, hi int) int {
	width := 80
	if s.width != nil {
		if w := s.width(); w > 0 {
			width = w
		}
	}
	return min(max(width-1-visible(rest), lo), hi)
}

// bar draws a bar of width cells: completed cells, then failed cells, then the rest.
func (s *screen) bar(width int, completed, failed, total int64) string {
	if width < 1 {
		return ""
	}
	done, bad := 0, 0
	if total > 0 {
		done = int(int64(width) * completed / total)
		bad = int(int64(width) * (completed + failed) / total)
		bad -= done
		if failed > 0 && bad == 0 && done+bad < width {
			bad = 1 // failures are never invisible
		}
	}
	rest := width - done - bad
	if rest < 0 {
		rest = 0
	}
	return s.paint(ansiGreen, strings.Repeat("█", done)) + s.paint(ansiRed, strings.Repeat("█", bad)) +
		s.paint(ansiDim, strings.Repeat("░", rest))
}

// rate estimates a rate (items per second) from samples over a sliding window.
type rate struct {
	window  time.Duration
	samples []sample
}

type sample struct {
	at time.Time
	n  int64
}

// add records that n items were done by at.
func (r *rate) add(at time.Time, n int64) {
	r.samples = append(r.samples, sample{at, n})
	cut := 0
	for cut < len(r.samples)-2 && at.Sub(r.samples[cut+1].at) >= r.window {
		cut++
	}
	r.samples = r.samples[cut:]
}

// perSecond is the rate over the window; ok is false until two samples some time apart exist.
func (r *rate) perSecond() (float64, bool) {
	if len(r.samples) < 2 {
		return 0, false
	}
	first, last := r.samples[0], r.samples[len(r.samples)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt < 0.2 {
		return 0, false
	}
	return float64(last.n-first.n) / dt, true
}

// eta is the time left at the current rate; ok is false when it cannot be told.
func (r *rate) eta(left int64) (time.Duration, bool) {
	if left <= 0 {
		return 0, true
	}
	perSec, ok := r.perSecond()
	if !ok || perSec <= 0 {
		return 0, false
	}
	return time.Duration(float64(left) / perSec * float64(time.Second)), true
}

// duration formats d the way a person reads it: 850ms, 42s, 3m05s, 2h07m.
func duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// byteSize formats n bytes with a binary-free decimal unit: 532 B, 12.4 kB, 3.1 MB.
func byteSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// perSecondText formats a rate, "-" when unknown.
func perSecondText(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
