"""The side-by-side runs: every consumer on every stream, interleaved round by round.

For each stream, each round runs every consumer once, in an order rotated by
one each round (so no consumer always runs first or right after the slowest),
so that ratios can be paired within a round. The memory pass (tracemalloc)
comes after, one run per consumer and stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from .consumers import Consumer
from .measure import Run, measure, measure_memory
from .streams import StreamSpec

__all__ = ["run_matrix", "run_memory"]

Log = Callable[[str], None]


def rotated(items: Sequence[Consumer], by: int) -> list[Consumer]:
    """``items`` rotated left by ``by``."""
    if not items:
        return []
    by %= len(items)
    return [*items[by:], *items[:by]]


async def run_matrix(
    consumers: Sequence[Consumer],
    specs: Sequence[StreamSpec],
    rounds: int,
    budget: float,
    log: Log,
) -> list[Run]:
    """``rounds`` rounds of every consumer on every stream; the SDK time-boxed at ``budget``."""
    runs: list[Run] = []
    for spec in specs:
        chosen = [c for c in consumers if c.max_events is None or spec.wire_events <= c.max_events]
        for round_ in range(rounds):
            for consumer in rotated(chosen, round_):
                runs.append(await measure(consumer, spec, round_, budget))
        mine = [r for r in runs if r.stream == spec.key and r.consumer == consumers[0].name]
        log(
            f"  {spec.label}, {spec.chunking_label}: {rounds} rounds done "
            f"({consumers[0].name} {min(r.cpu_per_event_us for r in mine):.2f} µs/event)"
        )
    return runs


async def run_memory(
    consumers: Sequence[Consumer],
    specs: Sequence[StreamSpec],
    runs: Sequence[Run],
    budget: float,
    log: Log,
) -> dict[tuple[str, str], float]:
    """Peak memory growth of each consumer on each stream (NaN where the SDK was time-boxed)."""
    boxed = {(r.consumer, r.stream) for r in runs if r.estimated}
    memory: dict[tuple[str, str], float] = {}
    for spec in specs:
        for consumer in consumers:
            if consumer.max_events is not None and spec.wire_events > consumer.max_events:
                continue
            if (consumer.name, spec.key) in boxed:
                memory[consumer.name, spec.key] = math.nan
                continue
            # tracemalloc slows the SDK down: give it room to finish what it finished untraced.
            memory[consumer.name, spec.key] = await measure_memory(consumer, spec, budget * 4)
    log(f"  memory pass done ({len(memory)} runs)")
    return memory
