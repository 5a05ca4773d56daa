package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A write gathers results up to FlushMax and FlushMaxBytes; a result too large to join the write
// being gathered opens the next one, and one larger than FlushMaxBytes is written alone.
func TestRecorderBoundsAWriteByBytes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FlushMax, cfg.FlushMaxBytes, cfg.FlushInterval = 3, 10, time.Hour
	r := newRecorder(&Daemon{cfg: cfg})
	var writes [][]int
	r.write = func(_ context.Context, batch []result) {
		var sizes []int
		for _, res := range batch {
			sizes = append(sizes, len(res.line))
		}
		writes = append(writes, sizes)
	}
	for _, n := range []int{4, 4, 4, 20, 1, 1, 1, 1, 3, 9} {
		r.add(result{line: []byte(strings.Repeat("x", n))})
	}
	close(r.in)
	r.loop(context.Background())
	require.Equal(t, [][]int{{4, 4}, {4}, {20}, {1, 1, 1}, {1, 3}, {9}}, writes)
}

// Without a flush interval a write takes what queued while the last one ran, and a lone result
// is written at once rather than waiting for company.
func TestRecorderWithoutAnIntervalWritesWhatQueued(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FlushMax, cfg.FlushMaxBytes, cfg.FlushInterval = 3, 1000, 0
	r := newRecorder(&Daemon{cfg: cfg})
	writes := make(chan int, 16)
	r.write = func(_ context.Context, batch []result) { writes <- len(batch) }
	for range 5 {
		r.add(result{line: []byte("x")})
	}
	go r.loop(context.Background())
	require.Equal(t, 3, <-writes, "the queued results, up to FlushMax")
	require.Equal(t, 2, <-writes)

	r.add(result{line: []byte("x")})
	select {
	case n := <-writes:
		require.Equal(t, 1, n)
	case <-time.After(10 * time.Second):
		t.Fatal("a lone result was not written")
	}
	close(r.in)
	<-r.done
}
