"""What the bench prints: progress on stderr as it goes, then the tables and notes on stdout."""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys

from aiouploader.sizes import format_size

from .configurations import CONFIGS, TUS, TUS_CHUNK_SIZE, MiB, toml_value
from .goals import goal_rows, idle_rss, ratio
from .machine import machine
from .results import Results

CLIENTS = {"j": "boto3's upload_file", "k": "tus-js-client", "l": "tus-js-client"}
"""The configurations whose client is a process of its own, and what that client is."""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summary_rows(args: argparse.Namespace, res: Results) -> tuple[list[str], list[list[str]]]:
    n, csize = args.concurrent, format_size(args.concurrent_size)
    header = [
        "configuration",
        "MiB/s (median)",
        "ratio to (a)",
        "CPU s/GiB",
        "S3 server CPU s/GiB",
        "all processes CPU s/GiB",
        "peak RSS MiB",
        "RSS after start-up MiB",
        "disk writes MiB/GiB",
        f"{n}x{csize} MiB/s",
        f"{n}x{csize} peak RSS MiB",
        f"{format_size(args.small_size)} uploads/s",
        "CPU ms per small upload",
    ]

    def num(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    rows = []
    for config in args.only:
        singles = res.singles[config]
        conc, small = res.concurrent.get(config, {}), res.small.get(config, {})
        rss = median([s.rss / MiB for s in singles.values()])
        idle = idle_rss(res, config)
        rows.append(
            [
                f"({config}) {CONFIGS[config]}",
                num(median([s.mibps for s in singles.values()])),
                num(ratio(res, config), 2) if config != "a" else ("1.00" if singles else "-"),
                num(median([s.cpu_per_gib for s in singles.values()]), 2),
                num(median([s.s3_cpu_per_gib for s in singles.values()]), 2),
                num(median([s.all_cpu_per_gib for s in singles.values()]), 2),
                num(rss, 0),
                num(idle / MiB if idle is not None else None, 0),
                num(median([s.disk_mib_per_gib for s in singles.values() if s.disk_mib_per_gib is not None]), 0),
                num(conc.get("mibps")),
                num(conc["rss"] / MiB if conc else None, 0),
                num(small.get("per_s"), 0),
                num(small.get("cpu_ms"), 2),
            ]
        )
    return header, rows


def flat_rows(args: argparse.Namespace, res: Results) -> tuple[list[str], list[list[str]]]:
    sizes, flat = args.flat, res.flat
    header = ["configuration", *(f"{format_size(n)}: peak RSS MiB" for n in sizes)]
    if len(sizes) > 1:
        header.append(f"{format_size(sizes[-1])} minus {format_size(sizes[0])} MiB")
    rows = []
    for config in args.only:
        if config not in flat:
            continue
        peaks = [flat[config].get(n) for n in sizes]
        row = [f"({config}) {CONFIGS[config]}", *("-" if p is None else f"{p / MiB:.0f}" for p in peaks)]
        if len(sizes) > 1:
            first, last = peaks[0], peaks[-1]
            row.append("-" if first is None or last is None else f"{(last - first) / MiB:+.1f}")
        rows.append(row)
    return header, rows


def plain_table(header: list[str], rows: list[list[str]], numbers: bool = True) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 or not numbers else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]], numbers: bool = True) -> str:
    align = "--:" if numbers else "---"
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [align] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def notes(args: argparse.Namespace, res: Results) -> list[str]:
    """The notes under the tables: how each number was measured, the load meanwhile, what --set changed."""
    lines = [
        f"Single uploads: {format_size(args.size)}, {args.rounds} round(s) alternating {','.join(args.only)}; "
        f"part size {format_size(args.part_size)}, {args.parts_in_flight} parts in flight; "
        "(j) via boto3's upload_file (defaults: 8 MiB parts, 10 at once) to aiouploader's S3 API, (k) and (l) via "
        f"tus-js-client in PATCHes of {format_size(TUS_CHUNK_SIZE)}, the others but (a) via `curl -T`, all from "
        "/dev/shm; (a) from memory.",
        "MiB/s and CPU s/GiB are medians over rounds; the ratio is the median of per-round ratios to (a).",
        "CPU: user+sys of the server process tree (of (a)'s process) from /proc/PID/stat, read before and after "
        "the upload. All processes: the CPU the whole machine spent meanwhile (/proc/stat: the client or curl, "
        "the server, the S3 server, the bench). Peak RSS: VmHWM of a fresh server (fresh (a) process) "
        "per configuration per round (median over rounds); it includes one warm-up upload and start-up. "
        "RSS after start-up: VmRSS of each fresh server as soon as /healthz answers, before any upload. "
        "Disk writes: write_bytes of the server process tree from /proc/PID/io, read before and after the upload "
        "(median over rounds), with TMPDIR on a disk directory for every process.",
        f"(a)'s RSS includes the payload it holds in memory ({format_size(args.size)}; "
        f"{format_size(args.concurrent_size)} in the concurrent test).",
        f"Concurrent: {args.concurrent} simultaneous uploads of {format_size(args.concurrent_size)} "
        f"(one fresh server; aggregate MiB/s over the wall time). Small: {args.small_count} uploads of "
        f"{format_size(args.small_size)} from {args.clients} concurrent clients ((a): PutObject via aioboto3; "
        "(j): PutObject to the S3 API via aiobotocore's defaults in the bench process; (k) and (l): tus uploads, "
        "a creation and one PATCH each, from the tus client's process, which also sends their concurrent uploads; "
        "others: an aiohttp client in the bench process), same server after the concurrent test.",
        "(d) and (i) send one part at a time (TransferConfig(use_threads=False)); (a) and (d) compute no "
        "digests, (i) (boto3's defaults) the SHA-256 of every part for its signature and a CRC32; (b) and (c) "
        "compute SHA-256 of the body plus CRC32C of every part, (h) the same with Content-MD5 of every part, (k) and "
        "(m) the same as (b); (l) computes none (the AWS SDK with requestChecksumCalculation WHEN_REQUIRED).",
        "All processes (rclone, servers, curl, the bench) share the same CPUs.",
    ]
    for config in args.only:
        clients = [s.client_cpu_per_gib for s in res.singles[config].values() if s.client_cpu_per_gib is not None]
        if clients:
            lines.append(
                f"({config}) the client's own CPU ({CLIENTS[config]}, not in the server's CPU s/GiB but in all "
                "processes'): "
                f"{statistics.median(clients):.2f} s/GiB (median over rounds)."
            )
    if "l" in args.only:
        lines.append(
            "(l): @tus/server with @tus/s3-store, partSize = the part size, its other settings the defaults; it "
            "writes each part to a file in TMPDIR (on disk) before sending it to S3."
        )
    if "j" in args.only and args.flat:
        lines.append("(j) is not in the peak RSS by size, whose uploads are unsigned requests to the HTTP API.")
    if TUS & set(args.only) and args.flat:
        lines.append("(k) and (l) are not in the peak RSS by size, whose uploads are plain PUTs, not tus.")
    loads = [r.others for rounds in res.singles.values() for r in rounds.values()]
    loads += [c["others"] for c in res.concurrent.values()]
    if args.flat:
        lines.append(
            "Peak RSS by size: per configuration and size, a fresh server, one 4KiB warm-up, then one upload of "
            "that size streamed by an aiohttp client in the bench process (with Content-Length, no file); VmHWM "
            "at the end, start-up included."
        )
    if loads:
        lines.append(
            f"Load from processes outside the bench while measuring: median {statistics.median(loads):.2f}, "
            f"max {max(loads):.2f} CPUs of {os.cpu_count()} (user+sys from /proc/stat minus the bench's own "
            "process tree); a busy machine makes every number noisier."
        )
    if args.set:
        lines.append(
            "aiouploader settings changed with --set: "
            + ", ".join(f"{sec}.{key} = {toml_value(value)}" for sec, key, value in args.set)
        )
    if args.rclone_arg:
        lines.append(f"rclone serve s3 extra arguments: {shlex.join(args.rclone_arg)}")
    for config in args.only:
        for note in res.notes[config]:
            lines.append(f"({config}) {note}")
    return lines


def report(args: argparse.Namespace, res: Results, uvicorn_http: str, elapsed: float) -> None:
    header, rows = summary_rows(args, res)
    flat_header, flat = flat_rows(args, res)
    goals_header, goals = goal_rows(args, res)
    print()
    print(plain_table(header, rows))
    if flat:
        print()
        print(plain_table(flat_header, flat))
    print("\nTargets (see bench/README.md):\n")
    print(plain_table(goals_header, goals, numbers=False))
    print()
    lines = notes(args, res)
    for note in lines:
        print(f"- {note}")
    if args.markdown:
        print("\n<!-- Markdown for bench/README.md -->\n")
        for line in machine(args, uvicorn_http):
            print(f"{line}  ")
        print()
        print(markdown_table(header, rows))
        print()
        if flat:
            print(markdown_table(flat_header, flat))
            print()
        print(markdown_table(goals_header, goals, numbers=False))
        print()
        for note in lines:
            print(f"- {note}")
    if res.failures:
        print(f"\n{len(res.failures)} measurement(s) FAILED:")
        for failure in res.failures:
            print(f"- {failure}")
    print(f"\nbench: finished in {elapsed:.1f} s", file=sys.stderr)
