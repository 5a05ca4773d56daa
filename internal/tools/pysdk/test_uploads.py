"""The Uploads API through the official SDK's upload_file_chunked helper."""

import hashlib
import json
import os

import openai
import pytest

from conftest import make_client, request_line, wait_batch

MiB = 1 << 20


def proc_status(pid: str) -> dict[str, int]:
    """The kB figures of /proc/<pid>/status."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                out[key] = int(value.split()[0])
    return out


def write_batch_file(path, target_bytes: int, line_bytes: int) -> int:
    """Writes batch lines of about line_bytes each until the file holds target_bytes; returns the line count."""
    n = 0
    size = 0
    with open(path, "w") as fh:
        while size < target_bytes:
            filler = (f"{n:08d} lorem ipsum dolor sit amet " * (line_bytes // 36))[: line_bytes - 200]
            line = json.dumps(
                {"custom_id": f"big-{n}", "method": "POST", "url": "/v1/chat/completions",
                 "body": {"model": "m", "messages": [{"role": "user", "content": f"q{n}"}], "pad": filler}},
                separators=(",", ":"),
            ) + "\n"
            fh.write(line)
            size += len(line)
            n += 1
    return n


def test_upload_file_chunked_150_mb_with_a_part_sent_twice(tmp_path, monkeypatch):
    path = tmp_path / "big.jsonl"
    lines = write_batch_file(path, 150_000_000, 30_000)
    size = path.stat().st_size
    assert size >= 150_000_000
    md5 = hashlib.md5(path.read_bytes()).hexdigest()

    client = make_client(os.environ["OPENAI_API_KEY"])
    parts = client.uploads.parts
    create = parts.create
    sent = []

    def create_part(**kw):
        sent.append(len(kw["data"]))
        if len(sent) == 2:
            create(**kw)  # the answer is lost; the client sends the part again
        return create(**kw)

    monkeypatch.setattr(parts, "create", create_part)

    pid = os.environ["VOLLEY_PID"]
    with open(f"/proc/{pid}/clear_refs", "w") as fh:
        fh.write("5")  # resets the peak RSS (VmHWM) to the current RSS
    before = proc_status(pid)["VmRSS"]

    upload = client.uploads.upload_file_chunked(file=path, mime_type="text/jsonl", purpose="batch", md5=md5)

    peak = proc_status(pid)["VmHWM"]
    growth_mb = (peak - before) * 1024 / 1e6
    print(f"\nupload of {size} bytes in {len(sent)} parts ({sent}): serve RSS {before} kB before, peak {peak} kB, growth {growth_mb:.1f} MB")
    assert sent == [64 * MiB, 64 * MiB, size - 128 * MiB], "64 MiB parts, the helper's default"
    assert growth_mb < 64, f"the server's memory grew by {growth_mb:.1f} MB"

    assert upload.status == "completed"
    assert upload.object == "upload"
    assert upload.bytes == size
    assert upload.filename == "big.jsonl"
    assert upload.file is not None
    assert upload.file.status == "processed"
    assert upload.file.bytes == size
    assert upload.file.purpose == "batch"
    assert client.files.retrieve(upload.file.id).bytes == size

    batch = client.batches.create(input_file_id=upload.file.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.request_counts.total == lines
    done = wait_batch(client, batch.id, timeout=300)
    assert done.status == "completed"
    assert (done.request_counts.completed, done.request_counts.failed) == (lines, 0)
    client.files.delete(upload.file.id)


def test_a_bad_line_in_part_2_is_refused_at_complete_with_its_line_number(client):
    good = "".join(request_line(f"ok-{i}") for i in range(10_000))
    first = good.encode()
    bad_at = good.count("\n") + 3  # the third line of what follows
    rest = "".join(request_line(f"more-{i}") for i in range(2)) + '{"custom_id": "broken", "method": "POST"\n'
    rest += "".join(request_line(f"tail-{i}") for i in range(100))
    data = first + rest.encode()
    part_size = MiB
    assert len(first) > part_size and len(first) < 2 * part_size, "the bad line lies in the second part"

    with pytest.raises(openai.BadRequestError) as err:
        client.uploads.upload_file_chunked(
            file=data, filename="bad.jsonl", bytes=len(data), mime_type="text/jsonl", purpose="batch", part_size=part_size
        )
    e = err.value
    assert e.code == "invalid_json_line"
    assert e.body["message"].startswith(f"Line {bad_at}:"), e.body

    # The same answer as POST /v1/files gives the same content.
    with pytest.raises(openai.BadRequestError) as direct:
        client.files.create(file=("bad.jsonl", data), purpose="batch")
    assert direct.value.body == e.body


def test_upload_cancel_and_errors(client, other_client):
    data = b"".join(request_line(f"c-{i}").encode() for i in range(3))
    upload = client.uploads.create(bytes=len(data), filename="c.jsonl", mime_type="text/jsonl", purpose="batch")
    assert upload.status == "pending"
    assert upload.expires_at == upload.created_at + 3600
    assert upload.file is None
    part = client.uploads.parts.create(upload_id=upload.id, data=data)
    assert part.object == "upload.part" and part.upload_id == upload.id

    with pytest.raises(openai.NotFoundError):
        other_client.uploads.cancel(upload.id)
    with pytest.raises(openai.BadRequestError) as err:
        client.uploads.complete(upload_id=upload.id, part_ids=[part.id], md5="0" * 32)
    assert (err.value.code, err.value.param) == ("md5_mismatch", "md5")
    with pytest.raises(openai.BadRequestError) as err:
        client.uploads.complete(upload_id=upload.id, part_ids=[part.id, part.id])
    assert (err.value.code, err.value.param) == ("invalid_value", "part_ids")

    cancelled = client.uploads.cancel(upload.id)
    assert cancelled.status == "cancelled"
    assert client.uploads.cancel(upload.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError) as err:
        client.uploads.parts.create(upload_id=upload.id, data=data)
    assert err.value.code == "invalid_state"

    with pytest.raises(openai.BadRequestError) as err:
        client.uploads.create(bytes=300_000_000, filename="huge.jsonl", mime_type="text/jsonl", purpose="batch")
    assert (err.value.code, err.value.param) == ("file_too_large", "bytes")
