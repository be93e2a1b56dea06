"""Three ``aiouploader serve`` replicas behind HAProxy, restarted one after the other while tus-js-client uploads
resumably through it: every upload completes after resuming or is refused with a JSON error, none is corrupt, and
the sweep leaves no state, tail or multipart upload in the bucket.

Skipped without HAProxy (or node and tests/tus-js/node_modules), unless ``AIOUPLOADER_REPLICAS_SMOKE=1``
(scripts/replicas-smoke.sh) makes that a failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiouploader import age
from aiouploader.ports import free_port, wait_for_port
from aiouploader.testing import S3Server, Served, serve_process

from .test_resumable_tus_js import HERE, NODE, tus_js, upload_result
from .test_s3api_boto3 import age_decrypted

HAPROXY = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
MISSING = [
    name
    for name, found in (
        ("haproxy", HAPROXY),
        ("node", NODE),
        ("tests/tus-js/node_modules (npm ci)", (HERE / "node_modules" / "tus-js-client").is_dir()),
    )
    if not found
]
if MISSING and os.environ.get("AIOUPLOADER_REPLICAS_SMOKE") != "1":
    pytest.skip(f"needs {', '.join(MISSING)}: scripts/replicas-smoke.sh installs them", allow_module_level=True)
assert not MISSING, f"missing: {', '.join(MISSING)}"

MiB = 1024**2
REPLICAS = 3
CLIENTS = 4
SIZE = 32 * MiB + 4321
RETRIES = [250, 500, 1000, 1000, 2000, 2000, 4000, 4000, 8000]
"""tus-js-client's retryDelays (ms): about 23 s of retries, over a replica's restart."""
WAIT = 90
"""Seconds a restart, or the sweep, may take: a bound on a hung test, not a measurement."""
STATE_KEY = "replicas-haproxy-state-key-" + "k" * 16

REPLICA = """\
[server]
state_key = "{state_key}"
shutdown_grace = 10

[s3]
endpoint_url = "{endpoint}"
part_size = "5MiB"
orphan_ttl = 0
orphan_sweep_interval = 1

[plugins.encryption]
recipients = ["{recipient}"]

[[routes]]
path = "/uploads"
bucket = "{bucket}"
prefix = "plain/"
plugins = ["checksum"]
resumable = true
resumable_expires = 15
form_keys = "filename"

[[routes]]
path = "/sealed"
bucket = "{bucket}"
prefix = "sealed/"
plugins = ["checksum", "encryption"]
resumable = true
resumable_expires = 15
form_keys = "filename"
"""

ROUND_ROBIN = "balance roundrobin"
RECOMMENDED = """\
balance uri
    hash-type consistent"""

HAPROXY_CONFIG = """\
global
    maxconn 256

defaults
    mode http
    timeout connect 2s
    timeout client 75s
    timeout server 75s
    timeout http-request 10s
    retries 3
    option redispatch

frontend uploads
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    {balance}
    option httpchk GET /readyz
    http-check expect status 200
    timeout check 2s
    default-server inter 1s fall 2 rise 2
{servers}
"""


@pytest.fixture
def s3_server(moto_server: S3Server) -> S3Server:
    return moto_server


@dataclass
class Replica:
    port: int
    served: Served | None = None


@dataclass
class Outcomes:
    """What the clients saw, counted."""

    completed: int = 0
    refused: int = 0
    resumes: int = 0
    """HEAD requests: each one a client finding out where to go on after an error."""
    errors: Counter[str] = field(default_factory=Counter)
    """Answers other than 2xx, by status."""


def stop(replicas: list[Replica]) -> None:
    for replica in replicas:
        if replica.served is not None:
            replica.served.stop()


async def ready(url: str) -> None:
    deadline = time.monotonic() + WAIT
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, f"{url} not ready"
            await asyncio.sleep(0.1)


def start_haproxy(tmp_path: Path, balance: str, replicas: list[Replica]) -> tuple[str, subprocess.Popen[bytes]]:
    assert HAPROXY is not None
    port = free_port()
    servers = "\n".join(f"    server r{n} 127.0.0.1:{r.port} check" for n, r in enumerate(replicas))
    config = tmp_path / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(port=port, balance=balance, servers=servers))
    with open(tmp_path / "haproxy.log", "wb") as log:
        process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=log)
    wait_for_port(port, process, "haproxy")
    return f"http://127.0.0.1:{port}", process


async def leftovers(s3_server: S3Server, bucket: str) -> tuple[list[str], list[Any]]:
    """The server's own objects and the multipart uploads in ``bucket``, once the sweep has removed them (or
    :data:`WAIT` has passed)."""
    deadline = time.monotonic() + WAIT
    while True:
        kept = [key for key in s3_server.keys(bucket) if key.startswith(".aiouploader/")]
        uploads = s3_server.multipart_uploads(bucket)
        if (not kept and not uploads) or time.monotonic() > deadline:
            return kept, uploads
        await asyncio.sleep(1)


@pytest.mark.parametrize("balance", [ROUND_ROBIN, RECOMMENDED], ids=["roundrobin", "recommended"])
async def test_a_rolling_restart_behind_haproxy_loses_and_corrupts_no_upload(
    s3_server: S3Server, bucket: str, tmp_path: Path, balance: str
) -> None:
    secret, recipient = age.generate_identity()
    identity = tmp_path / "identity.txt"
    identity.write_text(f"{secret}\n")
    config = REPLICA.format(state_key=STATE_KEY, endpoint=s3_server.endpoint_url, bucket=bucket, recipient=recipient)
    replicas = [Replica(free_port()) for _ in range(REPLICAS)]
    started = await asyncio.gather(
        *(asyncio.to_thread(serve_process, tmp_path, config, None, replica.port) for replica in replicas),
        return_exceptions=True,
    )
    for replica, served in zip(replicas, started, strict=True):
        replica.served = served if isinstance(served, Served) else None
    if failed := [error for error in started if isinstance(error, BaseException)]:
        stop(replicas)
        raise failed[0]
    try:
        haproxy_url, haproxy = await asyncio.to_thread(start_haproxy, tmp_path, balance, replicas)
    except BaseException:
        stop(replicas)
        raise
    sources = [os.urandom(SIZE) for _ in range(CLIENTS)]
    files = [tmp_path / f"source-{n}.bin" for n in range(CLIENTS)]
    for path, data in zip(files, sources, strict=True):
        path.write_bytes(data)
    restarted = asyncio.Event()
    seen: list[tuple[int, str, dict[str, Any]]] = []

    async def client(n: int) -> None:
        """Upload client n's bytes again and again until the restart is over; even clients to /sealed."""
        route = "/sealed" if n % 2 else "/uploads"
        count = 0
        while count == 0 or not restarted.is_set():
            name = f"client-{n}-{count}.bin"
            plan = {"file": str(files[n]), "source": "buffer", "chunkSize": 5 * MiB, "retryDelays": RETRIES}
            result = await tus_js(endpoint=f"{haproxy_url}{route}/", metadata={"filename": name}, **plan)
            seen.append((n, route, result))
            count += 1

    async def rolling_restart() -> None:
        for replica in replicas:
            await asyncio.sleep(1)
            assert replica.served is not None
            replica.served.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(replica.served.process.wait, WAIT) == 0
            replica.served = await asyncio.to_thread(serve_process, tmp_path, config, None, replica.port)
            await ready(replica.served.url)
        restarted.set()

    began = time.monotonic()
    try:
        await asyncio.gather(rolling_restart(), *(client(n) for n in range(CLIENTS)))
        elapsed = time.monotonic() - began
        kept, uploads = await leftovers(s3_server, bucket)
    finally:
        haproxy.terminate()
        haproxy.wait(10)
        stop(replicas)

    outcomes = Outcomes()
    for n, route, result in seen:
        requests = result["requests"]
        outcomes.resumes += sum(1 for request in requests if request["method"] == "HEAD")
        outcomes.errors.update(str(r["status"]) for r in requests if not 200 <= r["status"] < 300)
        if result["outcome"] == "success":
            outcomes.completed += 1
            stored = upload_result(result)
            assert stored["checksums"]["sha256"] == hashlib.sha256(sources[n]).hexdigest()
            body = s3_server.get(bucket, stored["key"])
            if route == "/sealed":
                body = await age_decrypted(body, identity)
            assert body == sources[n], stored["key"]
        else:
            assert result["outcome"] == "error", result
            assert result["status"] is not None and result["status"] >= 400, result
            assert json.loads(result["body"])["error"]["code"], result
            outcomes.refused += 1
    print(
        f"\n{balance.split()[1]}: {len(seen)} uploads of {SIZE} bytes by {CLIENTS} clients, {REPLICAS} restarts in "
        f"{elapsed:.1f} s: {outcomes.completed} completed, {outcomes.refused} refused, {outcomes.resumes} resumes, "
        f"answers other than 2xx: {dict(outcomes.errors)}"
    )
    assert outcomes.completed + outcomes.refused == len(seen) >= CLIENTS
    assert "404" not in outcomes.errors  # no upload was lost, to be started again from its first byte
    assert outcomes.completed > 0
    assert (kept, uploads) == ([], [])
