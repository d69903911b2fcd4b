"""MessageStream: the sync twin of AsyncMessageStream, over httpx.Client.

No tasks or threads: the stream reads the network when a consumer needs the
next event, and drives the same sans-IO core (SSEDecoder, decode_raw_event,
MessageAccumulator) as the trio stream.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import httpx

from . import _http
from ._accumulator import MessageAccumulator
from ._exceptions import APIError, APITimeoutError, IncompleteStreamError
from ._views import StreamViews, final_text
from ._wire import decode_sse_events
from .sse import SSEDecoder
from .types._events import MessageStreamEvent, RawMessageStreamEvent, TextEvent
from .types._message import Message

if TYPE_CHECKING:
    from ._client import Anthropic

__all__ = ["MessageStream", "SyncMessageStreamManager"]

DRAIN_TIMEOUT: Final = 1.0


class MessageStream(StreamViews):
    """A message being streamed, read synchronously.

    ``for event in stream`` yields every event from ``message_start`` on, and
    can be started again (it replays what was already read); ``text_stream``
    the text deltas; ``get_final_message()`` / ``get_final_text()`` /
    ``until_done()`` read to the end.  Errors are raised as the same
    triostream exceptions as the async stream, from every one of these calls;
    ``current_message_snapshot`` keeps what arrived before.  Leaving the
    ``with`` block closes the response (a complete stream first drains the
    body so the connection returns to the pool).  After ``close()``, a stream
    that had not ended raises RuntimeError.
    """

    def __init__(self, response: httpx.Response, *, idle_timeout: float | None) -> None:
        self._response = response
        self._chunks = _http.sync_body_chunks(response)
        self._decoder = SSEDecoder()
        self._accumulator = MessageAccumulator()
        self._events: list[MessageStreamEvent] = []
        self._idle_timeout = idle_timeout
        self._last_content = time.monotonic()
        self._finished = False
        self._closed = False
        self._error: BaseException | None = None

    def __iter__(self) -> Iterator[MessageStreamEvent]:
        """Every event from ``message_start`` on, reading the network as needed."""
        position = 0
        events = self._events
        while True:
            while position < len(events):
                yield events[position]
                position += 1
            if self._finished:
                self._raise_outcome()
                return
            self._read_more()

    @property
    def text_stream(self) -> Iterator[str]:
        """The text deltas, as strings (from the first one)."""
        return (event.text for event in self if type(event) is TextEvent)

    def until_done(self) -> None:
        """Read to the end of the stream; raise its error if it failed."""
        while not self._finished:
            self._read_more()
        self._raise_outcome()

    def get_final_message(self) -> Message:
        """Read to the end and return the complete :class:`Message`."""
        self.until_done()
        return self._accumulator.final_message()

    def get_final_text(self) -> str:
        """Read to the end and return the text blocks, joined (RuntimeError if none)."""
        message = self.get_final_message()
        return final_text(message)

    def close(self) -> None:
        """Close the response; the stream reads nothing more."""
        if not self._finished:
            self._finished = self._closed = True
        _http.sync_close_response(self._response)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._finished and self._error is None and not self._closed:
            _http.sync_drain(self._response, self._chunks, DRAIN_TIMEOUT)
        self.close()

    # --- reading ---------------------------------------------------------------------

    def _raise_outcome(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise RuntimeError("the stream was closed before it ended")

    def _read_more(self) -> None:
        out: list[MessageStreamEvent] = []
        try:
            with _http.reading_body():
                chunk = next(self._chunks, None)
            decoded = (
                self._decoder.feed_frames(chunk) if chunk is not None else self._decoder.close()
            )
            batch: list[RawMessageStreamEvent] = []
            try:
                decode_sse_events(decoded, batch, at_end=chunk is None)
            except APIError:
                self._accumulator.feed_all(batch, out)  # what arrived before it still counts
                raise
            now = time.monotonic()
            idle = self._idle_timeout
            if batch:
                self._last_content = now
            elif idle is not None and now - self._last_content > idle:
                raise APITimeoutError(f"no content event for {idle} seconds (idle_timeout)")
            self._accumulator.feed_all(batch, out)
            if self._accumulator.done:
                self._finished = True
            elif chunk is None:
                raise IncompleteStreamError("the response body ended before message_stop")
        except APIError as exc:
            if self._accumulator.done:  # after message_stop nothing more is read
                self._finished = True
            else:
                self._fail(exc)
        finally:
            self._events.extend(out)

    def _fail(self, error: APIError) -> None:
        self._error = _http.attach_response(error, self._response)
        self._finished = True
        _http.sync_close_response(self._response)


class SyncMessageStreamManager:
    """``Anthropic().messages.stream(...)``: ``with`` sends the request and gives the stream."""

    def __init__(self, client: Anthropic, params: Mapping[str, Any]) -> None:
        self._client = client
        self._params = params
        self._stream: MessageStream | None = None

    def __enter__(self) -> MessageStream:
        response = self._client._open(self._params, stream=True)
        self._stream = MessageStream(response, idle_timeout=self._client.idle_timeout)
        return self._stream

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            self._stream.__exit__(exc_type, exc, tb)
