"""Concurrency: many streams at once in one process, triostream against the floor.

For each count (10, 100, 1,000), the floor runs that many concurrent
``httpx`` streams and triostream that many ``open_message_stream`` streams,
all in one nursery, over one client whose pool holds them all. Every stream
is checked. A round runs both; an untimed round first opens the connections,
so the timed rounds measure streaming, not TCP handshakes. Memory (peak
tracemalloc growth) is measured in a pass of its own.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from .consumers import Consumer, Floor, TriostreamSingle
from .matrix import rotated
from .measure import verify
from .streams import StreamSpec

__all__ = ["ConcurrencyRun", "concurrency_spec", "run_concurrency"]


def concurrency_spec(deltas: int) -> StreamSpec:
    """The stream every concurrent consumer reads: ``deltas`` text deltas, one event a chunk."""
    return StreamSpec("text", deltas, "event")


@dataclass
class ConcurrencyRun:
    """``streams`` concurrent streams consumed by one consumer, once."""

    consumer: str
    streams: int
    round: int
    cpu: float
    wall: float
    events: int
    """Wire events over all the streams."""
    completed: int
    memory: float = float("nan")
    """Peak tracemalloc growth in bytes (memory pass only)."""

    @property
    def events_per_second(self) -> float:
        """Throughput: wire events per wall second, over all streams."""
        return self.events / self.wall

    @property
    def cpu_per_event_us(self) -> float:
        """CPU microseconds per wire event."""
        return self.cpu / self.events * 1e6


async def _many(consumer: Consumer, spec: StreamSpec, streams: int) -> int:
    """Consume ``streams`` streams at once; returns how many completed and checked out."""
    completed = 0
    async with trio.open_nursery() as nursery:

        async def one() -> None:
            nonlocal completed
            if isinstance(consumer, TriostreamSingle):
                outcome = await consumer.consume_in(nursery, spec)
            else:
                outcome = await consumer.consume(spec)
            verify(consumer, spec, outcome)  # raises on a wrong or incomplete message
            completed += 1

        for _ in range(streams):
            nursery.start_soon(one)
    return completed


async def _timed(
    consumer: Consumer, spec: StreamSpec, streams: int, round_: int, traced: bool
) -> ConcurrencyRun:
    gc.collect()
    if traced:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        completed = await _many(consumer, spec, streams)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        memory = float(tracemalloc.get_traced_memory()[1] - base) if traced else float("nan")
    finally:
        if traced:
            tracemalloc.stop()
    return ConcurrencyRun(
        consumer.name,
        streams,
        round_,
        cpu,
        wall,
        spec.wire_events * streams,
        completed=completed,
        memory=memory,
    )


async def run_concurrency(
    base_url: str,
    counts: Sequence[int],
    deltas: int,
    rounds: int,
    log: Callable[[str], None],
) -> list[ConcurrencyRun]:
    """Timed rounds and one memory pass for each count, floor and triostream interleaved."""
    spec = concurrency_spec(deltas)
    pool = max(counts) + 16
    consumers: list[Consumer] = [
        Floor(base_url, max_connections=pool),
        TriostreamSingle(base_url, max_connections=pool),
    ]
    runs: list[ConcurrencyRun] = []
    try:
        for consumer in consumers:
            await consumer.open()
        for streams in counts:
            for consumer in consumers:  # untimed: open the connections
                await _many(consumer, spec, streams)
            for round_ in range(rounds):
                for consumer in rotated(consumers, round_):
                    runs.append(await _timed(consumer, spec, streams, round_, traced=False))
            for consumer in consumers:
                runs.append(await _timed(consumer, spec, streams, -1, traced=True))
            log(f"  {streams} concurrent streams: done")
    finally:
        for consumer in consumers:
            await consumer.aclose()
    return runs
