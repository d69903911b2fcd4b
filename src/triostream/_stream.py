"""open_message_stream and AsyncMessageStream: the structured-concurrency pipeline.

::

    POST (retries, in the caller's task)  ->  httpx.Response
    parser task:       bytes -> SSEDecoder -> decode_raw_event -> one batch per chunk
                       ──(bounded memory channel)──►
    accumulator task:  MessageAccumulator -> EventLog (snapshot, replay, fan-out)
                       ──► readers: async for / text_stream / subscribe() / get_final_*

Both tasks run under one supervisor task, started in the nursery the caller
gives (``open_message_stream``) or in one the stream opens itself
(``client.messages.stream``).  The supervisor never raises into that nursery:
every failure is delivered through the stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Unpack

import httpx
import trio

from . import _http
from ._accumulator import MessageAccumulator
from ._exceptions import APIError, APITimeoutError, IncompleteStreamError
from ._fanout import DEFAULT_MAX_LAG, EventLog, EventReader, Subscription, TextReader
from ._views import StreamViews, final_text
from ._wire import decode_sse_events
from .sse import SSEDecoder
from .types._events import (
    RawMessageStopEvent,
    RawMessageStreamEvent,
)
from .types._message import Message

if TYPE_CHECKING:
    from ._client import AsyncAnthropic, MessageStreamParams

__all__ = ["AsyncMessageStream", "MessageStreamManager", "open_message_stream"]

DRAIN_TIMEOUT: Final = 1.0
"""After ``message_stop``, how long the rest of the body may take to arrive (so the
connection can go back to the pool) before the response is closed instead."""

CHANNEL_BATCHES: Final = 16
"""Batches (one per network chunk) the parser may run ahead of the accumulator."""

_Item = list[RawMessageStreamEvent] | BaseException


class AsyncMessageStream(StreamViews):
    """A message being streamed: iterate it, subscribe to it, or wait for its end.

    Any number of consumers may run at once, each seeing every event from
    ``message_start`` on (a late one is replayed what it missed).  When events
    are waiting, iteration hands them out without a checkpoint, so a consumer
    goes through a received batch without a task switch per event; it
    checkpoints whenever it has to wait for the network.

    Errors: a failure (``event: error``, a broken or truncated body, a timeout,
    bad data) is raised as one triostream exception from every consumer call
    (iteration, ``text_stream``, ``get_final_message()``, ``get_final_text()``,
    ``until_done()``); ``current_message_snapshot`` keeps what arrived first.
    A stream's failure never raises into, or cancels, the nursery it runs in.

    Cancellation: cancelling a consumer call raises ``Cancelled`` in that call
    only; the stream keeps going and the call can be made again.  Cancelling
    the stream's nursery, leaving its ``async with`` block or ``aclose()``
    stops the stream: its tasks end, the response is closed, subscriptions
    end after the events that arrived, and consumers still waiting get
    ``trio.ClosedResourceError``.
    """

    def __init__(self, response: httpx.Response, *, idle_timeout: float | None) -> None:
        self._response = response
        self._idle_timeout = idle_timeout
        self._accumulator = MessageAccumulator()
        self._log = EventLog()
        self._inner: trio.Nursery | None = None
        self._parser_done = trio.Event()
        self._stopped = trio.Event()

    # --- the public surface ------------------------------------------------------------

    def __aiter__(self) -> EventReader:
        """Every event from ``message_start`` on, whenever the loop starts."""
        return EventReader(self._log)

    @property
    def text_stream(self) -> TextReader:
        """The text deltas, as strings; each access starts from the first one."""
        return TextReader(self._log)

    def subscribe(self, max_buffer_size: float = DEFAULT_MAX_LAG) -> Subscription:
        """A new receive channel with every event from ``message_start`` on.

        A :class:`Subscription` is a ``trio.abc.ReceiveChannel`` that works like
        the receive end of a trio memory channel (``receive``, ``receive_nowait``,
        ``async for``, ``async with``, ``clone``, ``statistics``).  It ends
        (``trio.EndOfChannel``) after the last event, however the stream ended;
        ``until_done()`` / ``get_final_message()`` tell how.  A subscriber that
        falls more than ``max_buffer_size`` events behind slows the stream instead
        of losing events (the default, 1024, is what ``async for`` readers get).
        The stream keeps every event anyway (for late joiners), so a larger value
        costs no memory; a small one makes the stream wait for this subscriber
        after every network chunk.

        It costs what an ``async for`` reader costs: events already received are
        handed out without a checkpoint (a memory channel would take one per
        event), and no task is started for it.
        """
        return Subscription(self._log, max_buffer_size)

    async def until_done(self) -> None:
        """Wait until the stream ends; raise its error if it failed.

        Cancellation: raises ``Cancelled``; the stream is not affected.
        """
        await self._log.wait_finished()
        error = await self._log.outcome()
        if error is not None:
            raise error

    async def get_final_message(self) -> Message:
        """Wait for the end of the stream and return the complete :class:`Message`.

        Raises the stream's error, or :class:`APIResponseValidationError` when a
        tool input never became valid JSON (the stream itself completed).
        """
        await self.until_done()
        return self._accumulator.final_message()

    async def get_final_text(self) -> str:
        """Wait for the end of the stream and return its text blocks, joined.

        Raises RuntimeError when the message has no text block (like the
        official SDK), else the same errors as ``get_final_message()``.
        """
        message = await self.get_final_message()
        return final_text(message)

    async def aclose(self) -> None:
        """Stop the stream: cancel its tasks and close the response; subscriptions end.

        Safe to call from any task, any number of times.  It waits (shielded,
        and bounded) for the tasks to end, so when it returns the connection
        has been released.
        """
        self._log.finish(closed=True)
        if self._inner is not None:
            self._inner.cancel_scope.cancel()
        with trio.CancelScope(shield=True):
            await self._stopped.wait()

    # --- the tasks -----------------------------------------------------------------------

    async def _start(self, nursery: trio.Nursery) -> None:
        try:
            with _http.single_cancelled():
                await nursery.start(self._supervise, name="triostream.stream")
        except BaseException:
            await _http.close_response(self._response)
            self._log.finish(closed=True)
            self._stopped.set()
            raise

    async def _supervise(self, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            async with trio.open_nursery() as inner:
                self._inner = inner
                send, receive = trio.open_memory_channel[_Item](CHANNEL_BATCHES)
                inner.start_soon(self._parse, send, name="triostream.parser")
                inner.start_soon(self._accumulate, receive, name="triostream.accumulator")
                task_status.started()
        except Exception as exc:  # a bug of ours: report it through the stream, never raise
            self._log.finish(APIError(f"triostream internal error: {exc!r}"))
        finally:
            self._log.finish(closed=True)
            self._stopped.set()

    async def _parse(self, send: trio.MemorySendChannel[_Item]) -> None:
        response = self._response
        chunks = _http.body_chunks(response)
        decoder = SSEDecoder()
        idle = self._idle_timeout
        failure: BaseException | None = None
        saw_stop = False
        try:
            with trio.CancelScope() as idle_scope:
                if idle is not None:
                    idle_scope.deadline = trio.current_time() + idle
                with _http.reading_body():
                    async for chunk in chunks:
                        batch: list[RawMessageStreamEvent] = []
                        try:
                            decode_sse_events(decoder.feed_frames(chunk), batch)
                        except APIError:
                            if batch:  # what arrived before the bad event still counts
                                await send.send(batch)
                            raise
                        if not batch:
                            continue
                        if idle is not None:
                            idle_scope.deadline = trio.current_time() + idle
                        try:
                            send.send_nowait(batch)
                        except trio.WouldBlock:
                            await send.send(batch)
                        if type(batch[-1]) is RawMessageStopEvent:
                            saw_stop = True
                            break
                    if not saw_stop:
                        tail: list[RawMessageStreamEvent] = []
                        try:
                            decode_sse_events(decoder.close(), tail, at_end=True)
                        finally:
                            if tail:
                                await send.send(tail)
            if idle_scope.cancelled_caught:
                failure = APITimeoutError(f"no content event for {idle} seconds (idle_timeout)")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the accumulator is gone: nothing left to tell it
        except APIError as exc:
            failure = exc
        except Exception as exc:
            failure = APIError(f"triostream internal error in the parser: {exc!r}")
        finally:
            if saw_stop:
                await self._drain(chunks)
            await _http.close_response(response, chunks)
            self._parser_done.set()
        if failure is not None:
            try:
                await send.send(failure)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await send.aclose()

    async def _drain(self, chunks: Any) -> None:
        """Read the rest of the body after ``message_stop`` so the connection can be reused."""
        with trio.move_on_after(DRAIN_TIMEOUT):
            try:
                with _http.reading_body():
                    async for _ in chunks:
                        pass
            except APIError:
                pass

    async def _accumulate(self, receive: trio.MemoryReceiveChannel[_Item]) -> None:
        accumulator = self._accumulator
        log = self._log
        async with receive:
            try:
                while True:
                    try:
                        item = receive.receive_nowait()
                    except trio.WouldBlock:
                        item = await receive.receive()
                    if log.finished:  # closed meanwhile: nothing more is read or published
                        return
                    if isinstance(item, BaseException):
                        log.finish(_http.attach_response(item, self._response))
                        return
                    try:
                        # Straight into the log: if an event fails, those before it stay.
                        accumulator.feed_all(item, log.events)
                    except APIError as exc:
                        # After message_stop the message is complete: what follows is not read.
                        log.finish(
                            None if accumulator.done else _http.attach_response(exc, self._response)
                        )
                        return
                    if accumulator.done:
                        log.finish()
                        return
                    log.published()
                    await log.wait_for_readers()
            except trio.EndOfChannel:
                log.finish(IncompleteStreamError("the response body ended before message_stop"))
            except Exception as exc:
                log.finish(APIError(f"triostream internal error in the accumulator: {exc!r}"))
            finally:
                # Cancelled (the stream's nursery, or aclose()): the log says so.
                log.finish(closed=True)

    # --- the block -------------------------------------------------------------------------

    async def _leave(self) -> None:
        """End of the ``async with`` block: let a complete stream drain, then stop it."""
        if self._log.completed:
            with trio.CancelScope(shield=True), trio.move_on_after(DRAIN_TIMEOUT * 2):
                await self._parser_done.wait()
        await self.aclose()


async def _start_stream(
    client: AsyncAnthropic, params: Mapping[str, Any], nursery: trio.Nursery
) -> AsyncMessageStream:
    """Send the request and start the stream's tasks in ``nursery``."""
    response = await client._open(params, stream=True)
    stream = AsyncMessageStream(response, idle_timeout=client.idle_timeout)
    await stream._start(nursery)
    return stream


class _OpenMessageStream:
    """What ``open_message_stream`` returns: ``async with`` gives the stream."""

    def __init__(
        self, nursery: trio.Nursery, client: AsyncAnthropic, params: Mapping[str, Any]
    ) -> None:
        self._nursery = nursery
        self._client = client
        self._params = params
        self._stream: AsyncMessageStream | None = None

    async def __aenter__(self) -> AsyncMessageStream:
        self._stream = await _start_stream(self._client, self._params, self._nursery)
        return self._stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            await self._stream._leave()


def open_message_stream(
    nursery: trio.Nursery, *, client: AsyncAnthropic, **params: Unpack[MessageStreamParams]
) -> _OpenMessageStream:
    """Stream a message with the stream's tasks in ``nursery``.

    ::

        async with trio.open_nursery() as nursery:
            async with open_message_stream(nursery, client=client, model=..., max_tokens=...,
                                           messages=[...]) as stream:
                async for text in stream.text_stream:
                    print(text, end="")

    ``async with`` sends the request (retrying where safe) and returns the
    :class:`AsyncMessageStream` once the response headers are in; an HTTP error
    status raises its :class:`APIStatusError` subclass there.  The stream is
    alive until the block ends (or ``aclose()``); then its tasks end and the
    response is closed (a complete stream first drains the body so the
    connection returns to the pool).

    Cancellation: cancelling the caller's scope while the request is sent
    abandons it; cancelling ``nursery`` stops the stream (see
    :class:`AsyncMessageStream`).  The caller's ``Cancelled`` passes through
    untouched.
    """
    return _OpenMessageStream(nursery, client, params)


class MessageStreamManager:
    """``client.messages.stream(...)``: the stream with a nursery of its own."""

    def __init__(self, client: AsyncAnthropic, params: Mapping[str, Any]) -> None:
        self._client = client
        self._params = params
        self._nursery_manager: Any = None
        self._nursery: trio.Nursery | None = None
        self._stream: AsyncMessageStream | None = None

    async def __aenter__(self) -> AsyncMessageStream:
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        try:
            stream = await _start_stream(self._client, self._params, self._nursery)
        except BaseException:
            await self._close_nursery()
            raise
        self._stream = stream
        return stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._stream is not None:
                await self._stream._leave()
        finally:
            await self._close_nursery(in_flight=exc)

    async def _close_nursery(self, in_flight: BaseException | None = None) -> None:
        # Our tasks never raise, and we never hand the block's exception to the nursery:
        # the user sees their own exception (or ours) alone, never an ExceptionGroup.
        nursery, manager = self._nursery, self._nursery_manager
        self._nursery = self._nursery_manager = None
        if nursery is None:
            return
        nursery.cancel_scope.cancel()
        try:
            with _http.single_cancelled():
                await manager.__aexit__(None, None, None)
        except trio.Cancelled:
            if in_flight is None:
                raise
            # The block's own exception is already on its way out: it wins.
