"""The consumers under test: each reads one whole stream from the loopback server.

Every consumer is opened once per benchmark process (its client and connection
pool live across rounds) and then consumes streams with :meth:`Consumer.consume`,
returning a :class:`Outcome`. All of them run inside one ``trio.run``; the
synchronous ones run in a worker thread (``trio.to_thread``) so that nothing
else in the process uses CPU while they do.

The consumers do nothing with the events but count them and, at the end, take
the final message (triostream and the SDK accumulate it as the stream goes
anyway), which the benchmark checks against the stream it asked for after the
clock has stopped.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import msgspec
import trio

from .streams import RAW_EVENT_TYPES, StreamSpec

if TYPE_CHECKING:
    import triostream

__all__ = [
    "CONSUMERS",
    "AnthropicAsync",
    "AnthropicSync",
    "Consumer",
    "Floor",
    "Outcome",
    "TriostreamFanout",
    "TriostreamSingle",
    "TriostreamSubscribe",
    "TriostreamSync",
    "available_consumers",
]

API_KEY = "sk-ant-bench-0000"
MAX_TOKENS = 1024
MESSAGES = [{"role": "user", "content": "Write a long answer, please."}]
#: Time-boxed consumers look at the clock every this many events.
CLOCK_EVERY = 256
EXTRA_READERS = 3


@dataclass
class Outcome:
    """What one consumption produced: a count, the final message, and whether it finished.

    ``samples`` (time-boxed runs only) are ``(raw events so far, CPU s, wall s)``
    from the start of the run, for extrapolating a run that was cut short.
    """

    events: int
    message: Any = None
    complete: bool = True
    samples: list[tuple[int, float, float]] = field(default_factory=list)


def request_params(spec: StreamSpec) -> dict[str, Any]:
    """The ``messages.stream`` keyword arguments that ask the server for ``spec``."""
    return {"model": spec.key, "max_tokens": MAX_TOKENS, "messages": MESSAGES}


class Consumer:
    """A way of consuming a stream; subclasses set ``name`` and implement ``_consume``.

    ``budget`` (CPU seconds) asks a consumer that supports it to stop early
    and report samples instead of finishing (only the official SDK needs it).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    sync: ClassVar[bool] = False
    time_boxed: ClassVar[bool] = False
    max_events: ClassVar[int | None] = None
    """Streams with more wire events than this are skipped (to keep the run short)."""

    def __init__(self, base_url: str, *, max_connections: int = 100) -> None:
        """A consumer of the server at ``base_url`` with a pool of ``max_connections``."""
        self.base_url = base_url
        self.max_connections = max_connections
        self._stack = AsyncExitStack()

    async def open(self) -> None:
        """Create the client (and its connection pool)."""

    async def aclose(self) -> None:
        """Close the client."""
        await self._stack.aclose()

    async def consume(self, spec: StreamSpec, budget: float | None = None) -> Outcome:
        """Consume the whole stream ``spec`` (or, time-boxed, a prefix of it)."""
        raise NotImplementedError

    def limits(self) -> httpx.Limits:
        """Pool limits for ``max_connections`` concurrent streams, all kept alive, never expiring.

        (With httpx's default expiry of 5 s, a consumer whose turn comes after a slow
        one would reconnect, and pay a TCP handshake inside its timing.)
        """
        return httpx.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_connections,
            keepalive_expiry=None,
        )


# --- the floor ---------------------------------------------------------------------------------


class Floor(Consumer):
    """httpx under trio reading the bytes and msgspec-decoding each event's data to a dict."""

    name = "floor"
    description = "httpx.AsyncClient + msgspec.json.decode of each event (nothing else)"

    async def open(self) -> None:
        """Create the ``httpx.AsyncClient``."""
        self._http = await self._stack.enter_async_context(
            httpx.AsyncClient(limits=self.limits(), timeout=600.0)
        )
        self._url = self.base_url + "/v1/messages"
        self._headers = {
            "x-api-key": API_KEY,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
            "accept": "text/event-stream",
        }

    async def consume(self, spec: StreamSpec, budget: float | None = None) -> Outcome:
        """POST, then split the body on blank lines and decode each ``data:`` line."""
        return await self.read(spec)

    async def read(
        self, spec: StreamSpec, hold: Callable[[], Awaitable[None]] | None = None
    ) -> Outcome:
        """:meth:`consume`; ``hold`` (if given) is awaited at the end, the response still open."""
        body = msgspec.json.encode({**request_params(spec), "stream": True})
        decode = msgspec.json.decode
        count = 0
        async with self._http.stream(
            "POST", self._url, headers=self._headers, content=body
        ) as response:
            tail = b""
            async for chunk in response.aiter_raw():
                if tail:
                    chunk = tail + chunk
                parts = chunk.split(b"\n\n")
                tail = parts.pop()
                for part in parts:
                    start = part.find(b"data: ")
                    decode(memoryview(part)[start + 6 :])
                    count += 1
            if hold is not None:
                await hold()
        return Outcome(count)


# --- triostream --------------------------------------------------------------------------------


class _Triostream(Consumer):
    async def open(self) -> None:
        import triostream

        http = await self._stack.enter_async_context(
            httpx.AsyncClient(limits=self.limits(), timeout=600.0)
        )
        self._client = triostream.AsyncAnthropic(
            api_key=API_KEY, base_url=self.base_url, max_retries=0, http_client=http
        )
        self._open_stream = triostream.open_message_stream


async def _count(iterator: Any) -> int:
    count = 0
    async for _ in iterator:
        count += 1
    return count


class TriostreamSingle(_Triostream):
    """``open_message_stream`` and one ``async for event in stream``."""

    name = "triostream"
    description = "triostream open_message_stream, one `async for event in stream`"

    async def consume(self, spec: StreamSpec, budget: float | None = None) -> Outcome:
        """Iterate every event, then take the final message."""
        async with trio.open_nursery() as nursery:
            return await self.consume_in(nursery, spec)

    async def consume_in(
        self,
        nursery: trio.Nursery,
        spec: StreamSpec,
        hold: Callable[[], Awaitable[None]] | None = None,
    ) -> Outcome:
        """The same, with the stream's tasks in ``nursery`` (shared by concurrent streams).

        ``hold`` (if given) is awaited at the end, the stream still open.
        """
        async with self._open_stream(
            nursery, client=self._client, **request_params(spec)
        ) as stream:
            count = 0
            async for _ in stream:
                count += 1
            message = await stream.get_final_message()
            if hold is not None:
                await hold()
        return Outcome(count, message)


class _TriostreamExtras(_Triostream):
    """One ``async for`` plus ``EXTRA_READERS`` more consumers of the same stream, concurrently."""

    async def consume(self, spec: StreamSpec, budget: float | None = None) -> Outcome:
        """Every consumer sees every event; the counts must agree."""
        async with (
            trio.open_nursery() as nursery,
            self._open_stream(nursery, client=self._client, **request_params(spec)) as stream,
        ):
            counts: list[int] = []

            async def extra() -> None:
                counts.append(await self.extra(stream))

            async with trio.open_nursery() as readers:
                for _ in range(EXTRA_READERS):
                    readers.start_soon(extra)
                counts.append(await _count(stream))
            message = await stream.get_final_message()
        if len(set(counts)) != 1:
            raise AssertionError(f"the consumers saw different numbers of events: {counts}")
        return Outcome(counts[0], message)

    async def extra(self, stream: Any) -> int:
        """One extra consumer: how many events it saw."""
        raise NotImplementedError


class TriostreamFanout(_TriostreamExtras):
    """One ``async for`` plus three more concurrent ``async for`` readers of the same stream."""

    name = "triostream +3 readers"
    description = "triostream, 4 concurrent `async for event in stream` (1 + 3 extra)"

    async def extra(self, stream: Any) -> int:
        """Another ``async for event in stream``."""
        return await _count(stream)


class TriostreamSubscribe(_TriostreamExtras):
    """One ``async for`` plus three ``stream.subscribe()`` channels read concurrently."""

    name = "triostream +3 subscribe()"
    description = "triostream, one `async for` + 3 `stream.subscribe()` channels"

    async def extra(self, stream: Any) -> int:
        """A ``stream.subscribe()`` channel, read to its end."""
        channel: triostream.Subscription
        async with stream.subscribe() as channel:
            return await _count(channel)


class TriostreamSync(Consumer):
    """The sync twin: ``triostream.Anthropic`` and ``for event in stream``."""

    name = "triostream sync"
    description = "triostream.Anthropic (sync twin), `for event in stream`"
    sync = True

    async def open(self) -> None:
        """Create the ``triostream.Anthropic`` client."""
        import triostream

        self._client = triostream.Anthropic(api_key=API_KEY, base_url=self.base_url, max_retries=0)
        self._stack.callback(self._client.close)

    async def consume(self, spec: StreamSpec, budget: float | None = None) -> Outcome:
        """Run :meth:`consume_sync` in a worker thread."""
        return await trio.to_thread.run_sync(self.consume_sync, spec)

    def consume_sync(self, spec: StreamSpec) -> Outcome:
        """Iterate every event, then take the final message."""
        with self._client.messages.stream(**request_params(spec)) as stream:
            count = 0
            for _ in stream:
                count += 1
            message = stream.get_final_message()
        return Outcome(count, message)


# --- the official SDK -----------------------------------------------------------------------------


def _sdk_client_kwargs(base_url: str) -> dict[str, Any]:
    return {"api_key": API_KEY, "base_url": base_url, "max_retries": 0}


_RAW = RAW_EVENT_TYPES


class AnthropicAsync(Consumer):
    """The official SDK's ``AsyncAnthropic().messages.stream`` under ``trio.run``."""

    name = "anthropic async"
    description = "official SDK AsyncAnthropic.messages.stream under trio (anyio)"
    time_boxed = True

    async def open(self) -> None:
        """Create the SDK's async client."""
        import anthropic

        self._client = anthropic.AsyncAnthropic(**_sdk_client_kwargs(self.base_url))
        self._stack.push_async_callback(self._client.close)

    async def consume(self, spec: StreamSpec, budget: float | None = None) -> Outcome:
        """Iterate the events; with ``budget``, stop once that much CPU time has gone."""
        cpu, wall = time.process_time, time.perf_counter
        cpu0, wall0 = cpu(), wall()
        samples: list[tuple[int, float, float]] = []
        raw = 0
        complete = True
        async with self._client.messages.stream(**request_params(spec)) as stream:
            async for event in stream:
                if event.type in _RAW:
                    raw += 1
                    if budget is not None and raw % CLOCK_EVERY == 0:
                        spent = cpu() - cpu0
                        samples.append((raw, spent, wall() - wall0))
                        if spent > budget:
                            complete = False
                            break
            message = await stream.get_final_message() if complete else None
        return Outcome(raw, message, complete, samples)


class AnthropicSync(Consumer):
    """The official SDK's sync ``Anthropic().messages.stream``."""

    name = "anthropic sync"
    description = "official SDK Anthropic.messages.stream (sync)"
    sync = True
    time_boxed = True

    async def open(self) -> None:
        """Create the SDK's sync client."""
        import anthropic

        self._client = anthropic.Anthropic(**_sdk_client_kwargs(self.base_url))
        self._stack.callback(self._client.close)

    async def consume(self, spec: StreamSpec, budget: float | None = None) -> Outcome:
        """Run :meth:`consume_sync` in a worker thread."""
        return await trio.to_thread.run_sync(self.consume_sync, spec, budget)

    def consume_sync(self, spec: StreamSpec, budget: float | None) -> Outcome:
        """Iterate the events; with ``budget``, stop once that much CPU time has gone."""
        cpu, wall = time.process_time, time.perf_counter
        cpu0, wall0 = cpu(), wall()
        samples: list[tuple[int, float, float]] = []
        raw = 0
        complete = True
        with self._client.messages.stream(**request_params(spec)) as stream:
            for event in stream:
                if event.type in _RAW:
                    raw += 1
                    if budget is not None and raw % CLOCK_EVERY == 0:
                        spent = cpu() - cpu0
                        samples.append((raw, spent, wall() - wall0))
                        if spent > budget:
                            complete = False
                            break
            message = stream.get_final_message() if complete else None
        return Outcome(raw, message, complete, samples)


CONSUMERS: tuple[type[Consumer], ...] = (
    Floor,
    TriostreamSingle,
    TriostreamFanout,
    TriostreamSubscribe,
    TriostreamSync,
    AnthropicAsync,
    AnthropicSync,
)


def available_consumers() -> tuple[list[type[Consumer]], dict[str, str]]:
    """The consumers that can run here, and why the others cannot."""
    import triostream

    missing: dict[str, str] = {}
    ok: list[type[Consumer]] = []
    import importlib.util

    def twin() -> str | None:
        if hasattr(triostream, "Anthropic"):
            return None
        return "triostream.Anthropic (the sync twin) does not exist yet in this tree"

    def sdk() -> str | None:
        if importlib.util.find_spec("anthropic") is None:
            return "the official SDK (`anthropic`) is not installed"
        return None

    checks: dict[type[Consumer], Callable[[], str | None]] = {
        TriostreamSync: twin,
        AnthropicAsync: sdk,
        AnthropicSync: sdk,
    }
    for consumer in CONSUMERS:
        reason = checks.get(consumer, lambda: None)()
        if reason is None:
            ok.append(consumer)
        else:
            missing[consumer.name] = reason
    return ok, missing
