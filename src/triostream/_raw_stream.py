"""AsyncStream: the raw events of ``messages.create(stream=True)``, read in the caller's task."""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import Self

import httpx

from . import _http
from ._accumulator import status_error_from_event
from ._exceptions import APIError, IncompleteStreamError
from ._wire import decode_raw_event
from .sse import SSEDecoder
from .types._events import ErrorEvent, RawMessageStopEvent, RawMessageStreamEvent

__all__ = ["AsyncStream"]


class AsyncStream:
    """The raw stream events of one response, as they arrive (no tasks, no accumulation).

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
        self._decoder = SSEDecoder()
        self._chunks = _http.body_chunks(response)
        self._pending: deque[RawMessageStreamEvent] = deque()
        self._ended = False
        self._saw_stop = False

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
            await self._read_more()
        return self._pending.popleft()

    async def _read_more(self) -> None:
        try:
            with _http.reading_body():
                try:
                    chunk = await self._chunks.__anext__()
                except StopAsyncIteration:
                    chunk = None
            sses = self._decoder.feed(chunk) if chunk is not None else self._decoder.close()
            for sse in sses:
                if sse.event == "ping":
                    continue
                event = decode_raw_event(sse.data)
                if type(event) is ErrorEvent:
                    raise status_error_from_event(event)
                if type(event) is RawMessageStopEvent:
                    self._saw_stop = True
                self._pending.append(event)
            if chunk is None:
                self._ended = True
                if not self._saw_stop:
                    raise IncompleteStreamError("the response body ended before message_stop")
        except APIError as exc:
            if getattr(exc, "response", None) is None and hasattr(exc, "response"):
                exc.response = self.response
            exc.request_id = exc.request_id or self.request_id
            self._ended = True
            self._pending.clear()
            await self.aclose()
            raise
        if self._ended:
            await self.aclose()

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
