"""aws-cli against the S3 API, with its default settings (CRC32 trailers, aws-chunked): ``s3 cp`` up and down and
from stdin, ``s3 ls``, ``s3 rm``, and EICAR refused."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest
from yarl import URL

from aiouploader.eicar import EICAR
from aiouploader.testing import MakeProxy, Proxy, S3Server
from tests.s3api_clients import AKID, CREDENTIALS, SECRET

BUCKET = "files"


def aws_binary() -> str:
    local = Path(sys.executable).parent / "aws"
    found = str(local) if local.exists() else shutil.which("aws")
    if found is None:
        pytest.fail("aws-cli is not installed: pip install 'aiouploader[test]'")
    return found


async def aws(proxy: Proxy, tmp_path: Path, *args: str, stdin: bytes | None = None) -> tuple[int, bytes, str]:
    """Run ``aws --endpoint-url <the S3 API> ARGS``: exit status, stdout, stderr."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": AKID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if proxy.config.server.tls_cert is not None:
        env["AWS_CA_BUNDLE"] = proxy.config.server.tls_cert
    process = await asyncio.create_subprocess_exec(
        aws_binary(),
        "--endpoint-url",
        proxy.s3_api_url or "",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return process.returncode, out, err.decode(errors="replace")


async def s3_api_proxy(make_proxy: MakeProxy, bucket: str, tls: Path | None) -> Proxy:
    """The S3 API on HTTPS (``tls``: where cert.pem and key.pem are), as aws-cli sends its default bodies there:
    aws-chunked with a CRC32 trailer; on HTTP (``None``) it signs the payload's SHA-256 instead."""
    server = {}
    if tls is not None:
        server = {"tls_cert": str(tls / "cert.pem"), "tls_key": str(tls / "key.pem")}
    route = {
        "path": "/files",
        "bucket": bucket,
        "prefix": "raw/",
        "plugins": ["size_limit", "checksum", "virus_scan"],
        "allow_delete": True,
        "s3_api_bucket": BUCKET,
    }
    return await make_proxy(routes=[route], s3_api={"port": 0, "credentials": CREDENTIALS}, server=server)


@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024 + 17])
async def test_s3_cp_up_and_down_returns_the_file(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, tls: Path, size: int
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, tls)
    body = os.urandom(size)
    (tmp_path / "up.bin").write_bytes(body)
    status, _, err = await aws(proxy, tmp_path, "s3", "cp", "up.bin", f"s3://{BUCKET}/dir/file name.bin")
    assert status == 0, err
    assert s3_server.get(bucket, "raw/dir/file name.bin") == body
    status, _, err = await aws(proxy, tmp_path, "s3", "cp", f"s3://{BUCKET}/dir/file name.bin", "down.bin")
    assert status == 0, err
    assert (tmp_path / "down.bin").read_bytes() == body


async def test_s3_cp_from_stdin_stores_what_was_piped(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, tls: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, tls)
    body = b"piped line\n" * 50_000
    status, _, err = await aws(proxy, tmp_path, "s3", "cp", "-", f"s3://{BUCKET}/piped.txt", stdin=body)
    assert status == 0, err
    assert s3_server.get(bucket, "raw/piped.txt") == body
    status, out, err = await aws(proxy, tmp_path, "s3", "cp", f"s3://{BUCKET}/piped.txt", "-")
    assert status == 0 and out == body, err


async def test_s3_ls_and_rm_see_keys_without_the_route_prefix(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, tls: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, tls)
    (tmp_path / "f").write_bytes(b"12345")
    for key in ("top.txt", "sub/inner.txt"):
        status, _, err = await aws(proxy, tmp_path, "s3", "cp", "f", f"s3://{BUCKET}/{key}")
        assert status == 0, err
    status, out, err = await aws(proxy, tmp_path, "s3", "ls", f"s3://{BUCKET}/")
    assert status == 0, err
    lines = out.decode().splitlines()
    assert any(line.split() == ["PRE", "sub/"] for line in lines) and any(line.endswith(" top.txt") for line in lines)
    status, out, err = await aws(proxy, tmp_path, "s3", "ls", "--recursive", f"s3://{BUCKET}")
    assert status == 0, err
    assert sorted(line.split()[-1] for line in out.decode().splitlines()) == ["sub/inner.txt", "top.txt"]
    status, _, err = await aws(proxy, tmp_path, "s3", "rm", f"s3://{BUCKET}/top.txt")
    assert status == 0, err
    assert s3_server.keys(bucket) == ["raw/sub/inner.txt"]


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_s3_cp_of_eicar_fails_and_stores_nothing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, tls: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, tls)
    (tmp_path / "eicar.com").write_bytes(EICAR)
    status, _, err = await aws(proxy, tmp_path, "s3", "cp", "eicar.com", f"s3://{BUCKET}/eicar.com")
    assert status != 0 and "Infected" in err
    assert s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_s3_cp_over_http_signs_the_payload_and_works_too(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, None)
    body = os.urandom(2 * 1024 * 1024)
    (tmp_path / "up.bin").write_bytes(body)
    status, _, err = await aws(proxy, tmp_path, "s3", "cp", "up.bin", f"s3://{BUCKET}/plain.bin")
    assert status == 0, err
    status, out, err = await aws(proxy, tmp_path, "s3", "cp", f"s3://{BUCKET}/plain.bin", "-")
    assert status == 0 and out == body, err


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_s3_presign_makes_a_url_that_downloads_the_object(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, None)
    (tmp_path / "f").write_bytes(b"shared")
    status, _, err = await aws(proxy, tmp_path, "s3", "cp", "f", f"s3://{BUCKET}/shared.txt")
    assert status == 0, err
    status, out, err = await aws(proxy, tmp_path, "s3", "presign", f"s3://{BUCKET}/shared.txt", "--expires-in", "60")
    assert status == 0, err
    url = out.decode().strip()
    async with proxy.session.get(URL(url, encoded=True)) as response:
        assert response.status == 200, (url, await response.text())
        assert await response.read() == b"shared"
    async with proxy.session.get(URL(url.replace("shared.txt", "other.txt"), encoded=True)) as response:
        assert response.status == 403
