package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/volleyhq/volley/internal/tools/testproc"
)

// pythonSuite is the directory of the Python SDK suite.
func pythonSuite(t *testing.T) string {
	t.Helper()
	root, err := testproc.ModuleRoot()
	require.NoError(t, err)
	return filepath.Join(root, "internal", "tools", "pysdk")
}

// pythonVenv makes sure the suite's virtualenv holds its pinned packages (a no-op once .ci/run or
// an earlier run created it) and returns its python.
func pythonVenv(t *testing.T, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("the Python SDK suite needs python3 with the venv module (apt-get install python3-venv); .ci/run installs it")
	}
	out, err := exec.Command(filepath.Join(dir, "venv.sh")).CombinedOutput()
	require.NoError(t, err, "create the virtualenv:\n%s", out)
	return filepath.Join(dir, ".venv", "bin", "python")
}

// TestPythonSDK runs the pytest suite in internal/tools/pysdk with the official `openai` package
// against a real volley serve and mockllm.
func TestPythonSDK(t *testing.T) {
	t.Parallel()
	dir := pythonSuite(t)
	python := pythonVenv(t, dir)
	m := startMock(t)
	v := startVolley(t, append(dispatchEnv(t, m, 16), webhookEnv()...)...)
	cmd := exec.Command(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "console_output_style=classic", "-rA", dir)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"OPENAI_BASE_URL="+v.proc.URL,
		"OPENAI_API_KEY="+v.key("alice"),
		"VOLLEY_OTHER_API_KEY="+v.key("bob"),
		"VOLLEY_PID="+strconv.Itoa(v.proc.Pid()),
		"PYTHONDONTWRITEBYTECODE=1",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Log(out.String())
	require.NoError(t, err, "pytest failed")
	require.Contains(t, out.String(), "passed", "pytest ran tests")
	require.NotContains(t, out.String(), fmt.Sprintf(" %s ", "skipped"), "no test of the suite is skipped")
}
