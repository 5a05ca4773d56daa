package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// body wraps every request body. Each read must make progress within the idle timeout
// (VOLLEY_BODY_IDLE_TIMEOUT): the connection's read deadline is pushed forward before each read, so a
// slow but steady client is never cut off while a silent one is. It remembers whether the body was
// read to its end, so that an answer given with body left unread closes the connection instead of
// waiting for the rest. An upload ties its ingest turn to it (pace).
type body struct {
	src  io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration

	mu  sync.Mutex
	eof bool

	pacer *pacer
}

func newBody(w http.ResponseWriter, r *http.Request, idle time.Duration) *body {
	return &body{src: r.Body, rc: http.NewResponseController(w), idle: idle}
}

// errBodyIdle is the answer to a body that stopped sending.
func errBodyIdle(idle time.Duration) *APIError {
	return &APIError{Status: http.StatusRequestTimeout, Type: typeInvalidRequest, Code: "request_timeout",
		Message: fmt.Sprintf("The request body stopped arriving: nothing was received for %s (VOLLEY_BODY_IDLE_TIMEOUT).", idle)}
}

// Read reads from the client, paced by the upload's turn when it has one.
func (b *body) Read(p []byte) (int, error) {
	if b.pacer != nil {
		return b.pacer.read(p)
	}
	return b.read(p)
}

// read is one read from the client under the idle deadline.
func (b *body) read(p []byte) (int, error) {
	if b.idle > 0 {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	}
	n, err := b.src.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.mu.Lock()
		b.eof = true
		b.mu.Unlock()
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = errBodyIdle(b.idle)
	}
	return n, err
}

func (b *body) Close() error { return b.src.Close() }

// unread reports whether the client may still be sending body that nobody read.
func (b *body) unread() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.eof
}

// finish stops pacing and bounds what net/http may still read of the body after the handler (it
// discards a small unread rest before reusing the connection).
func (b *body) finish() {
	b.unpace()
	if b.idle > 0 && b.unread() {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	}
}

// Pacing an upload's reads.
const (
	// stallAfter is how long a read may wait for the client before the turn is given to a waiting
	// upload.
	stallAfter = 50 * time.Millisecond
	// turnSlice is how long an upload keeps its turn while others wait, however fast it sends.
	turnSlice = 200 * time.Millisecond
)

// pacer ties an upload's reads to an ingest turn: data is handed to the ingest only while the upload
// holds a turn; a read that waits for the client gives the turn to a waiting upload, as does an upload
// that has held it for a slice while others wait. A silent or slow client so holds no turn, and the
// turns go round the owners.
type pacer struct {
	b      *body
	ctx    context.Context
	turns  *turns
	owner  string
	held   bool
	since  time.Time
	reqs   chan []byte
	res    chan readResult
	timer  *time.Timer
	closed bool
}

type readResult struct {
	n   int
	err error
}

// pace makes the body's reads take turns; call unpace (or finish) when the upload is done.
func (b *body) pace(ctx context.Context, t *turns, owner string) {
	if t == nil || b.pacer != nil {
		return
	}
	p := &pacer{b: b, ctx: ctx, turns: t, owner: owner, reqs: make(chan []byte), res: make(chan readResult), timer: time.NewTimer(stallAfter)}
	p.timer.Stop()
	go func() {
		for buf := range p.reqs {
			n, err := b.read(buf)
			p.res <- readResult{n, err}
		}
	}()
	b.pacer = p
}

// takeTurn waits for a turn unless the upload holds one: for data already buffered above the body.
func (b *body) takeTurn() error {
	p := b.pacer
	if p == nil || p.held {
		return nil
	}
	if err := p.turns.acquire(p.ctx, p.owner); err != nil {
		return err
	}
	p.held, p.since = true, time.Now()
	return nil
}

// unpace gives the turn back and makes reads direct again.
func (b *body) unpace() {
	p := b.pacer
	if p == nil {
		return
	}
	b.pacer = nil
	if p.held {
		p.held = false
		p.turns.release()
	}
	close(p.reqs)
}

func (p *pacer) read(buf []byte) (int, error) {
	// The read itself runs without a turn when the client is slow: it waits on the network, not on
	// this machine.
	p.reqs <- buf
	var r readResult
	if !p.held {
		r = <-p.res
	} else {
		p.timer.Reset(stallAfter)
	wait:
		for {
			select {
			case r = <-p.res:
				break wait
			case <-p.timer.C:
				if p.turns.waiting() > 0 {
					p.yield()
					r = <-p.res
					break wait
				}
				p.timer.Reset(stallAfter)
			}
		}
		p.timer.Stop()
	}
	if p.held && p.turns.waiting() > 0 && time.Since(p.since) >= turnSlice {
		p.yield()
	}
	if !p.held && r.n > 0 {
		if err := p.turns.acquire(p.ctx, p.owner); err != nil {
			return 0, err
		}
		p.held, p.since = true, time.Now()
	}
	return r.n, r.err
}

func (p *pacer) yield() {
	p.held = false
	p.turns.release()
}

// turns are the replica's ingest turns (VOLLEY_MAX_CONCURRENT_UPLOADS). Waiting uploads are served
// round the owners: each owner's uploads in arrival order, the owners in turn, so that one owner's
// many uploads cannot keep another's waiting.
type turns struct {
	mu      sync.Mutex
	limit   int
	inUse   int
	queues  map[string][]*turnWaiter
	order   []string // owners with waiting uploads, next first
	nWaitng int
}

type turnWaiter struct {
	ready   chan struct{}
	granted bool
}

func newTurns(limit int) *turns {
	if limit <= 0 {
		return nil
	}
	return &turns{limit: limit, queues: map[string][]*turnWaiter{}}
}

// waiting is how many uploads wait for a turn.
func (t *turns) waiting() int {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nWaitng
}

// held is how many turns are taken.
func (t *turns) held() int {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inUse
}

// acquire waits for a turn of owner's; the error is the client's going away.
func (t *turns) acquire(ctx context.Context, owner string) error {
	t.mu.Lock()
	if t.inUse < t.limit && t.nWaitng == 0 {
		t.inUse++
		t.mu.Unlock()
		return nil
	}
	w := &turnWaiter{ready: make(chan struct{})}
	if len(t.queues[owner]) == 0 {
		t.order = append(t.order, owner)
	}
	t.queues[owner] = append(t.queues[owner], w)
	t.nWaitng++
	t.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	if w.granted {
		t.mu.Unlock()
		t.release()
	} else {
		t.dropLocked(owner, w)
		t.mu.Unlock()
	}
	return uploadReadError(ctx, ctx.Err())
}

func (t *turns) dropLocked(owner string, w *turnWaiter) {
	q := t.queues[owner]
	for i, x := range q {
		if x == w {
			q = append(q[:i], q[i+1:]...)
			break
		}
	}
	t.nWaitng--
	if len(q) > 0 {
		t.queues[owner] = q
		return
	}
	delete(t.queues, owner)
	for i, o := range t.order {
		if o == owner {
			t.order = append(t.order[:i], t.order[i+1:]...)
			break
		}
	}
}

// release gives a turn back, to the next owner in line.
func (t *turns) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inUse--
	for t.inUse < t.limit && len(t.order) > 0 {
		owner := t.order[0]
		t.order = t.order[1:]
		q := t.queues[owner]
		w := q[0]
		if len(q) > 1 {
			t.queues[owner] = q[1:]
			t.order = append(t.order, owner)
		} else {
			delete(t.queues, owner)
		}
		t.nWaitng--
		t.inUse++
		w.granted = true
		close(w.ready)
	}
}
