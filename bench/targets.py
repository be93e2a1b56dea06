"""One configuration's server (b to m) or direct client process (a), fresh for one measurement; for (j), (k) and (l)
the client process too."""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiobotocore.config import AioConfig

from aiouploader.app import client_config
from aiouploader.config import S3Config
from aiouploader.ports import free_port, wait_for_port

from .configurations import (
    BUCKET,
    CHAINS,
    FLOOR,
    ROUTE,
    S3_API,
    S3_API_ACCESS_KEY,
    S3_API_BUCKET,
    S3_API_SECRET_KEY,
    TUS,
    TUS_CHUNK_SIZE,
    MiB,
)
from .errors import BenchError
from .processes import log_tail, wait_for_http
from .procfs import current_rss, peak_rss, tree_cpu_seconds
from .tus import TUS_NODE
from .uploads import curl_many
from .workspace import Workspace

BENCH_DIR = Path(__file__).resolve().parent


PARTS_IN_THE_HEAP = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=134217728"}
"""For (a) and (m), which make a part-sized bytes object for every part: glibc would map each afresh (its threshold
adapts up to 32 MiB) or trim the heap under it, so that every part cost new pages. aiouploader keeps its blocks in
the heap too (``aiouploader.allocator``)."""


def ceiling_client_options(parts_in_flight: int) -> dict[str, Any]:
    """aiouploader's S3 client settings as plain values for (a)'s process, which does not import aiouploader
    (its modules would count in the ceiling's peak RSS)."""
    ours, default = client_config(S3Config(parts_in_flight=parts_in_flight), 0), AioConfig()
    return {
        name: getattr(ours, name) for name in AioConfig.OPTION_DEFAULTS if getattr(ours, name) != getattr(default, name)
    }


def s3_arguments(ws: Workspace) -> list[str]:
    """(a)'s and (m)'s command line: the S3 server and bucket, and aiouploader's part size, parts in flight and S3
    client settings."""
    return [
        "--endpoint",
        ws.s3_url,
        "--bucket",
        BUCKET,
        "--part-size",
        str(ws.args.part_size),
        "--parts-in-flight",
        str(ws.args.parts_in_flight),
        "--client-config",
        json.dumps(ceiling_client_options(ws.args.parts_in_flight)),
    ]


class Target:
    """One configuration's server (b, c, d, ...) or direct client process (a), fresh for one measurement."""

    def __init__(self, ws: Workspace, config: str) -> None:
        self.ws = ws
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        """The process measured: the server, or (a)'s client."""
        self.client: subprocess.Popen[bytes] | None = None
        """The process that speaks JSON lines (`call`): (a)'s, (j)'s client of the S3 API, (k)'s or (l)'s tus
        client."""
        self.url = ""
        self.s3_api_url = ""
        """(j)'s S3 API endpoint."""
        self.log = ws.work / "logs" / f"{config}-{uuid.uuid4().hex[:8]}.log"
        self._buffer = b""

    # -- start and stop
    def start(self) -> Target:
        ws = self.ws
        if self.config == "a":
            self.proc = ws.procs.start(
                [
                    sys.executable,
                    str(BENCH_DIR / "direct.py"),
                    *s3_arguments(ws),
                ],
                log=self.log,
                pipes=True,
                env=PARTS_IN_THE_HEAP,
            )
            self.client = self.proc
            self.call(op="load", path=str(ws.files["warmup"]), name="warmup")
            return self
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        if self.config in CHAINS:
            s3_api_port = free_port() if self.config in S3_API else 0
            config = ws.write_aiouploader_config(self.config, port, s3_api_port)
            self.proc = ws.procs.start(
                [sys.executable, "-m", "aiouploader", "serve", "--config", str(config)], log=self.log
            )
            wait_for_http(self.url + "/healthz", self.proc, f"aiouploader ({self.config})")
            if s3_api_port:
                try:
                    wait_for_port(s3_api_port, self.proc, f"aiouploader's S3 API ({self.config})")
                except RuntimeError as exc:
                    raise BenchError(str(exc)) from None
                self.s3_api_url = f"http://127.0.0.1:{s3_api_port}"
                self.client = ws.procs.start(
                    [
                        sys.executable,
                        str(BENCH_DIR / "s3api_client.py"),
                        "--endpoint",
                        self.s3_api_url,
                        "--bucket",
                        S3_API_BUCKET,
                        "--uploads",
                        str(ws.args.concurrent),
                    ],
                    log=self.log,
                    pipes=True,
                    env={"AWS_ACCESS_KEY_ID": S3_API_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_API_SECRET_KEY},
                )
        elif self.config == FLOOR:
            self.proc = ws.procs.start(
                [sys.executable, str(BENCH_DIR / "floor_app.py"), "--port", str(port), *s3_arguments(ws)],
                log=self.log,
                env=PARTS_IN_THE_HEAP,
            )
            wait_for_http(self.url + "/healthz", self.proc, "the floor (m)")
        elif self.config == "l":
            self.proc = ws.procs.start(
                ["node", str(TUS_NODE / "server.mjs"), str(port)],
                log=self.log,
                env={
                    "BENCH_S3_ENDPOINT": ws.s3_url,
                    "BENCH_BUCKET": BUCKET,
                    "BENCH_PART_SIZE": str(ws.args.part_size),
                },
            )
            wait_for_http(self.url + "/healthz", self.proc, "the tus Node server")
        else:
            self.proc = ws.procs.start(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "baseline_app:app",
                    "--app-dir",
                    str(BENCH_DIR),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--loop",
                    "asyncio",
                    "--http",
                    ws.uvicorn_http,
                    "--lifespan",
                    "off",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                log=self.log,
                env={
                    "BENCH_S3_ENDPOINT": ws.s3_url,
                    "BENCH_BUCKET": BUCKET,
                    "BENCH_PART_SIZE": str(ws.args.part_size),
                    "BENCH_BOTO_DEFAULTS": "1" if self.config == "i" else "",
                },
            )
            wait_for_http(self.url + "/healthz", self.proc, "the baseline (uvicorn)")
        if self.config in TUS:
            self.client = ws.procs.start(
                ["node", str(TUS_NODE / "client.mjs"), f"{self.url}{ROUTE}/", str(TUS_CHUNK_SIZE)],
                log=self.log,
                pipes=True,
            )
        return self

    def stop(self) -> None:
        if self.client is not None:
            if self.client.poll() is None:
                try:
                    self.client.stdin.write(b'{"op": "quit"}\n')  # type: ignore[union-attr]
                    self.client.wait(5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self.ws.procs.stop(self.client)
        if self.proc is not None and self.proc is not self.client:
            self.ws.procs.stop(self.proc)

    def __enter__(self) -> Target:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- measurements
    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return tree_cpu_seconds(self.pid)

    def rss(self) -> int:
        return peak_rss(self.pid)

    def idle_rss(self) -> int:
        """RSS now: right after start-up, before any upload."""
        return current_rss(self.pid)

    def client_cpu(self) -> float:
        """CPU seconds of (j)'s, (k)'s or (l)'s client process so far."""
        assert self.client is not None
        return tree_cpu_seconds(self.client.pid)

    def call(self, timeout: float = 120, **command: Any) -> dict[str, Any]:
        """Send one command to (a)'s or (j)'s client process and wait for its answer."""
        client = self.client
        assert client is not None and client.stdin and client.stdout
        client.stdin.write((json.dumps(command) + "\n").encode())
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"({self.config}) did not answer {command['op']} within {timeout:g}s")
            ready, _, _ = select.select([client.stdout], [], [], remaining)
            if ready:
                chunk = os.read(client.stdout.fileno(), 65536)
                if not chunk:
                    raise BenchError(f"({self.config}) exited during {command['op']}\n{log_tail(self.log)}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise BenchError(f"({self.config}) {command['op']} failed: {answer.get('error')}")
        return answer

    def warm_up(self) -> None:
        """One small upload first, so that lazy set-up (service models, connections) is not measured."""
        if self.config == "a":
            self.call(op="put", key=f"warmup/{uuid.uuid4().hex}", name="warmup")
        elif self.config in S3_API:
            self.call(op="upload", path=str(self.ws.files["warmup"]), keys=[f"warmup/{uuid.uuid4().hex}"])
        elif self.config in TUS:
            self.tus_upload(self.ws.files["warmup"], [f"warmup-{uuid.uuid4().hex}"])
        else:
            curl_many(self.ws, [(self.url_for(f"warmup/{uuid.uuid4().hex}"), self.ws.files["warmup"])], self.log)

    def upload(self, path: Path, keys: list[str]) -> list[str]:
        """Upload the file at each key, all at once: ``curl -T`` to the HTTP API, for (j) boto3's ``upload_file`` to
        the S3 API, for (k) and (l) tus-js-client; the keys in S3 (a tus server names the object itself)."""
        if self.config in S3_API:
            self.call(op="upload", path=str(path), keys=keys, timeout=60 + len(keys) * path.stat().st_size / (2 * MiB))
            return keys
        if self.config in TUS:
            return self.tus_upload(path, keys)
        for answer in curl_many(self.ws, [(self.url_for(key), path) for key in keys], self.log):
            if answer.get("size") != path.stat().st_size:
                raise BenchError(f"the server says it got {answer.get('size')} bytes of {path.stat().st_size}")
        return keys

    def tus_upload(self, path: Path, names: list[str], concurrency: int = 0) -> list[str]:
        """One tus upload of the file per name (its ``filename``), ``concurrency`` at once (default: all); the keys in
        S3: from aiouploader's ``Upload-Result``, or the tus Node server's upload id."""
        timeout = 60 + len(names) * (path.stat().st_size / (2 * MiB) + 0.2)
        answer = self.call(
            op="upload", path=str(path), names=names, concurrency=concurrency or len(names), timeout=timeout
        )
        if self.config == "l":
            return [upload["url"].rsplit("/", 1)[1] for upload in answer["uploads"]]
        keys = []
        for upload in answer["uploads"]:
            if not upload["result"]:
                raise BenchError(f"({self.config}) {upload['url']} ended without an Upload-Result")
            result = json.loads(base64.b64decode(upload["result"]))
            if result.get("size") != path.stat().st_size:
                raise BenchError(f"the server says it got {result.get('size')} bytes of {path.stat().st_size}")
            keys.append(result["key"])
        return keys

    def url_for(self, key: str) -> str:
        return f"{self.url}{ROUTE}/{key}"
