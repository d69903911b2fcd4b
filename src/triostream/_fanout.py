"""Fan-out: one stream's events, handed to any number of readers, late joiners replayed.

The accumulator task appends each batch of events to an :class:`EventLog` and
wakes the readers.  A reader is a cursor into the log: it hands out every event
from ``message_start`` on, in order, exactly once, whenever it starts.  A reader
that has events waiting returns them without a checkpoint, so a consumer goes
through a whole received batch without a task switch per event.  Three kinds
share that cursor: :class:`EventReader` (``async for event in stream``),
:class:`TextReader` (``stream.text_stream``) and :class:`Subscription`
(``stream.subscribe()``, a ``trio.abc.ReceiveChannel``).

Backpressure: after publishing, the accumulator waits while any live reader is
more events behind than its limit (``max_lag``; a subscription's
``max_buffer_size``), so a slow consumer slows the stream (and, through TCP,
the server) instead of losing events.  Readers are held weakly: a loop that
``break``s and drops its iterator stops holding the stream back.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Final

import trio

from .types._events import MessageStreamEvent, TextEvent

__all__ = [
    "EventLog",
    "EventReader",
    "StreamClosed",
    "Subscription",
    "SubscriptionStatistics",
    "TextReader",
]

DEFAULT_MAX_LAG: Final = 1024


class StreamClosed(trio.ClosedResourceError):
    """The stream was closed (``aclose()``, block left, tasks cancelled) before it ended."""


class EventLog:
    """Every event of one stream, the readers following it, and how the stream ended."""

    __slots__ = (
        "__weakref__",
        "_changed",
        "_check_at",
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
        # Weak references: a reader dropped without closing stops counting when collected.
        self._readers: list[weakref.ref[_Cursor]] = []
        self._max_lag = max_lag
        # The log's length up to which no reader can be over its limit.
        self._check_at: float = -1

    # --- the writer (the accumulator task) ------------------------------------------------

    def published(self) -> None:
        """The writer appended to ``events`` (never once finished): wake the readers waiting."""
        if self._changed:
            self._changed.unpark_all()

    async def wait_for_readers(self) -> None:
        """Wait while any live reader is further behind than its limit."""
        if len(self.events) <= self._check_at:
            return  # no reader can be over its limit yet (see _someone_lags)
        while not self.finished and self._someone_lags():
            await self._progress.park()

    def _someone_lags(self) -> bool:
        # Readers only move forward, so when none lags, the log can grow by the smallest
        # slack (limit minus lag) before one might: no need to look again until then.
        end = len(self.events)
        slack = math.inf
        gone = False
        for ref in self._readers:
            cursor = ref()
            if cursor is None:
                gone = True
                continue
            room = cursor.limit - (end - cursor.position)
            if room < 0:
                return True
            slack = min(slack, room)
        if gone:
            self._readers = [ref for ref in self._readers if ref() is not None]
        self._check_at = end + slack
        return False

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

    def _follow(self, cursor: _Cursor) -> None:
        self._readers.append(weakref.ref(cursor))
        self._check_at = -1  # a new reader starts behind: look at the lags again

    def _forget(self, cursor: _Cursor) -> None:
        self._readers = [ref for ref in self._readers if _alive_and_not(ref, cursor)]
        if self._progress:
            self._progress.unpark_all()

    async def _wait_past(self, cursor: _Cursor) -> bool:
        """Wait until there is an event at ``cursor.position``; False once there never will be.

        The writer may be waiting for this reader, which has just caught up: it is
        woken first.
        """
        if self._progress:
            self._progress.unpark_all()
        events = self.events
        while cursor.position >= len(events):
            if self.finished:
                self._forget(cursor)
                return False
            await self._changed.park()
        return True


def _alive_and_not(ref: weakref.ref[_Cursor], cursor: _Cursor) -> bool:
    target = ref()
    return target is not None and target is not cursor


class _Cursor:
    """A reader's place in the log and how far behind it may fall."""

    __slots__ = ("__weakref__", "_events", "_log", "limit", "position")

    def __init__(self, log: EventLog, limit: float) -> None:
        self._log = log
        self._events = log.events
        self.position = 0
        self.limit = limit
        log._follow(self)
        try:
            token = trio.lowlevel.current_trio_token()
        except RuntimeError:  # made outside trio: there is no writer to wake
            return
        weakref.finalize(self, _wake_writer_soon, token, weakref.ref(log))


def _wake_writer_soon(token: trio.lowlevel.TrioToken, log_ref: weakref.ref[EventLog]) -> None:
    """A reader was garbage-collected: wake the writer, which may be waiting for it.

    Garbage collection may happen in any thread, hence ``run_sync_soon``.
    """

    def wake() -> None:
        log = log_ref()
        if log is not None and log._progress:
            log._progress.unpark_all()

    try:
        token.run_sync_soon(wake)
    except trio.RunFinishedError:
        pass


class _Reader(_Cursor):
    """What the two async-iterator readers share: the default limit, and ``aclose``."""

    __slots__ = ()

    def __init__(self, log: EventLog) -> None:
        super().__init__(log, log._max_lag)

    async def aclose(self) -> None:
        """Stop following the stream (it no longer waits for this reader)."""
        self._log._forget(self)
        await trio.lowlevel.checkpoint()


class EventReader(_Reader):
    """An async iterator over a stream's events from ``message_start`` on.

    At the end it raises ``StopAsyncIteration`` when the stream completed, the
    stream's error when it failed, and ``trio.ClosedResourceError`` when the
    stream was closed first.  Events already received are handed out without a
    checkpoint; it checkpoints whenever it waits for more.

    Cancellation: a reader waiting for events raises ``Cancelled`` as usual and
    can be iterated again afterwards; it loses nothing.
    """

    __slots__ = ()

    def __aiter__(self) -> EventReader:
        return self

    async def __anext__(self) -> MessageStreamEvent:
        position = self.position
        events = self._events
        if position < len(events):
            self.position = position + 1
            return events[position]
        if await self._log._wait_past(self):
            position = self.position
            self.position = position + 1
            return events[position]
        raise await _ending(self._log)


class TextReader(_Reader):
    """An async iterator over the text deltas of a stream, as strings (see :class:`EventReader`)."""

    __slots__ = ()

    def __aiter__(self) -> TextReader:
        return self

    async def __anext__(self) -> str:
        events = self._events
        while True:
            position = self.position
            end = len(events)
            while position < end:
                event = events[position]
                position += 1
                if type(event) is TextEvent:
                    self.position = position
                    return event.text
            self.position = position
            if not await self._log._wait_past(self):
                raise await _ending(self._log)


async def _ending(log: EventLog) -> BaseException:
    """What a reader raises at the end of the log."""
    error = await log.outcome()
    return StopAsyncIteration() if error is None else error


@dataclass(frozen=True, slots=True)
class SubscriptionStatistics:
    """What :meth:`Subscription.statistics` reports (names as in a memory channel's)."""

    current_buffer_used: int
    """Events received by the stream that this subscription has not taken yet."""
    max_buffer_size: float
    """How far behind the subscription may fall before the stream waits for it."""
    open_receive_channels: int
    """Open handles (the subscription and its clones) on this subscription's cursor."""
    tasks_waiting_receive: int
    """Tasks waiting in ``receive()`` on this cursor."""


class _SubscriptionCursor(_Cursor):
    __slots__ = ("handles", "waiting")

    def __init__(self, log: EventLog, limit: float) -> None:
        super().__init__(log, limit)
        self.handles = 1
        self.waiting = 0


class Subscription(trio.abc.ReceiveChannel[MessageStreamEvent]):
    """A receive channel with every event of one stream, from ``message_start`` on.

    What ``stream.subscribe()`` returns.  It behaves like the receive end of a
    trio memory channel: ``receive()``, ``receive_nowait()``, ``async for``,
    ``async with``, ``clone()`` (clones share one position: each event goes to
    one of them), ``close()``/``aclose()`` and ``statistics()``.  The channel
    ends (``trio.EndOfChannel``; an ``async for`` just stops) when the stream
    ends, however it ended, after every event that arrived was taken; the
    stream's own calls (``until_done()``, ``get_final_message()``) tell how.

    Unlike a memory channel, and like ``async for event in stream``,
    ``receive()`` returns an event that is already waiting **without a
    checkpoint**: a subscriber takes a whole received network chunk without a
    task switch per event (the point of it: a memory channel costs a
    checkpoint, ~3-5 µs, per event).  It checkpoints whenever it has to wait,
    and at the end.

    The stream waits for a subscription that falls more than
    ``max_buffer_size`` events behind, so a slow subscriber slows the stream
    rather than losing events; a closed (or garbage-collected) subscription no
    longer holds it back.
    """

    __slots__ = ("__weakref__", "_closed", "_cursor", "_events", "_log")

    def __init__(self, log: EventLog, max_buffer_size: float) -> None:
        if max_buffer_size != math.inf and not isinstance(max_buffer_size, int):
            raise TypeError("max_buffer_size must be an integer or math.inf")
        if max_buffer_size < 0:
            raise ValueError("max_buffer_size must be >= 0")
        self._log = log
        self._events = log.events
        self._cursor = _SubscriptionCursor(log, max_buffer_size)
        self._closed = False

    def _take(self) -> MessageStreamEvent | None:
        """The next event if one is waiting, else None (the writer is told this one caught up)."""
        if self._closed:
            raise trio.ClosedResourceError("this subscription was closed")
        cursor = self._cursor
        position = cursor.position
        if position < len(self._events):
            cursor.position = position + 1
            return self._events[position]
        progress = self._log._progress
        if progress:  # the writer may be waiting for this subscription
            progress.unpark_all()
        return None

    def receive_nowait(self) -> MessageStreamEvent:
        """The next event; ``trio.WouldBlock`` if none is waiting, ``EndOfChannel`` at the end."""
        event = self._take()
        if event is not None:
            return event
        if self._log.finished:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> MessageStreamEvent:
        """The next event, waiting for it if needed; ``EndOfChannel`` once the stream has ended."""
        event = self._take()
        if event is not None:
            return event
        log = self._log
        cursor = self._cursor
        events = self._events
        cursor.waiting += 1
        try:
            while cursor.position >= len(events):
                if log.finished:
                    log._forget(cursor)
                    await trio.lowlevel.checkpoint()
                    raise trio.EndOfChannel
                await log._changed.park()
                if self._closed:
                    raise trio.ClosedResourceError("this subscription was closed")
        finally:
            cursor.waiting -= 1
        position = cursor.position
        cursor.position = position + 1
        return events[position]

    async def __anext__(self) -> MessageStreamEvent:
        if not self._closed:  # the hot path inline (no call): an event is waiting
            cursor = self._cursor
            position = cursor.position
            events = self._events
            if position < len(events):
                cursor.position = position + 1
                return events[position]
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def clone(self) -> Subscription:
        """Another handle on this subscription: clones share one position in the stream."""
        if self._closed:
            raise trio.ClosedResourceError("this subscription was closed")
        twin = object.__new__(Subscription)
        twin._log = self._log
        twin._events = self._events
        twin._cursor = self._cursor
        twin._closed = False
        self._cursor.handles += 1
        return twin

    def close(self) -> None:
        """Close this handle; when every clone is closed, the stream stops waiting for it."""
        if self._closed:
            return
        self._closed = True
        cursor = self._cursor
        cursor.handles -= 1
        if not cursor.handles:
            self._log._forget(cursor)
        if cursor.waiting:  # tasks waiting in receive() on this handle get ClosedResourceError
            self._log._changed.unpark_all()

    async def aclose(self) -> None:
        """Close this handle (see :meth:`close`); a checkpoint."""
        self.close()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> SubscriptionStatistics:
        """Where this subscription stands (see :class:`SubscriptionStatistics`)."""
        cursor = self._cursor
        return SubscriptionStatistics(
            current_buffer_used=len(self._log.events) - cursor.position,
            max_buffer_size=cursor.limit,
            open_receive_channels=cursor.handles,
            tasks_waiting_receive=cursor.waiting,
        )
