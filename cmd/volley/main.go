// Command volley is the Volley server and its administration commands.
//
//	volley serve                      run the API (and, without DATABASE_URL, an embedded PostgreSQL)
//	volley migrate                    apply database migrations and exit
//	volley keys create --owner NAME   make an API key; the key is the last line printed
//	volley keys list                  list keys (never the keys themselves)
//	volley keys revoke ID             revoke a key by its id
//	volley batch …, volley file …     a client of any OpenAI-compatible Batch API (internal/cli)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/volleyhq/volley/internal/cli"
)

const usage = `Volley, an OpenAI-compatible Batch API server.

Usage:
  volley serve [--dev]                 run the server (--dev: print a ready-to-use local API key)
  volley migrate                       apply database migrations and exit
  volley keys create --owner NAME [--name LABEL] [--admin]
                                       make an API key (printed once, as the last line)
  volley keys list                     list API keys
  volley keys revoke ID                revoke an API key
  volley batch submit|watch|list|get|cancel|retry|results ...
                                       submit and watch batches (volley batch help)
  volley file upload|list|get|download|delete ...
                                       manage files (volley file help)

Configuration comes from the environment (DATABASE_URL, VOLLEY_ADDR, VOLLEY_DATA_DIR, ...);
see the README. The batch and file commands talk to OPENAI_BASE_URL with OPENAI_API_KEY.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stdout, os.Stderr))
}

var errUsage = errors.New("usage")

// exitCode prints err as the user should see it and returns the process's exit status: 2 for a bad
// command line (with the usage), the command's own status, or 1. Help asked for is no error.
func exitCode(err error, stdout, stderr io.Writer) int {
	var usageErr *cli.UsageError
	var exitErr *cli.ExitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return cli.ExitUsage
	case errors.As(err, &usageErr) && usageErr.Msg == "":
		fmt.Fprint(stdout, usageErr.Usage)
		return 0
	case errors.As(err, &usageErr):
		fmt.Fprintf(stderr, "volley %s\n\n%s", usageErr.Msg, usageErr.Usage)
		return cli.ExitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "volley: interrupted")
		return cli.ExitInterrupted
	case errors.As(err, &exitErr):
		if exitErr.Msg != "" {
			fmt.Fprintln(stderr, "volley:", exitErr.Msg)
		}
		return exitErr.Code
	}
	fmt.Fprintln(stderr, "volley:", err)
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, args[1:], stdout, stderr)
	case "keys":
		return cmdKeys(ctx, args[1:], stdout, stderr)
	case "batch":
		return cli.Batch(ctx, args[1:], cli.IO{Stdout: stdout, Stderr: stderr, Getenv: os.Getenv})
	case "file":
		return cli.File(ctx, args[1:], cli.IO{Stdout: stdout, Stderr: stderr, Getenv: os.Getenv})
	case "models":
		return cli.Models(ctx, args[1:], cli.IO{Stdout: stdout, Stderr: stderr, Getenv: os.Getenv})
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
