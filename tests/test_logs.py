"""JSON logs: one access line per request with the upload's fields, and never a credential."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from aiouploader.eicar import EICAR
from aiouploader.logs import JSONFormatter, redact
from aiouploader.testing import MakeProxy, S3Server

from .serving import serve


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    formatter = JSONFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "aiouploader.access"]


async def test_an_upload_logs_one_json_line_with_its_fields(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiouploader.access")
    proxy = await make_proxy(
        routes=[{"path": "/u", "bucket": bucket, "prefix": "raw/", "plugins": ["checksum", "virus_scan"]}]
    )
    headers = {"X-Request-ID": "req-123"}
    async with proxy.session.put(proxy("/u/a.txt"), data=b"hello", headers=headers) as response:
        assert response.status == 201
    (line,) = access_lines(caplog)
    assert line["level"] == "info" and line["logger"] == "aiouploader.access"
    assert {k: line[k] for k in ("request_id", "method", "route", "key", "size", "stored_size", "status")} == {
        "request_id": "req-123",
        "method": "PUT",
        "route": "/u",
        "key": "raw/a.txt",
        "size": 5,
        "stored_size": 5,
        "status": 201,
    }
    assert line["outcome"] == "created"
    assert isinstance(line["duration"], float)
    assert line["plugins"]["virus_scan"]["verdict"] == "clean"  # type: ignore[index]


async def test_a_rejected_upload_logs_its_error_code_and_verdict(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiouploader.access")
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket, "plugins": ["virus_scan"]}])
    async with proxy.session.put(proxy("/u/eicar.com"), data=EICAR) as response:
        assert response.status == 422
    (line,) = access_lines(caplog)
    assert line["status"] == 422 and line["outcome"] == "infected"
    assert line["size"] == len(EICAR) and "stored_size" not in line
    assert "Eicar-Test-Signature" in str(line["error"])


def test_redact_masks_credentials() -> None:
    text = (
        "Authorization: Bearer abc.def headers={'Authorization': b'AWS4-HMAC-SHA256 "
        "Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/s3/aws4_request, Signature=0123abcd'} "
        "aws_secret_access_key=wJalrXUtnFEMI x-amz-security-token: FQoGZXIvYXdz"
    )
    masked = redact(text)
    for secret in ("abc.def", "AKIAIOSFODNN7EXAMPLE", "0123abcd", "wJalrXUtnFEMI", "FQoGZXIvYXdz"):
        assert secret not in masked


async def test_no_log_line_holds_a_token_or_credential(rclone_server: S3Server, tmp_path: Path) -> None:
    env = {**os.environ, "AWS_SESSION_TOKEN": "session-token-secret-456"}
    served = serve(tmp_path, rclone_server, rclone_server.create_bucket(), server='log_level = "debug"', env=env)
    try:
        async with aiohttp.ClientSession() as session:
            url = served.url + "/u/k.txt"
            headers = {"Authorization": "Bearer secret-token-xyz"}
            async with session.put(url, data=b"x" * 100, headers=headers) as response:
                assert response.status in (201, 502)  # rclone may refuse the session token
            async with session.get(url + "?token=secret-token-xyz", headers=headers) as response:
                await response.read()
        served.process.terminate()
        assert await asyncio.to_thread(served.process.wait, 30) == 0
    finally:
        served.stop()
    output = served.log.read_text()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(line.get("logger") == "aiouploader.access" and line.get("method") == "PUT" for line in lines)
    assert any(line.get("level") == "debug" for line in lines)
    for secret in ("secret-token-xyz", "session-token-secret-456", os.environ["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in output
    assert os.environ["AWS_ACCESS_KEY_ID"] not in output


async def test_line_breaking_and_bidi_characters_in_keys_are_escaped(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiouploader.access")
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket}])
    key = "a\u2028b\u2029c\u0085d\u202ee\u2066f-\u00e9t\u00e9.txt"
    async with proxy.session.put(proxy("/u/" + quote(key)), data=b"x") as response:
        assert response.status in (201, 400)  # the store's rules for keys: logged either way
    formatter = JSONFormatter()
    (record,) = [r for r in caplog.records if r.name == "aiouploader.access"]
    text = formatter.format(record)
    assert len(text.splitlines()) == 1 and len(text.split("\n")) == 1
    assert not any(ch in text for ch in "\u2028\u2029\u0085\u202e\u2066")
    assert "\\u2028" in text and "\\u202e" in text and "\u00e9t\u00e9" in text  # other text stays readable
    assert json.loads(text)["path"] == "/u/" + key
