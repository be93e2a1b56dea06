"""The project's performance targets, and whether one run's results met each of them.

A target whose measurements this run did not take (a configuration left out by
--only, another object size, other settings) is "not measured", never met.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiouploader.config import UploadConfig
from aiouploader.s3.parts import upload_memory
from aiouploader.sizes import format_size, parse_size

from .configurations import FLOOR, PART_SIZE, PARTS_IN_FLIGHT, GiB, KiB, MiB
from .results import Results

MET, NOT_MET, NOT_MEASURED = "met", "not met", "not measured"


@dataclass(frozen=True)
class Outcome:
    status: str
    """MET, NOT_MET or NOT_MEASURED."""
    figures: str
    """The figures compared, or why they were not measured."""


def compared(ok: bool, figures: str) -> Outcome:
    return Outcome(MET if ok else NOT_MET, figures)


def missing(why: str) -> Outcome:
    return Outcome(NOT_MEASURED, why)


@dataclass(frozen=True)
class Goal:
    name: str
    description: str
    check: Callable[[argparse.Namespace, Results], Outcome]
    default_settings: bool = False
    """Only a run with aiouploader's default settings measures it."""

    def evaluate(self, args: argparse.Namespace, res: Results) -> Outcome:
        if self.default_settings and (changed := changed_settings(args)):
            return missing(f"settings changed: {changed}")
        return self.check(args, res)


def changed_settings(args: argparse.Namespace) -> str:
    changed = [f"{section}.{key}" for section, key, _ in args.set]
    if args.part_size != PART_SIZE:
        changed.append("--part-size")
    if args.parts_in_flight != PARTS_IN_FLIGHT:
        changed.append("--parts-in-flight")
    return ", ".join(changed)


# -- the figures, each None when not measured
def ratio(res: Results, config: str) -> float | None:
    """(config)'s MiB/s over (a)'s, median of the per-round ratios."""
    singles, ceiling = res.singles.get(config, {}), res.singles.get("a", {})
    ratios = [singles[r].mibps / ceiling[r].mibps for r in singles if r in ceiling]
    return statistics.median(ratios) if ratios else None


def cpu_per_gib(res: Results, config: str) -> float | None:
    values = [s.cpu_per_gib for s in res.singles.get(config, {}).values()]
    return statistics.median(values) if values else None


def idle_rss(res: Results, config: str) -> float | None:
    values = [s.idle_rss for s in res.singles.get(config, {}).values() if s.idle_rss is not None]
    return statistics.median(values) if values else None


def not_run(taken: Mapping[str, object], *configs: str) -> Outcome:
    """Not measured: which of ``configs`` have nothing in ``taken``."""
    absent = [f"({c})" for c in configs if not taken.get(c)] or [f"({c})" for c in configs]
    return missing(" and ".join(absent) + " not measured")


def floor(res: Results) -> str:
    """What (m), the least a server does for (b)'s job, reached in this run: how far the machine lets any go."""
    value = ratio(res, FLOOR)
    return "" if value is None else f"; ({FLOOR}), the floor, {value:.2f} x (a)"


# -- the targets
def throughput(config: str, share: float) -> Callable[[argparse.Namespace, Results], Outcome]:
    def check(args: argparse.Namespace, res: Results) -> Outcome:
        value = ratio(res, config)
        if value is None:
            return not_run(res.singles, config, "a")
        return compared(value >= share, f"({config}) {value:.2f} x (a), target ≥ {share:.2f}{floor(res)}")

    return check


def b_not_below_d(args: argparse.Namespace, res: Results) -> Outcome:
    b, d = ratio(res, "b"), ratio(res, "d")
    if b is None or d is None:
        return not_run(res.singles, "a", "b", "d")
    return compared(b >= d, f"(b) {b:.3f} x (a), (d) {d:.3f} x (a)")


def cpu(config: str, limit: float) -> Callable[[argparse.Namespace, Results], Outcome]:
    def check(args: argparse.Namespace, res: Results) -> Outcome:
        value = cpu_per_gib(res, config)
        if value is None:
            return not_run(res.singles, config)
        return compared(value <= limit, f"({config}) {value:.2f} CPU s/GiB, target ≤ {limit:.1f}")

    return check


def idle(args: argparse.Namespace, res: Results) -> Outcome:
    value = idle_rss(res, "b")
    if value is None:
        return not_run(res.singles, "b")
    return compared(value <= 60 * MiB, f"(b) {value / MiB:.1f} MiB idle, target ≤ 60")


def peak_1gib(args: argparse.Namespace, res: Results) -> Outcome:
    b, d = res.flat.get("b", {}).get(GiB), res.flat.get("d", {}).get(GiB)
    if b is None or d is None:
        return missing("needs (b) and (d) with 1GiB in --flat")
    return compared(b <= d, f"(b) {b / MiB:.1f} MiB, (d) {d / MiB:.1f} MiB")


def flat(args: argparse.Namespace, res: Results) -> Outcome:
    peaks = res.flat.get("b", {})
    small, large = peaks.get(256 * MiB), peaks.get(4 * GiB)
    if small is None or large is None:
        return missing("needs (b) with 256MiB and 4GiB in --flat")
    grew = large - small
    return compared(
        abs(grew) <= 5 * MiB, f"(b) 4GiB {large / MiB:.1f} MiB, 256MiB {small / MiB:.1f} MiB: {grew / MiB:+.1f}"
    )


CONCURRENT, CONCURRENT_SIZE, SMALL_SIZE, CLIENTS = 16, 64 * MiB, 4 * KiB, 16


def concurrent_scenario(args: argparse.Namespace) -> Outcome | None:
    """Not measured unless the concurrent scenario was the targets' one."""
    if (args.concurrent, args.concurrent_size) == (CONCURRENT, CONCURRENT_SIZE):
        return None
    return missing(f"this run: {args.concurrent} x {format_size(args.concurrent_size)}")


def concurrent_throughput(args: argparse.Namespace, res: Results) -> Outcome:
    if skipped := concurrent_scenario(args):
        return skipped
    a, b = res.concurrent.get("a"), res.concurrent.get("b")
    if a is None or b is None:
        return not_run(res.concurrent, "a", "b")
    share = b["mibps"] / a["mibps"]
    figures = f"(b) {b['mibps']:.1f} MiB/s, (a) {a['mibps']:.1f}: {share:.2f} x (a), target ≥ 0.95"
    if m := res.concurrent.get(FLOOR):
        figures += f"; ({FLOOR}), the floor, {m['mibps'] / a['mibps']:.2f} x (a)"
    return compared(share >= 0.95, figures)


def reserved_buffers(args: argparse.Namespace) -> int:
    """What the concurrent uploads reserve of server.max_buffered with this run's settings."""
    block_size = UploadConfig().block_size
    for section, key, value in args.set:
        if (section, key) == ("upload", "block_size"):
            block_size = value if isinstance(value, int) else parse_size(str(value))
    one = upload_memory(args.part_size, args.parts_in_flight, block_size, args.concurrent_size)
    return int(args.concurrent * one)


def concurrent_rss(args: argparse.Namespace, res: Results) -> Outcome:
    if skipped := concurrent_scenario(args):
        return skipped
    b = res.concurrent.get("b")
    if b is None:
        return not_run(res.concurrent, "b")
    bound = reserved_buffers(args) + 60 * MiB
    return compared(
        b["rss"] <= bound,
        f"(b) {b['rss'] / MiB:.1f} MiB, target ≤ {args.concurrent} x "
        f"{reserved_buffers(args) // args.concurrent / MiB:.2f} + 60 = {bound / MiB:.1f}",
    )


def small(than: str, times: float) -> Callable[[argparse.Namespace, Results], Outcome]:
    def check(args: argparse.Namespace, res: Results) -> Outcome:
        if (args.small_size, args.clients) != (SMALL_SIZE, CLIENTS) or not args.small_count:
            return missing(f"this run: {args.small_count} x {format_size(args.small_size)}, {args.clients} clients")
        b, other = res.small.get("b"), res.small.get(than)
        if b is None or other is None:
            return not_run(res.small, "b", than)
        share = b["per_s"] / other["per_s"]
        return compared(
            share >= times,
            f"(b) {b['per_s']:.0f}/s, ({than}) {other['per_s']:.0f}/s: {share:.2f} x ({than}), target ≥ {times:g}",
        )

    return check


GOALS = [
    Goal("b-throughput", "(b) one upload ≥ 0.95 x (a)", throughput("b", 0.95), default_settings=True),
    Goal("b-not-below-d", "(b) one upload not below (d), as ratios to (a)", b_not_below_d, default_settings=True),
    Goal("b-cpu", "(b) server CPU ≤ 2.5 s/GiB", cpu("b", 2.5), default_settings=True),
    Goal("c-throughput", "(c) one upload ≥ 0.90 x (a)", throughput("c", 0.90)),
    Goal("c-cpu", "(c) server CPU ≤ 4.0 s/GiB", cpu("c", 4.0)),
    Goal("b-idle-rss", "(b) RSS after start-up ≤ 60 MiB", idle, default_settings=True),
    Goal("b-peak-1gib", "(b) peak RSS for 1 GiB ≤ (d)'s", peak_1gib, default_settings=True),
    Goal("b-flat", "(b) peak RSS for 4 GiB within 5 MiB of 256 MiB's", flat, default_settings=True),
    Goal("concurrent-throughput", "16 x 64 MiB at once: (b) ≥ 0.95 x (a)", concurrent_throughput),
    Goal("concurrent-rss", "16 x 64 MiB at once: (b) peak RSS ≤ reserved buffers + 60 MiB", concurrent_rss),
    Goal("small-vs-a", "4 KiB uploads, 16 clients: (b) ≥ 0.75 x (a)", small("a", 0.75)),
    Goal("small-vs-d", "4 KiB uploads, 16 clients: (b) ≥ 2 x (d)", small("d", 2)),
]


def evaluate(args: argparse.Namespace, res: Results) -> list[tuple[Goal, Outcome]]:
    return [(goal, goal.evaluate(args, res)) for goal in GOALS]


def goal_rows(args: argparse.Namespace, res: Results) -> tuple[list[str], list[list[str]]]:
    """The targets table: target, the figures compared, met?"""
    return ["target", "figures", "met?"], [[g.description, o.figures, o.status] for g, o in evaluate(args, res)]
