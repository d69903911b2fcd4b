"""Tool-input scaling: the total cost of one tool call as its input grows (10 KB -> 4 MB).

triostream and the official SDK (async, time-boxed: beyond its budget its total
is extrapolated from the measured prefix) consume one ``tool_use`` block streamed
in ~20-byte ``partial_json`` pieces over 16 KB HTTP chunks, so that the cost is
the accumulation's, not the network's. The growth exponent is the slope of a
least-squares line through ``log(cost)`` against ``log(size)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .consumers import Consumer
from .matrix import rotated
from .measure import Run, loglog_fit, measure, summarize
from .streams import StreamSpec

__all__ = ["ScalingResult", "fit_exponents", "run_scaling", "scaling_specs"]

SCALING_CHUNKING = 16384


def scaling_specs(sizes: Sequence[int]) -> list[StreamSpec]:
    """One tool-input stream per size, in 16 KB chunks."""
    return [StreamSpec("tool", size, SCALING_CHUNKING) for size in sizes]


@dataclass
class ScalingResult:
    """Per consumer: the median CPU seconds per size, which were estimated, and the fits."""

    sizes: list[int]
    cpu: dict[str, list[float]] = field(default_factory=dict)
    low: dict[str, list[float]] = field(default_factory=dict)
    high: dict[str, list[float]] = field(default_factory=dict)
    estimated: dict[str, list[bool]] = field(default_factory=dict)
    exponent: dict[str, float] = field(default_factory=dict)
    """Fitted on the sizes that were measured to the end."""
    exponent_all: dict[str, float] = field(default_factory=dict)
    """Fitted on every size, estimates included."""
    exponent_tail: dict[str, float] = field(default_factory=dict)
    """Fitted on the three largest sizes measured to the end (the asymptotic growth)."""


async def run_scaling(
    consumers: Sequence[Consumer],
    sizes: Sequence[int],
    rounds: int,
    budget: float,
    log: Callable[[str], None],
) -> tuple[list[Run], ScalingResult]:
    """Measure every consumer on every size ``rounds`` times; fit the growth exponents."""
    runs: list[Run] = []
    for spec in scaling_specs(sizes):
        for round_ in range(rounds):
            for consumer in rotated(consumers, round_):
                runs.append(await measure(consumer, spec, round_, budget))
        log(f"  scaling {spec.label}: done")
    return runs, fit_exponents(runs, [c.name for c in consumers], sizes)


def fit_exponents(runs: Sequence[Run], names: Sequence[str], sizes: Sequence[int]) -> ScalingResult:
    """Median cost per size and the log-log growth exponent of each consumer."""
    result = ScalingResult(list(sizes))
    keys = [spec.key for spec in scaling_specs(sizes)]
    for name in names:
        medians, lows, highs, flags = [], [], [], []
        for key in keys:
            mine = [r for r in runs if r.consumer == name and r.stream == key]
            s = summarize([r.cpu for r in mine])
            medians.append(s.median)
            lows.append(s.low)
            highs.append(s.high)
            flags.append(any(r.estimated for r in mine))
        result.cpu[name], result.low[name], result.high[name] = medians, lows, highs
        result.estimated[name] = flags
        measured = [(x, y) for x, y, est in zip(sizes, medians, flags, strict=True) if not est]
        if len(measured) >= 2:
            result.exponent[name] = loglog_fit(*zip(*measured, strict=True))[0]
            result.exponent_tail[name] = loglog_fit(*zip(*measured[-3:], strict=True))[0]
        result.exponent_all[name] = loglog_fit(sizes, medians)[0]
    return result
