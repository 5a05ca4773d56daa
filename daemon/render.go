package daemon

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/tidwall/gjson"
)

// Result line ids are derived from the batch and line, the same way the database derives them for
// requests it settles itself (see BatchSettlePending), so a line's id never depends on who wrote it.
func lineID(batchID string, line int32) string {
	sum := md5.Sum([]byte(batchID + ":" + strconv.Itoa(int(line))))
	return "batch_req_" + hex.EncodeToString(sum[:])
}

// appendJSONString appends s as a JSON string.
func appendJSONString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always marshals
	buf.Write(b)
}

// appendJSONBody appends an upstream body as JSON on one line: compacted when it is JSON, as a
// string when it is not, so that a result file stays valid JSONL whatever the upstream sent.
func appendJSONBody(buf *bytes.Buffer, body []byte) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && bytes.IndexAny(trimmed, "\r\n") < 0 && json.Valid(trimmed) {
		buf.Write(trimmed) // already one line: the common case, and cheaper than compacting
		return
	}
	n := buf.Len()
	if len(trimmed) > 0 && json.Compact(buf, trimmed) == nil {
		return
	}
	buf.Truncate(n)
	appendJSONString(buf, string(body))
}

// renderResponse renders a line that carries the upstream's answer: an output line for a 2xx, an
// error line (with error null, as OpenAI does) for a final non-2xx.
func renderResponse(batchID string, line int32, customID string, status int, requestID string, body []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(body) + len(customID) + 160)
	buf.WriteString(`{"id":"`)
	buf.WriteString(lineID(batchID, line))
	buf.WriteString(`","custom_id":`)
	appendJSONString(&buf, customID)
	buf.WriteString(`,"response":{"status_code":`)
	buf.WriteString(strconv.Itoa(status))
	buf.WriteString(`,"request_id":`)
	appendJSONString(&buf, requestID)
	buf.WriteString(`,"body":`)
	appendJSONBody(&buf, body)
	buf.WriteString("},\"error\":null}\n")
	return buf.Bytes()
}

// renderError renders an error line for a request that got no usable answer.
func renderError(batchID string, line int32, customID, code, message string) []byte {
	var buf bytes.Buffer
	buf.Grow(len(customID) + len(message) + 160)
	buf.WriteString(`{"id":"`)
	buf.WriteString(lineID(batchID, line))
	buf.WriteString(`","custom_id":`)
	appendJSONString(&buf, customID)
	buf.WriteString(`,"response":null,"error":{"code":`)
	appendJSONString(&buf, code)
	buf.WriteString(`,"message":`)
	appendJSONString(&buf, message)
	buf.WriteString("}}\n")
	return buf.Bytes()
}

// usage is the token accounting of one answer, in the Batch API's shape.
type usage struct {
	input, cached, output, reasoning, total int64
}

// usageOf reads the usage object of an upstream answer, whichever endpoint's shape it has. A body
// that is not JSON, or a usage with a count that is not a whole number, counts nothing. It looks
// the fields up in place: decoding the whole answer for them took 8% of a replica's CPU while it
// dispatched at 20 ms and limit 256.
func usageOf(body []byte) usage {
	if !gjson.ValidBytes(body) {
		return usage{}
	}
	u := gjson.GetBytes(body, "usage")
	if !u.IsObject() {
		return usage{}
	}
	ok := true
	count := func(obj gjson.Result, name string) int64 {
		switch r := obj.Get(name); r.Type {
		case gjson.Null:
			return 0
		case gjson.Number:
			n, err := strconv.ParseInt(r.Raw, 10, 64)
			ok = ok && err == nil
			return n
		default:
			ok = false
			return 0
		}
	}
	detail := func(name, field string) int64 {
		switch d := u.Get(name); {
		case d.Type == gjson.Null:
			return 0
		case d.IsObject():
			return count(d, field)
		default:
			ok = false
			return 0
		}
	}
	out := usage{
		input:     count(u, "prompt_tokens") + count(u, "input_tokens"),
		output:    count(u, "completion_tokens") + count(u, "output_tokens"),
		total:     count(u, "total_tokens"),
		cached:    detail("prompt_tokens_details", "cached_tokens") + detail("input_tokens_details", "cached_tokens"),
		reasoning: detail("completion_tokens_details", "reasoning_tokens") + detail("output_tokens_details", "reasoning_tokens"),
	}
	if !ok {
		return usage{}
	}
	if out.total == 0 {
		out.total = out.input + out.output
	}
	return out
}
