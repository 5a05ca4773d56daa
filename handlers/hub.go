package handlers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/volleyhq/volley/db/dbsqlc"
)

// hub wakes API calls that wait for a queued response to finish. One connection LISTENs for the
// daemon's notifications and hands each to the calls waiting for that response. It starts with the
// first wait and runs until the server closes.
type hub struct {
	pool    *pgxpool.Pool
	logger  *slog.Logger
	once    sync.Once
	ready   chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	waiters map[string][]chan struct{}
}

func newHub(pool *pgxpool.Pool, logger *slog.Logger) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &hub{pool: pool, logger: logger, ready: make(chan struct{}), ctx: ctx, cancel: cancel,
		waiters: make(map[string][]chan struct{})}
}

// subscribe returns a channel closed when response id is reported finished, and a function to
// call when the caller stops waiting. It waits briefly for the listener to be in place, so that a
// notification sent after subscribe returns is not missed; callers also re-check on their own.
func (h *hub) subscribe(id string) (<-chan struct{}, func()) {
	h.once.Do(func() { go h.listen() })
	select {
	case <-h.ready:
	case <-time.After(2 * time.Second):
	}
	ch := make(chan struct{})
	h.mu.Lock()
	h.waiters[id] = append(h.waiters[id], ch)
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		list := h.waiters[id]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(h.waiters, id)
		} else {
			h.waiters[id] = list
		}
	}
}

func (h *hub) wake(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range h.waiters[id] {
		close(ch)
	}
	delete(h.waiters, id)
}

func (h *hub) listen() {
	signalled := false
	for h.ctx.Err() == nil {
		err := h.listenOnce(func() {
			if !signalled {
				signalled = true
				close(h.ready)
			}
		})
		if h.ctx.Err() != nil {
			return
		}
		h.logger.Warn("response listener lost its connection; retrying", "error", err.Error())
		select {
		case <-h.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (h *hub) listenOnce(ready func()) error {
	conn, err := h.pool.Acquire(h.ctx)
	if err != nil {
		return err
	}
	defer func() {
		_ = conn.Conn().Close(context.Background())
		conn.Release()
	}()
	if err := dbsqlc.New(conn).ResponsesListen(h.ctx); err != nil {
		return err
	}
	ready()
	for {
		n, err := conn.Conn().WaitForNotification(h.ctx)
		if err != nil {
			return err
		}
		h.wake(n.Payload)
	}
}

func (h *hub) close() { h.cancel() }
