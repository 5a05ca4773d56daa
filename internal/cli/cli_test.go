package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFlagsInterleaveWithArguments(t *testing.T) {
	t.Parallel()
	fs := newFlags("batch submit", BatchUsage)
	wait := fs.Bool("wait", false, "")
	window := fs.String("window", "24h", "")
	md := metadata{}
	fs.Var(md, "metadata", "")
	require.NoError(t, fs.parse([]string{"--window", "2h", "a.jsonl", "--wait", "--metadata", "k=v=w", "--", "--b"}))
	require.Equal(t, []string{"a.jsonl", "--b"}, fs.args)
	require.True(t, *wait)
	require.Equal(t, "2h", *window)
	require.Equal(t, metadata{"k": "v=w"}, md)

	var usage *UsageError
	err := newFlags("batch get", BatchUsage).parse([]string{"x", "--nope"})
	require.True(t, errors.As(err, &usage))
	require.Contains(t, usage.Msg, "batch get: flag provided but not defined: -nope")
	require.Equal(t, BatchUsage, usage.Usage)

	fs = newFlags("batch get", BatchUsage)
	require.NoError(t, fs.parse([]string{"a", "b"}))
	require.ErrorContains(t, fs.want(1, "a batch id"), `unexpected argument "b"`)
	require.ErrorContains(t, fs.want(3, "three ids"), "batch get: give three ids")
}

func TestListFlagSplitsCommas(t *testing.T) {
	t.Parallel()
	var l list
	require.NoError(t, l.Set("failed, expired"))
	require.NoError(t, l.Set("cancelled"))
	require.Equal(t, list{"failed", "expired", "cancelled"}, l)
	var ids repeated
	require.NoError(t, ids.Set("a,b"))
	require.NoError(t, ids.Set("c"))
	require.Equal(t, repeated{"a,b", "c"}, ids, "custom_ids are taken whole")
	require.Error(t, metadata{}.Set("=v"))
	require.Error(t, metadata{}.Set("novalue"))
}

func TestInferEndpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	line := func(url string) string {
		return `{"custom_id":"x","method":"POST","url":"` + url + `","body":{"model":"m"}}` + "\n"
	}
	got, err := inferEndpoint(write("one.jsonl", line("/v1/embeddings")+"\n"+"not json\n"+line("/v1/embeddings")))
	require.NoError(t, err)
	require.Equal(t, "/v1/embeddings", got, "blank and unparsable lines are left to the server")
	got, err = inferEndpoint(write("noeol.jsonl", strings.TrimSuffix(line("/v1/responses"), "\n")))
	require.NoError(t, err)
	require.Equal(t, "/v1/responses", got)
	_, err = inferEndpoint(write("mixed.jsonl", line("/v1/embeddings")+line("/v1/embeddings")+line("/v1/completions")))
	require.ErrorContains(t, err, `line 3 has url "/v1/completions" but line 1 has "/v1/embeddings"`)
	_, err = inferEndpoint(write("empty.jsonl", ""))
	require.ErrorContains(t, err, "no line has a url")
}

func TestRateAndETA(t *testing.T) {
	t.Parallel()
	r := &rate{window: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	r.add(t0, 0)
	_, ok := r.perSecond()
	require.False(t, ok, "one sample tells no rate")
	_, ok = r.eta(100)
	require.False(t, ok)
	r.add(t0.Add(2*time.Second), 40)
	v, ok := r.perSecond()
	require.True(t, ok)
	require.InDelta(t, 20, v, 1e-9)
	eta, ok := r.eta(100)
	require.True(t, ok)
	require.Equal(t, 5*time.Second, eta)
	// Old samples leave the window: the rate follows the recent pace.
	r.add(t0.Add(12*time.Second), 40)
	r.add(t0.Add(22*time.Second), 90)
	v, _ = r.perSecond()
	require.InDelta(t, 5, v, 1e-9)
	eta, ok = r.eta(0)
	require.True(t, ok)
	require.Zero(t, eta)
	stalled := &rate{window: time.Minute}
	stalled.add(t0, 5)
	stalled.add(t0.Add(time.Second), 5)
	_, ok = stalled.eta(10)
	require.False(t, ok, "no progress: no ETA")
}

func TestBarAndLineFitting(t *testing.T) {
	t.Parallel()
	s := &screen{}
	require.Equal(t, "█████░░░░░", s.bar(10, 50, 0, 100))
	require.Equal(t, "████████░░", s.bar(10, 70, 10, 100))
	require.Equal(t, "█░░░░░░░░░", s.bar(10, 0, 1, 1000), "one failure shows")
	require.Equal(t, "░░░░░░░░░░", s.bar(10, 0, 0, 0))
	coloured := &screen{colour: true}
	require.Equal(t, ansiGreen+"█"+ansiReset+ansiRed+"█"+ansiReset+ansiDim+"░░"+ansiReset, coloured.bar(4, 1, 1, 4))

	narrow := &screen{colour: true, width: func() int { return 11 }}
	line := narrow.paint(ansiGreen, "completed") + " 12345678"
	fitted := narrow.fit(line)
	require.Equal(t, 10, visible(fitted))
	require.True(t, strings.HasSuffix(fitted, ansiReset), "a cut line resets its colour")
	require.Equal(t, 9, visible(narrow.paint(ansiRed, "completed")))
	require.Equal(t, 20, (&screen{width: func() int { return 0 }}).room(strings.Repeat("x", 59), 10, 20), "80 columns when unknown")
}

func TestPlainScreenPrintsAtMostOneLinePerPeriod(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	s := &screen{w: &buf, period: 5 * time.Second, now: func() time.Time { return now }}
	s.update("tty", "a", false)
	now = now.Add(time.Second)
	s.update("tty", "b", false) // too soon
	s.update("tty", "c", true)  // forced
	now = now.Add(6 * time.Second)
	s.update("tty", "c", false) // unchanged
	s.update("tty", "d", false)
	s.end()
	require.Equal(t, "a\nc\nd\n", buf.String())

	buf.Reset()
	tty := &screen{w: &buf, tty: true}
	tty.update("one", "plain", false)
	tty.update("two", "plain", false)
	tty.say("note %d", 1)
	require.Equal(t, "\rone"+ansiClearEOL+"\rtwo"+ansiClearEOL+"\nnote 1\n", buf.String())
}

func TestFormats(t *testing.T) {
	t.Parallel()
	require.Equal(t, "850ms", duration(850*time.Millisecond))
	require.Equal(t, "42s", duration(42*time.Second))
	require.Equal(t, "3m05s", duration(3*time.Minute+5*time.Second))
	require.Equal(t, "2h07m", duration(2*time.Hour+7*time.Minute))
	require.Equal(t, "0ms", duration(-time.Second))
	require.Equal(t, "532 B", byteSize(532))
	require.Equal(t, "12.4 kB", byteSize(12400))
	require.Equal(t, "3.1 MB", byteSize(3_100_000))
	require.Equal(t, "-", perSecondText(0, false))
	require.Equal(t, "7.5", perSecondText(7.5, true))
	require.Equal(t, "1234", perSecondText(1234.4, true))
}
