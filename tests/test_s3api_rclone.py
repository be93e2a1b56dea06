"""rclone as a client of the S3 API (an S3 remote with rclone's defaults for provider Other, configured from the
environment): ``copyto`` up and down, small and multipart with parallel chunks, over HTTP and HTTPS, ``cat``,
``lsjson`` and ``lsf`` (ListObjects, version 1, page by page), ``mkdir`` and the CreateBucket before an upload,
``deletefile``; EICAR and a wrong secret refused with nothing stored; an encrypting route stores age; provider
AWS (ListObjectsV2, URL-encoded) with the settings it needs here."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

import pytest

from aiouploader.eicar import EICAR
from aiouploader.testing import MakeProxy, Proxy, S3Server, _bin
from tests.s3api_clients import AKID, SECRET
from tests.test_s3api_boto3 import BUCKET, age_decrypted, encrypting_s3_api_proxy, s3_api_proxy

MiB = 1024 * 1024
CHUNKS = ("--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--s3-upload-concurrency", "4")
"""A file over 5 MiB goes multipart, in 5 MiB chunks, four at once."""


async def rclone(
    proxy: Proxy, tmp_path: Path, *args: str, secret: str = SECRET, provider: str = "Other"
) -> tuple[int, bytes, str]:
    """Run ``rclone ARGS`` with the remote ``s3api:`` the proxy's S3 API, set by its provider, endpoint and keys
    alone (and no other rclone setting): exit status, stdout, stderr."""
    remote = {
        "TYPE": "s3",
        "PROVIDER": provider,
        "ENDPOINT": proxy.s3_api_url or "",
        "ACCESS_KEY_ID": AKID,
        "SECRET_ACCESS_KEY": secret,
    }
    env = {name: value for name, value in os.environ.items() if not name.startswith("RCLONE_")}
    env.update({f"RCLONE_CONFIG_S3API_{name}": value for name, value in remote.items()})
    flags = ["--config", str(tmp_path / "no-rclone.conf"), "--retries", "1", "--low-level-retries", "1"]
    if proxy.config.server.tls_cert is not None:
        flags += ["--ca-cert", proxy.config.server.tls_cert]
    process = await asyncio.create_subprocess_exec(
        _bin("rclone"),
        *flags,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err.decode(errors="replace")


def nothing_stored(s3_server: S3Server, bucket: str) -> bool:
    return s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize("size", [1000, 17 * MiB + 5], ids=["single", "multipart"])
async def test_copyto_up_and_down_and_cat_return_the_file(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, size: int
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    body = os.urandom(size)
    (tmp_path / "up.bin").write_bytes(body)
    status, _, err = await rclone(proxy, tmp_path, "-vv", *CHUNKS, "copyto", "up.bin", f"s3api:{BUCKET}/dir/a b.bin")
    assert status == 0, err
    assert ("multipart upload" in err) == (size > 5 * MiB) and "md5 = " in err
    assert s3_server.get(bucket, "raw/dir/a b.bin") == body and s3_server.multipart_uploads(bucket) == []
    status, _, err = await rclone(proxy, tmp_path, "copyto", f"s3api:{BUCKET}/dir/a b.bin", "down.bin")
    assert status == 0, err
    assert (tmp_path / "down.bin").read_bytes() == body
    status, out, err = await rclone(proxy, tmp_path, "cat", f"s3api:{BUCKET}/dir/a b.bin")
    assert status == 0 and out == body, err


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_copyto_over_https_returns_the_file(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, tls: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, tls)
    body = os.urandom(6 * MiB)
    (tmp_path / "up.bin").write_bytes(body)
    status, _, err = await rclone(proxy, tmp_path, *CHUNKS, "copyto", "up.bin", f"s3api:{BUCKET}/tls.bin")
    assert status == 0, err
    assert s3_server.get(bucket, "raw/tls.bin") == body
    status, out, err = await rclone(proxy, tmp_path, "cat", f"s3api:{BUCKET}/tls.bin")
    assert status == 0 and out == body, err


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("size", [1000, 6 * MiB], ids=["single", "multipart"])
async def test_a_wrong_secret_is_signature_does_not_match_and_nothing_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, size: int
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    (tmp_path / "up.bin").write_bytes(os.urandom(size))
    unchecked = ("--no-check-dest", "--s3-no-head", "--s3-no-check-bucket")  # the upload is the first request
    args = (*unchecked, *CHUNKS, "copyto", "up.bin", f"s3api:{BUCKET}/k")
    status, _, err = await rclone(proxy, tmp_path, *args, secret="not-the-secret")
    assert status != 0 and "SignatureDoesNotMatch" in err
    assert nothing_stored(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_lsjson_and_deletefile_see_keys_without_the_route_prefix(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    (tmp_path / "f").write_bytes(b"12345")
    for key in ("top.txt", "sub/inner.txt"):
        status, _, err = await rclone(proxy, tmp_path, "copyto", "f", f"s3api:{BUCKET}/{key}")
        assert status == 0, err
    status, out, err = await rclone(proxy, tmp_path, "lsjson", "-R", "--files-only", "--hash", f"s3api:{BUCKET}")
    assert status == 0, err
    listed = {item["Path"]: (item["Size"], item["Hashes"]["md5"]) for item in json.loads(out)}
    assert listed == {"top.txt": (5, hashlib.md5(b"12345").hexdigest()), "sub/inner.txt": listed["top.txt"]}
    status, _, err = await rclone(proxy, tmp_path, "deletefile", f"s3api:{BUCKET}/top.txt")
    assert status == 0, err
    assert s3_server.keys(bucket) == ["raw/sub/inner.txt"]


async def test_lsf_pages_through_list_objects_v1_with_and_without_a_delimiter(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    s3_server.client.put_object(Bucket=bucket, Key="elsewhere", Body=b"not the route's")
    for key in ("a.txt", "d/b.txt", "d/c.txt", "e f.txt", "g/h/i.txt"):
        s3_server.client.put_object(Bucket=bucket, Key=f"raw/{key}", Body=b"x")
    proxy = await s3_api_proxy(make_proxy, bucket)
    one_a_page = ("--s3-list-chunk", "1", "--dump", "headers")
    status, out, err = await rclone(proxy, tmp_path, *one_a_page, "lsf", "-R", "--files-only", f"s3api:{BUCKET}")
    assert status == 0, err
    assert sorted(out.decode().splitlines()) == ["a.txt", "d/b.txt", "d/c.txt", "e f.txt", "g/h/i.txt"]
    assert "GET /files?marker=d%2Fc.txt&max-keys=1&prefix= " in err and "list-type" not in err
    status, out, err = await rclone(proxy, tmp_path, *one_a_page, "lsf", f"s3api:{BUCKET}")
    assert status == 0, err
    assert sorted(out.decode().splitlines()) == ["a.txt", "d/", "e f.txt", "g/"]
    assert "GET /files?delimiter=%2F&marker=d%2F&max-keys=1&prefix= " in err and "list-type" not in err


async def test_mkdir_of_the_buckets_name_succeeds_and_creates_nothing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    before = s3_server.client.list_buckets()["Buckets"]
    status, _, err = await rclone(proxy, tmp_path, "-vv", "--dump", "headers", "mkdir", f"s3api:{BUCKET}")
    assert status == 0, err
    assert f"PUT /{BUCKET} HTTP/1.1" in err
    assert s3_server.client.list_buckets()["Buckets"] == before and nothing_stored(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_copyto_another_bucket_is_access_denied_and_creates_nothing(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    before = s3_server.client.list_buckets()["Buckets"]
    (tmp_path / "f").write_bytes(b"12345")
    status, _, err = await rclone(proxy, tmp_path, "copyto", "f", "s3api:another-bucket/f")
    assert status != 0 and "CreateBucket" in err and "AccessDenied" in err
    assert s3_server.client.list_buckets()["Buckets"] == before and nothing_stored(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("https", [True, False], ids=["https", "http-unsigned-payload"])
async def test_provider_aws_copies_and_lists_with_its_defaults_but_multipart_etags(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, tls: Path, https: bool
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, tls if https else None)
    small, large = os.urandom(1000), os.urandom(11 * MiB)
    (tmp_path / "small").write_bytes(small)
    (tmp_path / "large").write_bytes(large)
    unsigned = () if https else ("--s3-use-unsigned-payload=true",)  # else rclone fails before it sends
    args = (*unsigned, "copyto", "small", f"s3api:{BUCKET}/a b.bin")
    status, _, err = await rclone(proxy, tmp_path, *args, provider="AWS")
    assert status == 0, err
    etags = ("--s3-use-multipart-etag=false",)  # the object's ETag is of the parts S3 stored, not the client's
    args = (*unsigned, *etags, *CHUNKS, "copyto", "large", f"s3api:{BUCKET}/d/large.bin")
    status, _, err = await rclone(proxy, tmp_path, *args, provider="AWS")
    assert status == 0, err
    assert s3_server.get(bucket, "raw/a b.bin") == small and s3_server.get(bucket, "raw/d/large.bin") == large
    status, out, err = await rclone(
        proxy, tmp_path, "--dump", "headers", "lsf", "-R", "--files-only", f"s3api:{BUCKET}", provider="AWS"
    )
    assert status == 0, err
    assert sorted(out.decode().splitlines()) == ["a b.bin", "d/large.bin"] and "encoding-type=url&list-type=2" in err
    status, out, err = await rclone(proxy, tmp_path, "cat", f"s3api:{BUCKET}/a b.bin", provider="AWS")
    assert status == 0 and out == small, err


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("size", [1000, 12 * MiB], ids=["single", "multipart"])
async def test_eicar_is_refused_and_nothing_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, size: int
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    (tmp_path / "eicar.com").write_bytes(b"\0" * size + EICAR)
    status, _, err = await rclone(proxy, tmp_path, *CHUNKS, "copyto", "eicar.com", f"s3api:{BUCKET}/eicar.com")
    assert status != 0 and "Infected" in err
    assert nothing_stored(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("size", [1000, 12 * MiB], ids=["single", "multipart"])
async def test_an_encrypted_route_stores_age_and_rclone_reads_plaintext(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, size: int
) -> None:
    proxy, identity = await encrypting_s3_api_proxy(make_proxy, bucket, tmp_path)
    body = os.urandom(size)
    (tmp_path / "up.bin").write_bytes(body)
    unchecked = ("--ignore-checksum",)  # the ETag is the MD5 of what S3 stores, the ciphertext
    status, _, err = await rclone(proxy, tmp_path, *unchecked, *CHUNKS, "copyto", "up.bin", f"s3api:{BUCKET}/s.bin")
    assert status == 0, err
    stored = s3_server.get(bucket, "raw/s.bin")
    assert stored.startswith(b"age-encryption.org/v1\n") and await age_decrypted(stored, identity) == body
    status, _, err = await rclone(proxy, tmp_path, *unchecked, "copyto", f"s3api:{BUCKET}/s.bin", "down.bin")
    assert status == 0, err
    assert (tmp_path / "down.bin").read_bytes() == body
