"""The targets of DESIGN.md, checked against one benchmark run: PASS or MISS, with the figure.

A few figures without a goal are shown beside them with the verdict ``info``.

Every comparison is a ratio paired round by round (both consumers measured in
the same round, on the same stream); the verdict is on the median ratio, and
the range is shown beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .concurrency import ConcurrencyRun, memory_ratios
from .measure import Run, Summary, summarize
from .scaling import ScalingResult
from .streams import StreamSpec

__all__ = ["Check", "check_targets", "paired_ratios"]

FLOOR = "floor"
TRIO = "triostream"
SDK = "anthropic async"
FANOUTS = ("triostream +3 readers", "triostream +3 subscribe()")
EXTRA = 3


@dataclass
class Check:
    """One target on one stream: the figure, the goal and the verdict."""

    target: str
    where: str
    figure: Summary
    goal: str
    passed: bool | None
    """None when it could not be measured."""
    estimated: bool = False
    suffix: str = "x"
    informational: bool = False
    """A figure shown beside the targets, with no goal: its verdict is ``info``."""

    @property
    def verdict(self) -> str:
        """``PASS``, ``MISS``, ``n/a``, or ``info`` for an informational figure."""
        if self.informational:
            return "info"
        if self.passed is None:
            return "n/a"
        return "PASS" if self.passed else "MISS"


def _by_round(runs: Sequence[Run], consumer: str, stream: str) -> dict[int, Run]:
    return {r.round: r for r in runs if r.consumer == consumer and r.stream == stream}


def paired_ratios(
    runs: Sequence[Run], numerator: str, denominator: str, stream: str
) -> tuple[list[float], bool]:
    """``cpu(numerator) / cpu(denominator)`` per round; and whether any run was estimated."""
    top, bottom = _by_round(runs, numerator, stream), _by_round(runs, denominator, stream)
    rounds = sorted(set(top) & set(bottom))
    estimated = any(top[r].estimated or bottom[r].estimated for r in rounds)
    return [top[r].cpu / bottom[r].cpu for r in rounds], estimated


def _ratio_check(
    runs: Sequence[Run],
    target: str,
    spec: StreamSpec,
    numerator: str,
    denominator: str,
    goal: str,
    test: float,
    at_most: bool,
) -> Check:
    ratios, estimated = paired_ratios(runs, numerator, denominator, spec.key)
    figure = summarize(ratios)
    passed = None
    if figure.count:
        passed = figure.median <= test if at_most else figure.median >= test
    return Check(target, spec.label, figure, goal, passed, estimated)


def _fanout_check(runs: Sequence[Run], spec: StreamSpec, fanout: str) -> Check:
    """Cost of each extra subscriber as a fraction of the single consumer's, per round."""
    single, many = _by_round(runs, TRIO, spec.key), _by_round(runs, fanout, spec.key)
    rounds = sorted(set(single) & set(many))
    shares = [(many[r].cpu - single[r].cpu) / EXTRA / single[r].cpu * 100 for r in rounds]
    figure = summarize(shares)
    passed = figure.median < 25 if figure.count else None
    how = fanout.removeprefix("triostream ")
    return Check(
        f"each extra subscriber ({how}), {spec.chunking_label}",
        spec.label,
        figure,
        "< 25 %",
        passed,
        suffix=" %",
    )


def check_targets(
    runs: Sequence[Run],
    specs: Sequence[StreamSpec],
    scaling: ScalingResult | None,
    concurrency: Sequence[ConcurrencyRun],
) -> list[Check]:
    """Every target of DESIGN.md that this run measured."""
    checks: list[Check] = []
    text = [s for s in specs if s.kind == "text"]
    for chunked, floor_goal, sdk_goal in (("16 KB", 1.5, 20.0), ("event", 2.5, 3.0)):
        for spec in text:
            if (spec.chunking == "event") != (chunked == "event"):
                continue
            label = spec.chunking_label
            checks.append(
                _ratio_check(
                    runs,
                    f"CPU/event vs the floor, {label}",
                    spec,
                    TRIO,
                    FLOOR,
                    f"<= {floor_goal:g}x",
                    floor_goal,
                    at_most=True,
                )
            )
            checks.append(
                _ratio_check(
                    runs,
                    f"SDK async CPU / triostream CPU, {label}",
                    spec,
                    SDK,
                    TRIO,
                    f">= {sdk_goal:g}x",
                    sdk_goal,
                    at_most=False,
                )
            )
    for spec in specs:
        if spec.kind == "tool" and spec.size == 1 << 20:
            checks.append(
                _ratio_check(
                    runs,
                    f"tool input 1 MB: SDK async CPU / triostream CPU, {spec.chunking_label}",
                    spec,
                    SDK,
                    TRIO,
                    ">= 100x",
                    100.0,
                    at_most=False,
                )
            )
    if scaling is not None and TRIO in scaling.exponent:
        exponent = scaling.exponent[TRIO]
        lo, hi = _bytes(scaling.sizes[0]), _bytes(scaling.sizes[-1])
        checks.append(
            Check(
                "tool-input growth exponent (triostream)",
                f"{lo} -> {hi}",
                Summary(exponent, exponent, exponent, 1),
                "<= 1.1",
                exponent <= 1.1,
                suffix="",
            )
        )
    for fanout in FANOUTS:
        for spec in text:
            if any(r.consumer == fanout and r.stream == spec.key for r in runs):
                checks.append(_fanout_check(runs, spec, fanout))
    checks.extend(_concurrency_checks(concurrency))
    return checks


def _concurrency_checks(runs: Sequence[ConcurrencyRun]) -> list[Check]:
    """At the largest count: all triostream streams complete; memory against the floor."""
    if not runs:
        return []
    top = max(r.streams for r in runs)
    mine = [r for r in runs if r.streams == top and r.consumer == TRIO]
    completed = [r.completed / r.streams * 100 for r in mine]
    timed = sum(r.kind == "timed" for r in mine)
    checks = [
        Check(
            f"{top:,} concurrent streams complete (triostream)",
            f"{timed} timed runs + {len(mine) - timed} memory passes",
            summarize(completed),
            "100 %",
            bool(completed) and all(c == 100 for c in completed),
            suffix=" %",
        )
    ]
    peak = memory_ratios(runs, top, "peak", TRIO, FLOOR)
    if peak:
        figure = summarize(peak)
        checks.append(
            Check(
                f"{top:,} concurrent streams: peak memory vs the floor",
                f"tracemalloc peak growth, {len(peak)} passes paired",
                figure,
                "<= 2x",
                figure.median <= 2.0,
            )
        )
    live = memory_ratios(runs, top, "live", TRIO, FLOOR)
    if live:
        checks.append(
            Check(
                f"{top:,} concurrent streams: live memory vs the floor",
                "every stream open at once, read to the end",
                summarize(live),
                "no goal",
                None,
                informational=True,
            )
        )
    return checks


def _bytes(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} KB"
