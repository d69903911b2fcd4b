"""Raw event streams of ``messages.create(stream=True)``: AsyncStream and its sync twin Stream.

They read in the caller's task (or thread): no tasks, no accumulation.  Both
drive the same sans-IO :class:`RawEventReader`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Self

import httpx

from . import _http
from ._accumulator import status_error_from_event
from ._exceptions import APIError, IncompleteStreamError
from ._wire import decode_sse_events
from .sse import SSEDecoder
from .types._events import ErrorEvent, RawMessageStopEvent, RawMessageStreamEvent

__all__ = ["AsyncStream", "RawEventReader", "Stream"]


class RawEventReader:
    """Bytes in, raw events out: SSE decoding, ``ping`` skipped, errors raised (sans-IO).

    ``event: error`` raises its :class:`APIStatusError` subclass; the end of
    input before ``message_stop`` raises :class:`IncompleteStreamError`.
    Events decoded before an error are returned first; the error is raised by
    the next call.
    """

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._saw_stop = False
        self._error: APIError | None = None

    def raise_failure(self) -> None:
        """Raise the failure found in an earlier chunk, if any (before reading more)."""
        if self._error is not None:
            raise self._error

    def feed(self, chunk: bytes | None) -> list[RawMessageStreamEvent]:
        """Decode a chunk (None: the end of the body); return the complete events."""
        self.raise_failure()
        if self._saw_stop:
            return []
        events: list[RawMessageStreamEvent] = []
        try:
            if chunk is not None:
                decode_sse_events(self._decoder.feed_frames(chunk), events)
            else:
                decode_sse_events(self._decoder.close(), events, at_end=True)
        except APIError as exc:
            self._error = exc
        for position, event in enumerate(events):
            kind = type(event)
            if kind is ErrorEvent:
                assert isinstance(event, ErrorEvent)
                self._error = self._error or status_error_from_event(event)
                del events[position:]
                break
            if kind is RawMessageStopEvent:
                self._saw_stop = True
                del events[position + 1 :]  # the message is complete: nothing after it is read
                break
        if chunk is None and self._error is None and not self._saw_stop:
            self._error = IncompleteStreamError("the response body ended before message_stop")
        if self._error is not None and not events:
            raise self._error
        return events


class AsyncStream:
    """The raw stream events of one response, as they arrive.

    ::

        raw = await client.messages.create(..., stream=True)
        async with raw:
            async for event in raw:
                ...

    ``ping`` is skipped; ``event: error`` raises its :class:`APIStatusError`
    subclass; a body that ends before ``message_stop`` raises
    :class:`IncompleteStreamError`.  The response is closed when iteration ends,
    on any error, and on leaving ``async with`` (or ``aclose()``).

    Cancellation: a cancelled read raises ``Cancelled``; the response stays open
    until ``aclose()`` / the end of the ``async with`` block.
    """

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._reader = RawEventReader()
        self._chunks: AsyncIterator[bytes] = _http.body_chunks(response)
        self._pending: deque[RawMessageStreamEvent] = deque()
        self._ended = False

    @property
    def request_id(self) -> str | None:
        """The ``request-id`` response header, or None."""
        return _http.response_request_id(self.response)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> RawMessageStreamEvent:
        while not self._pending:
            if self._ended:
                raise StopAsyncIteration
            try:
                self._reader.raise_failure()
                with _http.reading_body():
                    chunk = await anext(self._chunks, None)
                self._pending.extend(self._reader.feed(chunk))
                self._ended = chunk is None
            except APIError as exc:
                await self.aclose()
                raise _http.attach_response(exc, self.response) from None
            if self._ended:
                await self.aclose()
        return self._pending.popleft()

    async def aclose(self) -> None:
        """Close the response (shielded from cancellation; idempotent)."""
        self._ended = True
        await _http.close_response(self.response, self._chunks)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Stream:
    """The sync twin of :class:`AsyncStream` (``Anthropic().messages.create(stream=True)``)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._reader = RawEventReader()
        self._chunks: Iterator[bytes] = _http.sync_body_chunks(response)
        self._pending: deque[RawMessageStreamEvent] = deque()
        self._ended = False

    @property
    def request_id(self) -> str | None:
        """The ``request-id`` response header, or None."""
        return _http.response_request_id(self.response)

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> RawMessageStreamEvent:
        while not self._pending:
            if self._ended:
                raise StopIteration
            try:
                self._reader.raise_failure()
                with _http.reading_body():
                    chunk = next(self._chunks, None)
                self._pending.extend(self._reader.feed(chunk))
                self._ended = chunk is None
            except APIError as exc:
                self.close()
                raise _http.attach_response(exc, self.response) from None
            if self._ended:
                self.close()
        return self._pending.popleft()

    def close(self) -> None:
        """Close the response (idempotent)."""
        self._ended = True
        _http.sync_close_response(self.response)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
