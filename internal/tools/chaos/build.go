package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries are the programs the suites run, built from the working tree.
type Binaries struct {
	Dir    string
	Volley string
	Mock   string
}

// ModuleRoot is the directory holding go.mod.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the Volley module")
	}
	return filepath.Dir(mod), nil
}

// Build compiles ./cmd/volley and ./internal/tools/cmd/mockllm into dir.
func Build(ctx context.Context, dir string) (Binaries, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return Binaries{}, err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator), "./cmd/volley", "./internal/tools/cmd/mockllm")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build: %v\n%s", err, out)
	}
	return Binaries{Dir: dir, Volley: filepath.Join(dir, "volley"), Mock: filepath.Join(dir, "mockllm")}, nil
}
