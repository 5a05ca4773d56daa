package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HostileParams size the hostile-input scenario.
type HostileParams struct {
	// IdleConns raw connections are held open while normal calls are made.
	IdleConns int
	// TrickleBound is the longest a connection trickling its headers may stay open.
	TrickleBound time.Duration
}

// HostileFull is the size `make chaos` runs.
func HostileFull() HostileParams {
	return HostileParams{IdleConns: 2000, TrickleBound: 15 * time.Second}
}

// HostileReduced is the size the package's tests run.
func HostileReduced() HostileParams {
	return HostileParams{IdleConns: 2000, TrickleBound: 15 * time.Second}
}

// Limits of the hostile scenario's replica: the body limit is Volley's default; the file limit
// is lowered so that a chunked upload can outgrow it quickly.
const (
	hostileMaxBody  = 16 << 20
	hostileMaxFile  = 5_000_000
	hostileModel    = "hostile-m"
	normalCallBound = 2 * time.Second
)

// hostile is the state shared by the cases.
type hostile struct {
	res      *Result
	r        *Replica
	key      string
	otherKey string // another owner's
	fileID   string
	client   *http.Client
}

// RunHostile sends malformed, oversized, slow and malicious requests to a replica and checks
// each answer and the replica's health after each.
func RunHostile(ctx context.Context, h *Harness, p HostileParams) *Result {
	res := newResult("hostile-input", "Hostile input")
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	res.Load = []string{"1 replica (VOLLEY_MAX_BODY_BYTES 16 MiB, the default; VOLLEY_MAX_FILE_BYTES 5 MB; VOLLEY_BODY_IDLE_TIMEOUT " +
		hostileIdleTimeout.String() + "; VOLLEY_MAX_CONCURRENT_UPLOADS 1), one client at a time, /healthz and GET /v1/files after every case"}
	res.Faults = []string{
		"bodies declared far over the limit, and a chunked body and upload outgrowing it",
		"headers trickled one byte every 500 ms",
		fmt.Sprintf("%s idle raw connections", fmtInt(int64(p.IdleConns))),
		"malformed and truncated multipart; wrong Content-Types",
		"ids with path-like and SQL-like content (../, %2e%2e, ' OR 1=1 --, NUL)",
		"a 1 MB custom_id, metadata value, input_file_id and model; JSON nested 10,000 and 100,000 deep (in an upload line, and as POST /v1/batches and POST /v1/responses bodies); malformed JSON bodies",
		"unknown query parameters and bad values of known ones (a malformed %-escape included); unknown routes and methods",
		"bodies declared but not sent without a key, with an unknown key, to an unknown route and with the wrong method",
		"a JSON body and an upload that stop sending; two stalled uploads in front of another owner's",
		"uploads cut off mid-body",
		"what net/http answers on its own: headers over the limit, bad %-escapes, negative Content-Length, NUL in a header, no Host, unknown Transfer-Encoding and Expect; HEAD on the probes",
		"a request with both Content-Length and Transfer-Encoding hiding a second request",
		"a custom_id with a lone surrogate, metadata values that are not strings, a 10 KB id",
	}
	res.Held = "1 replica, one hostile client at a time"
	res.Injected = fmt.Sprintf("oversized, trickled, malformed, deep and malicious requests; %s idle connections", fmtInt(int64(p.IdleConns)))
	e, err := h.NewEnv(ctx, res.Name, EnvOptions{Replicas: 1, Models: []Model{{Name: hostileModel, Limit: 4}},
		Mock: MockOptions{Latency: time.Millisecond},
		Env: []string{fmt.Sprintf("VOLLEY_MAX_FILE_BYTES=%d", hostileMaxFile), fmt.Sprintf("VOLLEY_MAX_BODY_BYTES=%d", hostileMaxBody),
			"VOLLEY_BODY_IDLE_TIMEOUT=" + hostileIdleTimeout.String(), "VOLLEY_MAX_CONCURRENT_UPLOADS=1"}})
	if err != nil {
		return res.Fail(err)
	}
	defer e.Close()
	key, err := e.Key(ctx, "hostile")
	if err != nil {
		return res.Fail(err)
	}
	otherKey, err := e.Key(ctx, "hostile-other")
	if err != nil {
		return res.Fail(err)
	}
	hs := &hostile{res: res, r: e.Replicas[0], key: key, otherKey: otherKey, client: newHTTPClient(4)}
	defer hs.client.CloseIdleConnections()
	in := MakeInput("ok", 3, []Model{{Name: hostileModel, Limit: 4}})
	if hs.fileID, err = Upload(ctx, e.Client(hs.r, key), in.Content); err != nil {
		return res.Fail(err)
	}

	hs.oversize(ctx)
	hs.trickle(ctx, p.TrickleBound)
	hs.idle(ctx, p.IdleConns)
	hs.multipart(ctx)
	hs.ids(ctx)
	hs.bigAndDeep(ctx)
	hs.query(ctx)
	hs.beforeAuth(ctx)
	hs.stalledBodies(ctx)
	hs.cutOff(ctx)
	hs.ownAnswers(ctx)
	hs.bothLengths(ctx)
	hs.smallItems(ctx)

	// The real file is still there, untouched by any of it.
	a := do(ctx, hs.client, http.MethodGet, hs.r.BaseURL()+"/files/"+hs.fileID+"/content", key, nil, nil, 10*time.Second)
	res.Check("the owner's file is intact afterwards", a.Err == nil && a.Status == 200 && bytes.Equal(a.Body, in.Content), "%s", a)
	res.Check("the replica is still running", hs.r.Running(), "running: %v", hs.r.Running())
	checkReplicaHealth(res, e)
	return res
}

// healthy checks /healthz and one normal authenticated call.
func (hs *hostile) healthy(ctx context.Context) error {
	a := do(ctx, hs.client, http.MethodGet, hs.r.Root()+"/healthz", "", nil, nil, 5*time.Second)
	if a.Err != nil || a.Status != http.StatusOK {
		return fmt.Errorf("/healthz afterwards: %s", a)
	}
	a = do(ctx, hs.client, http.MethodGet, hs.r.BaseURL()+"/files?limit=1", hs.key, nil, nil, 5*time.Second)
	if a.Err != nil || a.Status != http.StatusOK || !bytes.Contains(a.Body, []byte(`"object":"list"`)) {
		return fmt.Errorf("GET /v1/files afterwards: %s", a)
	}
	return nil
}

// check runs one case and records it with the replica's health afterwards.
func (hs *hostile) check(ctx context.Context, name string, fn func() (string, error)) {
	detail, err := fn()
	if herr := hs.healthy(ctx); herr != nil {
		err = errors.Join(err, herr)
	}
	if err != nil {
		hs.res.Check(name, false, "%v", err)
		return
	}
	hs.res.Check(name, true, "%s", detail)
}

// expect checks an answer's status (0: any 4xx), envelope, and optionally its code.
func expect(a Answer, status int, code string) (string, error) {
	env, err := a.envelope(status)
	if err != nil {
		return "", err
	}
	if code != "" && deref(env.Code) != code {
		return "", fmt.Errorf("code %s, want %s: %s", deref(env.Code), code, a)
	}
	return fmt.Sprintf("%d %s in %s", a.Status, deref(env.Code), fmtDur(a.Took)), nil
}

func (hs *hostile) addr() string { return strings.TrimPrefix(hs.r.Root(), "http://") }

// oversize: bodies over the limit are refused before they are read.
func (hs *hostile) oversize(ctx context.Context) {
	const declared = 10_000_000_000 // 10 GB declared, 64 KiB sent
	sent := bytes.Repeat([]byte(" "), 64<<10)
	for _, c := range []struct {
		name, path, ct string
		status         int
		code           string
	}{
		{"JSON body declaring 10 GB: 413 before the body is read", "/v1/batches", "application/json", http.StatusRequestEntityTooLarge, "request_too_large"},
		// An oversize file is a 400 at OpenAI, and the SDKs treat it as one.
		{"upload declaring 10 GB: 400 file_too_large before the body is read", "/v1/files", "multipart/form-data; boundary=x", http.StatusBadRequest, "file_too_large"},
	} {
		hs.check(ctx, c.name, func() (string, error) {
			req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
				c.path, hs.addr(), hs.key, c.ct, int64(declared))
			a := rawExchange(ctx, hs.addr(), append([]byte(req), sent...), 10*time.Second)
			d, err := expect(a, c.status, c.code)
			return d + fmt.Sprintf(", after %s of %s sent", fmtInt(int64(len(sent))), fmtInt(declared)), err
		})
	}
	hs.check(ctx, "chunked JSON body outgrowing 16 MiB: 413", func() (string, error) {
		body := io.MultiReader(strings.NewReader(`{"input_file_id":"`), io.LimitReader(repeatReader('a'), hostileMaxBody+1<<20), strings.NewReader(`"}`))
		a := do(ctx, hs.client, http.MethodPost, hs.r.BaseURL()+"/batches", hs.key, body,
			http.Header{"Content-Type": {"application/json"}}, 30*time.Second)
		return expect(a, http.StatusRequestEntityTooLarge, "request_too_large")
	})
	hs.check(ctx, "chunked upload outgrowing VOLLEY_MAX_FILE_BYTES: 400 file_too_large", func() (string, error) {
		head, tail, ct := multipartBody("big.jsonl")
		content := bigUpload(hostileMaxFile+1_000_000, hostileModel)
		body := io.MultiReader(bytes.NewReader(head), bytes.NewReader(content), bytes.NewReader(tail))
		a := do(ctx, hs.client, http.MethodPost, hs.r.BaseURL()+"/files", hs.key, body, http.Header{"Content-Type": {ct}}, 30*time.Second)
		return expect(a, http.StatusBadRequest, "file_too_large")
	})
}

// repeatReader yields b forever.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// trickle: a client sending its headers one byte at a time is cut off.
func (hs *hostile) trickle(ctx context.Context, bound time.Duration) {
	hs.check(ctx, fmt.Sprintf("headers trickled byte by byte: connection closed within %s", bound), func() (string, error) {
		conn, err := net.DialTimeout("tcp", hs.addr(), 5*time.Second)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		start := time.Now()
		closed := make(chan string, 1)
		go func() {
			buf := make([]byte, 4096)
			_ = conn.SetReadDeadline(time.Now().Add(bound + 10*time.Second))
			var got []byte
			for {
				n, err := conn.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					first, _, _ := strings.Cut(string(got), "\r\n")
					closed <- fmt.Sprintf("%v (answer: %q)", err, first)
					return
				}
			}
		}()
		header := []byte("GET /healthz HTTP/1.1\r\nHost: " + hs.addr() + "\r\nX-Trickle: " + strings.Repeat("a", 200))
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		sent := 0
		for {
			select {
			case how := <-closed:
				took := time.Since(start)
				if took > bound {
					return "", fmt.Errorf("closed only after %s (%d bytes sent): %s", fmtDur(took), sent, how)
				}
				return fmt.Sprintf("closed after %s, %d header bytes sent: %s", fmtDur(took), sent, how), nil
			case <-tick.C: // the trickle's pace
				if sent < len(header) {
					if _, err := conn.Write(header[sent : sent+1]); err == nil {
						sent++
					}
				}
				if time.Since(start) > bound+10*time.Second {
					return "", fmt.Errorf("still open after %s (%d bytes sent)", fmtDur(time.Since(start)), sent)
				}
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
	})
}

// idle: thousands of idle connections do not stop service for others.
func (hs *hostile) idle(ctx context.Context, n int) {
	hs.check(ctx, fmt.Sprintf("%s idle connections: others are still served", fmtInt(int64(n))), func() (string, error) {
		conns := make([]net.Conn, n)
		var opened atomic.Int64
		var wg sync.WaitGroup
		const dialers = 50
		for d := 0; d < dialers; d++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := d; i < n; i += dialers {
					c, err := net.DialTimeout("tcp", hs.addr(), 5*time.Second)
					if err == nil {
						conns[i] = c
						opened.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		defer func() {
			for _, c := range conns {
				if c != nil {
					_ = c.Close()
				}
			}
		}()
		if opened.Load() < int64(n) {
			return "", fmt.Errorf("only %d of %d connections opened", opened.Load(), n)
		}
		// Normal calls on fresh connections while every idle one is still open (the server cuts
		// them after its 10s ReadHeaderTimeout).
		fresh := newHTTPClient(1)
		defer fresh.CloseIdleConnections()
		var slowest time.Duration
		for i := 0; i < 20; i++ {
			url, key := hs.r.BaseURL()+"/files?limit=1", hs.key
			if i%2 == 1 {
				url, key = hs.r.Root()+"/healthz", ""
			}
			fresh.CloseIdleConnections() // a new connection each time
			a := do(ctx, fresh, http.MethodGet, url, key, nil, nil, 5*time.Second)
			if a.Err != nil || a.Status != http.StatusOK {
				return "", fmt.Errorf("call %d with %d idle connections open: %s", i+1, n, a)
			}
			slowest = max(slowest, a.Took)
		}
		if slowest > normalCallBound {
			return "", fmt.Errorf("slowest normal call took %s (bound %s)", fmtDur(slowest), normalCallBound)
		}
		return fmt.Sprintf("%d connections open; 20 normal calls, slowest %s", opened.Load(), fmtDur(slowest)), nil
	})
}

// multipart: malformed, truncated and mistyped uploads.
func (hs *hostile) multipart(ctx context.Context) {
	head, tail, ct := multipartBody("x.jsonl")
	good := MakeInput("mp", 20, []Model{{Name: hostileModel, Limit: 4}}).Content
	var two bytes.Buffer
	mw := multipart.NewWriter(&two)
	_ = mw.WriteField("purpose", "batch")
	for i := 0; i < 2; i++ {
		fw, _ := mw.CreateFormFile("file", fmt.Sprintf("f%d.jsonl", i))
		_, _ = fw.Write(good)
	}
	_ = mw.Close()
	twoFiles, twoCT := two.Bytes(), mw.FormDataContentType()
	cases := []struct {
		name, ct string
		body     []byte
		code     string
	}{
		{"multipart without a boundary", "multipart/form-data", []byte("--x\r\n\r\n"), ""},
		{"multipart whose body has no boundary", "multipart/form-data; boundary=nothere", []byte("garbage\r\n"), ""},
		{"multipart cut off in the middle of the file", ct, append(append([]byte(nil), head...), good[:len(good)/2]...), ""},
		{"multipart cut off in a part's headers", ct, head[:len(head)-10], ""},
		{"multipart without purpose", ct, bytes.Replace(append(append(append([]byte(nil), head...), good...), tail...), []byte(`name="purpose"`), []byte(`name="nopurpose"`), 1), "missing_required_parameter"},
		{"multipart with two files", twoCT, twoFiles, ""},
		{"upload sent as JSON", "application/json", []byte(`{"purpose":"batch","file":"x"}`), ""},
		{"upload with no Content-Type", "", good, ""},
		{"upload line with invalid UTF-8", ct, append(append(append([]byte(nil), head...), []byte("{\"custom_id\":\"\xff\xfe\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"m\"}}\n")...), tail...), "invalid_utf8"},
	}
	for _, c := range cases {
		hs.check(ctx, "POST /v1/files: "+c.name, func() (string, error) {
			hdr := http.Header{}
			if c.ct != "" {
				hdr.Set("Content-Type", c.ct)
			}
			a := do(ctx, hs.client, http.MethodPost, hs.r.BaseURL()+"/files", hs.key, bytes.NewReader(c.body), hdr, 10*time.Second)
			return expect(a, http.StatusBadRequest, c.code)
		})
	}
}

// ids: path-like and SQL-like ids never reach anything.
func (hs *hostile) ids(ctx context.Context) {
	weird := []string{"../../../etc/passwd", "..", "%2e%2e", "..%2f..%2fbatches", "' OR 1=1 --", `"; DROP TABLE files; --`,
		"file-x' UNION SELECT * FROM api_keys --", "file-%00", hs.fileID + "/../" + hs.fileID, hs.fileID + "' OR '1'='1"}
	hs.check(ctx, "path-like and SQL-like ids (escaped): 404", func() (string, error) {
		return hs.idsNotFound(ctx, weird, http.StatusNotFound)
	})
	// Bytes PostgreSQL cannot store in text: such an id cannot exist either; 404, or 400 for text
	// that can never name anything.
	hs.check(ctx, CheckUnstorableIDs, func() (string, error) {
		d, err := hs.idsNotFound(ctx, []string{"\x00", "file-\x00' OR 1=1 --", "\xff", "batch_\xc3("}, http.StatusNotFound, http.StatusBadRequest)
		if err != nil {
			return "", err
		}
		for _, path := range []string{"/batches?after=", "/files?after=", "/files?purpose="} {
			for _, bad := range []string{"\x00", "\xff"} {
				a := do(ctx, hs.client, http.MethodGet, hs.r.BaseURL()+path+url.QueryEscape(bad), hs.key, nil, nil, 10*time.Second)
				if a.Err == nil && a.Status == http.StatusOK && bytes.Contains(a.Body, []byte(`"data":[]`)) {
					continue
				}
				if _, err := expect(a, http.StatusBadRequest, ""); err != nil {
					return "", fmt.Errorf("GET /v1%s%q: %v", path, bad, err)
				}
			}
		}
		return d + "; list parameters with them: an empty page or 400", nil
	})
	// Raw request lines, so that nothing between here and the server cleans the paths.
	rawPaths := []string{"/v1/files/../../../etc/passwd", "/v1/files/../batches", "/v1/files/%2e%2e/%2e%2e/etc/passwd",
		"/v1/batches/%2e%2e", "/v1/files/..%2f..%2fetc%2fpasswd/content", "/v1/files/%27%20OR%201%3D1%20--",
		"/v1/files/" + hs.fileID + "/../" + hs.fileID + "/content", "/v1/./files/" + hs.fileID}
	for _, p := range rawPaths {
		hs.check(ctx, "raw path "+p+": 404", func() (string, error) {
			req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", p, hs.addr(), hs.key)
			return expect(rawExchange(ctx, hs.addr(), []byte(req), 10*time.Second), http.StatusNotFound, "")
		})
	}
	hs.check(ctx, "POST /v1/batches with an SQL-like input_file_id: 400", func() (string, error) {
		a := do(ctx, hs.client, http.MethodPost, hs.r.BaseURL()+"/batches", hs.key,
			strings.NewReader(`{"input_file_id":"' OR 1=1 --","endpoint":"/v1/chat/completions","completion_window":"24h"}`),
			http.Header{"Content-Type": {"application/json"}}, 10*time.Second)
		return expect(a, http.StatusBadRequest, "invalid_input_file")
	})
	hs.check(ctx, "list cursors with SQL-like content: an empty page, nothing more", func() (string, error) {
		for _, path := range []string{"/batches?after=", "/files?after="} {
			a := do(ctx, hs.client, http.MethodGet, hs.r.BaseURL()+path+url.QueryEscape("' OR 1=1 --"), hs.key, nil, nil, 10*time.Second)
			var list struct {
				Data []json.RawMessage `json:"data"`
			}
			if a.Err != nil || a.Status != http.StatusOK || json.Unmarshal(a.Body, &list) != nil || len(list.Data) != 0 {
				if _, err := a.envelope(http.StatusBadRequest); err != nil {
					return "", fmt.Errorf("%s: %s", path, a)
				}
			}
		}
		return "200 with no objects", nil
	})
}

// hasOperation reports whether the spec has the operation.
func hasOperation(method, path string) bool {
	ops, err := Operations()
	if err != nil {
		return false
	}
	for _, op := range ops {
		if op.Method == method && op.Path == path {
			return true
		}
	}
	return false
}

// CheckTrailingGarbage names the check of a JSON body followed by more data.
const CheckTrailingGarbage = "POST /v1/batches with trailing garbage: 400"

// CheckUnstorableIDs names the check of ids holding a NUL byte or invalid UTF-8.
const CheckUnstorableIDs = "ids and list parameters with a NUL byte or invalid UTF-8 (escaped): 404 or 400"

// idsNotFound asks every operation of the spec that names an object (a path parameter) for each
// id and expects an envelope with one of the statuses (the first is the usual one).
func (hs *hostile) idsNotFound(ctx context.Context, ids []string, statuses ...int) (string, error) {
	ops, err := Operations()
	if err != nil {
		return "", err
	}
	var failed []string
	n := 0
	seen := map[int]int{}
	for _, id := range ids {
		esc := url.PathEscape(id)
		for _, op := range ops {
			if len(op.PathParams) == 0 {
				continue
			}
			n++
			u := op.URL(hs.r.Root(), nil, func(string) string { return esc })
			body, hdr := sweepBody(op)
			a := do(ctx, hs.client, op.Method, u, hs.key, bytes.NewReader(body), hdr, 10*time.Second)
			want := statuses[0]
			if slices.Contains(statuses, a.Status) {
				want = a.Status
			}
			if _, err := expect(a, want, ""); err != nil {
				failed = append(failed, fmt.Sprintf("%s %s: %v", op.Method, strings.TrimPrefix(u, hs.r.Root()), err))
			} else {
				seen[a.Status]++
			}
		}
	}
	if len(failed) > 0 {
		return "", fmt.Errorf("%d of %d wrong: %s", len(failed), n, strings.Join(first(failed, 3), "; "))
	}
	var got []string
	for _, st := range statuses {
		if seen[st] > 0 {
			got = append(got, fmt.Sprintf("%d × %d", seen[st], st))
		}
	}
	return fmt.Sprintf("%d requests over every operation naming an object: %s, all envelopes", n, strings.Join(got, ", ")), nil
}

// bigAndDeep: huge fields and deep nesting.
func (hs *hostile) bigAndDeep(ctx context.Context) {
	upload := func(line string) Answer {
		head, tail, ct := multipartBody("x.jsonl")
		body := io.MultiReader(bytes.NewReader(head), strings.NewReader(line+"\n"), bytes.NewReader(tail))
		return do(ctx, hs.client, http.MethodPost, hs.r.BaseURL()+"/files", hs.key, body, http.Header{"Content-Type": {ct}}, 30*time.Second)
	}
	createBatch := func(body string) Answer {
		return do(ctx, hs.client, http.MethodPost, hs.r.BaseURL()+"/batches", hs.key, strings.NewReader(body),
			http.Header{"Content-Type": {"application/json"}}, 30*time.Second)
	}
	mb := strings.Repeat("x", 1<<20)
	hs.check(ctx, "upload line with a 1 MB custom_id: 400 invalid_custom_id", func() (string, error) {
		return expect(upload(`{"custom_id":"`+mb+`","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`), http.StatusBadRequest, "invalid_custom_id")
	})
	hs.check(ctx, "POST /v1/batches with a 1 MB metadata value: 400", func() (string, error) {
		return expect(createBatch(`{"input_file_id":"`+hs.fileID+`","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"k":"`+mb+`"}}`), http.StatusBadRequest, "invalid_value")
	})
	hs.check(ctx, "POST /v1/batches with a 1 MB input_file_id: 400", func() (string, error) {
		return expect(createBatch(`{"input_file_id":"`+mb+`","endpoint":"/v1/chat/completions","completion_window":"24h"}`), http.StatusBadRequest, "")
	})
	for _, depth := range []int{10_000, 100_000} {
		arr := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		obj := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
		hs.check(ctx, fmt.Sprintf("upload line nested %s deep in its body: 400 invalid_json_line", fmtInt(int64(depth))), func() (string, error) {
			return expect(upload(`{"custom_id":"deep","method":"POST","url":"/v1/chat/completions","body":{"model":"m","x":`+arr+`}}`), http.StatusBadRequest, "invalid_json_line")
		})
		hs.check(ctx, fmt.Sprintf("upload line that is an array nested %s deep: 400 invalid_json_line", fmtInt(int64(depth))), func() (string, error) {
			return expect(upload(arr), http.StatusBadRequest, "invalid_json_line")
		})
		hs.check(ctx, fmt.Sprintf("POST /v1/batches body nested %s deep: 400", fmtInt(int64(depth))), func() (string, error) {
			return expect(createBatch(arr), http.StatusBadRequest, "")
		})
		hs.check(ctx, fmt.Sprintf("POST /v1/batches metadata nested %s deep: 400", fmtInt(int64(depth))), func() (string, error) {
			return expect(createBatch(`{"input_file_id":"`+hs.fileID+`","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":`+obj+`}`), http.StatusBadRequest, "")
		})
	}
	if hasOperation(http.MethodPost, "/v1/responses") {
		create := func(body string) Answer {
			return do(ctx, hs.client, http.MethodPost, hs.r.BaseURL()+"/responses", hs.key, strings.NewReader(body),
				http.Header{"Content-Type": {"application/json"}}, 30*time.Second)
		}
		for _, depth := range []int{10_000, 100_000} {
			hs.check(ctx, fmt.Sprintf("POST /v1/responses body nested %s deep: 400", fmtInt(int64(depth))), func() (string, error) {
				return expect(create(`{"model":"`+hostileModel+`","input":`+strings.Repeat("[", depth)+strings.Repeat("]", depth)+`}`), http.StatusBadRequest, "")
			})
		}
		for _, c := range []struct{ name, body string }{
			{"a 1 MB model name", `{"model":"` + mb + `","input":"hi"}`},
			{"truncated JSON", `{"model":"` + hostileModel + `","input":"hi"`},
			{"a model that is not a string", `{"model":{"$ne":null},"input":"hi"}`},
			{"an array", `[]`},
		} {
			hs.check(ctx, "POST /v1/responses with "+c.name+": 400", func() (string, error) {
				return expect(create(c.body), http.StatusBadRequest, "")
			})
		}
	}
	for _, c := range []struct{ name, body, ct string }{
		{"truncated JSON", `{"input_file_id":"` + hs.fileID, "application/json"},
		{"null", "null", "application/json"},
		{"an array", "[]", "application/json"},
		{"a string", `"batch"`, "application/json"},
		{"an empty body", "", "application/json"},
		{"trailing garbage", `{"input_file_id":"` + hs.fileID + `","endpoint":"/v1/chat/completions","completion_window":"24h"} xyz`, "application/json"},
		{"wrong field types", `{"input_file_id":1,"endpoint":[],"completion_window":{}}`, "application/json"},
	} {
		hs.check(ctx, "POST /v1/batches with "+c.name+": 400", func() (string, error) {
			return expect(do(ctx, hs.client, http.MethodPost, hs.r.BaseURL()+"/batches", hs.key, strings.NewReader(c.body),
				http.Header{"Content-Type": {c.ct}}, 10*time.Second), http.StatusBadRequest, "")
		})
	}
}

// query: unknown query parameters are ignored; bad values of known ones are refused.
func (hs *hostile) query(ctx context.Context) {
	for _, path := range []string{"/batches?foo=bar&limit=2", "/files?x%5B%5D=1&purpose=batch&utm_source=%27", "/batches?after=&&&=&limit=1"} {
		hs.check(ctx, "GET /v1"+path+" (unknown parameters): 200, ignored", func() (string, error) {
			a := do(ctx, hs.client, http.MethodGet, hs.r.BaseURL()+path, hs.key, nil, nil, 10*time.Second)
			if a.Err != nil || a.Status != http.StatusOK || !bytes.Contains(a.Body, []byte(`"object":"list"`)) {
				return "", fmt.Errorf("%s", a)
			}
			return "200 list", nil
		})
	}
	for _, c := range []struct{ path, param string }{
		{"/batches?limit=abc", "limit"}, {"/batches?limit=0", "limit"}, {"/batches?limit=-5", "limit"},
		{"/batches?limit=100000000000000000000", "limit"}, {"/batches?limit=1&limit=2", "limit"},
		{"/files?limit=10001", "limit"}, {"/files?order=sideways", "order"}, {"/files?limit=1e3", "limit"},
		// Volley's own parameters.
		{"/batches?status=running", "status"}, {"/batches?search=" + strings.Repeat("%25", 300), "search"},
		{"/batches?active_first=true&after=batch_x%27%20OR%201=1", "after"}, {"/batches?created_after=soon", "created_after"},
		{"/files/" + hs.fileID + "/content?offset=-1", "offset"}, {"/files/" + hs.fileID + "/content?limit=0", "limit"},
		{"/files/" + hs.fileID + "/content?limit=100000000000000000000", "limit"}, {"/files?owner=someone", "owner"},
		{"/queue?windows=soon", "windows"}, {"/queue?windows=24h,1h", "windows"},
	} {
		hs.check(ctx, "GET /v1"+c.path+": 400 naming "+c.param, func() (string, error) {
			a := do(ctx, hs.client, http.MethodGet, hs.r.BaseURL()+c.path, hs.key, nil, nil, 10*time.Second)
			env, err := a.envelope(http.StatusBadRequest)
			if err != nil {
				return "", err
			}
			if deref(env.Param) != c.param {
				return "", fmt.Errorf("param %s, want %s: %s", deref(env.Param), c.param, a)
			}
			return fmt.Sprintf("400 %s", deref(env.Code)), nil
		})
	}
	// LIKE's metacharacters in a search match only themselves: no custom_id holds them.
	for _, q := range []string{"%25", "_", "%25_%25", "%5C", "%27%20OR%20%271%27=%271"} {
		path := "/files/" + hs.fileID + "/content?search=" + q
		hs.check(ctx, "GET /v1"+path+": 200, nothing matches", func() (string, error) {
			a := do(ctx, hs.client, http.MethodGet, hs.r.BaseURL()+path, hs.key, nil, nil, 10*time.Second)
			if a.Err != nil || a.Status != http.StatusOK || len(a.Body) != 0 {
				return "", fmt.Errorf("%s", a)
			}
			return "200, empty", nil
		})
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/v1/nothing-here", http.StatusNotFound},
		{http.MethodGet, "/v2/files", http.StatusNotFound},
		{http.MethodPut, "/v1/files", http.StatusMethodNotAllowed},
		{http.MethodPatch, "/v1/batches/" + "batch_x", http.StatusMethodNotAllowed},
	} {
		hs.check(ctx, fmt.Sprintf("%s %s: %d", c.method, c.path, c.status), func() (string, error) {
			return expect(do(ctx, hs.client, c.method, hs.r.Root()+c.path, hs.key, nil, nil, 10*time.Second), c.status, "")
		})
	}
}
