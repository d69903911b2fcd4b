"""What the reliability sweeps share: the streams, the oracle, one checked run, the tally.

The oracle is the sans-IO core run on exactly the bytes the client received
(:func:`expect`): a faulted stream must end in the final message those bytes
make, or in the triostream exception they call for, with the snapshot holding
exactly the events that arrived whole.  :func:`run_stream` drives one stream
over loopback HTTP and checks every promise on it; :data:`TALLY` counts runs,
faults and outcomes for the ``nox -s stress`` summary (``tests/stress_summary.py``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec
import trio

import triostream
from tests.conftest import PARAMS, RECORDED_FILES
from tests.streams import SYNTHETIC, UNKNOWN_TYPES, sse_encode, text_stream
from triostream import (
    APIError,
    APIResponseValidationError,
    AsyncAnthropic,
    AsyncMessageStream,
    IncompleteStreamError,
    MessageAccumulator,
    MessageStreamEvent,
    TextEvent,
)
from triostream.sse import SSEDecoder
from triostream.testing import MockServer, split_sse_events
from triostream.types import Message, decode_raw_event

# --- the streams --------------------------------------------------------------------------


def _streams() -> dict[str, bytes]:
    streams = {path.stem: path.read_bytes() for path in RECORDED_FILES}
    for name, events in {**SYNTHETIC, "unknown_types": UNKNOWN_TYPES}.items():
        streams[name] = sse_encode(events)
    streams["unicode_crlf"] = sse_encode(SYNTHETIC["unicode"], line_end="\r\n")
    return streams


STREAMS: Final[dict[str, bytes]] = _streams()
"""Every recorded fixture and synthetic stream, by name, as the SSE body the server sends."""

HELLO: Final = sse_encode(text_stream(["Hello", " there", "!"]))
"""A short healthy stream whose final text is ``"Hello there!"``."""


def event_ends(body: bytes) -> list[int]:
    """The offset just after each event of ``body`` (its closing blank line included)."""
    ends: list[int] = []
    position = 0
    for piece in split_sse_events(body):
        position += len(piece)
        ends.append(position)
    return ends


def sample_offsets(body: bytes, extra: int, seed: str) -> list[int]:
    """0, the end, every event boundary +-1, and ``extra`` seeded random offsets (sorted)."""
    offsets = {0, len(body)}
    for end in event_ends(body):
        offsets.update((end - 1, end, end + 1))
    rnd = random.Random(seed)
    offsets.update(rnd.randrange(len(body) + 1) for _ in range(extra))
    return sorted(o for o in offsets if 0 <= o <= len(body))


def with_event_at(body: bytes, position: int, event: bytes) -> bytes:
    """``body`` with ``event`` (one whole SSE event) inserted after its first ``position`` events.

    A recording's last event often lacks its closing blank line; one is added before
    an event inserted after it, so the inserted event stays an event of its own.
    """
    pieces = split_sse_events(body)
    before = b"".join(pieces[:position])
    if before and not before.endswith((b"\n\n", b"\r\n\r\n", b"\r\r")):
        before += b"\n" if before.endswith((b"\n", b"\r")) else b"\n\n"
    return before + event + b"".join(pieces[position:])


# --- the oracle -------------------------------------------------------------------------------


def encoded(message: Message | None) -> bytes:
    """A message as the API's JSON (``b"null"`` for None), for exact comparisons."""
    return msgspec.json.encode(message)


@dataclass(frozen=True)
class Expected:
    """How a stream must end, worked out by the sans-IO core from the received bytes."""

    error: type[BaseException] | None
    """The exception every consumer call raises; None when the stream completes."""
    snapshot: bytes
    """``current_message_snapshot`` at the end, encoded."""
    final_error: type[BaseException] | None
    """What ``get_final_message()`` raises (the stream's error, or a deferred tool-input one)."""
    event_types: tuple[str, ...]
    """The class names of the events handed out, in order."""
    text: str
    """The text deltas, joined."""

    @property
    def outcome(self) -> str:
        """``"complete"`` or the class name of the error."""
        return "complete" if self.error is None else self.error.__name__


def expect(received: bytes, *, ended: bool, cut: type[APIError]) -> Expected:
    """What a stream whose client received exactly ``received`` must end in.

    ``ended``: the body ended cleanly after these bytes (so an event lacking only its
    closing blank line still counts); otherwise the connection broke or stalled and
    ``cut`` is the error when ``message_stop`` was not among the whole events.
    Events after ``message_stop`` are never looked at: the stream is over by then.  An
    event dispatched only by the end of the body (no closing blank line) that does not
    decode was cut off: :class:`~triostream.IncompleteStreamError`.
    """
    decoder = SSEDecoder()
    accumulator = MessageAccumulator()
    out: list[MessageStreamEvent] = []
    error: type[BaseException] | None = None
    try:
        sses = decoder.feed(received)
        whole = len(sses)
        if ended:
            sses += decoder.close()
        for number, sse in enumerate(sses):
            if sse.event == "ping":
                continue
            try:
                event = decode_raw_event(sse.data)
            except APIResponseValidationError:
                if number < whole:
                    raise
                # close() dispatched it: an event cut off by the end of the body.
                error = IncompleteStreamError
                break
            accumulator.feed_into(event, out)
            if accumulator.done:
                break
    except APIError as exc:
        error = type(exc)
    if error is None and not accumulator.done:
        error = cut
    final_error = error
    if error is None:
        try:
            accumulator.final_message()
        except APIError as exc:
            final_error = type(exc)
    return Expected(
        error=error,
        snapshot=encoded(accumulator.snapshot),
        final_error=final_error,
        event_types=tuple(type(event).__name__ for event in out),
        text="".join(event.text for event in out if isinstance(event, TextEvent)),
    )


# --- one checked run --------------------------------------------------------------------------

Entry = Literal["open_message_stream", "messages.stream"]
ENTRIES: Final[tuple[Entry, ...]] = ("open_message_stream", "messages.stream")
CONSUMERS: Final = ("events", "text", "final", "until_done", "subscribe")


@dataclass
class Observed:
    """What one consumer saw of a stream, and how the stream ended."""

    error: BaseException | None = None
    items: list[object] = field(default_factory=list)
    snapshot: bytes = b"null"
    final_error: BaseException | None = None
    final: bytes | None = None


async def _consume(stream: AsyncMessageStream, consumer: str, seen: Observed) -> None:
    if consumer == "events":
        async for event in stream:
            seen.items.append(event)
    elif consumer == "text":
        async for text in stream.text_stream:
            seen.items.append(text)
    elif consumer == "final":
        await stream.get_final_message()
    elif consumer == "until_done":
        await stream.until_done()
    elif consumer == "subscribe":
        async with stream.subscribe() as channel:
            async for event in channel:
                seen.items.append(event)
        await stream.until_done()  # the channel just ends; the outcome is told here
    else:
        raise ValueError(consumer)


async def observe(stream: AsyncMessageStream, consumer: str) -> Observed:
    """Consume ``stream`` one way, then read its snapshot and final message."""
    seen = Observed()
    try:
        await _consume(stream, consumer, seen)
    except Exception as exc:
        seen.error = exc
    seen.snapshot = encoded(stream.current_message_snapshot)
    try:
        seen.final = encoded(await stream.get_final_message())
    except Exception as exc:
        seen.final_error = exc
    return seen


def library_tasks() -> list[str]:
    """Names of the live tasks triostream started, anywhere in the run (the test server aside)."""
    names: list[str] = []
    root = trio.lowlevel.current_root_task()
    pending = [] if root is None else [root]
    while pending:
        task = pending.pop()
        if task.name.startswith("triostream.") and not task.name.startswith("triostream.testing"):
            names.append(task.name)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return names


async def assert_nothing_left(
    client: AsyncAnthropic, server: MockServer, *, wait: float = 5.0
) -> None:
    """No triostream task is alive, and closing the client closes every connection.

    ``wait`` bounds the wait for the server to see them closed (generous on a virtual clock).
    """
    assert library_tasks() == []
    await client.aclose()
    with trio.fail_after(wait):
        await server.wait_idle()
    assert server.connections
    assert all(record.closed_at is not None for record in server.connections)


def pool_activity(client: AsyncAnthropic) -> list[str]:
    """The pool's connections that are neither idle nor closed, and requests still queued.

    httpx keeps its httpcore pool in private attributes; a test may look.
    """
    pool: Any = client.http_client._transport._pool  # type: ignore[attr-defined]
    busy = [repr(c) for c in pool.connections if not (c.is_idle() or c.is_closed())]
    return busy + [repr(r) for r in pool._requests]


class Escaped(AssertionError):
    """Something other than the expected triostream exception came out of a stream."""


async def run_stream(
    client: AsyncAnthropic,
    *,
    entry: Entry,
    consumer: str,
    label: str,
    body: Callable[[AsyncMessageStream, str], Awaitable[Observed]] = observe,
    **params: Any,
) -> tuple[BaseException | None, Observed | None]:
    """One stream through ``entry``: ``(error from __aenter__, what the consumer observed)``.

    Fails (:class:`Escaped`) if anything but an :class:`~triostream.APIError` comes out
    of ``__aenter__`` (an ExceptionGroup, a bare KeyError, ...), if a task of the
    stream outlives its block, or if the pool is left with an active connection.
    """
    arguments = {**PARAMS, **params}
    enter_error: BaseException | None = None
    seen: Observed | None = None
    leftover: list[trio.lowlevel.Task] = []
    with trio.fail_after(10):
        try:
            if entry == "open_message_stream":
                async with trio.open_nursery() as nursery:
                    try:
                        async with triostream.open_message_stream(
                            nursery, client=client, **arguments
                        ) as stream:
                            seen = await body(stream, consumer)
                    except APIError as exc:
                        enter_error = exc
                    leftover = list(nursery.child_tasks)
            else:
                try:
                    async with client.messages.stream(**arguments) as stream:
                        seen = await body(stream, consumer)
                except APIError as exc:
                    enter_error = exc
        except trio.Cancelled:
            raise
        except BaseException as exc:
            raise Escaped(f"{label}: {exc!r} escaped the stream") from exc
    if leftover:
        raise Escaped(f"{label}: tasks left in the stream's nursery: {leftover}")
    if tasks := library_tasks():
        raise Escaped(f"{label}: triostream tasks still alive: {tasks}")
    if busy := pool_activity(client):
        raise Escaped(f"{label}: the pool is not idle: {busy}")
    return enter_error, seen


def check(seen: Observed, expected: Expected, consumer: str, label: str) -> str:
    """Assert that ``seen`` is what ``expected`` says; return the outcome's name."""
    where = f"{label} [{consumer}]"
    assert seen.snapshot == expected.snapshot, f"{where}: the snapshot differs"
    if expected.error is None:
        if consumer == "final" and expected.final_error is not None:
            assert type(seen.error) is expected.final_error, f"{where}: {seen.error!r}"
        else:
            assert seen.error is None, f"{where}: {seen.error!r}"
    else:
        assert type(seen.error) is expected.error, (
            f"{where}: expected {expected.error.__name__}, got {seen.error!r}"
        )
    if expected.final_error is None:
        assert seen.final_error is None, f"{where}: {seen.final_error!r}"
        assert seen.final == expected.snapshot, f"{where}: the final message differs"
    else:
        assert type(seen.final_error) is expected.final_error, f"{where}: {seen.final_error!r}"
    if consumer in ("events", "subscribe"):
        types = tuple(type(item).__name__ for item in seen.items)
        assert types == expected.event_types, f"{where}: the events differ"
    elif consumer == "text":
        assert "".join(map(str, seen.items)) == expected.text, f"{where}: the text differs"
    return expected.outcome


def rotate(index: int) -> tuple[Entry, str]:
    """The entry point and consumer for the ``index``-th run of a sweep (all pairs in turn)."""
    return ENTRIES[index % len(ENTRIES)], CONSUMERS[(index // len(ENTRIES)) % len(CONSUMERS)]


# --- the tally -----------------------------------------------------------------------------


class Tally:
    """Runs, faults injected and outcomes by class, per sweep; and measurements."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.faults: Counter[tuple[str, str]] = Counter()
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.measurements: dict[str, str] = {}

    def record(self, sweep: str, fault: str | None, outcome: str) -> None:
        """Count one run of ``sweep`` with ``fault`` injected (or None) ending in ``outcome``."""
        self.runs[sweep] += 1
        if fault is not None:
            self.faults[(sweep, fault)] += 1
        self.outcomes[(sweep, outcome)] += 1

    def measure(self, name: str, text: str) -> None:
        """Keep a measurement for the summary."""
        self.measurements[name] = text

    def lines(self) -> list[str]:
        """The summary, as lines of text."""
        lines: list[str] = []
        for sweep in sorted(self.runs):
            faults = {f: n for (s, f), n in self.faults.items() if s == sweep}
            outcomes = {o: n for (s, o), n in self.outcomes.items() if s == sweep}
            lines.append(
                f"{sweep}: {self.runs[sweep]} runs, {sum(faults.values())} faults injected"
            )
            if faults:
                lines.append("    faults:   " + _counts(faults))
            lines.append("    outcomes: " + _counts(outcomes))
        if self.runs:
            total_faults = sum(self.faults.values())
            all_outcomes: Counter[str] = Counter()
            for (_, outcome), n in self.outcomes.items():
                all_outcomes[outcome] += n
            lines.append(
                f"TOTAL: {sum(self.runs.values())} runs, {total_faults} faults injected; "
                + _counts(dict(all_outcomes))
            )
        lines.extend(f"{name}: {text}" for name, text in sorted(self.measurements.items()))
        return lines


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))


TALLY: Final = Tally()
"""The tally of this pytest run (printed by ``-p tests.stress_summary``)."""
