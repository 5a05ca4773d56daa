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
