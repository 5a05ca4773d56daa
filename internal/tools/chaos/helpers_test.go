package chaos

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestOperationsComeFromTheSpec(t *testing.T) {
	ops, err := Operations()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Operation{}
	for _, op := range ops {
		byName[op.String()] = op
	}
	for _, name := range []string{"GET /healthz", "GET /readyz"} {
		if op, ok := byName[name]; !ok || !op.Public {
			t.Errorf("%s: want a public operation, got %+v (found %v)", name, op, ok)
		}
	}
	for _, op := range ops {
		if strings.HasPrefix(op.Path, "/v1/") && op.Public {
			t.Errorf("%s is public", op)
		}
	}
	get := byName["GET /v1/files/{file_id}/content"]
	if len(get.PathParams) != 1 || get.PathParams[0] != "file_id" {
		t.Errorf("path parameters of %s: %v", get, get.PathParams)
	}
	u := get.URL("http://x", map[string]string{"file_id": "file-1"}, func(string) string { return "?" })
	if u != "http://x/v1/files/file-1/content" {
		t.Errorf("URL: %s", u)
	}
}

func TestEnvelope(t *testing.T) {
	ok := Answer{Status: 404, ContentType: "application/json",
		Body: []byte(`{"error":{"message":"No such File object: x","type":"invalid_request_error","param":"id","code":null}}`)}
	if _, err := ok.envelope(404); err != nil {
		t.Errorf("a valid envelope refused: %v", err)
	}
	if _, err := ok.envelope(400); err == nil {
		t.Error("the wrong status accepted")
	}
	for name, a := range map[string]Answer{
		"text/plain":    {Status: 404, ContentType: "text/plain", Body: ok.Body},
		"missing code":  {Status: 404, ContentType: "application/json", Body: []byte(`{"error":{"message":"m","type":"t","param":null}}`)},
		"empty message": {Status: 404, ContentType: "application/json", Body: []byte(`{"error":{"message":"","type":"t","param":null,"code":null}}`)},
		"not json":      {Status: 404, ContentType: "application/json", Body: []byte(`404 page not found`)},
		"a 5xx":         {Status: 500, ContentType: "application/json", Body: ok.Body},
	} {
		if _, err := a.envelope(0); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestPercentile(t *testing.T) {
	var l Latencies
	for i := 100; i >= 1; i-- {
		l.Add(time.Duration(i) * time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond} {
		if got := l.Percentile(p); got != want {
			t.Errorf("p%v = %s, want %s", p, got, want)
		}
	}
}

func TestInputLinesEchoTheirCustomID(t *testing.T) {
	in := MakeInput("x", 3, []Model{{Name: "a", Limit: 1}, {Name: "b", Limit: 1}})
	lines := bytes.Split(bytes.TrimSpace(in.Content), []byte("\n"))
	if len(lines) != 3 || len(in.IDs) != 3 {
		t.Fatalf("%d lines, %d ids", len(lines), len(in.IDs))
	}
	var l struct {
		CustomID string `json:"custom_id"`
		Body     struct {
			Model string `json:"model"`
		} `json:"body"`
	}
	if err := json.Unmarshal(lines[1], &l); err != nil || l.CustomID != "x-1" || l.Body.Model != "b" {
		t.Fatalf("line 2: %s (%v)", lines[1], err)
	}
	answer := []byte(`{"choices":[{"message":{"content":"echo: hello x-1"}}]}`)
	if !echoes(answer, "x-1") || echoes(answer, "x-10") || echoes(answer, "x-") {
		t.Error("echoes matches the wrong custom_id")
	}
}

func TestResultVerdicts(t *testing.T) {
	r := newResult("s", "S")
	r.Check("c", true, "fine")
	r.Target("p99", "10ms", "< 50ms", true)
	if !r.Pass() || r.Verdict() != "PASS" {
		t.Fatalf("want PASS: %v", r.Failures())
	}
	r.Target("p99 again", "60ms", "< 50ms", false)
	if r.Pass() || !r.Correct() {
		t.Fatal("a missed target fails the scenario but not its correctness")
	}
	r.Lost = 1
	if r.Correct() {
		t.Fatal("a lost request is a correctness failure")
	}
}

func TestAuditLimits(t *testing.T) {
	base := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(ms int) int64 { return base.Add(time.Duration(ms) * time.Millisecond).UnixNano() }
	changes := []LimitChange{
		{At: base.Add(1000 * time.Millisecond), Effective: 6}, // cut from the ceiling of 10
		{At: base.Add(3000 * time.Millisecond), Effective: 7}, // raised
		{At: base.Add(6000 * time.Millisecond), Effective: 3}, // cut
	}
	starts := []Start{
		{At: at(0), InFlight: 10},    // the ceiling, before any move
		{At: at(1500), InFlight: 10}, // 500 ms after the cut to 6: late, within the lag
		{At: at(2500), InFlight: 7},  // 1.5 s after it: over
		{At: at(3500), InFlight: 7},  // the raised limit
		{At: at(6200), InFlight: 7},  // late after the cut to 3
		{At: at(9000), InFlight: 4},  // over
		{At: at(9000), InFlight: 3},
	}
	a := auditLimits(starts, changes, 10, time.Second)
	if a.starts != 7 || a.over != 2 || a.late != 2 || a.moves != 3 || a.lowest != 3 {
		t.Fatalf("audit: %+v", a)
	}
	if !strings.Contains(a.worst, "7 calls at once") || !strings.Contains(a.worst, "limit of 6") {
		t.Fatalf("the first start over its limit is named: %q", a.worst)
	}
	// A limit is never taken above the ceiling, and no history means the ceiling throughout.
	if a := auditLimits([]Start{{At: at(0), InFlight: 11}}, []LimitChange{{At: base.Add(-time.Hour), Effective: 20}}, 10, time.Second); a.over != 1 {
		t.Fatalf("above the ceiling: %+v", a)
	}
	if a := auditLimits([]Start{{At: at(0), InFlight: 10}}, nil, 10, time.Second); a.over != 0 || a.late != 0 {
		t.Fatalf("at the ceiling: %+v", a)
	}
}
