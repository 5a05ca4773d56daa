package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
)

// ModelsUsage is the help text of `volley models`.
const ModelsUsage = `Usage:
  volley models set-availability MODEL live|coming|absent [--note TEXT] [--json]
        mark a model (Volley extension, admin keys only: volley keys create --admin). Requests
        of a model that is not live wait in the queue; a coming model lets one request per owner
        through per VOLLEY_MODEL_TRICKLE_INTERVAL; live releases them at once.

Environment: OPENAI_BASE_URL (e.g. http://localhost:8080/v1) and OPENAI_API_KEY.
`

// Models runs `volley models ARGS`.
func Models(ctx context.Context, args []string, o IO) error {
	if len(args) == 0 {
		return &UsageError{Msg: "models: give a command", Usage: ModelsUsage}
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "set-availability":
	case "help", "-h", "--help":
		return &UsageError{Usage: ModelsUsage}
	default:
		return &UsageError{Msg: fmt.Sprintf("models: unknown command %q", sub), Usage: ModelsUsage}
	}
	fs := newFlags("models "+sub, ModelsUsage)
	jsonOut := fs.Bool("json", false, "print the event as JSON")
	note := fs.String("note", "", "why, kept in the model's availability log")
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := fs.want(2, "a model and a state (live, coming or absent)"); err != nil {
		return err
	}
	model, state := fs.args[0], fs.args[1]
	switch state {
	case "live", "coming", "absent":
	default:
		return &UsageError{Msg: fmt.Sprintf("models set-availability: state must be live, coming or absent, got %q", state), Usage: ModelsUsage}
	}
	e, err := newEnv(ctx, o, *jsonOut, 0)
	if err != nil {
		return err
	}
	body := map[string]string{"state": state}
	if *note != "" {
		body["note"] = *note
	}
	var raw json.RawMessage
	if err := e.client.Post(ctx, "models/"+url.PathEscape(model)+"/availability", body, &raw); err != nil {
		return apiError("set availability", err)
	}
	if e.json {
		return e.printJSON(string(raw))
	}
	var ev struct {
		Model string `json:"model"`
		State string `json:"state"`
		ID    int64  `json:"id"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		return fmt.Errorf("the server answered something that is not an availability event: %w", err)
	}
	fmt.Fprintf(o.Stdout, "%s is %s (event %d)\n", ev.Model, ev.State, ev.ID)
	return nil
}
