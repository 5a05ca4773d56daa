package db

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// idlePingAfter is how long a pooled connection may sit idle before it is pinged on its next use,
// as pgx does by default.
const idlePingAfter = time.Second

// shouldPing decides whether a connection taken from the pool is pinged before its statement runs.
// Beyond pgx's rule (idle for a second or more), a connection is pinged when the server has
// written to it while it sat idle: a server that shut down or restarted leaves a FATAL message and
// end-of-file on every connection it had, and a statement sent on one of them would fail. A failed
// ping makes the pool drop the connection and take another, so once the database accepts
// connections again no caller sees an error from a connection it broke before. The check is one
// non-blocking peek at the socket: no round trip.
func shouldPing(_ context.Context, p pgxpool.ShouldPingParams) bool {
	if p.IdleDuration >= idlePingAfter {
		return true
	}
	return pendingInput(p.Conn.PgConn().Conn())
}

// pendingInput reports whether c has bytes or end-of-file waiting to be read, or is otherwise not
// a healthy idle socket. A connection whose socket cannot be inspected counts as healthy.
func pendingInput(c net.Conn) bool {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS: peek at the socket beneath
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	// Control, not Read: Read would wait for the descriptor's read lock, which pgconn's background
	// reader may hold, blocked in a read of an idle connection, for as long as the server sends
	// nothing. The peek itself never blocks.
	pending := false
	var buf [1]byte
	err = raw.Control(func(fd uintptr) {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		pending = !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EWOULDBLOCK)
	})
	return pending || err != nil
}
