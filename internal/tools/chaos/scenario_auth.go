package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"time"
)

const authModel = "auth-m"

// RunAuthSweep enumerates every operation of openapi.yaml and checks that each refuses a request
// without a valid key (401, except operations whose security is empty), and that each operation
// on an object answers 404 to another owner. Objects of owner A are created for every path
// parameter the suite knows how to fill; operations on other objects are reported as skipped.
func RunAuthSweep(ctx context.Context, h *Harness) *Result {
	res := newResult("auth-sweep", "Auth sweep")
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	ops, err := Operations()
	if err != nil {
		return res.Fail(err)
	}
	res.Load = []string{fmt.Sprintf("every operation of openapi.yaml (%d, enumerated with api.GetSwagger) against 1 replica", len(ops))}
	res.Held = fmt.Sprintf("1 replica, %d operations from the spec", len(ops))
	res.Injected = "no, malformed or unknown keys; another owner's ids"
	res.Faults = []string{"no key; a malformed key; a well-formed unknown key; a non-Bearer scheme; owner B using owner A's ids"}

	e, err := h.NewEnv(ctx, res.Name, EnvOptions{Replicas: 1, Models: []Model{{Name: authModel, Limit: 4}}, Mock: MockOptions{Latency: time.Millisecond}})
	if err != nil {
		return res.Fail(err)
	}
	defer e.Close()
	keyA, err := e.Key(ctx, "alice")
	if err != nil {
		return res.Fail(err)
	}
	keyB, err := e.Key(ctx, "mallory")
	if err != nil {
		return res.Fail(err)
	}
	r := e.Replicas[0]
	client := newHTTPClient(4)
	defer client.CloseIdleConnections()

	// Owner A's objects, by the path parameter that names them.
	objects := map[string]string{}
	unavailable := map[string]string{}
	c := e.Client(r, keyA)
	in := MakeInput("auth", 3, []Model{{Name: authModel, Limit: 4}})
	if id, err := Upload(ctx, c, in.Content); err != nil {
		unavailable["file_id"] = err.Error()
	} else {
		objects["file_id"] = id
		if b, err := CreateBatch(ctx, c, id); err != nil {
			unavailable["batch_id"] = err.Error()
		} else {
			objects["batch_id"] = b.ID
			objects["custom_id"] = in.IDs[0]
		}
	}
	if id, err := createResponse(ctx, client, r, keyA); err != nil {
		unavailable["response_id"] = err.Error()
	} else {
		objects["response_id"] = id
	}
	if id, err := createUpload(ctx, client, r, keyA); err != nil {
		unavailable["upload_id"] = err.Error()
	} else {
		objects["upload_id"] = id
	}

	if id, err := createWebhookEndpoint(ctx, client, r, keyA); err != nil {
		unavailable["webhook_endpoint_id"] = err.Error()
	} else {
		objects["webhook_endpoint_id"] = id
	}

	placeholder := func(name string) string { return "x_" + name }
	var public, protected, crossChecked, lists []string
	for _, op := range ops {
		url := op.URL(r.Root(), objects, placeholder)
		body, ct := sweepBody(op)
		if op.Public {
			a := do(ctx, client, op.Method, url, "", bytes.NewReader(body), ct, 10*time.Second)
			res.Check(op.String()+" needs no key", a.Err == nil && a.Status >= 200 && a.Status < 300, "%s", a)
			public = append(public, op.String())
			continue
		}
		protected = append(protected, op.String())
		for _, cred := range []struct{ name, header string }{
			{"no key", ""},
			{"a malformed key", "Bearer"},
			{"an unknown key", "Bearer sk-volley-" + strings.Repeat("0", 43)},
			{"Basic authentication", "Basic YWxpY2U6c2VjcmV0"},
		} {
			hdr := ct.Clone()
			if cred.header != "" {
				hdr.Set("Authorization", cred.header)
			}
			a := do(ctx, client, op.Method, url, "", bytes.NewReader(body), hdr, 10*time.Second)
			d, err := expect(a, http.StatusUnauthorized, "")
			res.Check(fmt.Sprintf("%s with %s: 401", op, cred.name), err == nil, "%s", detail(d, err))
		}
		switch {
		case op.Admin:
			a := do(ctx, client, op.Method, url, keyB, bytes.NewReader(body), ct, 10*time.Second)
			d, err := expect(a, http.StatusNotFound, "")
			res.Check(fmt.Sprintf("%s with a plain key: 404", op), err == nil, "%s", detail(d, err))
			crossChecked = append(crossChecked, op.String())
		case len(op.PathParams) > 0:
			var missing []string
			for _, p := range op.PathParams {
				if _, ok := objects[p]; !ok {
					why := unavailable[p]
					if why == "" {
						why = "the suite does not know how to create one"
					}
					missing = append(missing, fmt.Sprintf("no %s (%s)", p, why))
				}
			}
			if len(missing) > 0 {
				// A new route whose ids the sweep cannot make is a failure, not a gap: teach the
				// sweep to create them.
				res.Check(fmt.Sprintf("%s with owner A's id, as owner B: 404", op), false, "not exercised: %s", strings.Join(missing, "; "))
				continue
			}
			a := do(ctx, client, op.Method, url, keyB, bytes.NewReader(body), ct, 10*time.Second)
			d, err := expect(a, http.StatusNotFound, "")
			res.Check(fmt.Sprintf("%s with owner A's id, as owner B: 404", op), err == nil, "%s", detail(d, err))
			crossChecked = append(crossChecked, op.String())
		case op.Method == http.MethodGet:
			a := do(ctx, client, op.Method, url, keyB, nil, nil, 10*time.Second)
			var leaked []string
			for name, id := range objects {
				if bytes.Contains(a.Body, []byte(id)) {
					leaked = append(leaked, name)
				}
			}
			res.Check(fmt.Sprintf("%s as owner B shows none of owner A's objects", op), a.Err == nil && a.Status == 200 && len(leaked) == 0,
				"leaked %v: %s", leaked, a)
			lists = append(lists, op.String())
		case strings.EqualFold(op.ID, "createBatch"):
			fileID, ok := objects["file_id"]
			if !ok {
				res.Check(fmt.Sprintf("%s with owner A's file, as owner B: refused", op), false, "not exercised: no file_id")
				continue
			}
			b := fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, fileID)
			a := do(ctx, client, op.Method, url, keyB, strings.NewReader(b), http.Header{"Content-Type": {"application/json"}}, 10*time.Second)
			d, err := expect(a, 0, "")
			res.Check(fmt.Sprintf("%s on owner A's input file, as owner B: refused", op), err == nil, "%s", detail(d, err))
			crossChecked = append(crossChecked, op.String())
		default:
			res.Note("%s creates an object of the caller's own and names no other object: no cross-owner check.", op)
		}
	}

	// Nothing owner B or the keyless requests did touched owner A's objects.
	for name, id := range objects {
		var path string
		switch name {
		case "file_id":
			path = "/v1/files/" + id
		case "batch_id":
			path = "/v1/batches/" + id
		case "response_id":
			path = "/v1/responses/" + id
		case "upload_id":
			// Uploads cannot be read back; a pending one still takes a part.
			body, ct := uploadPartBody("x")
			a := do(ctx, client, http.MethodPost, r.BaseURL()+"/uploads/"+id+"/parts", keyA,
				bytes.NewReader(body), http.Header{"Content-Type": {ct}}, 10*time.Second)
			res.Check("owner A's upload is intact afterwards", a.Err == nil && a.Status == 200, "%s", a)
			continue
		default:
			continue
		}
		a := do(ctx, client, http.MethodGet, r.Root()+path, keyA, nil, nil, 10*time.Second)
		var obj struct {
			Status      string `json:"status"`
			CancelledAt *int64 `json:"cancelled_at"`
		}
		_ = json.Unmarshal(a.Body, &obj)
		ok := a.Err == nil && a.Status == 200 && obj.Status != "cancelled" && obj.Status != "cancelling" && obj.CancelledAt == nil
		res.Check(fmt.Sprintf("owner A's %s is intact afterwards", strings.TrimSuffix(name, "_id")), ok, "%s", a)
	}
	checkReplicaHealth(res, e)
	res.Metric("operations", "%d in the spec: %d public, %d needing a key", len(ops), len(public), len(protected))
	res.Metric("public operations", "%s", strings.Join(public, ", "))
	res.Metric("cross-owner 404 or refusal checked", "%d: %s", len(crossChecked), strings.Join(crossChecked, ", "))
	res.Metric("lists checked for leaks", "%s", strings.Join(lists, ", "))
	res.Metric("objects created as owner A", "%s", formatObjects(objects))
	if len(res.Skipped) == 0 {
		res.Metric("operations skipped", "none: every object a path names could be created")
	} else {
		res.Metric("operations skipped", "%d (listed below)", len(res.Skipped))
	}
	return res
}

// detail is what a check says: the answer, or why it is wrong.
func detail(d string, err error) string {
	if err != nil {
		return err.Error()
	}
	return d
}

func formatObjects(objects map[string]string) string {
	var parts []string
	for _, name := range []string{"file_id", "batch_id", "response_id", "upload_id"} {
		if id, ok := objects[name]; ok {
			parts = append(parts, fmt.Sprintf("%s %s", strings.TrimSuffix(name, "_id"), id))
		}
	}
	for name, id := range objects {
		if name != "file_id" && name != "batch_id" && name != "response_id" && name != "upload_id" {
			parts = append(parts, fmt.Sprintf("%s %s", name, id))
		}
	}
	return strings.Join(parts, ", ")
}

// sweepBody is a harmless body of the operation's first media type.
func sweepBody(op Operation) ([]byte, http.Header) {
	if len(op.BodyTypes) == 0 {
		return nil, http.Header{}
	}
	switch mt := op.BodyTypes[0]; {
	case strings.HasPrefix(mt, "multipart/"):
		head, tail, ct := multipartBody("sweep.jsonl")
		return append(append(head, `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"auth-m"}}`+"\n"...), tail...),
			http.Header{"Content-Type": {ct}}
	default:
		return []byte(`{}`), http.Header{"Content-Type": {mt}}
	}
}

// createResponse queues a background response as the key's owner and returns its id.
func createResponse(ctx context.Context, client *http.Client, r *Replica, key string) (string, error) {
	return createObject(ctx, client, r, key, "/responses", `{"model":"`+authModel+`","input":"hello","background":true}`)
}

// createWebhookEndpoint registers an endpoint as the key's owner and returns its id. It names a
// public address literally (no name to resolve) and subscribes to batch.failed, which no batch of
// the sweep ends with, so nothing is ever sent to it.
func createWebhookEndpoint(ctx context.Context, client *http.Client, r *Replica, key string) (string, error) {
	return createObject(ctx, client, r, key, "/webhook_endpoints", `{"name":"sweep","url":"https://192.0.43.10/hook","event_types":["batch.failed"]}`)
}

// createUpload starts an upload as the key's owner and returns its id.
func createUpload(ctx context.Context, client *http.Client, r *Replica, key string) (string, error) {
	return createObject(ctx, client, r, key, "/uploads", `{"bytes":10,"filename":"sweep.jsonl","mime_type":"text/jsonl","purpose":"batch"}`)
}

// createObject POSTs a JSON body under /v1 as the key's owner and returns the id answered.
func createObject(ctx context.Context, client *http.Client, r *Replica, key, path, body string) (string, error) {
	a := do(ctx, client, http.MethodPost, r.BaseURL()+path, key, strings.NewReader(body),
		http.Header{"Content-Type": {"application/json"}}, 30*time.Second)
	if a.Err != nil || a.Status != http.StatusOK {
		return "", fmt.Errorf("POST /v1%s: %s", path, a)
	}
	var obj struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(a.Body, &obj); err != nil || obj.ID == "" {
		return "", fmt.Errorf("POST /v1%s answered no id: %s", path, a)
	}
	return obj.ID, nil
}

// uploadPartBody is a multipart body holding data as an upload part.
func uploadPartBody(data string) ([]byte, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	w, _ := mw.CreateFormFile("data", "part.bin")
	_, _ = io.WriteString(w, data)
	_ = mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}
