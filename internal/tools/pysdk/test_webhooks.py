"""Batch webhooks through the official SDK: endpoints managed with client.webhooks, and every
delivery verified by a real HTTP receiver with client.webhooks.unwrap."""

import http.server
import threading
import time

import openai
import pytest

from conftest import batch_lines, wait_batch


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that verifies each delivery with webhooks.unwrap. It refuses the
    first `fail_first` requests of each webhook-id with a 503."""

    def __init__(self, client: openai.OpenAI, fail_first: int = 0):
        self.client = client
        self.fail_first = fail_first
        self.secret = None
        self.lock = threading.Lock()
        self.seen = {}  # webhook-id -> requests
        self.events = []  # verified events answered 2xx
        self.refused = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    event = receiver.client.webhooks.unwrap(body, dict(self.headers), secret=receiver.secret)
                except Exception as e:  # noqa: BLE001 - any failure to verify is a refusal
                    with receiver.lock:
                        receiver.refused.append(repr(e))
                    self.send_response(400)
                    self.end_headers()
                    return
                wid = self.headers["webhook-id"]
                with receiver.lock:
                    receiver.seen[wid] = receiver.seen.get(wid, 0) + 1
                    ok = receiver.seen[wid] > receiver.fail_first
                    if ok:
                        receiver.events.append((wid, event))
                self.send_response(200 if ok else 503)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(client):
    r = Receiver(client, fail_first=1)
    yield r
    r.close()


def wait_for(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)  # polling interval, not synchronisation


def test_batch_events_verify_with_webhooks_unwrap(client, other_client, receiver):
    endpoint = client.webhooks.create(
        name="py receiver", url=receiver.url, event_types=["batch.completed", "batch.cancelled"]
    )
    assert endpoint.id.startswith("whe_")
    assert endpoint.signing_secret.startswith("whsec_")
    assert endpoint.event_types == ["batch.completed", "batch.cancelled"]
    receiver.secret = endpoint.signing_secret

    f = client.files.create(file=("hooks.jsonl", batch_lines("wh", 3)), purpose="batch")
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert wait_batch(client, batch.id).status == "completed"

    # The receiver refuses the first attempt; the retry carries the same webhook-id and verifies.
    wait_for(lambda: any(e.data.id == batch.id for _, e in receiver.events))
    wid, event = next((w, e) for w, e in receiver.events if e.data.id == batch.id)
    assert event.type == "batch.completed"
    assert event.id == wid and wid.startswith("evt_")
    assert event.object == "event"
    assert receiver.seen[wid] == 2
    assert receiver.refused == []

    # Management through the SDK, isolated per owner.
    assert client.webhooks.retrieve(endpoint.id).signing_secret_hint == endpoint.signing_secret_hint
    assert [e.id for e in client.webhooks.list(limit=1)] == [endpoint.id]
    with pytest.raises(openai.NotFoundError):
        other_client.webhooks.retrieve(endpoint.id)
    updated = client.webhooks.update(endpoint.id, event_types=["batch.expired"])
    assert updated.event_types == ["batch.expired"]
    assert client.webhooks.event_types.list().data == [
        "batch.completed", "batch.failed", "batch.expired", "batch.cancelled"
    ]

    # A sample after a rotation verifies with the new secret only.
    rotated = client.webhooks.rotate_secret(endpoint.id)
    assert rotated.signing_secret != endpoint.signing_secret
    receiver.secret = rotated.signing_secret
    result = client.webhooks.test(endpoint.id, event_type="batch.failed")
    assert result.success is True
    assert result.status_code == 503  # the receiver's first answer for that event
    assert result.event_type == "batch.failed"
    assert receiver.refused == []

    with pytest.raises(openai.BadRequestError) as bad:
        client.webhooks.create(name="x", url=receiver.url, event_types=["response.completed"])
    assert bad.value.code == "invalid_value"
    assert bad.value.param == "event_types[0]"

    deleted = client.webhooks.delete(endpoint.id)
    assert deleted.deleted is True and deleted.id == endpoint.id
    with pytest.raises(openai.NotFoundError):
        client.webhooks.retrieve(endpoint.id)
