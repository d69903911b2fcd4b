"""Load: many concurrent streams in one process, and a soak of streams in sequence.

- **Concurrent**: N streams at once against one loopback server (its ``handler``
  answers every request with the same reply), through one ``AsyncAnthropic`` whose
  pool allows N connections; half through ``open_message_stream`` in one shared
  nursery, half through ``messages.stream``.  Every stream waits at a barrier once
  it is open, so all N are alive together when memory is measured; then all must
  complete with the right text, with no retry, and the pool must be back to idle.
  Memory per stream is tracemalloc's traced memory at the barrier over the baseline,
  divided by N; the loopback server's own allocations (``triostream/testing``) are
  left out: they are the test's, not the client's.
- **Soak**: streams in sequence on one client (a few hundred in the fast set; in the
  slow set a fixed time, mixing healthy, cut, failed, retried and cancelled streams).
  Memory is sampled after ``gc.collect()`` every 20 streams; the mean of the last
  third of the samples may exceed the mean of the first third by 16 KiB at most (the
  ``re`` and ``fnmatch`` caches filling).  Three things grow on purpose and are left
  out of the figure: the test's own records (its samples: allocations in ``tests/``),
  the loopback server's records of every request (the soak forgets them as it goes),
  and trio's deadline heap, which keeps the cancel scopes of exited deadlines until it
  prunes itself lazily at ~1000 stale entries (allocations in ``trio/_timeouts.py``
  and ``trio/_core/_run.py``: bounded by trio's design, ~130-400 KiB here; live tasks
  are checked instead).  The summary also gives the figure with trio's heap counted.
"""

from __future__ import annotations

import gc
import random
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import trio

import triostream
from tests.conftest import API_KEY, PARAMS
from tests.faults import (
    HELLO,
    STREAMS,
    TALLY,
    expect,
    library_tasks,
    pool_activity,
    with_event_at,
)
from triostream import (
    APIError,
    AsyncAnthropic,
    IncompleteStreamError,
    OverloadedError,
)
from triostream.testing import MockServer, Reply, sse_event

BODY = STREAMS["basic_response"]
TEXT = expect(BODY, ended=True, cut=IncompleteStreamError).text
TEST_SERVER = tracemalloc.Filter(False, "*/triostream/testing/*")
TEST_CODE = tracemalloc.Filter(False, "*/tests/*")
"""The tests' own bookkeeping (the soak's list of samples, the tally) is not the client's."""
TRACEMALLOC = tracemalloc.Filter(False, tracemalloc.__file__)
TRIO_DEADLINES = (
    tracemalloc.Filter(False, "*/trio/_timeouts.py"),
    tracemalloc.Filter(False, "*/trio/_core/_run.py"),
)
MAX_BYTES_PER_STREAM = 64 * 1024
"""The bound on the client-side memory of one live stream (measured: ~25 KB)."""


@pytest.fixture
def tracing() -> Iterator[None]:
    """tracemalloc on for the test (off again after it)."""
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def traced(*filters: tracemalloc.Filter) -> int:
    """Bytes traced now (after a full collection), leaving out what ``filters`` exclude."""
    return traced_views(filters)[0]


def traced_views(*views: tuple[tracemalloc.Filter, ...]) -> list[int]:
    """Bytes traced now (after a full collection), once per set of exclusions."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    return [
        sum(stat.size for stat in snapshot.filter_traces([TRACEMALLOC, *f]).statistics("filename"))
        for f in views
    ]


def rss() -> int:
    """The process's resident set size now, in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


# --- concurrent streams ----------------------------------------------------------------------


@dataclass
class Concurrent:
    """What one concurrent run measured."""

    streams: int
    seconds: float
    bytes_per_stream: float
    rss_per_stream: float


async def concurrent_streams(server: MockServer, n: int) -> Concurrent:
    """Run ``n`` streams at once (see the module docstring); return the measurements."""
    reply = Reply.sse(BODY)
    server.handler = lambda request: reply
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0))
    client = AsyncAnthropic(
        api_key=API_KEY, base_url=server.base_url, http_client=http, max_retries=0
    )
    texts: list[str] = []
    errors: list[BaseException] = []
    alive = 0
    all_alive = trio.Event()
    at_barrier: list[int] = []
    requests_before = len(server.requests)
    base = traced(TEST_SERVER)
    base_rss = rss()

    async def arrived() -> None:
        nonlocal alive
        alive += 1
        if alive == n:
            at_barrier.extend((traced(TEST_SERVER), rss()))
            all_alive.set()
        await all_alive.wait()

    async def through_messages_stream() -> None:
        try:
            async with client.messages.stream(**PARAMS) as stream:
                await arrived()
                texts.append(await stream.get_final_text())
        except Exception as exc:
            errors.append(exc)
            await arrived()

    async def through_open_message_stream(nursery: trio.Nursery) -> None:
        try:
            async with triostream.open_message_stream(nursery, client=client, **PARAMS) as stream:
                await arrived()
                texts.append(await stream.get_final_text())
        except Exception as exc:
            errors.append(exc)
            await arrived()

    start = time.perf_counter()
    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            for i in range(n):
                if i % 2:
                    nursery.start_soon(through_messages_stream)
                else:
                    nursery.start_soon(through_open_message_stream, nursery)
    seconds = time.perf_counter() - start
    assert errors == []
    assert texts == [TEXT] * n
    assert len(server.requests) - requests_before == n  # no stream needed a retry
    assert library_tasks() == []
    assert pool_activity(client) == []  # the pool is back to idle
    await http.aclose()
    with trio.fail_after(10):
        await server.wait_idle()
    assert all(record.closed_at is not None for record in server.connections)
    traced_at_barrier, rss_at_barrier = at_barrier
    return Concurrent(
        streams=n,
        seconds=seconds,
        bytes_per_stream=(traced_at_barrier - base) / n,
        rss_per_stream=(rss_at_barrier - base_rss) / n,
    )


def report(result: Concurrent) -> str:
    """A measurement as a line of the stress summary."""
    return (
        f"{result.streams} concurrent streams in {result.seconds:.1f} s (tracemalloc on); "
        f"client memory per live stream {result.bytes_per_stream / 1024:.1f} KiB traced, "
        f"RSS {result.rss_per_stream / 1024:.1f} KiB"
    )


async def test_100_concurrent_streams(server: MockServer, tracing: None) -> None:
    result = await concurrent_streams(server, 100)
    TALLY.measure("load: 100 concurrent", report(result))
    assert 0 < result.bytes_per_stream < MAX_BYTES_PER_STREAM


@pytest.mark.slow
async def test_1000_concurrent_streams(server: MockServer, tracing: None) -> None:
    small = await concurrent_streams(server, 100)
    large = await concurrent_streams(server, 1000)
    TALLY.measure("load: 1000 concurrent", report(large))
    TALLY.measure("load: 100 concurrent (same run)", report(small))
    assert 0 < large.bytes_per_stream < MAX_BYTES_PER_STREAM
    # Linear: a stream costs about as much among 1000 as among 100.
    assert large.bytes_per_stream < 1.5 * small.bytes_per_stream


# --- the soak ----------------------------------------------------------------------------------

KINDS = ("healthy", "16 KB chunks", "cut", "event: error", "529 then ok", "cancelled", "aclose")
OVERLOADED = sse_event({"type": "error", "error": {"type": "overloaded_error", "message": "x"}})


DROPPING = frozenset({"cut", "cancelled", "aclose"})
"""The kinds of stream whose connection cannot go back to the pool.

(A stream failed by ``event: error`` drops its connection unless the whole body
had already arrived, which on loopback it often has: then the connection is reused.)
"""


def forget_requests(server: MockServer) -> None:
    """Drop the server's records of past requests (they grow with every stream)."""
    server.requests.clear()


async def one_soak_stream(
    server: MockServer, client: AsyncAnthropic, kind: str, rnd: random.Random
) -> str:
    """Run one stream of ``kind``; check its outcome; return it."""
    cut = rnd.randrange(1, len(BODY))
    if kind == "healthy":
        server.enqueue(Reply.sse(BODY))
    elif kind == "16 KB chunks":
        server.enqueue(Reply.sse(BODY, chunking=16384))
    elif kind == "cut":
        server.enqueue(Reply.sse(BODY, disconnect_after=cut))
    elif kind == "event: error":
        server.enqueue(Reply.sse(with_event_at(BODY, rnd.randrange(1, 8), OVERLOADED)))
    elif kind == "529 then ok":
        server.enqueue(Reply.error(529, headers={"retry-after-ms": "0"}), Reply.sse(BODY))
    else:
        server.enqueue(Reply.sse(HELLO, stall_after=4))
    with trio.fail_after(10):
        if kind in ("cancelled", "aclose"):
            with trio.CancelScope() as scope:
                async with client.messages.stream(**PARAMS) as stream:
                    async for event in stream:
                        if isinstance(event, triostream.TextEvent):
                            if kind == "aclose":
                                await stream.aclose()
                                break
                            scope.cancel()
                            await trio.lowlevel.checkpoint()
            assert scope.cancelled_caught == (kind == "cancelled")
            return kind
        failure: APIError | None = None
        try:
            async with client.messages.stream(**PARAMS) as stream:
                text = await stream.get_final_text()
        except APIError as exc:
            failure = exc
        expected = {"cut": IncompleteStreamError, "event: error": OverloadedError}.get(kind)
        if expected is None:
            assert failure is None, f"{kind}: {failure!r}"
            assert text == TEXT
            return "complete"
        assert type(failure) is expected, f"{kind}: {failure!r}"
        return expected.__name__


@dataclass
class Soak:
    """What a soak measured."""

    streams: int
    seconds: float
    samples: list[int]
    """Client memory after gc, every 20 streams (trio's deadline heap left out)."""
    with_trio: list[int]
    """The same with trio's deadline heap counted."""
    rss: tuple[int, int]
    connections: int
    """Connections the soak opened (the warm-up's aside)."""
    expected_connections: tuple[int, int]
    """The fewest and most connections the soak may open: one after each stream whose
    connection had to be dropped, none after the others."""

    @property
    def growth(self) -> float:
        """Mean of the last third of the samples minus mean of the first third, in bytes."""
        third = max(len(self.samples) // 3, 1)
        first, last = self.samples[:third], self.samples[-third:]
        return sum(last) / len(last) - sum(first) / len(first)

    def line(self) -> str:
        """The soak as a line of the stress summary."""

        def kib(samples: list[int]) -> str:
            return f"{samples[0] / 1024:.0f}..{max(samples) / 1024:.0f}..{samples[-1] / 1024:.0f}"

        return (
            f"{self.streams} streams in {self.seconds:.0f} s; client memory after gc "
            f"(first..max..last, KiB) {kib(self.samples)}, growth first->last third "
            f"{self.growth / 1024:+.1f} KiB; with trio's deadline heap {kib(self.with_trio)}; "
            f"RSS {self.rss[0] / 2**20:.1f} -> {self.rss[1] / 2**20:.1f} MiB"
        )


async def soak(
    server: MockServer, kinds: tuple[str, ...], *, count: int | None, seconds: float | None
) -> Soak:
    """Streams in sequence on one client, until ``count`` streams or ``seconds`` have passed."""
    client = AsyncAnthropic(api_key=API_KEY, base_url=server.base_url, max_retries=1)
    rnd = random.Random("soak")
    filters = (TEST_SERVER, TEST_CODE, *TRIO_DEADLINES)
    samples: list[int] = []
    with_trio: list[int] = []
    start = time.perf_counter()
    first_rss = rss()
    every = 20
    n = 0
    # Warm up: the first streams fill caches (imports, re, msgspec, the connection), and
    # so does the first snapshot (fnmatch's, for the filters).
    for _ in range(5):
        for kind in kinds:
            await one_soak_stream(server, client, kind, rnd)
    traced_views(filters, (TEST_SERVER, TEST_CODE))
    forget_requests(server)
    connections_before = len(server.connections)
    fewest = most = 0
    needs_connection = maybe_needs = kinds[-1] in DROPPING
    while True:
        kind = kinds[n % len(kinds)]
        fewest += needs_connection
        most += maybe_needs
        needs_connection = kind in DROPPING
        maybe_needs = needs_connection or kind == "event: error"
        outcome = await one_soak_stream(server, client, kind, rnd)
        forget_requests(server)
        TALLY.record("soak", None if kind == "healthy" else kind, outcome)
        n += 1
        if n % every == 0:
            without, with_heap = traced_views(filters, (TEST_SERVER, TEST_CODE))
            samples.append(without)
            with_trio.append(with_heap)
            assert library_tasks() == []
            assert pool_activity(client) == []
        if count is not None and n >= count:
            break
        if seconds is not None and time.perf_counter() - start > seconds and len(samples) >= 9:
            break
    elapsed = time.perf_counter() - start
    assert pool_activity(client) == []
    connections = len(server.connections) - connections_before
    await client.aclose()
    with trio.fail_after(10):
        await server.wait_idle()
    assert all(record.closed_at is not None for record in server.connections)
    return Soak(
        streams=n,
        seconds=elapsed,
        samples=samples,
        with_trio=with_trio,
        rss=(first_rss, rss()),
        connections=connections,
        expected_connections=(fewest, most),
    )


async def test_soak_a_few_hundred_streams(server: MockServer, tracing: None) -> None:
    result = await soak(server, KINDS, count=280, seconds=None)
    TALLY.measure("soak (fast): mixed streams", result.line())
    assert result.growth < 16 * 1024, result.line()
    # Healthy and retried streams drain their body and hand the connection back.
    fewest, most = result.expected_connections
    assert fewest <= result.connections <= most


@pytest.mark.slow
async def test_soak_for_a_minute(server: MockServer, tracing: None) -> None:
    result = await soak(server, KINDS, count=None, seconds=60)
    TALLY.measure("soak (60 s): mixed streams", result.line())
    assert result.growth < 16 * 1024, result.line()
    fewest, most = result.expected_connections
    assert fewest <= result.connections <= most
