// Package cli is the client side of the volley binary: `volley batch …` and `volley file …`, which
// talk to any OpenAI-compatible Batch API (Volley, or OpenAI itself) through the official openai-go
// SDK, configured by OPENAI_BASE_URL and OPENAI_API_KEY.
//
// Data (ids, tables, JSON with --json, downloaded content) goes to stdout; progress goes to stderr:
// on a terminal a bar redrawn in place, with colour; elsewhere one plain line every few seconds,
// without control characters.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"golang.org/x/term"
)

// Exit statuses beyond 0 (success) and 1 (an error, or a batch where not every request completed).
const (
	ExitUsage       = 2   // bad arguments
	ExitInterrupted = 130 // stopped by Ctrl-C
)

// UsageError is a bad command line: the caller prints it with the usage and exits with ExitUsage.
type UsageError struct {
	Msg   string
	Usage string
}

func (e *UsageError) Error() string { return e.Msg }

// ExitError ends the command with Code; its message (if any) has been printed already.
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

// IO is where a command reads its environment and writes its output.
type IO struct {
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// BatchUsage and FileUsage are the help texts of the two command groups.
const BatchUsage = `Usage:
  volley batch submit FILE [--endpoint E] [--window W] [--service-tier T] [--metadata k=v]... [--wait] [--json]
        upload FILE (a JSONL file of requests) and create a batch from it; the endpoint is taken from
        the lines' url unless given. --wait watches it to the end and writes the results next to FILE
        (requests.jsonl: requests.output.jsonl and requests.errors.jsonl); the exit status is then 0
        only when every request completed.
  volley batch watch ID [--json]       a live progress bar until the batch ends (Ctrl-C stops
                                       watching; the batch runs on)
  volley batch list [--limit N] [--after ID] [--json]
  volley batch get ID [--json]
  volley batch cancel ID [--json]
  volley batch retry ID [--status S]... [--custom-id C]... [--window W] [--metadata k=v]... [--wait] [--json]
        a new batch of lines of ended batch ID (Volley extension): by default every line that did not
        complete; --status (completed, failed, expired, cancelled) and --custom-id narrow the choice
  volley batch results ID [--status completed|failed|all] [--out F]
        the batch's output file (completed), error file (failed) or both (all, the default)

  --interval D   how often watching refreshes (default 1s on a terminal, 5s otherwise)

Environment: OPENAI_BASE_URL (e.g. http://localhost:8080/v1) and OPENAI_API_KEY.
`

const FileUsage = `Usage:
  volley file upload FILE [--purpose P] [--json]   upload a file (purpose batch by default)
  volley file list [--purpose P] [--limit N] [--after ID] [--json]
  volley file get ID [--json]
  volley file download ID [--out F]                the file's content (stdout unless --out)
  volley file delete ID [--json]

Environment: OPENAI_BASE_URL (e.g. http://localhost:8080/v1) and OPENAI_API_KEY.
`

// env is what every command works with.
type env struct {
	ctx    context.Context
	io     IO
	client openai.Client
	base   string
	screen *screen
	json   bool
}

// newEnv builds the SDK client from the environment and the progress screen for stderr.
func newEnv(ctx context.Context, o IO, jsonOut bool, interval time.Duration) (*env, error) {
	if strings.TrimSpace(o.Getenv("OPENAI_API_KEY")) == "" {
		return nil, errors.New("OPENAI_API_KEY is not set: export the API key of the server (for Volley, `volley keys create --owner NAME` makes one)")
	}
	base := o.Getenv("OPENAI_BASE_URL")
	if base == "" {
		base = "https://api.openai.com/v1"
	}
	// NewClient also reads the SDK's other variables (OPENAI_ORG_ID, OPENAI_PROJECT_ID, ...).
	client := openai.NewClient(option.WithBaseURL(base), option.WithAPIKey(o.Getenv("OPENAI_API_KEY")))
	e := &env{ctx: ctx, io: o, client: client, base: strings.TrimRight(base, "/"), json: jsonOut}
	e.screen = newScreen(o, interval)
	return e, nil
}

// newScreen decides how progress is shown on o.Stderr: a terminal gets bars and (unless NO_COLOR is
// set) colour; anything else, or TERM=dumb, plain lines.
func newScreen(o IO, interval time.Duration) *screen {
	s := &screen{w: o.Stderr, now: time.Now, period: 5 * time.Second}
	if f, ok := o.Stderr.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(f.Fd())) && o.Getenv("TERM") != "dumb" {
		fd := int(f.Fd())
		s.tty = true
		s.colour = o.Getenv("NO_COLOR") == ""
		s.width = func() int {
			w, _, err := term.GetSize(fd)
			if err != nil {
				return 0
			}
			return w
		}
	}
	if interval > 0 {
		s.period = interval
	}
	return s
}

// flags is a flag set that accepts flags before, between and after positional arguments.
type flags struct {
	*flag.FlagSet
	usage string
	args  []string
}

func newFlags(name, usage string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flags{FlagSet: fs, usage: usage}
}

// parse parses args, keeping positional arguments in order; "--" ends the flags.
func (f *flags) parse(args []string) error {
	for {
		if err := f.FlagSet.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return &UsageError{Usage: f.usage}
			}
			return &UsageError{Msg: fmt.Sprintf("%s: %v", f.Name(), err), Usage: f.usage}
		}
		rest := f.FlagSet.Args()
		if len(rest) == 0 {
			return nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			f.args = append(f.args, rest...)
			return nil
		}
		f.args = append(f.args, rest[0])
		args = rest[1:]
	}
}

// want checks the number of positional arguments.
func (f *flags) want(n int, what string) error {
	if len(f.args) != n {
		if len(f.args) < n {
			return &UsageError{Msg: fmt.Sprintf("%s: give %s", f.Name(), what), Usage: f.usage}
		}
		return &UsageError{Msg: fmt.Sprintf("%s: unexpected argument %q", f.Name(), f.args[n]), Usage: f.usage}
	}
	return nil
}

// metadata is a repeatable k=v flag.
type metadata map[string]string

func (m metadata) String() string { return "" }

func (m metadata) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	m[k] = val
	return nil
}

// list is a repeatable flag that also accepts comma-separated values.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }

func (l *list) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// repeated is a repeatable flag whose values are taken whole (a custom_id may hold a comma).
type repeated []string

func (r *repeated) String() string { return strings.Join(*r, " ") }

func (r *repeated) Set(v string) error {
	*r = append(*r, v)
	return nil
}

// printJSON writes raw (a server's JSON object) to stdout, indented, as one document.
func (e *env) printJSON(raw string) error {
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return fmt.Errorf("the server answered something that is not JSON: %w", err)
	}
	enc := json.NewEncoder(e.io.Stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// apiError rewrites an SDK error as one readable sentence: status, the server's message, and where
// the server named one, the parameter and code.
func apiError(action string, err error) error {
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("%s: %w", action, err)
	}
	msg := strings.TrimSpace(apiErr.Message)
	if msg == "" {
		msg = http.StatusText(apiErr.StatusCode)
	}
	detail := []string{}
	if apiErr.Param != "" {
		detail = append(detail, "param "+apiErr.Param)
	}
	if apiErr.Code != "" {
		detail = append(detail, "code "+apiErr.Code)
	}
	if len(detail) > 0 {
		msg += " (" + strings.Join(detail, ", ") + ")"
	}
	return fmt.Errorf("%s: %d %s", action, apiErr.StatusCode, msg)
}

// statusOf is the HTTP status of an SDK error, 0 for anything else.
func statusOf(err error) int {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode
	}
	return 0
}

func unixTime(sec int64) string {
	if sec == 0 {
		return "-"
	}
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}
