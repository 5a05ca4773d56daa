package daemon

import (
	"context"
	"sync"
)

// gate holds each model's calls in flight on this replica to its allowance: the model's limit
// minus the requests the other replicas hold, as read by this replica's latest claim of the model
// (and only then: an allowance read at any other moment could miss a claim made since). A
// request claimed ahead, past what may be sent at once, waits here for a call of its model to
// return, which starts it without a trip to the database; waiters start in the order they came.
type gate struct {
	mu     sync.Mutex
	models map[string]*modelGate
	quit   chan struct{} // closed when the replica stops: waiters go back to the queue
	once   sync.Once
}

type modelGate struct {
	calls    int
	allow    int
	waiters  []chan struct{} // closed when the waiter may call
	returned int             // calls ended since returns last took them
}

func newGate() *gate { return &gate{models: make(map[string]*modelGate), quit: make(chan struct{})} }

// close turns away every waiter, now and later, with errHandBack: a stopping replica starts no
// more calls, and what it claimed ahead goes back to the queue.
func (g *gate) close() { g.once.Do(func() { close(g.quit) }) }

func (g *gate) model(name string) *modelGate {
	m := g.models[name]
	if m == nil {
		m = &modelGate{}
		g.models[name] = m
	}
	return m
}

// setAllowance records what a claim read for model, starting waiters it now lets through.
func (g *gate) setAllowance(model string, allow int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.model(model)
	m.allow = allow
	m.admit()
}

// acquire waits until a call of model may start. It returns ctx's error if ctx ends first, and
// errHandBack once the gate is closed.
func (g *gate) acquire(ctx context.Context, model string) error {
	g.mu.Lock()
	m := g.model(model)
	select {
	case <-g.quit:
		g.mu.Unlock()
		return errHandBack
	default:
	}
	if len(m.waiters) == 0 && m.calls < m.allow {
		m.calls++
		g.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	m.waiters = append(m.waiters, ch)
	g.mu.Unlock()
	var cause error
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		cause = ctx.Err()
	case <-g.quit:
		cause = errHandBack
	}
	{
		g.mu.Lock()
		defer g.mu.Unlock()
		select {
		case <-ch: // admitted meanwhile: give the slot on
			m.calls--
			m.admit()
		default:
			for i, w := range m.waiters {
				if w == ch {
					m.waiters = append(m.waiters[:i], m.waiters[i+1:]...)
					break
				}
			}
		}
		return cause
	}
}

// release ends a call of model, starting the next waiter if the allowance lets it.
func (g *gate) release(model string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.model(model)
	m.calls--
	m.returned++
	m.admit()
}

// returns takes the count of each model's calls that ended since it was last called.
func (g *gate) returns() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]int)
	for name, m := range g.models {
		if m.returned > 0 {
			out[name] = m.returned
			m.returned = 0
		}
	}
	return out
}

// lower takes n from model's allowance: a cut of its limit, which may start no more calls until
// enough of those in flight have returned. Lowering is safe at any moment; only a claim raises.
func (g *gate) lower(model string, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.model(model)
	m.allow -= n
}

// full reports whether every call of model the allowance lets this replica make is in use, or
// requests wait for one.
func (g *gate) full(model string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.model(model)
	return m.calls >= m.allow || len(m.waiters) > 0
}

// waiting lists the models with calls waiting for an allowance.
func (g *gate) waiting() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := []string{}
	for name, m := range g.models {
		if len(m.waiters) > 0 {
			out = append(out, name)
		}
	}
	return out
}

// calls is how many calls of model are in flight.
func (g *gate) calls(model string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.model(model).calls
}

func (m *modelGate) admit() {
	for len(m.waiters) > 0 && m.calls < m.allow {
		close(m.waiters[0])
		m.waiters = m.waiters[1:]
		m.calls++
	}
}
