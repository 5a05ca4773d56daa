package machine

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestProcFieldReadsTheFirstMatchingLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cpuinfo")
	require.NoError(t, os.WriteFile(path, []byte("processor\t: 0\nmodel name\t: Example CPU\nmodel name\t: Other\n"), 0o600))
	require.Equal(t, "Example CPU", procField(path, "model name"))
	require.Equal(t, "unknown", procField(path, "flags"))
	require.Equal(t, "unknown", procField(filepath.Join(t.TempDir(), "missing"), "model name"))
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	f := Describe()
	require.Equal(t, runtime.NumCPU(), f.Cores)
	require.Equal(t, runtime.Version(), f.Go)
	if runtime.GOOS == "linux" {
		require.Regexp(t, `^\d+\.\d GiB$`, f.Memory)
	}
}

func TestMemoryBytes(t *testing.T) {
	t.Parallel()
	require.Greater(t, MemoryBytes(), int64(64<<20))
}
