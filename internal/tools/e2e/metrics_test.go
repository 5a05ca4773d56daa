package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// prometheusBinary finds a Prometheus server. CI installs one; elsewhere the test is skipped when
// none is installed.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no prometheus binary on PATH (apt-get install prometheus): %v", err)
		}
		t.Skip("no prometheus binary on PATH; apt-get install prometheus to run this test")
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// promServer is a running Prometheus scraping one target.
type promServer struct {
	t    *testing.T
	base string
}

func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	bin := prometheusBinary(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 500ms
  scrape_timeout: 400ms
scrape_configs:
  - job_name: volley
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("--- prometheus ---\n%s", logs.String())
		}
	})
	p := &promServer{t: t, base: "http://" + addr}
	require.Eventually(t, func() bool {
		res, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond, "prometheus ready")
	// Ready is not scraping: Prometheus hands new targets to its scrapers some seconds after it
	// starts. Until it has scraped the target once, a test could miss what it came to see.
	require.Eventually(t, func() bool {
		up, ok := p.scalar(`up{job="volley"}`)
		return ok && up == 1
	}, 60*time.Second, 100*time.Millisecond, "prometheus scrapes the target")
	return p
}

// query runs an instant query and returns the value of each series, keyed by its labels.
func (p *promServer) query(q string) map[string]float64 {
	p.t.Helper()
	res, err := http.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(q))
	require.NoError(p.t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(p.t, err)
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(p.t, json.Unmarshal(body, &out), string(body))
	require.Equal(p.t, "success", out.Status, string(body))
	values := make(map[string]float64)
	for _, r := range out.Data.Result {
		v, err := strconv.ParseFloat(r.Value[1].(string), 64)
		require.NoError(p.t, err)
		values[fmt.Sprint(r.Metric)] = v
	}
	return values
}

// scalar is the value of a query that has one series, and whether it had one.
func (p *promServer) scalar(q string) (float64, bool) {
	p.t.Helper()
	values := p.query(q)
	for _, v := range values {
		return v, len(values) == 1
	}
	return 0, false
}

func TestPrometheusScrapesTheQueueDuringABatch(t *testing.T) {
	t.Parallel()
	m := startMock(t, "-latency", "100ms")
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	v := startVolley(t, append(dispatchEnv(t, m, 8),
		"VOLLEY_METRICS_ADDR="+metricsAddr, "VOLLEY_METRICS_QUEUE_INTERVAL=200ms")...)
	prom := startPrometheus(t, metricsAddr)
	c := v.clientAs(t, "alice")

	const n = 400 // 8 at a time at 100 ms: about five seconds of queue
	lines := make([]string, n)
	for i := range lines {
		lines[i] = reqLine(fmt.Sprintf("q%d", i), "prom-model", "")
	}
	b := createBatch(t, c, uploadLines(t, c, lines...), "24h")

	// The queue depth rises while the batch runs...
	require.Eventually(t, func() bool {
		v, ok := prom.scalar(`volley_queue_pending{model="prom-model"}`)
		return ok && v > 0
	}, 30*time.Second, 100*time.Millisecond, "prometheus sees the batch pending")
	b = waitBatch(t, c, b.ID, 2*time.Minute, terminal)
	require.EqualValues(t, n, b.RequestCounts.Completed)

	// ...and falls to 0 once it is done.
	require.Eventually(t, func() bool {
		pending, ok1 := prom.scalar(`volley_queue_pending{model="prom-model"}`)
		running, ok2 := prom.scalar(`volley_queue_running{model="prom-model"}`)
		return ok1 && ok2 && pending == 0 && running == 0
	}, 30*time.Second, 100*time.Millisecond, "the queue drains to 0")
	peak, ok := prom.scalar(`max_over_time(volley_queue_pending{model="prom-model"}[5m])`)
	require.True(t, ok)
	require.Greater(t, peak, 0.0)
	require.LessOrEqual(t, peak, float64(n))

	// Every request was one upstream call, and every one is counted.
	require.Eventually(t, func() bool {
		calls, ok := prom.scalar(`sum(volley_upstream_calls_total{model="prom-model"})`)
		return ok && calls == n
	}, 30*time.Second, 100*time.Millisecond, "upstream calls counted equal the requests")
	require.Equal(t, n, m.stats().TotalCalls)
	// The rest settle by the batch's end, which a later scrape than the last call's may be the
	// first to see.
	for _, c := range []struct {
		query string
		want  float64
	}{
		{`sum(volley_upstream_calls_total{model="prom-model",class="2xx",upstream="mock"})`, float64(n)},
		{`sum(volley_requests_finished_total{model="prom-model",outcome="completed"})`, float64(n)},
		{`sum(volley_batches_created_total)`, 1},
		{`sum(volley_batches_ended_total{status="completed"})`, 1},
		{`sum(volley_dispatch_claim_requests_sum)`, float64(n)}, // the claims took every request once
	} {
		require.Eventually(t, func() bool {
			v, ok := prom.scalar(c.query)
			return ok && v == c.want
		}, 30*time.Second, 100*time.Millisecond, "%s: want %v", c.query, c.want)
	}

	// No scrape failed.
	res, err := http.Get(prom.base + "/api/v1/targets")
	require.NoError(t, err)
	defer res.Body.Close()
	var targets struct {
		Data struct {
			ActiveTargets []struct {
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&targets))
	require.Len(t, targets.Data.ActiveTargets, 1)
	require.Equal(t, "up", targets.Data.ActiveTargets[0].Health)
	require.Empty(t, targets.Data.ActiveTargets[0].LastError)
	downs, ok := prom.scalar(`count_over_time(up[5m]) - sum_over_time(up[5m])`)
	require.True(t, ok)
	require.Zero(t, downs, "every scrape succeeded")
}

func getText(t *testing.T, u string) (int, string) {
	t.Helper()
	res, err := http.Get(u)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

func TestMetricsOnTheAPIPortNeedNoKeyAndHaveBoundedLabels(t *testing.T) {
	t.Parallel()
	m := startMock(t)
	v := startVolley(t, dispatchEnv(t, m, 4)...)
	c := v.clientAs(t, "bob")
	b := createBatch(t, c, uploadLines(t, c, reqLine("a", "label-model", ""), reqLine("b", "label-model", "")), "24h")
	waitBatch(t, c, b.ID, time.Minute, terminal)

	root := strings.TrimSuffix(v.proc.URL, "/v1")
	status, text := getText(t, root+"/metrics")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, text, `volley_http_requests_total{code="200",route="/v1/batches/{batch_id}"}`)
	require.Contains(t, text, `volley_http_requests_total{code="200",route="/v1/files"}`)
	require.NotContains(t, text, b.ID, "no batch id in any label")
	require.NotContains(t, text, "bob", "no owner in any label")
	require.Contains(t, text, `volley_upstream_calls_total{class="2xx",model="label-model",upstream="mock"} 2`)
	require.Contains(t, text, `volley_requests_finished_total{model="label-model",outcome="completed"} 2`)
	require.Contains(t, text, `volley_dispatch_in_flight{model="label-model"} 0`)
	require.Contains(t, text, `volley_upload_bytes_total `)
	require.Contains(t, text, `volley_uploads_in_progress 0`)
	require.Contains(t, text, `volley_db_pool_max_connections `)
	require.Contains(t, text, `volley_build_info{`)
	require.Contains(t, text, `volley_dispatch_claim_duration_seconds_bucket`)

	// /metrics is not an API route: it takes no key, and the API's own 404s stay envelopes.
	status, text = getText(t, root+"/metrics/x")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, text, `"error"`)
}

func TestMetricsCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	v := startVolley(t, "VOLLEY_METRICS_ADDR=off")
	status, text := getText(t, strings.TrimSuffix(v.proc.URL, "/v1")+"/metrics")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, text, `"error"`)
}
