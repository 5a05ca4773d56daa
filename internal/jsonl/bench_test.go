package jsonl

import (
	"encoding/json"
	"strings"
	"testing"
)

// chatLine is a realistic chat completion request of about 2 KB.
var chatLine = []byte(`{"custom_id":"request-000042","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini",` +
	`"messages":[{"role":"system","content":"You are a meticulous assistant that classifies customer support tickets. ` +
	`Read the ticket, decide which product area it concerns (billing, shipping, account, technical, other), estimate its urgency ` +
	`from 1 to 5, and summarise it in one sentence. Answer with a JSON object with the keys \"area\", \"urgency\" and \"summary\". ` +
	`Do not add any other text.\n\nExamples of areas:\n- billing: refunds, invoices, double charges\n- shipping: late or lost parcels\n` +
	`- account: login problems, password resets, profile changes\n- technical: crashes, error messages, slow pages"},` +
	`{"role":"user","content":"Subject: Order #88213 still not here\n\nHello,\n\nI ordered a pair of running shoes on the 3rd and the ` +
	`tracking page has said \"in transit\" for nine days now. The estimated delivery date was last Friday. I have emailed twice ` +
	`without an answer and I am starting to worry the parcel is lost. I need the shoes for a race on the 28th, so if they cannot ` +
	`arrive in time I would like a refund instead, or at least to know what is going on. I also noticed that my card was charged ` +
	`twice for this order, once on the 3rd and once on the 5th, which I assume is a mistake. Could you look into both issues? ` +
	`My account email is the one this message is sent from.\n\nThanks,\nJordan"},` +
	`{"role":"assistant","content":"{\"area\": \"shipping\", \"urgency\": 4, \"summary\": \"Parcel delayed nine days; customer needs it by the 28th and reports a double charge.\"}"},` +
	`{"role":"user","content":"Please double-check the urgency: the race is in two weeks and the double charge is a billing problem too. ` +
	`Re-classify if needed and keep the same format."}],` +
	`"temperature":0.2,"max_tokens":256,"top_p":1,"response_format":{"type":"json_object"},"seed":12345,` +
	`"metadata":{"ticket":"88213","queue":"support-eu","priority":null,"tags":["shipping","billing","vip"]},"stream":false}}`)

// chatLineUnicode is chatLine with non-ASCII text in the messages.
var chatLineUnicode = []byte(strings.NewReplacer(
	"Hello,", "Bonjour, ça va ? Grüße aus München — 你好，谢谢！",
	"Thanks,", "Merci beaucoup, très cordialement ✓",
	"running shoes", "chaussures de course « légères »",
).Replace(string(chatLine)))

func TestBenchmarkLinesAreValid(t *testing.T) {
	for _, b := range [][]byte{chatLine, chatLineUnicode} {
		l, err := Validate(b, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if l.CustomID != "request-000042" || l.Model != "gpt-4o-mini" || l.URL != EndpointChatCompletions {
			t.Fatalf("unexpected %+v", l)
		}
		if !json.Valid(b) {
			t.Fatal("benchmark line is not valid JSON")
		}
	}
	if n := len(chatLine); n < 1900 || n > 2300 {
		t.Fatalf("chatLine is %d bytes, want about 2 KB", n)
	}
	if testing.AllocsPerRun(100, func() { _, _ = Validate(chatLine, Limits{}) }) > 1 {
		t.Fatal("a valid line should cost at most one allocation")
	}
}

var sink Line

func BenchmarkValidate(b *testing.B) {
	for _, bc := range []struct {
		name string
		line []byte
	}{{"ascii", chatLine}, {"unicode", chatLineUnicode}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.line)))
			b.ReportAllocs()
			for b.Loop() {
				l, err := Validate(bc.line, Limits{})
				if err != nil {
					b.Fatal(err)
				}
				sink = l
			}
		})
	}
}

// BenchmarkValidateEncodingJSON is the naive alternative for comparison: decode
// the envelope with encoding/json, then the body again for its model. It checks
// less (no duplicate keys, no case variants, no depth limit, no UTF-8 check).
func BenchmarkValidateEncodingJSON(b *testing.B) {
	type envelope struct {
		CustomID string          `json:"custom_id"`
		Method   string          `json:"method"`
		URL      string          `json:"url"`
		Body     json.RawMessage `json:"body"`
	}
	type body struct {
		Model string `json:"model"`
	}
	b.SetBytes(int64(len(chatLine)))
	b.ReportAllocs()
	for b.Loop() {
		var e envelope
		if err := json.Unmarshal(chatLine, &e); err != nil {
			b.Fatal(err)
		}
		var bd body
		if err := json.Unmarshal(e.Body, &bd); err != nil {
			b.Fatal(err)
		}
		if e.CustomID == "" || e.Method != "POST" || !IsBatchEndpoint(e.URL) || bd.Model == "" {
			b.Fatal("invalid")
		}
		sink = Line{CustomID: e.CustomID, Method: e.Method, URL: e.URL, Model: bd.Model}
	}
}
