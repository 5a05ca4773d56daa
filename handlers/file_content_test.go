package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDownloadSelectedLines(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	var in []string
	for i := 1; i <= 12; i++ {
		id := fmt.Sprintf("row-%d", i)
		if i == 5 {
			id = "odd_%5"
		}
		in = append(in, line(id)+"\n")
		if i == 3 {
			in = append(in, "   \n") // kept in the content, not a request
		}
	}
	content := strings.Join(in, "")
	file := f.uploadOK(f.alice, content)
	get := func(id, query string) (int, string) {
		status, h, body := f.do(http.MethodGet, "/v1/files/"+id+"/content"+query, f.alice, nil, nil)
		if status == http.StatusOK {
			require.Equal(t, strconv.Itoa(len(body)), h.Get("Content-Length"), query)
		}
		return status, string(body)
	}
	status, whole := get(file.ID, "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, content, whole, "without parameters, exactly today's answer")
	lines := strings.SplitAfter(content, "\n")
	cases := []struct {
		query string
		want  string
	}{
		{"?offset=0", content},
		{"?offset=2&limit=3", strings.Join(lines[2:5], "")}, // the whitespace line counts as a line
		{"?limit=1", lines[0]},
		{"?offset=12", lines[12]},
		{"?offset=13", ""},
		{"?offset=1000000000000", ""},
		{"?limit=1000000000000", content},
		{"?search=ROW-1", lines[0] + strings.Join(lines[10:13], "")}, // row-1, row-10, row-11, row-12
		{"?search=ROW-1&offset=1&limit=2", strings.Join(lines[10:12], "")},
		{"?search=" + url.QueryEscape("_%"), lines[5]}, // literal
		{"?search=%25", lines[5]},
		{"?search=_", lines[5]},
		{"?search=nothing", ""},
	}
	for _, c := range cases {
		status, got := get(file.ID, c.query)
		require.Equal(t, http.StatusOK, status, c.query)
		require.Equal(t, c.want, got, c.query)
	}

	// Result files are selected the same way.
	b := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, file.ID))
	ctx := context.Background()
	_, err := f.pool.Exec(ctx, `UPDATE requests SET state = CASE WHEN line % 3 = 0 THEN 'failed' ELSE 'completed' END,
		result = convert_to('{"custom_id":"' || custom_id || '"}' || E'\n', 'UTF8') WHERE batch_id = $1`, b.ID)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `INSERT INTO files (id, owner, filename, purpose, bytes, line_count, created_at, batch_id) VALUES
		('file-out', 'alice', 'o.jsonl', 'batch_output', (SELECT sum(length(result)) FROM requests WHERE batch_id = $1 AND state = 'completed'), 0, now(), $1),
		('file-err', 'alice', 'e.jsonl', 'batch_error', (SELECT sum(length(result)) FROM requests WHERE batch_id = $1 AND state = 'failed'), 0, now(), $1)`, b.ID)
	require.NoError(t, err)
	_, out := get("file-out", "")
	_, errs := get("file-err", "")
	outLines, errLines := strings.SplitAfter(out, "\n"), strings.SplitAfter(errs, "\n")
	require.Len(t, outLines, 9) // 8 lines and the empty tail
	for _, c := range []struct{ id, query, want string }{
		{"file-out", "?offset=1&limit=2", strings.Join(outLines[1:3], "")},
		{"file-out", "?search=row-1", outLines[0] + strings.Join(outLines[6:8], "")}, // row-1, row-10, row-11
		{"file-err", "?search=row&offset=1", strings.Join(errLines[2:4], "")},        // row-3 skipped, odd_%5 not a match
		{"file-err", "?limit=1", errLines[0]},
	} {
		status, got := get(c.id, c.query)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, c.want, got, c.id+c.query)
	}

	for _, c := range []struct{ query, param, message string }{
		{"?offset=-1", "offset", "0 or more"},
		{"?limit=0", "limit", "1 or more"},
		{"?limit=x", "limit", ""},
		{"?search=" + strings.Repeat("a", 300), "search", "at most 256"},
	} {
		status, _, body := f.do(http.MethodGet, "/v1/files/"+file.ID+"/content"+c.query, f.alice, nil, nil)
		require.Equal(t, http.StatusBadRequest, status, c.query)
		e := decodeEnvelope(t, body)
		require.Equal(t, c.param, strOrEmpty(e.Error.Param), c.query)
		require.Contains(t, e.Error.Message, c.message, c.query)
	}
	status, _, _ = f.do(http.MethodGet, "/v1/files/"+file.ID+"/content?limit=1", f.bob, nil, nil)
	require.Equal(t, http.StatusNotFound, status)
}
