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
