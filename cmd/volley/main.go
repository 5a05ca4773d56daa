// Command volley is the Volley server and its administration commands.
//
//	volley serve                      run the API (and, without DATABASE_URL, an embedded PostgreSQL)
//	volley migrate                    apply database migrations and exit
//	volley keys create --owner NAME   make an API key; the key is the last line printed
//	volley keys list                  list keys (never the keys themselves)
//	volley keys revoke ID             revoke a key by its id
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `Volley, an OpenAI-compatible Batch API server.

Usage:
  volley serve [--dev]                 run the server (--dev: print a ready-to-use local API key)
  volley migrate                       apply database migrations and exit
  volley keys create --owner NAME [--name LABEL]
                                       make an API key (printed once, as the last line)
  volley keys list                     list API keys
  volley keys revoke ID                revoke an API key

Configuration comes from the environment (DATABASE_URL, VOLLEY_ADDR, VOLLEY_DATA_DIR, ...);
see the README.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "volley:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

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
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
