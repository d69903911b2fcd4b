"""Fan-out: one stream's events, handed to any number of readers, late joiners replayed.

The accumulator task appends each batch of events to an :class:`EventLog` and
wakes the readers.  A reader is a cursor into the log: it hands out every event
from ``message_start`` on, in order, exactly once, whenever it starts.  A reader
that has events waiting returns them without a checkpoint, so a consumer goes
through a whole received batch without a task switch per event.

Backpressure: after publishing, the accumulator waits while the slowest live
reader is more than ``max_lag`` events behind, so a slow consumer slows the
stream (and, through TCP, the server) instead of losing events.  Readers are
held weakly: a loop that ``break``s and drops its iterator stops holding the
stream back.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, Generic, TypeVar

import trio

from .types._events import MessageStreamEvent

__all__ = ["EventLog", "LogReader"]

_T = TypeVar("_T")

DEFAULT_MAX_LAG: Final = 1024


class StreamClosed(trio.ClosedResourceError):
    """The stream was closed (``aclose()``, block left, tasks cancelled) before it ended."""


class EventLog:
    """Every event of one stream, the readers following it, and how the stream ended."""

    __slots__ = (
        "__weakref__",
        "_changed",
        "_error",
        "_max_lag",
        "_progress",
        "_readers",
        "closed",
        "completed",
        "events",
        "finished",
    )

    def __init__(self, *, max_lag: int = DEFAULT_MAX_LAG) -> None:
        self.events: list[MessageStreamEvent] = []
        self.finished = False
        self.completed = False
        self.closed = False
        self._error: BaseException | None = None
        self._changed = trio.lowlevel.ParkingLot()
        self._progress = trio.lowlevel.ParkingLot()
        self._readers: weakref.WeakSet[LogReader[object]] = weakref.WeakSet()
        self._max_lag = max_lag

    # --- the writer (the accumulator task) ------------------------------------------------

    def publish(self, events: list[MessageStreamEvent]) -> None:
        """Append a batch and wake the readers waiting for it."""
        if events and not self.finished:
            self.events.extend(events)
            if self._changed:
                self._changed.unpark_all()

    async def wait_for_readers(self) -> None:
        """Wait while the slowest live reader is more than ``max_lag`` events behind."""
        while not self.finished and self._lag() > self._max_lag:
            await self._progress.park()

    def _lag(self) -> int:
        if not self._readers:
            return 0
        slowest = min(reader.position for reader in self._readers)
        return len(self.events) - slowest

    def finish(self, error: BaseException | None = None, *, closed: bool = False) -> None:
        """The stream ended: completed (no error), failed (``error``) or was ``closed``."""
        if self.finished:
            return
        self.finished = True
        self.completed = error is None and not closed
        self.closed = closed
        self._error = error
        self._changed.unpark_all()
        self._progress.unpark_all()

    # --- readers --------------------------------------------------------------------------

    @property
    def error(self) -> BaseException | None:
        """Why the stream failed, if it did."""
        return self._error

    async def outcome(self) -> BaseException | None:
        """The exception a consumer gets at the end of the log, or None when it completed.

        When the stream was closed (rather than completed or failed), a consumer whose
        own scope is cancelled gets its ``Cancelled`` first: the close is most likely
        that same cancellation reaching the stream's tasks before the consumer.
        """
        if self._error is not None:
            return self._error
        if self.closed:
            await trio.lowlevel.checkpoint_if_cancelled()
            return StreamClosed("the stream was closed before it ended")
        return None

    async def wait_finished(self) -> None:
        """Wait until the stream has ended, one way or another."""
        while not self.finished:
            await self._changed.park()

    async def wait_changed(self) -> None:
        """Wait for the next batch or the end."""
        await self._changed.park()

    def reader(self, convert: Callable[[MessageStreamEvent], _T | None] | None) -> LogReader[_T]:
        """A new cursor from the first event.

        ``convert`` maps each event to what the reader yields, or to None to skip
        it; without ``convert`` the reader yields the events themselves.
        """
        reader: LogReader[_T] = LogReader(self, convert)
        self._readers.add(reader)  # type: ignore[arg-type]
        return reader

    def _advanced(self) -> None:
        if self._progress:
            self._progress.unpark_all()

    def _forget(self, reader: LogReader[_T]) -> None:
        self._readers.discard(reader)  # type: ignore[arg-type]
        self._advanced()


def _identity(event: MessageStreamEvent) -> MessageStreamEvent:
    return event


class LogReader(Generic[_T]):
    """An async iterator over a stream's events from the start (see :class:`EventLog`).

    At the end it raises ``StopAsyncIteration`` when the stream completed, the
    stream's error when it failed, and ``trio.ClosedResourceError`` when the
    stream was closed first.

    Cancellation: a reader waiting for events raises ``Cancelled`` as usual and
    can be iterated again afterwards; it loses nothing.
    """

    __slots__ = ("__weakref__", "_convert", "_log", "position")

    def __init__(
        self, log: EventLog, convert: Callable[[MessageStreamEvent], _T | None] | None
    ) -> None:
        self._log = log
        self._convert = convert
        self.position = 0

    def __aiter__(self) -> LogReader[_T]:
        return self

    async def __anext__(self) -> _T:
        log = self._log
        events = log.events
        position = self.position
        if self._convert is None and position < len(events):
            # The common case: an event is waiting and nothing to convert.
            self.position = position + 1
            if log._progress:
                log._progress.unpark_all()
            return events[position]  # type: ignore[return-value]
        convert: Callable[[MessageStreamEvent], Any] = self._convert or _identity
        while True:
            position = self.position
            # Hand out what is already there without a checkpoint: a whole batch goes to
            # the consumer without a task switch per event.
            while position < len(events):
                event = events[position]
                position += 1
                self.position = position
                value = convert(event)
                if value is not None:
                    log._advanced()
                    return value  # type: ignore[no-any-return]
            log._advanced()
            if log.finished:
                self._log._forget(self)
                error = await log.outcome()
                if error is not None:
                    raise error
                raise StopAsyncIteration
            await log.wait_changed()

    async def aclose(self) -> None:
        """Stop following the stream (it no longer waits for this reader)."""
        self._log._forget(self)
        await trio.lowlevel.checkpoint()


async def pump(reader: AsyncIterator[_T], send_channel: trio.MemorySendChannel[_T]) -> None:
    """Copy a reader into a memory channel until the stream ends or the receiver goes away.

    The channel is closed at the end, whatever the outcome; the stream's error (if
    any) is for the stream's own calls (``until_done()``, ``get_final_message()``).
    """
    async with send_channel:
        try:
            async for item in reader:
                try:
                    send_channel.send_nowait(item)
                except trio.WouldBlock:
                    await send_channel.send(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        except Exception:  # the stream failed: the channel just ends
            return
