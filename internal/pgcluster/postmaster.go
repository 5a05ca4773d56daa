package pgcluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// pidInfo is what postmaster.pid says about a server.
type pidInfo struct {
	pid       int
	port      int
	socketDir string // the first of unix_socket_directories; empty if none
	status    string // "starting", "ready", "standby" or "stopping"
}

// ready reports whether the server says it accepts connections.
func (p pidInfo) ready() bool { return p.status == "ready" || p.status == "standby" }

// readPIDFile parses pgData/postmaster.pid. A file that is being written may yield zero values.
func readPIDFile(pgData string) (pidInfo, error) {
	b, err := os.ReadFile(filepath.Join(pgData, "postmaster.pid"))
	if err != nil {
		return pidInfo{}, err
	}
	lines := strings.Split(string(b), "\n")
	line := func(i int) string {
		if i < len(lines) {
			return strings.TrimSpace(lines[i])
		}
		return ""
	}
	// Lines: PID, data directory, start time, port, socket directory, listen address, shared
	// memory key, status.
	var p pidInfo
	p.pid, _ = strconv.Atoi(line(0))
	p.port, _ = strconv.Atoi(line(3))
	p.socketDir = line(4)
	p.status = line(7)
	return p, nil
}

// pmState classifies postmaster.pid.
type pmState int

const (
	pmNone    pmState = iota // no postmaster.pid
	pmDead                   // its process is gone: a new server simply replaces the file
	pmStale                  // its PID now names another process, which would block a new server
	pmRunning                // a server is, or may be, running
)

type pmStatus struct {
	state  pmState
	info   pidInfo
	reason string // why the file is stale
	err    error  // for pmNone: why the file could not be read
}

// postmaster inspects the cluster's postmaster.pid and the process it names.
func (c *Cluster) postmaster() pmStatus {
	info, err := readPIDFile(c.pgData)
	if errors.Is(err, fs.ErrNotExist) {
		return pmStatus{state: pmNone}
	}
	if err != nil {
		return pmStatus{state: pmNone, err: fmt.Errorf("pgcluster: read postmaster.pid: %w", err)}
	}
	st := pmStatus{state: pmRunning, info: info}
	if info.pid <= 0 {
		return st // being written
	}
	if err := syscall.Kill(info.pid, 0); errors.Is(err, syscall.ESRCH) {
		st.state = pmDead
		return st
	}
	// Where /proc tells more (Linux), tell a crashed server's reused PID from a live server.
	if procState(info.pid) == 'Z' {
		st.state, st.reason = pmStale, "process is a zombie"
		return st
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", info.pid)); err == nil {
		want := c.pgData
		if resolved, err := filepath.EvalSymlinks(want); err == nil {
			want = resolved
		}
		if cwd != want {
			st.state, st.reason = pmStale, "process runs in "+cwd
		}
	}
	return st
}

// procState returns the state letter of a process from /proc, or 0 if unknown.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "pid (comm) S ...": comm may hold spaces and parentheses, so look after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// removeStaleSocketLock removes the lock file of the socket for port in dir if it names pid.
func removeStaleSocketLock(dir string, port, pid int) error {
	if dir == "" || port == 0 {
		return nil
	}
	path := filepath.Join(dir, socketName(port)+".lock")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil // absent, or not ours to judge
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if strings.TrimSpace(first) != strconv.Itoa(pid) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pgcluster: remove stale socket lock file: %w", err)
	}
	return nil
}
