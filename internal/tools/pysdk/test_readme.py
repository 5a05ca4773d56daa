"""The README's Python snippet, run verbatim, so it can never go stale."""

import pathlib
import re
import subprocess
import sys
import time

from conftest import wait_batch

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"


def block(name: str) -> str:
    """The fenced code between <!-- name --> and <!-- /name --> in the README."""
    text = README.read_text()
    m = re.search(rf"<!-- {name} -->\n```\w*\n(.*?)```\n<!-- /{name} -->", text, re.S)
    assert m, f"README.md has no block marked {name}"
    return m.group(1)


def run_snippet(tmp_path, name: str) -> str:
    """Runs a README snippet, as a user would, beside the README's requests.jsonl; returns its output."""
    (tmp_path / "requests.jsonl").write_text(block("requests-jsonl"))
    (tmp_path / "snippet.py").write_text(block(name))
    run = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_readme_python_snippet(tmp_path):
    assert "pip install openai" in README.read_text()
    out = run_snippet(tmp_path, "python-snippet")
    assert "completed=1" in out and "failed=0" in out and "total=1" in out, out
    assert '"custom_id": "q1"' in out or '"custom_id":"q1"' in out, out


def test_readme_uploads_snippet(tmp_path, client):
    status, file_id, batch_id = run_snippet(tmp_path, "python-uploads-snippet").split()
    assert status == "completed"
    assert client.files.content(file_id).text == block("requests-jsonl")
    assert wait_batch(client, batch_id).request_counts.completed == 1


def test_readme_background_snippet(tmp_path, client):
    tier, batch_id, status, response_id = run_snippet(tmp_path, "python-background-snippet").split()
    assert (tier, status) == ("background", "queued")
    batch = wait_batch(client, batch_id)
    assert batch.status == "completed" and batch.request_counts.completed == 1
    deadline = time.monotonic() + 30
    while (resp := client.responses.retrieve(response_id)).status != "completed":
        assert time.monotonic() < deadline, resp.status
        time.sleep(0.05)
    assert resp.service_tier == "background"
