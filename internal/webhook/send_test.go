package webhook

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func message(url string) Message {
	body, _ := Body("evt_s", BatchCompleted, time.Now(), []byte(`{"id":"batch_s"}`))
	return Message{URL: url, ID: "evt_s", Body: body, Secrets: []string{NewSecret()}}
}

// The address is checked when it is dialled, so a name that resolves to a public address when the
// endpoint is registered and to a private one later (DNS rebinding) still reaches nothing.
func TestSenderRefusesPrivateAddressesWhenDialling(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	s := NewSender(2*time.Second, false, nil)
	for _, u := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)} {
		out := s.Send(t.Context(), message(u))
		require.False(t, out.OK(), u)
		require.Zero(t, out.Status, u)
		require.Contains(t, out.Err, "it is not a public address (VOLLEY_WEBHOOK_ALLOW_PRIVATE is off)", u)
	}
	require.Zero(t, hits.Load(), "no request reached the private address")

	out := NewSender(2*time.Second, true, nil).Send(t.Context(), message(srv.URL))
	require.True(t, out.OK(), out.Err)
	require.Equal(t, 1, int(hits.Load()))

	// An allow-list of hosts is checked before anything is resolved or dialled.
	only := NewSender(2*time.Second, true, []string{"hooks.internal"})
	out = only.Send(t.Context(), message(srv.URL))
	require.Equal(t, "refused to send to 127.0.0.1: it is not in VOLLEY_WEBHOOK_ALLOW_HOSTS", out.Err)
	require.Equal(t, 1, int(hits.Load()))
	out = NewSender(2*time.Second, true, []string{"127.0.0.1"}).Send(t.Context(), message(srv.URL))
	require.True(t, out.OK(), out.Err)
}

func TestSenderOutcomes(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("webhook-id") != "evt_s" ||
			!strings.HasPrefix(r.Header.Get("webhook-signature"), "v1,") || r.Header.Get("webhook-timestamp") == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/refuse", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("bad\x00 signature\n" + strings.Repeat("x", 1000)))
	})
	release := make(chan struct{})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	s := NewSender(300*time.Millisecond, true, nil)

	out := s.Send(t.Context(), message(srv.URL+"/ok"))
	require.True(t, out.OK(), out.Err)
	require.Equal(t, http.StatusAccepted, out.Status)

	out = s.Send(t.Context(), message(srv.URL+"/redirect"))
	require.False(t, out.OK())
	require.Equal(t, http.StatusFound, out.Status)
	require.Equal(t, "the endpoint answered 302 (redirects are not followed) to /ok", out.Err)

	out = s.Send(t.Context(), message(srv.URL+"/refuse"))
	require.Equal(t, http.StatusUnauthorized, out.Status)
	require.True(t, strings.HasPrefix(out.Err, "the endpoint answered 401: bad signature xxx"), out.Err)
	require.LessOrEqual(t, len(out.Err), 300, "a receiver's answer is kept short")
	require.NotContains(t, out.Err, "\x00")

	out = s.Send(t.Context(), message(srv.URL+"/slow"))
	require.Zero(t, out.Status)
	require.Equal(t, "no answer within 300ms", out.Err)

	out = s.Send(t.Context(), message("http://127.0.0.1:1/closed"))
	require.Zero(t, out.Status)
	require.Contains(t, out.Err, "cannot connect")
}
