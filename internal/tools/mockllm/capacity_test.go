package mockllm

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// holdCalls starts n calls that stay in flight until ctx ends.
func holdCalls(t *testing.T, ctx context.Context, wg *sync.WaitGroup, client *http.Client, url string, n int) {
	t.Helper()
	for i := range n {
		wg.Go(func() {
			_, _ = doPost(ctx, client, url+"/v1/embeddings", fmt.Sprintf(`{"model":"m","input":"held %d"}`, i))
		})
	}
}

func TestCapacityRejectsAboveN(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable, 529} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			const capacity = 5
			_, ts := startServer(t, Config{Latency: time.Hour, Capacity: capacity, CapacityStatus: status, RetryAfter: 1500 * time.Millisecond})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var wg sync.WaitGroup
			holdCalls(t, ctx, &wg, client, ts.URL, capacity)
			waitStats(t, ts.URL, "capacity in use", func(st Stats) bool { return st.Serving == capacity })

			for i := range 3 {
				r, err := doPost(t.Context(), client, ts.URL+"/v1/embeddings", fmt.Sprintf(`{"model":"m","input":"extra %d"}`, i))
				require.NoError(t, err)
				require.Equal(t, status, r.status, "%s", r.body)
				require.Equal(t, "2", r.header.Get("Retry-After"))
				require.Equal(t, "1500", r.header.Get("Retry-After-Ms"))
				want := "overloaded"
				if status == http.StatusTooManyRequests {
					want = "rate_limit_exceeded"
				}
				require.Equal(t, want, errorCode(t, r))
				require.Contains(t, string(r.body), "over capacity (5 calls at once)")
			}
			// A call answered by a directive's fault takes no slot.
			r, err := doPost(t.Context(), client, ts.URL+"/v1/embeddings", `{"model":"m","input":"x","mock":{"status":400,"latency":"0s"}}`)
			require.NoError(t, err)
			require.Equal(t, http.StatusBadRequest, r.status)

			st := getStats(t, ts.URL)
			require.EqualValues(t, capacity, st.PeakServing)
			require.EqualValues(t, 3, st.OverCapacity)
			require.Equal(t, capacity, st.Capacity)
			require.Equal(t, CapacityReject, st.CapacityMode)
			require.EqualValues(t, 3, st.StatusCounts[fmt.Sprint(status)])

			cancel()
			wg.Wait()
			waitStats(t, ts.URL, "slots freed", func(st Stats) bool { return st.Serving == 0 })
			r, err = doPost(t.Context(), client, ts.URL+"/v1/embeddings", `{"model":"m","input":"after","mock":{"latency":"0s"}}`)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		})
	}
}

// TestCapacityRejectNeverExceedsN races many calls against a small
// capacity: none is ever served above it.
func TestCapacityRejectNeverExceedsN(t *testing.T) {
	t.Parallel()
	const capacity = 8
	_, ts := startServer(t, Config{Latency: 2 * time.Millisecond, Capacity: capacity})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for i := range 400 {
		wg.Go(func() {
			r, err := doPost(t.Context(), client, ts.URL+"/v1/embeddings", fmt.Sprintf(`{"model":"m","input":"%d"}`, i))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			counts[r.status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	st := getStats(t, ts.URL)
	require.LessOrEqual(t, st.PeakServing, int64(capacity))
	require.Equal(t, 400, counts[200]+counts[429], "%v", counts)
	require.EqualValues(t, counts[429], st.OverCapacity)
	require.Zero(t, st.Serving)
}

func TestCapacitySlowStretchesLatency(t *testing.T) {
	t.Parallel()
	const capacity = 2
	_, ts := startServer(t, Config{Latency: time.Hour, Capacity: capacity, CapacityMode: CapacitySlow})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}

	// Below capacity a call keeps its latency.
	r, err := doPost(t.Context(), client, ts.URL+"/v1/embeddings", `{"model":"m","input":"a","mock":{"latency":"10ms"}}`)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "10ms", r.header.Get("X-Mockllm-Latency"))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	holdCalls(t, ctx, &wg, client, ts.URL, 4)
	waitStats(t, ts.URL, "four calls served", func(st Stats) bool { return st.Serving == 4 })

	// The fifth call shares the two slots with four others: 5/2 as long.
	r, err = doPost(t.Context(), client, ts.URL+"/v1/embeddings", `{"model":"m","input":"b","mock":{"latency":"10ms"}}`)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, "25ms", r.header.Get("X-Mockllm-Latency"))

	st := getStats(t, ts.URL)
	require.EqualValues(t, 5, st.PeakServing)
	require.EqualValues(t, 3, st.OverCapacity)
	require.Equal(t, CapacitySlow, st.CapacityMode)
	require.Zero(t, st.StatusCounts["429"])
	cancel()
	wg.Wait()
}

func TestCapacityConfigValidate(t *testing.T) {
	require.NoError(t, Config{Capacity: 3, CapacityMode: CapacitySlow}.Validate())
	for _, bad := range []Config{
		{Capacity: -1},
		{Capacity: 3, CapacityMode: "queue"},
		{Capacity: 3, CapacityStatus: 500},
	} {
		require.Error(t, bad.Validate(), "%+v", bad)
	}
}
