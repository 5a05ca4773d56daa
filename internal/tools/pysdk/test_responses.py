"""Background responses through the official SDK."""

import time

import openai
import pytest


def wait_response(client, response_id, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        r = client.responses.retrieve(response_id)
        if r.status not in ("queued", "in_progress"):
            return r
        assert time.monotonic() < deadline, f"response {response_id} still {r.status}"
        time.sleep(0.05)  # polling interval


def test_background_response_polled_to_completed_then_cancel_and_delete(client, other_client):
    r = client.responses.create(model="m", input="what is volley", background=True)
    assert r.id.startswith("resp_")
    assert r.status == "queued"
    assert r.background is True
    assert r.output == []

    done = wait_response(client, r.id)
    assert done.status == "completed"
    assert done.id == r.id
    assert done.output_text == "echo: what is volley"
    assert done.usage is not None and done.usage.total_tokens > 0

    with pytest.raises(openai.NotFoundError):
        other_client.responses.retrieve(r.id)

    # Cancelling a finished response changes nothing and returns it as it stands.
    after = client.responses.cancel(r.id)
    assert after.status == "completed"
    assert after.output_text == "echo: what is volley"

    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_background_response_cancelled_while_it_runs(client):
    r = client.responses.create(model="m", input="slow", background=True, extra_body={"mock": {"latency": "60s"}})
    cancelled = client.responses.cancel(r.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(r.id).status == "cancelled"
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)
