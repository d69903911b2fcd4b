"""Concurrency: many streams at once in one process, triostream against the floor.

For each count (10, 100, 1,000), the floor runs that many concurrent
``httpx`` streams and triostream that many ``open_message_stream`` streams,
all in one nursery. The streams are spread over several clients, one
connection pool per :data:`PER_POOL` streams (stream ``i`` uses client
``i % k``): on every request added to or removed from a pool, httpcore (1.0.x)
spends idle connections x connections, so pools of 100 or 1,000 connections
would measure httpcore's pool rather than the consumers. The connections never
expire (``Consumer.limits``): with httpx's default of 5 s, a pass of 1,000
streams outlasts it, the next pass reconnects every stream, and the staggered
connects change how the streams overlap. Every stream is checked.

Per count, in this order:

- an untimed round of each consumer opens the connections;
- timed rounds (no tracemalloc), the consumers' order rotated each round;
- ``passes`` **peak** passes per consumer, interleaved (rotated) with the
  floor's: the growth of tracemalloc's peak over one pass. The peak depends on
  how many streams happen to be alive, with everything received, at the same
  moment, so it varies from pass to pass; it is reported as median and range,
  and compared with the floor pass by pass;
- one **live** pass per consumer: every stream is read to its end (triostream:
  every event and the final message; the floor: every event decoded) and then
  held open at a barrier until the last stream arrives; the memory traced at
  that moment, over the streams, is what one finished-but-open stream holds.
  This does not depend on timing, and it is the worst case for triostream,
  which keeps the whole message and its event log (for late subscribers) while
  the floor keeps nothing.
"""

from __future__ import annotations

import gc
import math
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import trio
import trio.testing

from .consumers import Consumer, Floor, Outcome, TriostreamSingle
from .measure import verify
from .streams import StreamSpec

__all__ = [
    "PER_POOL",
    "ConcurrencyRun",
    "clients_for",
    "concurrency_spec",
    "memory_ratios",
    "run_concurrency",
]

PER_POOL = 10
"""Streams per httpx client (connection pool)."""

Kind = Literal["timed", "peak", "live"]


def concurrency_spec(deltas: int) -> StreamSpec:
    """The stream every concurrent consumer reads: ``deltas`` text deltas, one event a chunk."""
    return StreamSpec("text", deltas, "event")


def clients_for(streams: int) -> int:
    """How many clients (pools) ``streams`` concurrent streams are spread over."""
    return max(1, math.ceil(streams / PER_POOL))


@dataclass
class ConcurrencyRun:
    """``streams`` concurrent streams consumed by one consumer, once.

    ``kind`` is ``"timed"`` (a timed round, ``round`` >= 0), ``"peak"`` (a
    tracemalloc pass for the peak, ``round`` is the pass) or ``"live"`` (the
    barrier pass, ``round`` 0).
    """

    consumer: str
    streams: int
    round: int
    cpu: float
    wall: float
    events: int
    """Wire events over all the streams."""
    completed: int
    memory: float = float("nan")
    """Bytes: peak tracemalloc growth (``peak``) or memory held at the barrier (``live``)."""
    kind: Kind = "timed"

    @property
    def events_per_second(self) -> float:
        """Throughput: wire events per wall second, over all streams."""
        return self.events / self.wall

    @property
    def cpu_per_event_us(self) -> float:
        """CPU microseconds per wire event."""
        return self.cpu / self.events * 1e6

    @property
    def memory_per_stream(self) -> float:
        """:attr:`memory` divided by the number of streams (bytes)."""
        return self.memory / self.streams


def memory_ratios(
    runs: Sequence[ConcurrencyRun], streams: int, kind: Kind, numerator: str, denominator: str
) -> list[float]:
    """``memory(numerator) / memory(denominator)`` pass by pass (pass k with pass k)."""

    def by_pass(name: str) -> dict[int, float]:
        return {
            r.round: r.memory
            for r in runs
            if r.consumer == name and r.streams == streams and r.kind == kind
        }

    top, bottom = by_pass(numerator), by_pass(denominator)
    return [top[k] / bottom[k] for k in sorted(set(top) & set(bottom)) if bottom[k] > 0]


class _Barrier:
    """Holds every stream open until the last one arrives, then reads the traced memory."""

    def __init__(self, streams: int, base: int) -> None:
        self._expected = streams
        self._arrived = 0
        self._base = base
        self._released = trio.Event()
        self.held = math.nan
        """Bytes traced, over ``base``, with every stream at the barrier."""

    async def arrive(self) -> None:
        """Wait here until every stream has arrived (the last one measures and lets all go)."""
        self._arrived += 1
        if self._arrived < self._expected:
            await self._released.wait()
            return
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        self.held = float(tracemalloc.get_traced_memory()[0] - self._base)
        self._released.set()


async def _consume(
    consumer: Consumer, nursery: trio.Nursery, spec: StreamSpec, barrier: _Barrier | None
) -> Outcome:
    hold = None if barrier is None else barrier.arrive
    if isinstance(consumer, TriostreamSingle):
        return await consumer.consume_in(nursery, spec, hold)
    if isinstance(consumer, Floor):
        return await consumer.read(spec, hold)
    return await consumer.consume(spec)


async def _many(
    clients: Sequence[Consumer], spec: StreamSpec, streams: int, barrier: _Barrier | None = None
) -> int:
    """Consume ``streams`` streams at once, stream ``i`` on ``clients[i % k]``.

    Returns how many completed and checked out (a wrong or incomplete message raises).
    """
    completed = 0
    k = clients_for(streams)
    if k > len(clients):
        raise ValueError(f"{streams} streams need {k} clients, {len(clients)} were opened")
    async with trio.open_nursery() as nursery:

        async def one(consumer: Consumer) -> None:
            nonlocal completed
            outcome = await _consume(consumer, nursery, spec, barrier)
            verify(consumer, spec, outcome)
            completed += 1

        for i in range(streams):
            nursery.start_soon(one, clients[i % k])
    return completed


async def _pass(
    clients: Sequence[Consumer], spec: StreamSpec, streams: int, round_: int, kind: Kind
) -> ConcurrencyRun:
    """One timed round, or one traced pass (``peak`` or ``live``)."""
    gc.collect()
    traced = kind != "timed"
    base = 0
    if traced:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    barrier = _Barrier(streams, base) if kind == "live" else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        completed = await _many(clients, spec, streams, barrier)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if kind == "peak":
            memory = float(tracemalloc.get_traced_memory()[1] - base)
        else:
            memory = barrier.held if barrier is not None else math.nan
    finally:
        if traced:
            tracemalloc.stop()
    return ConcurrencyRun(
        clients[0].name,
        streams,
        round_,
        cpu,
        wall,
        spec.wire_events * streams,
        completed=completed,
        memory=memory,
        kind=kind,
    )


async def run_concurrency(
    base_url: str,
    counts: Sequence[int],
    deltas: int,
    rounds: int,
    log: Callable[[str], None],
    passes: int = 3,
) -> list[ConcurrencyRun]:
    """For each count: timed rounds, ``passes`` peak passes and one live pass per consumer.

    The floor and triostream are interleaved (order rotated) in the timed rounds and the
    peak passes, so that pass ``k`` of one can be paired with pass ``k`` of the other.
    """
    spec = concurrency_spec(deltas)
    pools = clients_for(max(counts))
    kinds: list[list[Consumer]] = [
        [Floor(base_url, max_connections=PER_POOL) for _ in range(pools)],
        [TriostreamSingle(base_url, max_connections=PER_POOL) for _ in range(pools)],
    ]

    def rotated(by: int) -> list[list[Consumer]]:
        by %= len(kinds)
        return [*kinds[by:], *kinds[:by]]

    runs: list[ConcurrencyRun] = []
    try:
        for clients in kinds:
            for client in clients:
                await client.open()
        for streams in counts:
            started = time.perf_counter()
            for clients in kinds:  # untimed: open the connections
                await _many(clients, spec, streams)
            for round_ in range(rounds):
                for clients in rotated(round_):
                    runs.append(await _pass(clients, spec, streams, round_, "timed"))
            for pass_ in range(passes):
                for clients in rotated(pass_):
                    runs.append(await _pass(clients, spec, streams, pass_, "peak"))
            for clients in kinds:
                runs.append(await _pass(clients, spec, streams, 0, "live"))
            log(
                f"  {streams} concurrent streams over {clients_for(streams)} pool(s): "
                f"done in {time.perf_counter() - started:.1f} s"
            )
    finally:
        for clients in kinds:
            for client in clients:
                await client.aclose()
    return runs
