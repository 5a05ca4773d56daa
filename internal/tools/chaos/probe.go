package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Answer is one HTTP exchange as a probe saw it.
type Answer struct {
	Status      int
	ContentType string
	Body        []byte
	Took        time.Duration
	Err         error
}

// do sends one request with a timeout and reads the whole answer (up to 4 MB).
func do(ctx context.Context, client *http.Client, method, url, key string, body io.Reader, header http.Header, timeout time.Duration) Answer {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return Answer{Err: err}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		return Answer{Err: err, Took: time.Since(start)}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	return Answer{Status: res.StatusCode, ContentType: res.Header.Get("Content-Type"), Body: b, Took: time.Since(start), Err: err}
}

func (a Answer) String() string {
	if a.Err != nil {
		return fmt.Sprintf("error after %s: %v", fmtDur(a.Took), a.Err)
	}
	body := string(a.Body)
	if len(body) > 300 {
		body = body[:300] + "…"
	}
	return fmt.Sprintf("%d %s in %s: %s", a.Status, a.ContentType, fmtDur(a.Took), strings.TrimSpace(body))
}

// Envelope is the OpenAI error envelope.
type Envelope struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// envelope checks that a is an error answer with status want (0: any 4xx) in the OpenAI
// envelope: Content-Type application/json and {"error":{"message","type","param","code"}} with
// all four keys present and a non-empty message and type.
func (a Answer) envelope(want int) (Envelope, error) {
	if a.Err != nil {
		return Envelope{}, a.Err
	}
	switch {
	case want != 0 && a.Status != want:
		return Envelope{}, fmt.Errorf("status %d, want %d: %s", a.Status, want, a)
	case want == 0 && (a.Status < 400 || a.Status > 499):
		return Envelope{}, fmt.Errorf("status %d, want a 4xx: %s", a.Status, a)
	}
	if !strings.HasPrefix(a.ContentType, "application/json") {
		return Envelope{}, fmt.Errorf("Content-Type %q: %s", a.ContentType, a)
	}
	var raw struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(a.Body, &raw); err != nil || raw.Error == nil {
		return Envelope{}, fmt.Errorf("not an error envelope: %s", a)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := raw.Error[k]; !ok {
			return Envelope{}, fmt.Errorf("envelope lacks %q: %s", k, a)
		}
	}
	var env struct {
		Error Envelope `json:"error"`
	}
	if err := json.Unmarshal(a.Body, &env); err != nil {
		return Envelope{}, fmt.Errorf("envelope fields have the wrong types: %v: %s", err, a)
	}
	if env.Error.Message == "" || env.Error.Type == "" {
		return Envelope{}, fmt.Errorf("envelope without message or type: %s", a)
	}
	return env.Error, nil
}

func deref(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}
