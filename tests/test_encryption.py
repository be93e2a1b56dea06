"""The encryption plugin through the HTTP server: age v1 in S3, interoperable both ways."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pyrage
import pytest

from aiouploader import age
from aiouploader.testing import MakeProxy, Proxy, S3Server

MiB = 1024**2
PART = 5 * MiB


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    secret, recipient = age.generate_identity()
    identity_file = tmp_path_factory.mktemp("age") / "identity.txt"
    identity_file.write_text(f"# test key\n{secret}\n")
    return secret, recipient, identity_file


async def encrypting_proxy(
    make_proxy: MakeProxy, bucket: str, keys: tuple[str, str, Path], *, decrypt: bool = True, **route: Any
) -> Proxy:
    settings: dict[str, Any] = {"recipients": [keys[1]]}
    if decrypt:
        settings["identity_file"] = str(keys[2])
    return await make_proxy(
        routes=[{"path": "/secret", "bucket": bucket, "plugins": ["checksum", "encryption"], **route}],
        plugins={"encryption": settings},
        s3={"part_size": "5MiB", "parts_in_flight": 2},
        upload={"block_size": "256KiB"},
    )


@pytest.mark.parametrize("size", [0, 1, 65536, PART + 7, 2 * PART + 65536 * 3])
async def test_stored_object_is_age_and_get_decrypts(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, keys: tuple[str, str, Path], size: int
) -> None:
    proxy = await encrypting_proxy(make_proxy, bucket, keys)
    body = os.urandom(size)
    async with proxy.session.put(proxy("/secret/doc"), data=body) as response:
        result = await response.json()
        assert response.status == 201, result
    stored = s3_server.get(bucket, "doc")
    assert stored.startswith(b"age-encryption.org/v1\n")
    assert size < 64 or body not in stored
    assert result["size"] == size and result["stored_size"] == len(stored)
    assert result["plugins"]["encryption"] == {"format": "age-v1", "recipients": 1}
    assert pyrage.decrypt(stored, [pyrage.x25519.Identity.from_str(keys[0])]) == body
    async with proxy.session.get(proxy("/secret/doc")) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == size
        assert await response.read() == body


async def test_the_age_command_decrypts_what_the_proxy_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, keys: tuple[str, str, Path], tmp_path: Path
) -> None:
    proxy = await encrypting_proxy(make_proxy, bucket, keys, decrypt=False)
    body = os.urandom(PART + 12345)
    async with proxy.session.put(proxy("/secret/x"), data=body) as response:
        assert response.status == 201
    (tmp_path / "x.age").write_bytes(s3_server.get(bucket, "x"))
    command = ["age", "-d", "-i", str(keys[2]), str(tmp_path / "x.age")]
    plain = await asyncio.to_thread(subprocess.run, command, capture_output=True, check=True)
    assert plain.stdout == body
    async with proxy.session.get(proxy("/secret/x")) as response:
        assert await response.read() == s3_server.get(bucket, "x")


async def test_a_file_encrypted_by_age_decrypts_through_get(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, keys: tuple[str, str, Path], tmp_path: Path
) -> None:
    proxy = await encrypting_proxy(make_proxy, bucket, keys)
    body = os.urandom(200_000)
    (tmp_path / "plain").write_bytes(body)
    command = ["age", "-r", keys[1], "-o", str(tmp_path / "c.age"), str(tmp_path / "plain")]
    await asyncio.to_thread(subprocess.run, command, check=True)
    s3_server.client.put_object(Bucket=bucket, Key="from-age", Body=(tmp_path / "c.age").read_bytes())
    async with proxy.session.get(proxy("/secret/from-age")) as response:
        assert await response.read() == body
    async with proxy.session.get(proxy("/secret/from-age"), headers={"Range": "bytes=70000-140000"}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == "bytes 70000-140000/200000"
        assert await response.read() == body[70000:140001]


async def test_range_get_decrypts_only_the_chunks_it_needs(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, keys: tuple[str, str, Path]
) -> None:
    proxy = await encrypting_proxy(make_proxy, bucket, keys)
    body = os.urandom(20 * 65536 + 999)
    async with proxy.session.put(proxy("/secret/r"), data=body) as response:
        assert response.status == 201
    for start, end in [(0, 0), (65535, 65536), (65536 * 3 + 5, 65536 * 7), (len(body) - 10, len(body) - 1)]:
        async with proxy.session.get(proxy("/secret/r"), headers={"Range": f"bytes={start}-{end}"}) as response:
            assert response.status == 206
            assert await response.read() == body[start : end + 1]
    async with proxy.session.get(proxy("/secret/r"), headers={"Range": "bytes=-100"}) as response:
        assert await response.read() == body[-100:]


async def test_tampered_or_truncated_objects_never_yield_plaintext(
    make_proxy: MakeProxy,
    s3_server: S3Server,
    bucket: str,
    keys: tuple[str, str, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = await encrypting_proxy(make_proxy, bucket, keys)
    body = os.urandom(3 * 65536 + 10)
    async with proxy.session.put(proxy("/secret/t"), data=body) as response:
        assert response.status == 201
    stored = bytes(s3_server.get(bucket, "t"))
    chunk = 65536 + 16
    header = len(stored) - 3 * chunk - (10 + 16)

    def flipped(at: int) -> bytes:
        return stored[:at] + bytes([stored[at] ^ 1]) + stored[at + 1 :]

    damaged = {
        "last-chunk-flipped": flipped(len(stored) - 5),
        "cut-mid-chunk": stored[: -(chunk + 26)],
        "cut-at-a-chunk-boundary": stored[: header + 2 * chunk],
    }
    for key, data in damaged.items():
        s3_server.client.put_object(Bucket=bucket, Key=key, Body=data)
        for method, headers in [("GET", {}), ("GET", {"Range": "bytes=0-9"}), ("HEAD", {})]:
            async with proxy.session.request(method, proxy(f"/secret/{key}"), headers=headers) as response:
                assert response.status == 502, f"{key}: {method} {headers} served as if intact"
                if method == "GET":
                    assert "cannot be decrypted" in (await response.json())["error"]["message"]
    s3_server.client.put_object(Bucket=bucket, Key="middle-chunk-flipped", Body=flipped(header + chunk + 5))
    received = b""
    caplog.clear()
    with pytest.raises(aiohttp.ClientPayloadError):  # found only when it is read: the server cuts the connection
        async with proxy.session.get(proxy("/secret/middle-chunk-flipped")) as response:
            assert response.status == 200
            received = await response.read()
    assert body[65536:] not in received
    assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"request {response.headers['X-Request-ID']}: response cut mid-stream: "
        "The stored object cannot be decrypted (age chunk 1 failed authentication: the file is corrupt, "
        "tampered with, or truncated); it may be damaged or for another key."
    ]  # one line with the request's id, no traceback from aiohttp


async def test_without_an_identity_get_serves_the_ciphertext_as_opaque_data(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, keys: tuple[str, str, Path]
) -> None:
    import gzip

    proxy = await encrypting_proxy(make_proxy, bucket, keys, decrypt=False)
    body = gzip.compress(b"hello " * 1000)
    headers = {"Content-Type": "text/plain", "Content-Encoding": "gzip", "Content-Language": "en"}
    async with proxy.session.put(proxy("/secret/hello.txt"), data=body, headers=headers) as response:
        assert response.status == 201
    for method in ("GET", "HEAD"):
        async with proxy.session.request(method, proxy("/secret/hello.txt"), auto_decompress=False) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert "Content-Encoding" not in response.headers  # a client would try to gunzip the ciphertext
            assert response.headers["Content-Language"] == "en"
            if method == "GET":
                assert await response.read() == s3_server.get(bucket, "hello.txt")
    s3_server.client.put_object(Bucket=bucket, Key="plain.txt", Body=b"not encrypted", ContentType="text/plain")
    async with proxy.session.get(proxy("/secret/plain.txt")) as response:
        assert response.headers["Content-Type"] == "text/plain"


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)  # rclone keeps no object tags
async def test_repr_digest_describes_the_plaintext_get_gives_back(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, keys: tuple[str, str, Path]
) -> None:
    """The checksum plugin hashes what the client sent; GET decrypts to exactly that, whole or in part (RFC 9530:
    a 206 carries the digest of the whole representation)."""
    proxy = await encrypting_proxy(make_proxy, bucket, keys)
    body = os.urandom(PART + 100)
    async with proxy.session.put(proxy("/secret/doc"), data=body) as response:
        assert response.status == 201
    plaintext_digest = f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"
    async with proxy.session.get(proxy("/secret/doc")) as response:
        assert hashlib.sha256(await response.read()).digest() == hashlib.sha256(body).digest()
        assert response.headers["Repr-Digest"] == plaintext_digest
    async with proxy.session.head(proxy("/secret/doc")) as response:
        assert response.headers["Repr-Digest"] == plaintext_digest
    async with proxy.session.get(proxy("/secret/doc"), headers={"Range": "bytes=10-19"}) as response:
        assert response.status == 206 and await response.read() == body[10:20]
        assert response.headers["Repr-Digest"] == plaintext_digest


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_without_an_identity_the_ciphertext_gets_no_repr_digest(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, keys: tuple[str, str, Path]
) -> None:
    proxy = await encrypting_proxy(make_proxy, bucket, keys, decrypt=False)
    async with proxy.session.put(proxy("/secret/doc"), data=b"plaintext") as response:
        assert response.status == 201
    assert s3_server.client.head_object(Bucket=bucket, Key="doc")["TagCount"] == 1  # the premise: it was recorded
    for method in ("GET", "HEAD"):
        async with proxy.session.request(method, proxy("/secret/doc")) as response:
            assert response.status == 200 and "Repr-Digest" not in response.headers


async def test_objects_stored_without_encryption_are_served_as_they_are(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, keys: tuple[str, str, Path]
) -> None:
    proxy = await encrypting_proxy(make_proxy, bucket, keys)
    s3_server.client.put_object(Bucket=bucket, Key="old", Body=b"from before encryption")
    async with proxy.session.get(proxy("/secret/old")) as response:
        assert await response.read() == b"from before encryption"


def test_check_config_warns_when_encryption_comes_before_scanning(tmp_path: Path, keys: tuple[str, str, Path]) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[[routes]]\npath = "/u"\nbucket = "bucket"\nplugins = ["encryption", "virus_scan", "checksum"]\n'
        f'[plugins.encryption]\nrecipients = ["{keys[1]}"]\n'
    )
    run = subprocess.run(
        [sys.executable, "-m", "aiouploader", "check-config", str(config)], capture_output=True, text=True
    )
    assert run.returncode == 0
    assert "virus_scan runs after encryption" in run.stderr and "checksum runs after encryption" in run.stderr


def check_config(config: Path, recipient: str, identity_file: Path) -> subprocess.CompletedProcess[str]:
    config.write_text(
        '[[routes]]\npath = "/u"\nbucket = "bucket"\nplugins = ["encryption"]\n'
        f'[plugins.encryption]\nrecipients = ["{recipient}"]\nidentity_file = "{identity_file}"\n'
    )
    return subprocess.run(
        [sys.executable, "-m", "aiouploader", "check-config", str(config)], capture_output=True, text=True
    )


def test_check_config_warns_when_the_identity_file_cannot_decrypt_new_objects(
    tmp_path: Path, keys: tuple[str, str, Path]
) -> None:
    old_identity = tmp_path / "old.txt"
    old_identity.write_text(age.generate_identity()[0] + "\n")
    warning = "identity_file holds no identity for any of the recipients: GET cannot decrypt objects stored now"
    run = check_config(tmp_path / "c.toml", keys[1], old_identity)
    assert run.returncode == 0
    assert warning in run.stderr
    run = check_config(tmp_path / "c.toml", keys[1], keys[2])
    assert run.returncode == 0
    assert run.stderr == ""


@pytest.mark.parametrize("armored", [False, True], ids=["binary", "armored"])
def test_a_passphrase_protected_identity_file_is_refused_saying_so(
    tmp_path: Path, keys: tuple[str, str, Path], armored: bool
) -> None:
    encrypted = pyrage.passphrase.encrypt(f"{keys[0]}\n".encode(), "passphrase")
    if armored:
        encrypted = b"-----BEGIN AGE ENCRYPTED FILE-----\n%s\n-----END AGE ENCRYPTED FILE-----\n" % base64.b64encode(
            encrypted
        )
    identity_file = tmp_path / "identity.age"
    identity_file.write_bytes(encrypted)
    run = check_config(tmp_path / "c.toml", keys[1], identity_file)
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert "identity_file: not a text file of AGE-SECRET-KEY-1... lines" in line
    assert "passphrase-protected" in line and "codec" not in line


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"recipients": ["age1notakey"]}, "recipients"),
        ({}, "recipients"),
        ({"recipients": ["{recipient}"], "identity_file": "/nonexistent/identity"}, "identity_file"),
    ],
)
def test_bad_encryption_settings_stop_start_up(
    tmp_path: Path, keys: tuple[str, str, Path], settings: dict[str, Any], named: str
) -> None:
    lines = [f"{k} = {v!r}".replace("'", '"').replace("{recipient}", keys[1]) for k, v in settings.items()]
    config = tmp_path / "c.toml"
    config.write_text(
        '[[routes]]\npath = "/u"\nbucket = "bucket"\nplugins = ["encryption"]\n[plugins.encryption]\n'
        + "\n".join(lines)
    )
    run = subprocess.run(
        [sys.executable, "-m", "aiouploader", "check-config", str(config)], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1
    assert "encryption" in run.stderr and named in run.stderr
