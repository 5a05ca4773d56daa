"""The Files API through the official SDK."""

import openai
import pytest

from conftest import batch_lines


def test_create_from_path_and_bytes_list_content_delete(client, other_client, tmp_path):
    on_disk = batch_lines("disk", 20)
    path = tmp_path / "requests.jsonl"
    path.write_bytes(on_disk)
    f1 = client.files.create(file=path, purpose="batch")
    assert f1.object == "file"
    assert f1.id.startswith("file-")
    assert f1.filename == "requests.jsonl"
    assert f1.bytes == len(on_disk)
    assert f1.purpose == "batch"
    assert f1.status == "processed"
    assert f1.expires_at == f1.created_at + 30 * 24 * 3600

    with path.open("rb") as fh:
        f2 = client.files.create(file=fh, purpose="batch", expires_after={"anchor": "created_at", "seconds": 7200})
    assert f2.filename == "requests.jsonl"
    assert f2.expires_at == f2.created_at + 7200

    in_memory = batch_lines("bytes", 3)
    f3 = client.files.create(file=("mem.jsonl", in_memory), purpose="batch")
    assert f3.filename == "mem.jsonl"
    assert f3.bytes == len(in_memory)
    raw = client.files.create(file=in_memory, purpose="batch")  # bare bytes: the SDK names no file
    assert raw.bytes == len(in_memory)

    got = client.files.retrieve(f1.id)
    assert (got.id, got.bytes, got.filename) == (f1.id, f1.bytes, f1.filename)

    # limit=1: the SDK pages with after= cursors through every file, newest first.
    mine = {f1.id, f2.id, f3.id, raw.id}
    seen = [f.id for f in client.files.list(limit=1) if f.id in mine]
    assert seen == [raw.id, f3.id, f2.id, f1.id]
    page = client.files.list(limit=1)
    assert len(page.data) == 1 and page.has_more

    assert client.files.content(f1.id).text == on_disk.decode()
    assert client.files.content(f3.id).content == in_memory

    # Another owner sees nothing of it.
    with pytest.raises(openai.NotFoundError):
        other_client.files.retrieve(f1.id)
    assert all(f.id not in mine for f in other_client.files.list(limit=1))

    deleted = client.files.delete(f1.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (f1.id, "file", True)
    with pytest.raises(openai.NotFoundError) as err:
        client.files.retrieve(f1.id)
    assert err.value.status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.files.content(f1.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(f1.id)


def test_bad_line_refused_with_code_param_and_line(client):
    body = batch_lines("dup", 2) + batch_lines("dup", 1)
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("dup.jsonl", body), purpose="batch")
    e = err.value
    assert e.status_code == 400
    assert e.code == "duplicate_custom_id"
    assert e.param == "custom_id"
    assert e.type == "invalid_request_error"
    assert "Line 3:" in e.message and "line 1" in e.message


def test_wrong_purpose_refused(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("a.jsonl", batch_lines("p", 1)), purpose="fine-tune")
    assert err.value.code == "invalid_purpose"
    assert err.value.param == "purpose"
