package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/config"
)

// A dispatching replica's soft memory limit is its byte budget plus the headroom, unless the
// operator set GOMEMLIMIT or the replica does not dispatch.
func TestMemoryLimitFollowsTheByteBudget(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	cfg, err := config.Load(env(map[string]string{"VOLLEY_MAX_INFLIGHT_BYTES": "268435456"}))
	require.NoError(t, err)
	limit, ok := memoryLimit(cfg, env(nil))
	require.True(t, ok)
	require.EqualValues(t, 268435456+memoryHeadroom, limit)

	_, ok = memoryLimit(cfg, env(map[string]string{"GOMEMLIMIT": "1GiB"}))
	require.False(t, ok, "GOMEMLIMIT wins")

	cfg.Dispatch.Enabled = false
	_, ok = memoryLimit(cfg, env(nil))
	require.False(t, ok, "an API-only replica holds no dispatch budget")
}
