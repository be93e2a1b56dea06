"""The bench's targets, evaluated on hand-made results: met, not met, not measured."""

from __future__ import annotations

import argparse

import pytest

from bench.cli import parse_args
from bench.configurations import GiB, MiB
from bench.goals import GOALS, MET, NOT_MEASURED, NOT_MET, Outcome, evaluate
from bench.results import Results, Single

FULL = ["--only", "a,b,c,d", "--flat", "256MiB,1GiB,4GiB"]


def single(mibps: float, cpu: float = 1.0, idle: int | None = None) -> Single:
    return Single(1.0, mibps, cpu, 100 * MiB, 7.0, 10.0, 0.0, idle)


def results(good: bool) -> Results:
    """Results that meet every target (good) or none of them."""
    res = Results()
    res.singles["a"][1] = single(100)
    res.singles["b"][1] = single(96 if good else 80, cpu=2.4 if good else 2.6, idle=(59 if good else 61) * MiB)
    res.singles["c"][1] = single(91 if good else 89, cpu=3.9 if good else 4.1, idle=70 * MiB)
    res.singles["d"][1] = single(90, cpu=3.0, idle=40 * MiB)
    res.flat["b"] = {256 * MiB: 100 * MiB, GiB: 101 * MiB, 4 * GiB: (104 if good else 106) * MiB}
    res.flat["d"] = {GiB: (101 if good else 100) * MiB}
    reserved = 16 * 33 * MiB
    res.concurrent["a"] = {"mibps": 100.0, "rss": 1000 * MiB}
    res.concurrent["b"] = {"mibps": 95.0 if good else 94.0, "rss": reserved + (60 if good else 61) * MiB}
    res.small["a"] = {"per_s": 100.0}
    res.small["b"] = {"per_s": 80.0 if good else 70.0}
    res.small["d"] = {"per_s": 40.0 if good else 36.0}
    return res


def outcomes(args: argparse.Namespace, res: Results) -> dict[str, Outcome]:
    return {goal.name: outcome for goal, outcome in evaluate(args, res)}


def test_every_target_met() -> None:
    found = outcomes(parse_args(FULL), results(good=True))
    assert {name: o.status for name, o in found.items()} == {goal.name: MET for goal in GOALS}
    assert found["b-throughput"].figures == "(b) 0.96 x (a), target ≥ 0.95"
    assert found["concurrent-rss"].figures == "(b) 588.0 MiB, target ≤ 16 x 33.00 + 60 = 588.0"


def test_every_target_not_met() -> None:
    found = outcomes(parse_args(FULL), results(good=False))
    assert {name: o.status for name, o in found.items()} == {goal.name: NOT_MET for goal in GOALS}
    assert found["b-idle-rss"].figures == "(b) 61.0 MiB idle, target ≤ 60"
    assert found["b-flat"].figures == "(b) 4GiB 106.0 MiB, 256MiB 100.0 MiB: +6.0"


def test_nothing_measured_is_never_met() -> None:
    found = outcomes(parse_args(FULL), Results())
    assert {o.status for o in found.values()} == {NOT_MEASURED}
    assert found["b-throughput"].figures == "(b) and (a) not measured"


def test_not_measured_names_what_is_missing() -> None:
    res = results(good=True)
    res.singles["c"] = {}
    found = outcomes(parse_args(FULL), res)
    assert found["c-throughput"] == Outcome(NOT_MEASURED, "(c) not measured")
    assert found["c-cpu"] == Outcome(NOT_MEASURED, "(c) not measured")


@pytest.mark.parametrize(
    ("argv", "unmeasured"),
    [
        (
            ["--only", "a,b", "--flat", "1GiB"],
            {"b-not-below-d", "c-throughput", "c-cpu", "b-peak-1gib", "b-flat", "small-vs-d"},
        ),
        (["--quick"], {"b-peak-1gib", "b-flat", "concurrent-throughput", "concurrent-rss"}),
        (
            [*FULL, "--set", "upload.max_form_files=5"],
            {"b-throughput", "b-not-below-d", "b-cpu", "b-idle-rss", "b-peak-1gib", "b-flat"},
        ),
        ([*FULL, "--small-count", "0"], {"small-vs-a", "small-vs-d"}),
    ],
)
def test_targets_outside_the_run_are_not_measured(argv: list[str], unmeasured: set[str]) -> None:
    res = results(good=True)
    args = parse_args(argv)
    for config in set(res.singles) - set(args.only):
        res.singles[config] = {}
        res.concurrent.pop(config, None)
        res.small.pop(config, None)
        res.flat.pop(config, None)
    res.flat = {c: {n: rss for n, rss in sizes.items() if n in args.flat} for c, sizes in res.flat.items()}
    found = outcomes(args, res)
    assert {name for name, o in found.items() if o.status == NOT_MEASURED} == unmeasured
    assert {o.status for name, o in found.items() if name not in unmeasured} == {MET}


def test_other_settings_change_the_reserved_buffers() -> None:
    res = results(good=True)
    res.concurrent["b"]["rss"] = 461 * MiB
    argv = [*FULL, "--parts-in-flight", "2"]
    found = outcomes(parse_args(argv), res)["concurrent-rss"]
    assert found == Outcome(NOT_MET, "(b) 461.0 MiB, target ≤ 16 x 25.00 + 60 = 460.0")
    assert outcomes(parse_args(argv), res)["b-throughput"] == Outcome(
        NOT_MEASURED, "settings changed: --parts-in-flight"
    )
    res.concurrent["b"]["rss"] = 460 * MiB
    assert outcomes(parse_args(argv), res)["concurrent-rss"].status == MET


def test_the_throughput_targets_name_the_floor_when_it_was_measured() -> None:
    res = results(good=False)
    res.singles["m"][1] = single(88)
    res.concurrent["m"] = {"mibps": 93.0, "rss": 500 * MiB}
    found = outcomes(parse_args([*FULL[:1], "a,b,c,d,m", *FULL[2:]]), res)
    assert found["b-throughput"].figures == "(b) 0.80 x (a), target ≥ 0.95; (m), the floor, 0.88 x (a)"
    assert found["c-throughput"].figures == "(c) 0.89 x (a), target ≥ 0.90; (m), the floor, 0.88 x (a)"
    assert found["concurrent-throughput"].figures == (
        "(b) 94.0 MiB/s, (a) 100.0: 0.94 x (a), target ≥ 0.95; (m), the floor, 0.93 x (a)"
    )
    assert found["b-throughput"].status == NOT_MET
