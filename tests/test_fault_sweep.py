"""The fault sweep: every stream, cut, stalled, refused and interrupted at every position.

For every recorded fixture and synthetic stream (``tests/faults.py``: ``STREAMS``)
each fault is injected at every position (or a sample of them, in the fast set):

- the connection cut after byte offset *k* (``disconnect_after=k``);
- the server stalling after event *n* (``stall_after=n``), caught by ``idle_timeout``
  or the read timeout, on trio's MockClock;
- an error status on the first try, then the stream (``retry-after-ms: 0``);
- ``event: error``, or an event whose data is not JSON, inserted after event *n*.

Every run must end in the exact final message or the right triostream exception
with the snapshot holding exactly the events that arrived whole (the oracle is the
sans-IO core on the same bytes), and nothing may be left: no task, no active pooled
connection; at the end of each test, once the client is closed, no open connection.
One client serves every run of a test.  The fast set samples; ``-m slow`` sweeps all.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tests.conftest import API_KEY
from tests.faults import (
    STREAMS,
    TALLY,
    check,
    event_ends,
    expect,
    rotate,
    run_stream,
    sample_offsets,
    with_event_at,
)
from triostream import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncAnthropic,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    IncompleteStreamError,
    InternalServerError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    UnprocessableEntityError,
)
from triostream.testing import (
    PING_EVENT,
    Chunking,
    MockServer,
    Reply,
    split_sse_events,
    sse_event,
)

NAMES = sorted(STREAMS)
NO_WAIT = {"retry-after-ms": "0"}
CHUNKINGS: tuple[Chunking, ...] = ("event", 16384, 7)
"""One HTTP chunk per event, the whole body in one chunk, 7-byte chunks."""

ERROR_TYPES: dict[str, type[APIStatusError]] = {
    "overloaded_error": OverloadedError,
    "rate_limit_error": RateLimitError,
    "api_error": InternalServerError,
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "request_too_large": RequestTooLargeError,
    "some_future_error": APIStatusError,
}
"""An ``event: error``'s type and the class it must raise (written out here, not derived)."""

RETRIED: dict[str, Reply] = {
    "408": Reply.error(408, headers=NO_WAIT),
    "409": Reply.error(409, headers=NO_WAIT),
    "429": Reply.error(429, headers=NO_WAIT),
    "500": Reply.error(500, headers=NO_WAIT),
    "503": Reply.error(503, headers=NO_WAIT),
    "529": Reply.error(529, headers=NO_WAIT),
    "502 html": Reply.error_text(502, "<html>Bad Gateway</html>", headers=NO_WAIT),
    "400 x-should-retry": Reply.error(400, headers={**NO_WAIT, "x-should-retry": "true"}),
}
"""Error replies the client retries (once, at once): the stream that follows must work."""

REFUSED: dict[str, tuple[Reply, type[APIStatusError]]] = {
    "400": (Reply.error(400), BadRequestError),
    "401": (Reply.error(401), AuthenticationError),
    "403": (Reply.error(403), PermissionDeniedError),
    "404": (Reply.error(404), NotFoundError),
    "413": (Reply.error(413), RequestTooLargeError),
    "422": (Reply.error(422, type="invalid_request_error"), UnprocessableEntityError),
    "422 untyped": (Reply.error_text(422, "unprocessable"), UnprocessableEntityError),
    "409 x-should-retry false": (
        Reply.error(409, headers={"x-should-retry": "false"}),
        ConflictError,
    ),
    "529 x-should-retry false": (
        Reply.error(529, headers={"x-should-retry": "false"}),
        OverloadedError,
    ),
}
"""Error replies the client must not retry: ``__aenter__`` raises the class."""


MakeClient = Callable[..., AsyncAnthropic]


@pytest.fixture
async def make_client(server: MockServer) -> AsyncIterator[MakeClient]:
    """Makes the one client of a test (closed at the end even when the test fails)."""
    made: list[AsyncAnthropic] = []

    def make(**options: Any) -> AsyncAnthropic:
        client = AsyncAnthropic(api_key=API_KEY, base_url=server.base_url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def close_and_check(client: AsyncAnthropic, server: MockServer) -> None:
    """Close the client; every connection the server saw must then be closed."""
    await client.aclose()
    with trio.fail_after(5):
        await server.wait_idle()
    assert server.connections
    assert all(record.closed_at is not None for record in server.connections)


def error_event(error_type: str) -> bytes:
    """An ``event: error`` as the API sends it."""
    return sse_event(
        {"type": "error", "error": {"type": error_type, "message": f"injected {error_type}"}}
    )


BAD_DATA = b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0,\n\n'
"""An event whose data is not JSON."""


# --- cut after byte offset k ---------------------------------------------------------------


async def sweep_cuts(
    server: MockServer,
    make_client: MakeClient,
    name: str,
    offsets: list[int],
    chunking: Chunking,
    sweep: str,
) -> None:
    body = STREAMS[name]
    client = make_client(max_retries=0)
    for run, k in enumerate(offsets):
        server.enqueue(Reply.sse(body, chunking=chunking, disconnect_after=k))
        expected = expect(body[:k], ended=False, cut=IncompleteStreamError)
        entry, consumer = rotate(run)
        label = f"{name} chunking={chunking} cut at {k}/{len(body)} via {entry}"
        enter_error, seen = await run_stream(client, entry=entry, consumer=consumer, label=label)
        assert enter_error is None, f"{label}: {enter_error!r}"
        assert seen is not None
        TALLY.record(sweep, "disconnect_after", check(seen, expected, consumer, label))
    assert len(server.requests) == len(offsets)  # a cut after the headers is never retried
    await close_and_check(client, server)


@pytest.mark.parametrize("name", NAMES)
async def test_cut_at_sampled_offsets(
    server: MockServer, make_client: MakeClient, name: str
) -> None:
    body = STREAMS[name]
    offsets = sample_offsets(body, extra=8, seed=name)
    await sweep_cuts(server, make_client, name, offsets, "event", "cut (fast sample)")


@pytest.mark.slow
@pytest.mark.parametrize("chunking", ["event", 16384])
@pytest.mark.parametrize("name", NAMES)
async def test_cut_at_every_offset(
    server: MockServer, make_client: MakeClient, name: str, chunking: Chunking
) -> None:
    body = STREAMS[name]
    await sweep_cuts(
        server, make_client, name, list(range(len(body) + 1)), chunking, "cut (every offset)"
    )


# --- stall after event n -------------------------------------------------------------------

IDLE = 1.0
PING_EVERY = 0.4  # two pings while a stream is stalled, before IDLE runs out


def stall_cases() -> Iterator[tuple[str, int]]:
    """(stream, n) for every stream and every n from 0 (no event) to all its events."""
    for name in NAMES:
        for n in range(len(split_sse_events(STREAMS[name])) + 1):
            yield name, n


async def sweep_stalls(
    server: MockServer,
    make_client: MakeClient,
    clock: trio.testing.MockClock,
    mode: str,
    cases: list[tuple[str, int]],
) -> None:
    # Timers wait on trio's clock; it jumps once every task has been blocked 10 ms of
    # real time (the loopback server's bytes are already in the kernel by then).
    clock.autojump_threshold = 0.01
    if mode == "read timeout":
        client = make_client(max_retries=0, timeout=httpx.Timeout(None, read=IDLE))
    else:
        client = make_client(max_retries=0, timeout=httpx.Timeout(None), idle_timeout=IDLE)
    for run, (name, n) in enumerate(cases):
        body = STREAMS[name]
        chunks = split_sse_events(body)
        pings = mode == "idle_timeout, pings while stalled"
        server.enqueue(
            Reply.sse(
                body,
                stall_after=n,
                pings_while_stalled=PING_EVERY if pings else None,
            )
        )
        received = b"".join(chunks[:n]) + (PING_EVENT * math.floor(IDLE / PING_EVERY) * pings)
        expected = expect(received, ended=False, cut=APITimeoutError)
        entry, consumer = rotate(run)
        label = f"{name} stalled after event {n}/{len(chunks)} ({mode}) via {entry}"
        start = trio.current_time()
        enter_error, seen = await run_stream(client, entry=entry, consumer=consumer, label=label)
        assert enter_error is None, f"{label}: {enter_error!r}"
        assert seen is not None
        outcome = check(seen, expected, consumer, label)
        if outcome == "APITimeoutError":
            # Caught by the timeout, not earlier, and not much later (the clock is a float).
            elapsed = trio.current_time() - start
            assert IDLE - 1e-9 <= elapsed < IDLE + 1, f"{label}: after {elapsed} s"
        TALLY.record("stall", f"stall_after ({mode})", outcome)
    await close_and_check(client, server)


async def test_stall_at_every_event_of_three_streams(
    server: MockServer, make_client: MakeClient, mock_clock: trio.testing.MockClock
) -> None:
    cases = [c for c in stall_cases() if c[0] in ("basic_response", "tools", "unicode_crlf")]
    await sweep_stalls(server, make_client, mock_clock, "idle_timeout", cases)


async def test_stall_sampled_with_pings_and_read_timeout(
    server: MockServer, make_client: MakeClient, mock_clock: trio.testing.MockClock
) -> None:
    cases = [c for c in stall_cases() if c[0] in ("tool_use_response", "thinking")]
    await sweep_stalls(
        server, make_client, mock_clock, "idle_timeout, pings while stalled", cases[::3]
    )


async def test_stall_sampled_read_timeout(
    server: MockServer, make_client: MakeClient, mock_clock: trio.testing.MockClock
) -> None:
    cases = [c for c in stall_cases() if c[0] in ("citations", "refusal_response")]
    await sweep_stalls(server, make_client, mock_clock, "read timeout", cases[::2])


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode", ["idle_timeout", "idle_timeout, pings while stalled", "read timeout"]
)
async def test_stall_at_every_event(
    server: MockServer, make_client: MakeClient, mock_clock: trio.testing.MockClock, mode: str
) -> None:
    await sweep_stalls(server, make_client, mock_clock, mode, list(stall_cases()))


# --- an error status first, then the stream ------------------------------------------------


async def sweep_statuses(
    server: MockServer, make_client: MakeClient, cases: list[tuple[str, str]]
) -> None:
    client = make_client(max_retries=1)
    requests = 0
    for run, (name, status) in enumerate(cases):
        body = STREAMS[name]
        entry, consumer = rotate(run)
        label = f"{name} after a {status} via {entry}"
        if status in RETRIED:
            server.enqueue(RETRIED[status], Reply.sse(body))
            requests += 2
            expected = expect(body, ended=True, cut=IncompleteStreamError)
            enter_error, seen = await run_stream(
                client, entry=entry, consumer=consumer, label=label
            )
            assert enter_error is None, f"{label}: {enter_error!r}"
            assert seen is not None
            outcome = check(seen, expected, consumer, label)
        else:
            reply, cls = REFUSED[status]
            server.enqueue(reply)
            requests += 1
            enter_error, seen = await run_stream(
                client, entry=entry, consumer=consumer, label=label
            )
            assert seen is None, f"{label}: the stream opened"
            assert type(enter_error) is cls, f"{label}: {enter_error!r}"
            outcome = cls.__name__
        assert len(server.requests) == requests, label
        TALLY.record("error status first", f"status {status}", outcome)
    assert server.queued == 0
    # Every response was read to its end, so one connection served every request.
    assert len(server.connections) == 1
    await close_and_check(client, server)


async def test_every_status_before_one_stream_and_one_status_before_every_stream(
    server: MockServer, make_client: MakeClient
) -> None:
    statuses = [*RETRIED, *REFUSED]
    cases = [("tools", status) for status in statuses]
    cases += [(name, statuses[i % len(RETRIED)]) for i, name in enumerate(NAMES)]
    await sweep_statuses(server, make_client, cases)


@pytest.mark.slow
async def test_every_status_before_every_stream(
    server: MockServer, make_client: MakeClient
) -> None:
    await sweep_statuses(server, make_client, [(n, s) for n in NAMES for s in [*RETRIED, *REFUSED]])


# --- event: error and bad data after event n -----------------------------------------------


async def sweep_injected(
    server: MockServer,
    make_client: MakeClient,
    name: str,
    kind: str,
    positions: list[int],
    chunkings: tuple[Chunking, ...],
    sweep: str,
) -> None:
    body = STREAMS[name]
    stop_at = stop_position(name)
    client = make_client(max_retries=0)
    run = 0
    for chunking in chunkings:
        for n in positions:
            error_type = list(ERROR_TYPES)[n % len(ERROR_TYPES)]
            injected = error_event(error_type) if kind == "event: error" else BAD_DATA
            faulted = with_event_at(body, n, injected)
            server.enqueue(Reply.sse(faulted, chunking=chunking))
            expected = expect(faulted, ended=True, cut=IncompleteStreamError)
            if n <= stop_at:
                # Reached before message_stop: the injected event decides, whatever came first.
                cls = ERROR_TYPES[error_type] if kind == "event: error" else None
                if cls is not None:
                    assert expected.error is cls, (name, n, expected)
            entry, consumer = rotate(run)
            run += 1
            label = f"{name} with {kind} after event {n} chunking={chunking} via {entry}"
            enter_error, seen = await run_stream(
                client, entry=entry, consumer=consumer, label=label
            )
            assert enter_error is None, f"{label}: {enter_error!r}"
            assert seen is not None
            TALLY.record(sweep, kind, check(seen, expected, consumer, label))
    await close_and_check(client, server)


def stop_position(name: str) -> int:
    """How many events of the stream come before its ``message_stop``."""
    return next(i for i, p in enumerate(split_sse_events(STREAMS[name])) if b"message_stop" in p)


@pytest.mark.parametrize("kind", ["event: error", "bad data"])
@pytest.mark.parametrize("name", NAMES)
async def test_injected_event_at_every_position_before_the_end(
    server: MockServer, make_client: MakeClient, name: str, kind: str
) -> None:
    positions = list(range(stop_position(name) + 1))
    await sweep_injected(
        server, make_client, name, kind, positions, CHUNKINGS[:2], f"{kind} injected"
    )


@pytest.mark.parametrize("kind", ["event: error", "bad data"])
async def test_an_event_after_message_stop_is_never_looked_at(
    server: MockServer, make_client: MakeClient, kind: str
) -> None:
    """The stream is complete at ``message_stop``, whatever follows it in the same chunk."""
    for name in NAMES:
        after_stop = [stop_position(name) + 1]
        await sweep_injected(
            server, make_client, name, kind, after_stop, CHUNKINGS, f"{kind} after message_stop"
        )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["event: error", "bad data"])
@pytest.mark.parametrize("name", NAMES)
async def test_injected_event_every_chunking(
    server: MockServer, make_client: MakeClient, name: str, kind: str
) -> None:
    positions = list(range(len(event_ends(STREAMS[name])) + 1))
    await sweep_injected(
        server, make_client, name, kind, positions, CHUNKINGS, f"{kind} injected (all)"
    )


# --- hostile event data through the trio layer ---------------------------------------------

DEEP = 100_000
HOSTILE: dict[str, bytes] = {
    "nested 100k deep": (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"x","junk":' + b"[" * DEEP + b"]" * DEEP + b"}}\n\n"
    ),
    "a wrong type, then bad JSON": (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":"x" ,,\n\n'
    ),
    "an unknown event, then bad JSON": b'event: future\ndata: {"type":"future","x":1 x\n\n',
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_hostile_event_data_fails_the_stream_cleanly(
    server: MockServer, make_client: MakeClient, kind: str
) -> None:
    """APIResponseValidationError from every consumer, the snapshot kept, nothing left."""
    client = make_client(max_retries=0)
    run = 0
    for name in ("basic_response", "tools"):
        pieces = split_sse_events(STREAMS[name])
        for n in range(stop_position(name) + 1):
            faulted = with_event_at(STREAMS[name], n, HOSTILE[kind])
            server.enqueue(Reply.sse(faulted, chunking=CHUNKINGS[n % 2]))
            before = expect(b"".join(pieces[:n]), ended=False, cut=IncompleteStreamError)
            entry, consumer = rotate(run)
            run += 1
            label = f"{name} with {kind} after event {n} via {entry}"
            enter_error, seen = await run_stream(
                client, entry=entry, consumer=consumer, label=label
            )
            assert enter_error is None, f"{label}: {enter_error!r}"
            assert seen is not None
            assert type(seen.error) is APIResponseValidationError, f"{label}: {seen.error!r}"
            assert type(seen.final_error) is APIResponseValidationError, label
            assert seen.snapshot == before.snapshot, f"{label}: the snapshot differs"
            TALLY.record("hostile event data", kind, type(seen.error).__name__)
    await close_and_check(client, server)


# --- sanity: the sweeps can fail ---------------------------------------------------------


def test_the_oracle_tells_the_faults_apart() -> None:
    body = STREAMS["basic_response"]
    ends = event_ends(body)
    whole = expect(body, ended=True, cut=IncompleteStreamError)
    assert whole.error is None
    assert whole.text == "Hello there!"
    cut = expect(body[: ends[3]], ended=False, cut=IncompleteStreamError)
    assert cut.error is IncompleteStreamError
    assert cut.snapshot != whole.snapshot
    assert cut.event_types == whole.event_types[: len(cut.event_types)]
    # One byte short of an event's blank line: that event did not arrive whole.
    short = expect(body[: ends[3] - 1], ended=False, cut=IncompleteStreamError)
    assert len(short.event_types) < len(cut.event_types)
    # The recording ends without a blank line: a cut there is not a complete stream...
    assert expect(body, ended=False, cut=APIConnectionError).error is APIConnectionError
    # ...and an error event counts only before message_stop.
    early = with_event_at(body, 2, error_event("overloaded_error"))
    assert expect(early, ended=True, cut=IncompleteStreamError).error is OverloadedError
    late = with_event_at(body, len(ends), error_event("overloaded_error"))
    assert expect(late, ended=True, cut=IncompleteStreamError).error is None
