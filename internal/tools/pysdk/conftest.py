"""Fixtures of the Python SDK suite.

The suite runs against a real `volley serve` and `mockllm`, started by the Go test that runs pytest
(internal/tools/e2e/python_test.go). It reads where they are from the environment:
OPENAI_BASE_URL, OPENAI_API_KEY (owner "alice"), VOLLEY_OTHER_API_KEY (owner "bob") and
VOLLEY_PID (the serve process, whose memory some tests watch).
"""

import json
import os
import time

import openai
import pytest


def make_client(key: str) -> openai.OpenAI:
    # No retries: a test must see the server's first answer.
    return openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key=key, max_retries=0)


@pytest.fixture(scope="session")
def client() -> openai.OpenAI:
    return make_client(os.environ["OPENAI_API_KEY"])


@pytest.fixture(scope="session")
def other_client() -> openai.OpenAI:
    return make_client(os.environ["VOLLEY_OTHER_API_KEY"])


def request_line(custom_id: str, model: str = "m", content: str | None = None, mock: dict | None = None) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": content or f"hello {custom_id}"}]}
    if mock is not None:
        body["mock"] = mock
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(line, separators=(",", ":")) + "\n"


def batch_lines(prefix: str, n: int, **kw) -> bytes:
    return "".join(request_line(f"{prefix}-{i}", **kw) for i in range(n)).encode()


TERMINAL = ("completed", "failed", "expired", "cancelled")


def wait_batch(client: openai.OpenAI, batch_id: str, timeout: float = 60, until=TERMINAL):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in until:
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch.status} after {timeout}s"
        time.sleep(0.05)  # polling interval, not synchronisation


def result_lines(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    text = client.files.content(file_id).text
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]
