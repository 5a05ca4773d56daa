// Package machine reads the facts a measurement report states about where it ran, from /proc.
package machine

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Facts are the machine's CPU, cores, memory, kernel and Go version.
type Facts struct {
	CPU    string
	Cores  int
	Memory string
	Kernel string
	Go     string
}

// Describe reads the facts; what cannot be read is "unknown".
func Describe() Facts {
	kernel := strings.TrimSpace(ReadText("/proc/sys/kernel/osrelease"))
	if kernel == "" {
		kernel = "unknown"
	}
	return Facts{
		CPU:    procField("/proc/cpuinfo", "model name"),
		Cores:  runtime.NumCPU(),
		Memory: memTotal(),
		Kernel: kernel,
		Go:     runtime.Version(),
	}
}

// ReadText returns a file's content, or "" when it cannot be read.
func ReadText(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

// procField returns the value of the first "key: value" line of a /proc file, or "unknown".
func procField(path, key string) string {
	for line := range strings.SplitSeq(ReadText(path), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal() string {
	v := strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB")
	kb, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}

// LoadAverage is the 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
func LoadAverage() string {
	f := strings.Fields(ReadText("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// MemoryBytes is the memory this process may use: the machine's, or its cgroup's limit when that
// is lower. It is 4 GiB when neither can be read.
func MemoryBytes() int64 {
	total := int64(4 << 30)
	v := strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB")
	if kb, err := strconv.ParseInt(v, 10, 64); err == nil && kb > 0 {
		total = kb << 10
	}
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if limit, err := strconv.ParseInt(strings.TrimSpace(ReadText(path)), 10, 64); err == nil && limit > 0 && limit < total {
			total = limit
		}
	}
	return total
}
