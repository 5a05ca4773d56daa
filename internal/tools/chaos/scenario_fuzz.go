package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// APIFuzzSize sizes the API fuzz run.
type APIFuzzSize struct {
	// MaxExamples is schemathesis's number of test cases per operation and phase.
	MaxExamples int
	// Seeds are the runs' seeds, one run each; zero draws one from the clock.
	Seeds []int64
}

// APIFuzzFull is the run of `make chaos`: more cases, and a fresh seed each time, so that every run
// looks somewhere new. A failure names its seed, and the report prints it, so it can be replayed.
func APIFuzzFull() APIFuzzSize { return APIFuzzSize{MaxExamples: 150, Seeds: []int64{0, 0}} }

// APIFuzzReduced is the bounded run of `make test`: few cases and a fixed seed, so that it is the
// same run every time and fails only for a change of Volley's.
func APIFuzzReduced() APIFuzzSize { return APIFuzzSize{MaxExamples: 12, Seeds: []int64{1}} }

var (
	fuzzGenerated = regexp.MustCompile(`(\d+) generated`)
	fuzzSummary   = regexp.MustCompile(`(?m)^=+ (.*(?:passed|failure|failures|error|errors).*) =+$`)
)

// RunAPIFuzz drives every operation of openapi.yaml with schemathesis, a property-based fuzzer,
// with a valid admin key against one replica: no answer may be a 5xx, every answer must match its
// documented status, content type and schema (so every error is the envelope), schema-valid
// requests must be accepted and schema-invalid ones refused, and objects it creates must be
// found again. internal/tools/apifuzz holds the pinned packages and the settings, with the few
// checks a schema cannot decide switched off where they are, and why.
func RunAPIFuzz(ctx context.Context, h *Harness, size APIFuzzSize) *Result {
	res := newResult("api-fuzz", "API fuzz")
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	res.Load = []string{fmt.Sprintf("schemathesis over every operation of openapi.yaml, %d cases per operation and phase, %d run(s), against 1 replica", size.MaxExamples, len(size.Seeds))}
	res.Held = "1 replica, every operation"
	res.Injected = "generated requests, valid and invalid"
	res.Faults = []string{"schema-valid and schema-invalid parameters and bodies (examples, coverage, fuzzing and stateful phases), with a valid key"}

	root, err := ModuleRoot(ctx)
	if err != nil {
		return res.Fail(err)
	}
	dir := filepath.Join(root, "internal", "tools", "apifuzz")
	if out, err := exec.CommandContext(ctx, filepath.Join(root, "internal", "tools", "pysdk", "venv.sh"), dir).CombinedOutput(); err != nil {
		return res.Fail(fmt.Errorf("create the fuzzer's virtualenv (python3 with venv, and PyPI, are needed; .ci/run installs them): %w\n%s", err, out))
	}

	// Webhook endpoints may name 127.0.0.1 and nothing else: what the fuzzer registers is never
	// looked up or sent to off the machine.
	e, err := h.NewEnv(ctx, res.Name, EnvOptions{Replicas: 1, Models: []Model{{Name: authModel, Limit: 8}}, Mock: MockOptions{Latency: time.Millisecond},
		Env: []string{"VOLLEY_WEBHOOK_ALLOW_PRIVATE=true", "VOLLEY_WEBHOOK_ALLOW_HOSTS=127.0.0.1"}})
	if err != nil {
		return res.Fail(err)
	}
	defer e.Close()
	// An admin key, so that the admin routes and the owner= parameter are fuzzed too; the auth
	// sweep checks what plain keys may not do.
	key, err := e.AdminKey(ctx, "fuzzer")
	if err != nil {
		return res.Fail(err)
	}
	r := e.Replicas[0]
	// Objects of the fuzzer's own, so that the lists it reads are not empty.
	c := e.Client(r, key)
	in := MakeInput("fuzz", 3, []Model{{Name: authModel, Limit: 8}})
	fileID, err := Upload(ctx, c, in.Content)
	if err != nil {
		return res.Fail(err)
	}
	if _, err := CreateBatch(ctx, c, fileID); err != nil {
		return res.Fail(err)
	}
	client := newHTTPClient(1)
	defer client.CloseIdleConnections()
	if _, err := createResponse(ctx, client, r, key); err != nil {
		return res.Fail(err)
	}

	var generated int
	for i, seed := range size.Seeds {
		if seed == 0 {
			seed = time.Now().UnixNano() % 1_000_000_007
		}
		cmd := exec.CommandContext(ctx, filepath.Join(dir, ".venv", "bin", "schemathesis"),
			"--config-file", filepath.Join(dir, "schemathesis.toml"), "--no-color",
			"run", filepath.Join(root, "openapi.yaml"),
			"--max-examples", strconv.Itoa(size.MaxExamples), "--seed", strconv.FormatInt(seed, 10),
			"--generation-database", "none")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "VOLLEY_FUZZ_URL="+r.Root(), "VOLLEY_FUZZ_KEY="+key,
			"PYTHONDONTWRITEBYTECODE=1", "NO_COLOR=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		began := time.Now()
		runErr := cmd.Run()
		text := out.String()
		n := 0
		if m := fuzzGenerated.FindStringSubmatch(text); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		generated += n
		summary := "no summary"
		if m := fuzzSummary.FindAllStringSubmatch(text, -1); len(m) > 0 {
			summary = strings.TrimSpace(m[len(m)-1][1])
		}
		res.Metric(fmt.Sprintf("run %d (seed %d)", i+1, seed), "%d test cases in %s: %s", n, time.Since(began).Round(100*time.Millisecond), summary)
		detail := summary
		if runErr != nil {
			detail = fmt.Sprintf("%v; replay with `--seed %d`:\n%s", runErr, seed, failures(text))
		}
		res.Check(fmt.Sprintf("run %d (seed %d): every check holds on every operation", i+1, seed), runErr == nil && n > 0, "%s", detail)
	}
	res.Metric("test cases", "%d", generated)
	checkReplicaHealth(res, e)
	return res
}

// failures is the FAILURES section of a schemathesis report, or its tail.
func failures(text string) string {
	if i := strings.Index(text, "FAILURES"); i >= 0 {
		text = text[i:]
	}
	if len(text) > 6000 {
		text = text[:6000] + "\n…"
	}
	return text
}
