"""The README's Python snippet, run verbatim, so it can never go stale."""

import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"


def block(name: str) -> str:
    """The fenced code between <!-- name --> and <!-- /name --> in the README."""
    text = README.read_text()
    m = re.search(rf"<!-- {name} -->\n```\w*\n(.*?)```\n<!-- /{name} -->", text, re.S)
    assert m, f"README.md has no block marked {name}"
    return m.group(1)


def test_readme_python_snippet(tmp_path):
    snippet = block("python-snippet")
    assert "pip install openai" in README.read_text()
    (tmp_path / "requests.jsonl").write_text(block("requests-jsonl"))
    (tmp_path / "snippet.py").write_text(snippet)
    run = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "completed=1" in out and "failed=0" in out and "total=1" in out, out
    assert '"custom_id": "q1"' in out or '"custom_id":"q1"' in out, out
