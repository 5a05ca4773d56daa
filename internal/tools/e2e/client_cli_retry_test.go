package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"
)

// volley batch retry against Volley's retry route: a new batch of exactly the lines that failed,
// watched to its end, the old batch untouched.
func TestCLIRetry(t *testing.T) {
	t.Parallel()
	s := startCLIStack(t, 8)
	dir := t.TempDir()
	// Each failing line fails once (a final 400) and succeeds when sent again.
	var b strings.Builder
	var failing []string
	for i := range 50 {
		id := fmt.Sprintf("req-%04d", i)
		extra := ""
		if i%7 == 2 {
			extra = `,"mock":{"status":400,"times":1}`
			failing = append(failing, id)
		}
		b.WriteString(reqLine(id, "cli-model", extra))
	}
	path := filepath.Join(dir, "retry.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))

	sub := s.run("batch", "submit", path, "--wait")
	require.Equal(t, 1, sub.code, sub.stderr)
	old := strings.Fields(sub.stdout)[0]
	before, err := s.client.Batches.Get(ctx(t), old)
	require.NoError(t, err)
	require.Equal(t, int64(len(failing)), before.RequestCounts.Failed)

	res := s.run("batch", "retry", old, "--status", "failed", "--metadata", "why=flaky", "--wait", "--json")
	require.Equal(t, 0, res.code, "every retried line completes\nstdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	var nb openai.Batch
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &nb))
	require.NotEqual(t, old, nb.ID)
	require.Equal(t, openai.BatchStatusCompleted, nb.Status)
	require.Equal(t, int64(len(failing)), nb.RequestCounts.Total)
	require.Equal(t, int64(len(failing)), nb.RequestCounts.Completed)
	require.Equal(t, old, nb.Metadata["volley_retry_of"])
	require.Equal(t, "flaky", nb.Metadata["why"])

	outPath := filepath.Join(dir, "retried.jsonl")
	r := s.run("batch", "results", nb.ID, "--out", outPath)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, failing, jsonlCustomIDs(t, outPath), "the new batch holds exactly the retried lines")

	after, err := s.client.Batches.Get(ctx(t), old)
	require.NoError(t, err)
	require.Equal(t, before.RequestCounts, after.RequestCounts, "the old batch is unchanged")
	require.Equal(t, before.ErrorFileID, after.ErrorFileID)

	// Named lines, any state, in a window of their own; and a batch with nothing left to retry.
	one := s.run("batch", "retry", old, "--custom-id", "req-0000", "--custom-id", "req-0001", "--status", "completed", "--window", "2h", "--json")
	require.Equal(t, 0, one.code, one.stderr)
	var picked openai.Batch
	require.NoError(t, json.Unmarshal([]byte(one.stdout), &picked))
	require.Equal(t, int64(2), picked.RequestCounts.Total)
	require.Equal(t, "2h", picked.CompletionWindow)
	none := s.run("batch", "retry", nb.ID)
	require.Equal(t, 1, none.code)
	require.Contains(t, none.stderr, "retry batch: 400 Batch '"+nb.ID+"' has no line to retry")
	require.Contains(t, none.stderr, "code nothing_to_retry")

	// A batch that still runs cannot be retried; the server's reason is shown.
	m := startCLIStack(t, 1, "-latency", "300ms")
	slow, _ := writeRequests(t, dir, "slow.jsonl", 20, nil)
	sub = m.run("batch", "submit", slow)
	require.Equal(t, 0, sub.code, sub.stderr)
	running := strings.TrimSpace(sub.stdout)
	res = m.run("batch", "retry", running)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "retry batch: 400 Cannot retry a batch with status 'in_progress'")
	res = m.run("batch", "retry", "batch_missing")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "retry batch: 404 No batch found with id 'batch_missing'.")
}
