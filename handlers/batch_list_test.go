package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestListBatchesFiltersAndPaging(t *testing.T) {
	t.Parallel()
	f := setupBatches(t)
	ctx := context.Background()
	fileA := f.uploadOK(f.alice, lines(1)).ID
	fileB := f.uploadOK(f.alice, lines(1)).ID
	_, err := f.pool.Exec(ctx, `UPDATE files SET filename = 'nightly_eval%.jsonl' WHERE id = $1`, fileB)
	require.NoError(t, err)
	// Oldest first: b0 … b7.
	statuses := []string{"completed", "in_progress", "failed", "cancelling", "cancelled", "expired", "finalizing", "in_progress"}
	var ids []string
	for i, st := range statuses {
		file := fileA
		if i%2 == 1 {
			file = fileB
		}
		b := f.createBatch(f.alice, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"run":"Run_%d"}}`, file, i))
		_, err := f.pool.Exec(ctx, `UPDATE batches SET status = $2, created_at = to_timestamp(1000000 + $3::int * 100) WHERE id = $1`, b.ID, st, i)
		require.NoError(t, err)
		ids = append(ids, b.ID)
	}
	f.createBatch(f.bob, fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, f.uploadOK(f.bob, lines(1)).ID))

	pick := func(idx ...int) (out []string) {
		for _, i := range idx {
			out = append(out, ids[i])
		}
		return out
	}
	// listAll pages through with limit 2, checking that pages neither repeat nor skip.
	listAll := func(query string) []string {
		var out []string
		after := ""
		for pages := 0; pages < 20; pages++ {
			q := "/v1/batches?limit=2&" + query
			if after != "" {
				q += "&after=" + after
			}
			var page struct {
				Data    []batchJSON `json:"data"`
				LastID  *string     `json:"last_id"`
				HasMore bool        `json:"has_more"`
			}
			status, body := f.getJSON(q, f.alice, &page)
			require.Equal(t, http.StatusOK, status, "%s: %s", query, body)
			for _, b := range page.Data {
				out = append(out, b.ID)
			}
			if !page.HasMore {
				return out
			}
			after = *page.LastID
		}
		t.Fatalf("%s: too many pages", query)
		return nil
	}
	cases := []struct {
		query string
		want  []string
	}{
		{"", pick(7, 6, 5, 4, 3, 2, 1, 0)},
		{"status=in_progress", pick(7, 6, 1)}, // finalizing counts as in progress
		{"status=cancelled", pick(4, 3)},      // and cancelling as cancelled
		{"status=cancelling", pick(3)},
		{"status=", pick(7, 6, 5, 4, 3, 2, 1, 0)}, // an empty value is no filter
		{"status=&status=cancelling", pick(3)},
		{"status=completed,failed&status=expired", pick(5, 2, 0)},
		{"input_file_id=" + fileB, pick(7, 5, 3, 1)},
		{"search=" + url.QueryEscape("eval%"), pick(7, 5, 3, 1)}, // the filename, % literal
		{"search=run_3", pick(3)},                                // a metadata value, any case, _ literal
		{"search=" + ids[2][len(ids[2])-8:], pick(2)},            // the id
		{"search=%25", pick(7, 5, 3, 1)},
		{"created_after=1000300&created_before=1000600", pick(5, 4, 3)},
		{"created_after=-9223372036854775808&created_before=9223372036854775807", pick(7, 6, 5, 4, 3, 2, 1, 0)}, // past any timestamp
		{"created_after=90333373014515264", nil},
		{"active_first=true", pick(7, 6, 3, 1, 5, 4, 2, 0)},
		{"active_first=true&status=in_progress,completed", pick(7, 6, 1, 0)},
		{"input_file_id=file-none", nil},
	}
	for _, c := range cases {
		require.Equal(t, c.want, listAll(c.query), c.query)
	}

	for _, c := range []struct{ query, param, message string }{
		{"status=running", "status", "Invalid 'status': 'running'"},
		{"active_first=true&after=batch_nope", "after", "no batch found with id 'batch_nope'"},
		{"active_first=maybe", "active_first", ""},
		{"created_after=soon", "created_after", ""},
	} {
		status, body := f.getJSON("/v1/batches?"+c.query, f.alice, nil)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", c.query, body)
		e := decodeEnvelope(t, body)
		require.Equal(t, c.param, strOrEmpty(e.Error.Param), c.query)
		require.Contains(t, e.Error.Message, c.message, c.query)
	}
}
