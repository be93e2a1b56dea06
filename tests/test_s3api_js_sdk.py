"""The AWS SDK for JavaScript v3 (``@aws-sdk/client-s3`` and ``@aws-sdk/lib-storage`` from npm, their defaults:
CRC32 checksums, aws-chunked bodies with a trailer) against the S3 API, driven through tests/js/s3.mjs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from awscrt.checksums import crc64nvme

from aiouploader.checksums import b64
from aiouploader.eicar import EICAR
from aiouploader.testing import MakeProxy, Proxy, S3Server
from tests.s3api_clients import AKID, SECRET
from tests.test_s3api_boto3 import BUCKET, age_decrypted, encrypting_s3_api_proxy, s3_api_proxy

MiB = 1024 * 1024
SCRIPT = Path(__file__).parent / "js" / "s3.mjs"


def node_binary() -> str:
    found = shutil.which("node")
    if found is None or not (SCRIPT.parent / "node_modules" / "@aws-sdk" / "lib-storage").is_dir():
        pytest.fail("node or the SDK is not installed: scripts/test.sh installs both (npm ci in tests/js)")
    return found


async def sdk(proxy: Proxy, *args: str, secret: str = SECRET) -> dict[str, Any]:
    """Run ``node s3.mjs ARGS`` against the proxy's S3 API, no AWS setting but the credentials from the
    environment: the response (or ``{"error": …}``) it printed, with ``sent``: the method, query and payload
    headers of each request the SDK made."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(S3_ENDPOINT=proxy.s3_api_url or "", AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=secret)
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    if proxy.config.server.tls_cert is not None:
        env["NODE_EXTRA_CA_CERTS"] = proxy.config.server.tls_cert
    process = await asyncio.create_subprocess_exec(
        node_binary(),
        str(SCRIPT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    assert out, err.decode(errors="replace")
    answer: dict[str, Any] = json.loads(out)
    assert (process.returncode == 0) == ("error" not in answer), err.decode(errors="replace")
    return answer


def nothing_stored(s3_server: S3Server, bucket: str) -> bool:
    return s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []


def uploads_of(answer: dict[str, Any], query: str) -> list[dict[str, Any]]:
    """The requests the SDK sent whose query has ``query``."""
    return [request for request in answer["sent"] if query in request["query"]]


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("operation", ["put", "put-stream"], ids=["buffer-crc32-header", "stream-crc32-trailer"])
async def test_put_object_with_the_default_checksum_stores_the_bytes_and_get_object_returns_them(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, tls: Path, https: bool, operation: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, tls if https else None)
    for size in (0, 1, 100_003):
        body = os.urandom(size)
        (tmp_path / "up.bin").write_bytes(body)
        put = await sdk(proxy, operation, BUCKET, f"dir/ä b+{size}.bin", str(tmp_path / "up.bin"))
        (sent,) = put["sent"]
        if operation == "put":
            assert "x-amz-checksum-crc32" in sent["headers"]
        else:
            assert sent["headers"]["content-encoding"] == "aws-chunked"
            assert sent["headers"]["x-amz-trailer"] == "x-amz-checksum-crc32"
        assert s3_server.get(bucket, f"raw/dir/ä b+{size}.bin") == body
        got = await sdk(proxy, "get", BUCKET, f"dir/ä b+{size}.bin", str(tmp_path / "down.bin"))
        assert got["ContentLength"] == size and got["ETag"] == put["ETag"]
        assert (tmp_path / "down.bin").read_bytes() == body


async def test_lib_storage_upload_of_25_mib_sends_six_parts_and_stores_the_file(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    body = os.urandom(25 * MiB + 7)
    (tmp_path / "up.bin").write_bytes(body)
    done = await sdk(proxy, "upload", BUCKET, "big.bin", str(tmp_path / "up.bin"))
    parts = uploads_of(done, "partNumber")
    assert len(parts) == done["parts"] == 6 and done["ETag"].endswith('-6"')
    assert all("x-amz-checksum-crc32" in part["headers"] for part in parts)
    assert s3_server.get(bucket, "raw/big.bin") == body and s3_server.multipart_uploads(bucket) == []
    await sdk(proxy, "get", BUCKET, "big.bin", str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == body


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("operation", ["put-stream", "upload"])
async def test_a_crc64nvme_upload_stores_the_bytes_and_answers_their_checksum(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, operation: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    body = os.urandom(12 * MiB + 1 if operation == "upload" else 100_000)
    (tmp_path / "up.bin").write_bytes(body)
    done = await sdk(proxy, operation, BUCKET, "k", str(tmp_path / "up.bin"), "CRC64NVME")
    assert done["ChecksumCRC64NVME"] == b64(crc64nvme(body).to_bytes(8, "big"))
    if operation == "upload":
        assert all("x-amz-checksum-crc64nvme" in part["headers"] for part in uploads_of(done, "partNumber"))
    else:
        assert done["sent"][0]["headers"]["x-amz-trailer"] == "x-amz-checksum-crc64nvme"
    assert s3_server.get(bucket, "raw/k") == body and s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_head_object_list_objects_v2_and_delete_object(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    (tmp_path / "f").write_bytes(b"12345")
    for key in ("top.txt", "sub/inner.txt"):
        await sdk(proxy, "put", BUCKET, key, str(tmp_path / "f"))
    head = await sdk(proxy, "head", BUCKET, "sub/inner.txt")
    assert head["ContentLength"] == 5
    assert head["ETag"] == s3_server.client.head_object(Bucket=bucket, Key="raw/sub/inner.txt")["ETag"]
    listed = await sdk(proxy, "list", BUCKET)
    assert [item["Key"] for item in listed["Contents"]] == ["sub/inner.txt", "top.txt"] and listed["KeyCount"] == 2
    assert [item["Key"] for item in (await sdk(proxy, "list", BUCKET, "sub/"))["Contents"]] == ["sub/inner.txt"]
    deleted = await sdk(proxy, "delete", BUCKET, "top.txt")
    assert deleted["$metadata"]["httpStatusCode"] == 204
    assert s3_server.keys(bucket) == ["raw/sub/inner.txt"]
    missing = await sdk(proxy, "head", BUCKET, "top.txt")
    assert missing["error"]["status"] == 404


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("operation", ["put", "upload"])
async def test_eicar_is_refused_and_nothing_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, operation: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    (tmp_path / "eicar.com").write_bytes(b"\0" * (6 * MiB if operation == "upload" else 1000) + EICAR)
    refused = await sdk(proxy, operation, BUCKET, "eicar.com", str(tmp_path / "eicar.com"))
    assert refused["error"]["status"] == 422 and refused["error"]["name"] == "Infected"
    assert nothing_stored(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("operation", ["put-stream", "upload"])
async def test_an_encrypted_route_stores_age_and_the_sdk_reads_plaintext(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, operation: str
) -> None:
    proxy, identity = await encrypting_s3_api_proxy(make_proxy, bucket, tmp_path)
    body = os.urandom(12 * MiB + 3 if operation == "upload" else 100_000)
    (tmp_path / "up.bin").write_bytes(body)
    await sdk(proxy, operation, BUCKET, "secret.bin", str(tmp_path / "up.bin"))
    stored = s3_server.get(bucket, "raw/secret.bin")
    assert stored.startswith(b"age-encryption.org/v1\n") and body[:1000] not in stored
    assert await age_decrypted(stored, identity) == body
    await sdk(proxy, "get", BUCKET, "secret.bin", str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == body


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("operation", ["put", "upload"])
async def test_a_wrong_secret_is_signature_does_not_match_and_nothing_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, operation: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    (tmp_path / "up.bin").write_bytes(os.urandom(6 * MiB if operation == "upload" else 1000))
    refused = await sdk(proxy, operation, BUCKET, "k", str(tmp_path / "up.bin"), secret="not-the-secret")
    assert refused["error"]["status"] == 403 and refused["error"]["name"] == "SignatureDoesNotMatch"
    assert nothing_stored(s3_server, bucket)
