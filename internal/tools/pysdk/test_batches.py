"""The Batch API through the official SDK: typed objects, listing, cancel and errors."""

import openai
import pytest
from openai.types import Batch

from conftest import batch_lines, request_line, result_lines, wait_batch


def test_batch_runs_to_completed_with_typed_counts_and_usage(client):
    lines = batch_lines("ok", 5) + request_line("bad", mock={"status": 400, "message": "nope"}).encode()
    f = client.files.create(file=("mixed.jsonl", lines), purpose="batch")
    batch = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "py"}
    )
    assert isinstance(batch, Batch)
    assert batch.id.startswith("batch_")
    assert batch.object == "batch"
    assert batch.input_file_id == f.id
    assert batch.endpoint == "/v1/chat/completions"
    assert batch.completion_window == "24h"
    assert batch.metadata == {"run": "py"}
    assert batch.expires_at == batch.created_at + 86400
    assert batch.request_counts.total == 6

    done = wait_batch(client, batch.id)
    assert done.status == "completed"
    assert done.completed_at is not None and done.completed_at >= done.created_at
    counts = done.request_counts
    assert (counts.total, counts.completed, counts.failed) == (6, 5, 1)
    usage = done.usage
    assert usage is not None
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens >= 0
    assert usage.output_tokens_details.reasoning_tokens >= 0

    out = result_lines(client, done.output_file_id)
    assert [line["custom_id"] for line in out] == [f"ok-{i}" for i in range(5)]
    assert all(line["response"]["status_code"] == 200 and line["error"] is None for line in out)
    errs = result_lines(client, done.error_file_id)
    assert [line["custom_id"] for line in errs] == ["bad"]
    assert errs[0]["response"]["status_code"] == 400
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"

    assert client.batches.retrieve(batch.id).id == batch.id


def test_list_pages_and_cancel(client, other_client):
    slow = batch_lines("slow", 3, mock={"latency": "30s"})
    f = client.files.create(file=("slow.jsonl", slow), purpose="batch")
    ids = [
        client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h").id
        for _ in range(3)
    ]
    listed = [b.id for b in client.batches.list(limit=1) if b.id in ids]
    assert listed == list(reversed(ids)), "newest first, every page followed"
    assert all(b.id not in ids for b in other_client.batches.list())

    for batch_id in ids:
        cancelling = client.batches.cancel(batch_id)
        assert cancelling.status in ("cancelling", "cancelled")
        done = wait_batch(client, batch_id)
        assert done.status == "cancelled"
        assert done.cancelled_at is not None
        assert done.request_counts.total == 3
        assert done.request_counts.failed == 3
        assert {line["error"]["code"] for line in result_lines(client, done.error_file_id)} == {"batch_cancelled"}
        again = client.batches.cancel(batch_id)
        assert again.status == "cancelled", "cancelling a cancelled batch is idempotent"


def test_failing_create_raises_bad_request_error(client):
    f = client.files.create(file=("chat.jsonl", batch_lines("e", 2)), purpose="batch")
    with pytest.raises(openai.BadRequestError) as err:
        client.batches.create(input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h")
    e = err.value
    assert e.status_code == 400
    assert e.code == "url_mismatch"
    assert e.param == "endpoint"
    assert "Line 1:" in e.message

    with pytest.raises(openai.BadRequestError) as err:
        client.batches.create(input_file_id="file-doesnotexist", endpoint="/v1/chat/completions", completion_window="24h")
    assert err.value.code == "invalid_input_file"
    assert err.value.param == "input_file_id"

    with pytest.raises(openai.BadRequestError) as err:
        client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="forever")
    assert err.value.code == "invalid_value"
    assert err.value.param == "completion_window"

    with pytest.raises(openai.NotFoundError) as err:
        client.batches.retrieve("batch_doesnotexist")
    assert err.value.param == "batch_id"


def test_cancel_of_a_completed_batch_is_refused(client):
    f = client.files.create(file=("one.jsonl", batch_lines("c", 1)), purpose="batch")
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert wait_batch(client, batch.id).status == "completed"
    with pytest.raises(openai.BadRequestError) as err:
        client.batches.cancel(batch.id)
    assert err.value.code == "invalid_state"
    assert "completed" in err.value.message
