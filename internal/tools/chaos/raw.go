package chaos

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"time"
)

// rawExchange writes req verbatim on a new connection to addr (after which the connection stays
// open for writing), then reads one response, all within timeout. The request may declare more
// body than it carries: the answer must then come without the rest.
func rawExchange(ctx context.Context, addr string, req []byte, timeout time.Duration) Answer {
	start := time.Now()
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Answer{Err: err}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	// Write in the background: the server may answer (and stop reading) before it has all of it.
	go func() { _, _ = conn.Write(req) }()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return Answer{Err: err, Took: time.Since(start)}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	return Answer{Status: res.StatusCode, ContentType: res.Header.Get("Content-Type"), Body: b, Took: time.Since(start), Err: err}
}
