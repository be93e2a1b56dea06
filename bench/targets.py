"""One configuration's server (b to i) or direct client process (a), fresh for one measurement."""

from __future__ import annotations

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
from aiouploader.ports import free_port

from .configurations import BUCKET, CHAINS, ROUTE
from .errors import BenchError
from .processes import log_tail, wait_for_http
from .procfs import current_rss, peak_rss, tree_cpu_seconds
from .uploads import curl_many
from .workspace import Workspace

BENCH_DIR = Path(__file__).resolve().parent


def ceiling_client_options(parts_in_flight: int) -> dict[str, Any]:
    """aiouploader's S3 client settings as plain values for (a)'s process, which does not import aiouploader
    (its modules would count in the ceiling's peak RSS)."""
    ours, default = client_config(S3Config(parts_in_flight=parts_in_flight), 0), AioConfig()
    return {
        name: getattr(ours, name) for name in AioConfig.OPTION_DEFAULTS if getattr(ours, name) != getattr(default, name)
    }


class Target:
    """One configuration's server (b, c, d, ...) or direct client process (a), fresh for one measurement."""

    def __init__(self, ws: Workspace, config: str) -> None:
        self.ws = ws
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
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
                ],
                log=self.log,
                pipes=True,
            )
            self.call(op="load", path=str(ws.files["warmup"]), name="warmup")
            return self
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        if self.config in CHAINS:
            config = ws.write_aiouploader_config(self.config, port)
            self.proc = ws.procs.start(
                [sys.executable, "-m", "aiouploader", "serve", "--config", str(config)], log=self.log
            )
            wait_for_http(self.url + "/healthz", self.proc, f"aiouploader ({self.config})")
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
        return self

    def stop(self) -> None:
        if self.proc is not None:
            if self.config == "a" and self.proc.poll() is None:
                try:
                    self.proc.stdin.write(b'{"op": "quit"}\n')  # type: ignore[union-attr]
                    self.proc.wait(5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
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

    def call(self, timeout: float = 120, **command: Any) -> dict[str, Any]:
        """Send one command to (a)'s process and wait for its answer."""
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"(a) did not answer {command['op']} within {timeout:g}s")
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise BenchError(f"(a) exited during {command['op']}\n{log_tail(self.log)}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise BenchError(f"(a) {command['op']} failed: {answer.get('error')}")
        return answer

    def warm_up(self) -> None:
        """One small upload first, so that lazy set-up (service models, connections) is not measured."""
        if self.config == "a":
            self.call(op="put", key=f"warmup/{uuid.uuid4().hex}", name="warmup")
        else:
            curl_many(self.ws, [(self.url_for(f"warmup/{uuid.uuid4().hex}"), self.ws.files["warmup"])], self.log)

    def url_for(self, key: str) -> str:
        return f"{self.url}{ROUTE}/{key}"
