package main

import (
	"context"
	"fmt"
	"syscall"

	"github.com/jackc/pgx/v5"

	"github.com/volleyhq/volley/internal/machine"
)

// machineInfo is what the report says about where it was measured.
type machineInfo struct {
	cpu        string
	cores      int
	memory     string
	kernel     string
	goVersion  string
	postgres   string
	filesystem string // of the cluster's data directory
}

func describeMachine(ctx context.Context, db *pgx.Conn, pgDir string) (machineInfo, error) {
	facts := machine.Describe()
	m := machineInfo{
		cpu:        facts.CPU,
		cores:      facts.Cores,
		memory:     facts.Memory,
		kernel:     facts.Kernel,
		goVersion:  facts.Go,
		filesystem: filesystemType(pgDir),
	}
	if err := db.QueryRow(ctx, "SHOW server_version").Scan(&m.postgres); err != nil {
		return m, fmt.Errorf("PostgreSQL version: %w", err)
	}
	return m, nil
}

// filesystemType names the filesystem holding path: a cluster on tmpfs would make fsync free and
// the numbers meaningless, so the report says where the data went.
func filesystemType(path string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return "unknown"
	}
	names := map[int64]string{
		0xEF53: "ext2/3/4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs",
		0x794C7630: "overlayfs", 0x2FC12FC1: "zfs", 0x6969: "nfs", 0x65735546: "fuse",
	}
	if name, ok := names[int64(st.Type)]; ok {
		return name
	}
	return fmt.Sprintf("type 0x%X", st.Type)
}

// loadAverage is the 1, 5 and 15 minute load averages.
func loadAverage() string { return machine.LoadAverage() }

// pgSetting is one server setting as the server reports it.
type pgSetting struct{ name, value string }

// reportedSettings are the settings that decide what writing an upload costs, and how the
// dispatcher's statements are planned.
var reportedSettings = []string{
	"fsync", "synchronous_commit", "full_page_writes", "wal_level", "wal_compression",
	"shared_buffers", "wal_buffers", "max_wal_size", "checkpoint_timeout", "default_toast_compression",
	"jit", "plan_cache_mode",
}

func serverSettings(ctx context.Context, db *pgx.Conn) ([]pgSetting, error) {
	rows, err := db.Query(ctx, `SELECT n, current_setting(n) FROM unnest($1::text[]) WITH ORDINALITY AS s(n, i) ORDER BY i`, reportedSettings)
	if err != nil {
		return nil, fmt.Errorf("server settings: %w", err)
	}
	settings, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgSetting, error) {
		var s pgSetting
		err := r.Scan(&s.name, &s.value)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("server settings: %w", err)
	}
	return settings, nil
}
