package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/volleyhq/volley/db"
	"github.com/volleyhq/volley/db/dbsqlc"
	"github.com/volleyhq/volley/internal/apikey"
	"github.com/volleyhq/volley/internal/config"
)

func cmdKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	owner := fs.String("owner", "", "owner of the new key (required)")
	name := fs.String("name", "", "a label for the key")
	admin := fs.Bool("admin", false, "an admin key: reads every owner's objects and the operator's routes")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	switch sub {
	case "create":
		if strings.TrimSpace(*owner) == "" {
			return errors.New("keys create: --owner is required")
		}
	case "list":
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New("keys revoke: give the id of the key to revoke (see `volley keys list`)")
		}
		if _, err := strconv.ParseInt(fs.Arg(0), 10, 64); err != nil {
			return fmt.Errorf("keys revoke: %q is not a key id (see `volley keys list`)", fs.Arg(0))
		}
	default:
		fmt.Fprintf(stderr, "unknown keys command %q\n\n%s", sub, usage)
		return errUsage
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	d, err := openDatabase(ctx, cfg, newLogger(cfg, stderr), 4)
	if err != nil {
		return err
	}
	defer d.close(ctx)
	q := dbsqlc.New(d.pool)
	switch sub {
	case "create":
		key, err := createKey(ctx, q, strings.TrimSpace(*owner), *name, *admin)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "API key for owner %q (shown once; store it now):\n%s\n", strings.TrimSpace(*owner), key)
	case "list":
		rows, err := q.APIKeyList(ctx)
		if err != nil {
			return fmt.Errorf("list keys: %w", db.Translate(err))
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tOWNER\tNAME\tKEY\tADMIN\tCREATED\tREVOKED")
		for _, k := range rows {
			revoked := "-"
			if k.RevokedAt != nil {
				revoked = k.RevokedAt.UTC().Format(time.RFC3339)
			}
			admin := "-"
			if k.Admin {
				admin = "yes"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Owner, k.Name, k.KeyPrefix, admin, k.CreatedAt.UTC().Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "revoke":
		id, _ := strconv.ParseInt(fs.Arg(0), 10, 64) // checked above
		k, err := q.APIKeyRevoke(ctx, id)
		if err = db.Translate(err); errors.Is(err, db.ErrNotFound) {
			return fmt.Errorf("keys revoke: no key with id %d", id)
		} else if err != nil {
			return fmt.Errorf("revoke key: %w", err)
		}
		fmt.Fprintf(stdout, "revoked key %d (%s) of owner %q\n", k.ID, k.KeyPrefix, k.Owner)
	}
	return nil
}

func createKey(ctx context.Context, q *dbsqlc.Queries, owner, name string, admin bool) (string, error) {
	key, hash, display := apikey.New()
	if _, err := q.APIKeyInsert(ctx, dbsqlc.APIKeyInsertParams{Owner: owner, Name: name, KeyHash: hash, KeyPrefix: display, Admin: admin}); err != nil {
		return "", fmt.Errorf("store key: %w", db.Translate(err))
	}
	return key, nil
}
