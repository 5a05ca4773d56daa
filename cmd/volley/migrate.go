package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/volleyhq/volley/internal/config"
)

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	d, err := openDatabase(ctx, cfg, logger, 4)
	if err != nil {
		return err
	}
	defer d.close(ctx)
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}
