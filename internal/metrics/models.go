package metrics

import "sync"

// DefaultMaxModels is how many distinct model names get a label of their own.
const DefaultMaxModels = 200

// OtherModel is the label of every model past the cap.
const OtherModel = "_other"

// Models bounds the model label: a catch-all route lets callers name any model, so the first max
// distinct names get their own label and later ones share OtherModel. Names declared up front (the
// configured routes) always keep theirs.
type Models struct {
	mu    sync.RWMutex
	known map[string]bool
	max   int
}

// NewModels returns a cap of max distinct names.
func NewModels(max int) *Models {
	return &Models{known: make(map[string]bool), max: max}
}

// Declare gives names a label of their own, whatever the cap.
func (m *Models) Declare(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		m.known[n] = true
	}
}

// Label is the label name is recorded under.
func (m *Models) Label(name string) string {
	if m == nil {
		return name
	}
	m.mu.RLock()
	ok := m.known[name]
	full := len(m.known) >= m.max
	m.mu.RUnlock()
	if ok {
		return name
	}
	if full {
		return OtherModel
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.known) >= m.max && !m.known[name] {
		return OtherModel
	}
	m.known[name] = true
	return name
}

// DeclareModels gives the configured models a label of their own.
func (m *Metrics) DeclareModels(names ...string) {
	if m == nil {
		return
	}
	m.models.Declare(names...)
}
