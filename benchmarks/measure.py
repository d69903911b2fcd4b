"""Measuring one consumption (CPU, wall, memory) and the statistics over rounds.

CPU is ``time.process_time()`` of the benchmark process (the server is another
process), wall is ``time.perf_counter()``, memory is the growth of
``tracemalloc``'s peak over what was allocated before the run. tracemalloc
slows allocation down, so memory is measured in passes of its own, never in
the timed runs.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass

from .consumers import Consumer, Outcome
from .streams import StreamSpec, content_of

__all__ = [
    "Run",
    "Summary",
    "extrapolate",
    "loglog_fit",
    "measure",
    "measure_memory",
    "sig",
    "summarize",
]


@dataclass
class Run:
    """One consumer consuming one stream once."""

    consumer: str
    stream: str
    round: int
    cpu: float
    """CPU seconds (estimated for the whole stream when ``estimated``)."""
    wall: float
    """Wall seconds (estimated likewise)."""
    events: int
    """Wire events in the stream (the per-event denominator)."""
    estimated: bool = False
    """The run was time-boxed and its totals extrapolated from a measured prefix."""
    measured_fraction: float = 1.0
    """The part of the stream actually consumed (1.0 unless time-boxed)."""

    @property
    def cpu_per_event_us(self) -> float:
        """CPU microseconds per wire event."""
        return self.cpu / self.events * 1e6


@dataclass(frozen=True)
class Summary:
    """Median and range of a figure over rounds."""

    median: float
    low: float
    high: float
    count: int

    def fmt(self, digits: int = 3, suffix: str = "") -> str:
        """``median (low-high)``, each to ``digits`` significant digits."""
        if self.count == 0 or math.isnan(self.median):
            return "-"
        m, lo, hi = (sig(v, digits) for v in (self.median, self.low, self.high))
        if self.count == 1 or lo == hi:
            return f"{m}{suffix}"
        return f"{m}{suffix} ({lo}-{hi})"


def sig(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, without exponent notation, commas from 10^4."""
    if math.isnan(value):
        return "-"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(digits - 1 - magnitude, 0)
    text = f"{round(value, decimals):,.{decimals}f}"
    return text if abs(value) >= 10_000 else text.replace(",", "")


def summarize(values: Sequence[float]) -> Summary:
    """The median, min and max of ``values`` (NaN for none)."""
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return Summary(math.nan, math.nan, math.nan, 0)
    return Summary(statistics.median(clean), min(clean), max(clean), len(clean))


class VerificationError(AssertionError):
    """A consumer did not produce the message the stream holds."""


def verify(consumer: Consumer, spec: StreamSpec, outcome: Outcome) -> None:
    """Check a complete outcome against the stream: the final content, or the event count."""
    if not outcome.complete:
        return
    if outcome.message is None:
        if outcome.events != spec.wire_events:
            raise VerificationError(
                f"{consumer.name} on {spec.key}: {outcome.events} events, "
                f"expected {spec.wire_events}"
            )
        return
    got = content_of(outcome.message)
    if got != spec.content:
        raise VerificationError(
            f"{consumer.name} on {spec.key}: the final message differs from the stream's "
            f"({[k for k, _ in got]} vs {[k for k, _ in spec.content]})"
        )


def extrapolate(samples: Sequence[tuple[int, float, float]], total: int) -> tuple[float, float]:
    """Estimated CPU and wall seconds for ``total`` raw events from a time-boxed prefix.

    Fits ``cost(k) = a + b*k + c*k**2`` with ``a, b, c >= 0`` (least squares over
    every subset of the three terms, keeping the best fit whose coefficients are
    all non-negative) to the cumulative cost after ``k`` events: the official
    SDK's per-delta cost grows linearly with what it has accumulated, so its total
    is quadratic.
    """
    import itertools

    import numpy as np

    ks = np.array([s[0] for s in samples], dtype=float)
    basis = np.stack([np.ones_like(ks), ks, ks**2], axis=1)
    at_total = np.array([1.0, total, float(total) ** 2])
    results = []
    for column in (1, 2):
        ys = np.array([s[column] for s in samples], dtype=float)
        best: tuple[float, float] | None = None
        for size in (3, 2, 1):
            for terms in itertools.combinations(range(3), size):
                coef, *_ = np.linalg.lstsq(basis[:, terms], ys, rcond=None)
                if (coef < 0).any():
                    continue
                residual = float(((basis[:, terms] @ coef - ys) ** 2).sum())
                if best is None or residual < best[0]:
                    best = (residual, float(at_total[list(terms)] @ coef))
        if best is None:  # cannot happen with >= 1 sample of positive cost; be safe
            best = (0.0, float(ys[-1]) * total / ks[-1])
        results.append(best[1])
    return results[0], results[1]


def loglog_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit of ``log y = e * log x + log k``: the growth exponent ``e`` and ``k``."""
    import numpy as np

    lx, ly = np.log(np.asarray(xs, dtype=float)), np.log(np.asarray(ys, dtype=float))
    exponent, intercept = np.polyfit(lx, ly, 1)
    return float(exponent), float(math.exp(intercept))


async def measure(
    consumer: Consumer, spec: StreamSpec, round_: int, budget: float | None = None
) -> Run:
    """Consume ``spec`` once with ``consumer`` and time it; time-boxed consumers get ``budget``."""
    gc.collect()
    box = budget if consumer.time_boxed else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    outcome = await consumer.consume(spec, box)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    verify(consumer, spec, outcome)
    if outcome.complete:
        return Run(consumer.name, spec.key, round_, cpu, wall, spec.wire_events)
    est_cpu, est_wall = extrapolate(outcome.samples, spec.raw_events)
    return Run(
        consumer.name,
        spec.key,
        round_,
        est_cpu,
        est_wall,
        spec.wire_events,
        estimated=True,
        measured_fraction=outcome.events / spec.raw_events,
    )


async def measure_memory(consumer: Consumer, spec: StreamSpec, budget: float | None) -> float:
    """Peak memory growth (bytes, tracemalloc) while ``consumer`` consumes ``spec``.

    Returns NaN for a time-boxed consumer that would not finish within ``budget``
    (tracemalloc slows it further; a prefix says little about the peak).
    """
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        box = budget if consumer.time_boxed else None
        outcome = await consumer.consume(spec, box)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    verify(consumer, spec, outcome)
    if not outcome.complete:
        return math.nan
    return float(peak - base)
