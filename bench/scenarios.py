"""The measurements: single uploads in rounds, concurrent uploads, small uploads, peak RSS by object size."""

from __future__ import annotations

import argparse
import asyncio
import time
import traceback
import uuid
from collections.abc import Callable
from contextlib import suppress
from functools import partial

from aiouploader.sizes import format_size

from .configurations import BUCKET, CHAINS, FLOOR, S3_API, TUS, GiB, MiB
from .errors import BenchError
from .procfs import Snapshot
from .report import progress
from .results import Results, Single
from .targets import Target
from .uploads import small_puts, small_s3_api_puts, stream
from .workspace import Workspace


class Bench:
    """Runs every measurement the command line asks for; one that fails is recorded and the others still run."""

    def __init__(self, args: argparse.Namespace, ws: Workspace) -> None:
        self.args = args
        self.ws = ws
        self.results = Results()

    def run(self) -> None:
        only = self.args.only
        progress(f"bench: workspace {self.ws.work}; S3 at {self.ws.s3_url}; configurations {','.join(only)}")
        for round_ in range(1, self.args.rounds + 1):
            for config in only:
                self.attempt(f"round {round_} ({config})", partial(self._record, config, round_))
        for config in only:
            self.attempt(f"concurrent/small ({config})", partial(self._concurrent, config))
        for config in only:
            if config not in {"a", FLOOR} | S3_API | TUS and self.args.flat:
                self.attempt(f"peak RSS by size ({config})", partial(self._flat, config))

    def attempt(self, what: str, func: Callable[[], None]) -> None:
        try:
            func()
        except BenchError as exc:
            self.results.failures.append(f"{what}: {exc}")
            progress(f"  FAILED {what}: {exc}")
        except Exception as exc:  # a bug of the bench or an unexpected library error: report, go on
            self.results.failures.append(f"{what}: {type(exc).__name__}: {exc}")
            progress(f"  FAILED {what}:\n{traceback.format_exc()}")

    # -- the measurements
    def single(self, config: str, round_: int) -> Single:
        size = self.args.size
        key = f"r{round_}-{config}-{uuid.uuid4().hex[:8]}.bin"
        with Target(self.ws, config) as target:
            idle = None if config == "a" else target.idle_rss()
            if config == "a":
                target.call(op="load", path=str(self.ws.files["big"]), name="big")
            target.warm_up()
            own_client = config in S3_API | TUS
            client_before = target.client_cpu() if own_client else 0.0
            before = Snapshot.take(target.pid, self.ws.s3_pid)
            if config == "a":
                target.call(op="multipart", keys=[key], name="big", timeout=60 + size / (2 * MiB))
                keys = [key]
            else:
                keys = target.upload(self.ws.files["big"], [key])
            used = before.until(Snapshot.take(target.pid, self.ws.s3_pid))
            client_cpu = target.client_cpu() - client_before if own_client else None
            rss = target.rss()
        self.check_stored(config, keys, size)
        gib = size / GiB
        return Single(
            used["wall"],
            size / MiB / used["wall"],
            used["target"] / gib,
            rss,
            used["s3"] / gib,
            used["all"] / gib,
            used["others"],
            idle,
            None if client_cpu is None else client_cpu / gib,
            used["disk"] / MiB / gib,
        )

    def concurrent_and_small(self, config: str) -> None:
        n, size, count = self.args.concurrent, self.args.concurrent_size, self.args.small_count
        prefix = f"conc-{config}-{uuid.uuid4().hex[:8]}"
        keys = [f"{prefix}-{i}" for i in range(n)]
        with Target(self.ws, config) as target:
            if config == "a":
                target.call(op="load", path=str(self.ws.files["concurrent"]), name="concurrent")
                target.call(op="load", path=str(self.ws.files["small"]), name="small")
            target.warm_up()
            before = Snapshot.take(target.pid, self.ws.s3_pid)
            if config == "a":
                target.call(op="multipart", keys=keys, name="concurrent", timeout=60 + n * size / (2 * MiB))
            else:
                keys = target.upload(self.ws.files["concurrent"], keys)
            used = before.until(Snapshot.take(target.pid, self.ws.s3_pid))
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
                elif config in TUS:
                    started = time.perf_counter()
                    names = [f"{small_prefix}-{i}" for i in range(count)]
                    target.tus_upload(self.ws.files["small"], names, concurrency=self.args.clients)
                    seconds = time.perf_counter() - started
                elif config in S3_API:
                    body = self.ws.files["small"].read_bytes()
                    puts = small_s3_api_puts(target.s3_api_url, body, small_prefix, count, self.args.clients)
                    seconds = asyncio.run(puts)
                else:
                    body = self.ws.files["small"].read_bytes()
                    seconds = asyncio.run(small_puts(target.url_for, body, small_prefix, count, self.args.clients))
                cpu = target.cpu() - cpu0
                self.results.small[config] = {"per_s": count / seconds, "cpu_ms": 1000 * cpu / count}

    def flat(self, config: str) -> None:
        """One fresh server per --flat size takes one upload of that size: is peak RSS flat in object size?"""
        for size in self.args.flat:
            key = f"flat-{config}-{format_size(size)}-{uuid.uuid4().hex[:8]}"
            with Target(self.ws, config) as target:
                target.warm_up()
                asyncio.run(stream(target.url_for(key), size))
                self.results.flat.setdefault(config, {})[size] = target.rss()
            self.check_stored(config, [key], size)

    def check_stored(self, config: str, keys: list[str], size: int) -> None:
        """Every key is in S3 with the right size (or, for (c), bigger: encrypted); then delete it."""
        for key in keys:
            try:
                stored = self.ws.s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
            except Exception as exc:
                raise BenchError(f"{key} is not in S3 after its upload ({exc})") from None
            finally:
                for name in [key, f"{key}.info"] if config == "l" else [key]:  # the tus Node server's upload info
                    with suppress(Exception):
                        self.ws.s3.delete_object(Bucket=BUCKET, Key=name)
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

    # -- each measurement with its progress line
    def _record(self, config: str, round_: int) -> None:
        result = self.single(config, round_)
        self.results.singles[config][round_] = result
        idle = "" if result.idle_rss is None else f" (after start-up {result.idle_rss / MiB:.1f})"
        client = "" if result.client_cpu_per_gib is None else f", client {result.client_cpu_per_gib:5.2f}"
        progress(
            f"  round {round_} ({config}): {result.mibps:8.1f} MiB/s  {result.seconds:6.2f} s  "
            f"CPU {result.cpu_per_gib:5.2f} s/GiB (S3 server {result.s3_cpu_per_gib:5.2f}, "
            f"all processes {result.all_cpu_per_gib:5.2f}{client})  "
            f"peak RSS {result.rss / MiB:6.1f} MiB{idle}  disk writes {result.disk_mib_per_gib:.0f} MiB/GiB  "
            f"other load {result.others:4.2f} CPUs"
        )

    def _concurrent(self, config: str) -> None:
        self.concurrent_and_small(config)
        c = self.results.concurrent[config]
        line = (
            f"  {self.args.concurrent}x{format_size(self.args.concurrent_size)} ({config}): {c['mibps']:8.1f} MiB/s "
            f"CPU {c['cpu_per_gib']:5.2f} s/GiB (S3 server {c['s3_cpu_per_gib']:5.2f})  "
            f"peak RSS {c['rss'] / MiB:6.1f} MiB  other load {c['others']:4.2f} CPUs"
        )
        if config in self.results.small:
            s = self.results.small[config]
            line += f"; {format_size(self.args.small_size)}: {s['per_s']:7.1f}/s  {s['cpu_ms']:.2f} ms CPU each"
        progress(line)

    def _flat(self, config: str) -> None:
        self.flat(config)
        sizes = self.results.flat[config]
        peaks = ", ".join(f"{format_size(n)} {rss / MiB:.1f} MiB" for n, rss in sizes.items())
        progress(f"  peak RSS by size ({config}): {peaks}")
