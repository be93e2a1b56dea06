"""Throughput, CPU and memory of aiouploader against its ceiling and the usual workaround.

One run, one S3 server (``rclone serve s3`` on a tmpfs directory), these configurations:

  (a) ceiling   aioboto3 multipart straight to S3 from memory, no HTTP hop (bench/direct.py)
  (b) checksum  aiouploader, route plugins ["checksum"]
  (c) full      aiouploader, ["size_limit", "checksum", "virus_scan" (stub), "encryption"]
  (d) baseline  Starlette + uvicorn → queue → boto3 upload_fileobj in a thread (bench/baseline_app.py)
  (e), (f), (g) aiouploader with one plugin each: size_limit, virus_scan (stub), encryption
                (with (b), each built-in plugin's throughput on its own; not run by default)
  (h) checksum  as (b), with s3.content_md5 = true: what Content-MD5 on every part costs
  (i) baseline  as (d), with boto3's default client settings, as the workaround is usually written
  (j) S3 API    as (b), through aiouploader's S3 API: boto3's upload_file, as `aws s3 cp` (bench/s3api_client.py)
  (k) tus       as (b), with resumable = true: tus uploads by tus-js-client (bench/tus-node/client.mjs)
  (l) tus Node  the tus Node server, @tus/server with @tus/s3-store (bench/tus-node/server.mjs), same client
  (m) floor     (b)'s work and nothing else, a plain asyncio protocol with no framework (bench/floor_app.py)

Single uploads alternate a, b, c, d, h, i, j, k, l, m, a, b, ... with a fresh server (or
(a) process) per configuration per round, so its VmHWM is that round's peak
RSS. Then, per configuration, one fresh server takes N concurrent uploads and
then a bounded number of small uploads from 16 concurrent clients. Last, per
configuration, fresh servers take one upload of each --flat size (peak RSS by
object size).

    python bench/run.py --size 256MiB --rounds 3 --markdown
    python bench/run.py --quick        # smoke test, a few minutes

See bench/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiouploader.sizes import parse_size

from .configurations import CONFIGS, PART_SIZE, PARTS_IN_FLIGHT, GiB, KiB, MiB, parse_setting
from .errors import Abort
from .report import progress, report
from .scenarios import Bench
from .tus import install_tus_node
from .workspace import Workspace

WORK_PREFIX = "aiouploader-bench-"
DISK_BASE = "/var/tmp"
"""Where the run's directory on disk goes (the servers' TMPDIR), if it exists; else the system's temp directory."""


def size_argument(text: str) -> int:
    """A size on the command line, as aiouploader's config takes it: 256MiB, 4KiB, 100MB."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=size_argument, help="size of the single uploads (default 256MiB; --quick 16MiB)")
    parser.add_argument("--rounds", type=int, help="rounds of single uploads (default 3; --quick 1)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one round: a smoke test of a few minutes")
    parser.add_argument(
        "--only", default="a,b,c,d,h,i,j,k,l,m", help="configurations to run, e.g. a,b (default a,b,c,d,h,i,j,k,l,m)"
    )
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table with the machine")
    parser.add_argument("--concurrent", type=int, default=16, help="concurrent uploads (default 16)")
    parser.add_argument("--concurrent-size", type=size_argument, help="size of each (default 64MiB; --quick 9MiB)")
    parser.add_argument(
        "--part-size",
        type=size_argument,
        default=PART_SIZE,
        help="part size of every configuration: (a), the servers, (d) and (i) (default 8MiB, aiouploader's)",
    )
    parser.add_argument(
        "--parts-in-flight",
        type=int,
        default=PARTS_IN_FLIGHT,
        help="parts uploading at once per upload, for (a) and the servers (default 3, aiouploader's)",
    )
    parser.add_argument("--small-count", type=int, help="small uploads, 0 for none (default 2000; --quick 200)")
    parser.add_argument("--small-size", type=size_argument, default=4 * KiB, help="size of each (default 4KiB)")
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
        help="a setting for the config of every aiouploader server, (b), (c), (e)-(h), (j) and (k) (repeat for more), "
        "e.g. --set s3.content_md5=true --set upload.block_size=4MiB (a bare word is a string)",
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
    except ValueError as exc:
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
    if {"k", "l"} & set(args.only):
        install_tus_node()
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    disk_base = DISK_BASE if os.path.isdir(DISK_BASE) else tempfile.gettempdir()
    remove_stale_workspaces(Path(base))
    remove_stale_workspaces(Path(disk_base))
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=base))
    disk = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=disk_base))
    for path in (work, disk):
        (path / "bench.pid").write_text(str(os.getpid()))
    (work / "logs").mkdir()
    started = time.monotonic()
    ws = Workspace(args, work, disk)
    bench = Bench(args, ws)
    status = 0
    try:
        with deadline(args.timeout):
            ws.make_files()
            ws.start_s3()
            bench.run()
            ws.procs.stop_all()
        report(args, bench.results, ws.uvicorn_http, time.monotonic() - started)
        status = 1 if bench.results.failures else 0
    except (Abort, KeyboardInterrupt) as exc:
        progress(f"bench: interrupted ({exc or 'Ctrl-C'}); partial results:")
        report(args, bench.results, ws.uvicorn_http, time.monotonic() - started)
        status = 130
    finally:
        ws.procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(disk, ignore_errors=True)
    return status
