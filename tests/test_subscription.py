"""``stream.subscribe()`` and the channel it returns, :class:`triostream.Subscription`.

Order and replay, ``receive_nowait()``, no checkpoint while events are waiting,
``clone()`` and closing, backpressure and ``statistics()``, ``max_buffer_size``
checks, how a subscription ends, and what a subscriber costs (counted in task
steps, not timed).

Every test that opens a stream ends by checking that nothing is left: no
triostream task anywhere in the run (and none in the nursery the stream ran in),
and, once the client is closed, every connection the server saw is closed.
"""

from __future__ import annotations

import gc
import math
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
import trio
import trio.testing

import triostream
from tests.conftest import PARAMS
from tests.faults import assert_nothing_left
from tests.streams import PING, TOOLS, block_start, message_start, text_delta, text_stream
from triostream import (
    AsyncAnthropic,
    AsyncMessageStream,
    Message,
    MessageAccumulator,
    MessageStreamEvent,
    OverloadedError,
    Subscription,
    SubscriptionStatistics,
    TextBlock,
)
from triostream._fanout import DEFAULT_MAX_LAG
from triostream.sse import SSEDecoder
from triostream.testing import Chunking, MockServer, Reply
from triostream.types import decode_raw_event

PIECE = 40
"""Characters per text delta in the long streams (so ``deltas_so_far`` can count them)."""


def pieces(count: int) -> list[str]:
    """``count`` distinct text pieces of PIECE characters each."""
    return [f"{i:05d}".ljust(PIECE, ".") for i in range(count)]


# Text, two tool calls, a server tool and its result, with a ping after message_start.
MIXED = [TOOLS[0], PING, *TOOLS[1:]]
LONG = text_stream(pieces(400))
HELD = pieces(2000)
"""A stream long enough (about 250 KB) for a subscriber to hold it back far from its end."""
BODIES = {"mixed": MIXED, "long_text": LONG}

STALLED_PIECES = ["Hello", " there", "!"]
# message_start, content_block_start, ping, "Hello" | stall: the rest never comes.
STALL_AFTER = 4
BEFORE_STALL = ["message_start", "content_block_start", "content_block_delta", "text"]

HELLO_THEN = [
    message_start(),
    block_start(0, {"type": "text", "text": ""}),
    text_delta(0, "Hello"),
    text_delta(0, " wor"),
]
"""The start of a stream: a text block holding ``"Hello wor"`` so far."""
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect at the end of each test, so a resource warning is charged to the test."""
    yield
    gc.collect()


# --- helpers ---------------------------------------------------------------------------------


@asynccontextmanager
async def streaming(client: AsyncAnthropic) -> AsyncIterator[AsyncMessageStream]:
    """A stream in a nursery of its own, which must have no task left once the block ends."""
    async with trio.open_nursery() as stream_nursery:
        async with triostream.open_message_stream(
            stream_nursery, client=client, **PARAMS
        ) as stream:
            yield stream
        assert not stream_nursery.child_tasks


def batches_of(chunks: Sequence[bytes]) -> list[list[MessageStreamEvent]]:
    """The events MessageAccumulator hands on for each network chunk, chunk by chunk."""
    decoder = SSEDecoder()
    accumulator = MessageAccumulator()
    batches: list[list[MessageStreamEvent]] = []
    for number, chunk in enumerate(chunks):
        sses = decoder.feed(chunk)
        if number == len(chunks) - 1:
            sses += decoder.close()
        batch: list[MessageStreamEvent] = []
        for sse in sses:
            if sse.event != "ping":
                batch += accumulator.feed(decode_raw_event(sse.data))
        batches.append(batch)
    return batches


def events_of(reply: Reply) -> list[MessageStreamEvent]:
    """Every event a stream of this reply hands out, in wire order."""
    return [event for batch in batches_of(reply.chunks) for event in batch]


def stalled() -> Reply:
    """A stream that sends its first text delta, then nothing more (not even the terminator)."""
    return Reply.stream(text_stream(STALLED_PIECES), stall_after=STALL_AFTER)


def text_of(message: Message | None) -> str:
    """The text blocks of a message (or of no message), joined."""
    if message is None:
        return ""
    return "".join(block.text for block in message.content if isinstance(block, TextBlock))


def deltas_so_far(stream: AsyncMessageStream) -> int:
    """How many PIECE-sized text deltas the stream has received."""
    return len(text_of(stream.current_message_snapshot)) // PIECE


def events_for(deltas: int) -> int:
    """Events a one-text-block stream has handed on after ``deltas`` deltas (before its end):
    message_start, content_block_start, and each delta with its TextEvent."""
    return 2 + 2 * deltas


def take_waiting(channel: Subscription) -> tuple[list[MessageStreamEvent], bool]:
    """Every event ``receive_nowait()`` hands out now, and whether the channel then ended."""
    taken: list[MessageStreamEvent] = []
    while True:
        try:
            taken.append(channel.receive_nowait())
        except trio.WouldBlock:
            return taken, False
        except trio.EndOfChannel:
            return taken, True


async def take(channel: Subscription, count: int) -> list[MessageStreamEvent]:
    """The next ``count`` events, waiting for them as needed."""
    return [await channel.receive() for _ in range(count)]


async def collect(source: Any, into: list[Any]) -> None:
    """Append everything an async iterable (a stream, a channel) yields."""
    async for item in source:
        into.append(item)


def stats(used: int, size: float, handles: int = 1, waiting: int = 0) -> SubscriptionStatistics:
    """A SubscriptionStatistics, briefly."""
    return SubscriptionStatistics(
        current_buffer_used=used,
        max_buffer_size=size,
        open_receive_channels=handles,
        tasks_waiting_receive=waiting,
    )


class StepCounter(trio.abc.Instrument):
    """Counts the scheduling steps of the tasks in ``watched``."""

    def __init__(self) -> None:
        self.watched: set[trio.lowlevel.Task] = set()
        self.steps: Counter[trio.lowlevel.Task] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        """Count a step of a watched task."""
        if task in self.watched:
            self.steps[task] += 1


@contextmanager
def counting_steps() -> Iterator[StepCounter]:
    """A StepCounter installed for the duration of the block."""
    counter = StepCounter()
    trio.lowlevel.add_instrument(counter)
    try:
        yield counter
    finally:
        trio.lowlevel.remove_instrument(counter)


# --- 1. every event, in wire order, replayed to late subscribers ------------------------------


@pytest.mark.parametrize("chunking", [16384, "event"], ids=["16k", "event"])
@pytest.mark.parametrize("subscribers", [1, 3])
@pytest.mark.parametrize("body", list(BODIES))
async def test_subscribers_get_every_event_in_wire_order(
    body: str, subscribers: int, chunking: Chunking, server: MockServer, client: AsyncAnthropic
) -> None:
    reply = Reply.stream(BODIES[body], chunking=chunking)
    expected = events_of(reply)
    assert len(expected) > 40
    if chunking == 16384 and body == "long_text":
        assert len(reply.chunks) > 3  # several network chunks
    server.enqueue(reply)
    received: list[list[MessageStreamEvent]] = [[] for _ in range(subscribers)]

    with trio.fail_after(10):
        async with streaming(client) as stream:
            channels = [stream.subscribe() for _ in range(subscribers)]
            assert all(isinstance(channel, Subscription) for channel in channels)
            assert all(isinstance(channel, trio.abc.ReceiveChannel) for channel in channels)
            async with trio.open_nursery() as readers:
                for channel, into in zip(channels, received, strict=True):
                    readers.start_soon(collect, channel, into)
            await stream.until_done()
            iterated = [event async for event in stream]
            # Subscribed after the stream completed: replayed from message_start, then ends.
            late = stream.subscribe()
            replayed = [event async for event in late]
            with pytest.raises(trio.EndOfChannel):
                await late.receive()  # and stays ended
            with pytest.raises(trio.EndOfChannel):
                late.receive_nowait()
        # After the block too.
        after_block = [event async for event in stream.subscribe()]

    assert iterated == expected
    for got in received:
        assert got == expected
    assert replayed == expected
    assert after_block == expected
    await assert_nothing_left(client, server)


# --- 2. receive_nowait() --------------------------------------------------------------------


async def test_receive_nowait_gives_what_has_arrived_and_nothing_more(
    server: MockServer, client: AsyncAnthropic, mock_clock: trio.testing.MockClock
) -> None:
    """The server sends one chunk per (virtual) second; the test moves the clock by hand.

    The first chunk is an SSE comment, so nothing has arrived until the clock moves.
    """
    # Only if something hangs (every task blocked for 1 s of real time) does the clock move
    # by itself: the test then fails on a value instead of hanging.
    mock_clock.autojump_threshold = 1.0
    reply = Reply.stream([b": nothing to see yet\n\n", *text_stream(STALLED_PIECES)], delay=1.0)
    batches = batches_of(reply.chunks)
    assert batches[0] == []
    assert [len(batch) for batch in batches] == [0, 1, 1, 0, 2, 2, 2, 1, 1, 1]
    server.enqueue(reply)
    handed_out: list[list[MessageStreamEvent]] = []

    with trio.fail_after(100):
        async with streaming(client) as stream:
            channel = stream.subscribe()
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.WouldBlock):
                channel.receive_nowait()
            assert channel.statistics() == stats(0, DEFAULT_MAX_LAG)
            for number in range(1, len(reply.chunks)):
                mock_clock.jump(1.0)
                await trio.testing.wait_all_tasks_blocked()
                assert channel.statistics().current_buffer_used == len(batches[number])
                taken, ended = take_waiting(channel)
                handed_out.append(taken)
                assert ended == (number == len(reply.chunks) - 1), number
            with pytest.raises(trio.EndOfChannel):
                channel.receive_nowait()  # and stays ended
            await stream.until_done()

    assert handed_out == batches[1:]  # chunk by chunk: what had arrived, nothing more
    await assert_nothing_left(client, server, wait=1000)


# --- 3. no checkpoint while events are waiting; one at the end --------------------------------


async def test_waiting_events_are_received_without_a_checkpoint(
    server: MockServer, client: AsyncAnthropic
) -> None:
    reply = Reply.stream(LONG, chunking=16384)
    expected = events_of(reply)
    server.enqueue(reply)

    with trio.fail_after(10):
        async with streaming(client) as stream:
            await stream.until_done()
            channel = stream.subscribe()
            me = trio.lowlevel.current_task()
            with counting_steps() as counter:
                counter.watched.add(me)
                with trio.CancelScope() as scope:
                    scope.cancel()
                    # Cancelled beforehand: any checkpoint in receive() would raise here.
                    received = [await channel.receive() for _ in expected]
                    assert counter.steps[me] == 0  # this task never yielded
                    assert channel.statistics().current_buffer_used == 0
                    # The end is a checkpoint: here it raises the scope's Cancelled.
                    with pytest.raises(trio.Cancelled):
                        await channel.receive()
                    assert counter.steps[me] >= 1  # the task was scheduled again
            # Nothing was lost to the Cancelled: the channel still ends.
            with pytest.raises(trio.EndOfChannel):
                await channel.receive()

    assert received == expected
    await assert_nothing_left(client, server)


async def test_async_for_over_waiting_events_does_not_yield(
    server: MockServer, client: AsyncAnthropic
) -> None:
    """Another task, ready to run, gets no turn while the subscriber goes through the
    events waiting for it."""
    reply = Reply.stream(LONG, chunking=16384)
    expected = events_of(reply)
    server.enqueue(reply)
    turns: list[int] = []

    with trio.fail_after(10):
        async with streaming(client) as stream:
            await stream.until_done()
            received: list[MessageStreamEvent] = []
            async with trio.open_nursery() as nursery:

                async def other() -> None:
                    turns.append(len(received))

                nursery.start_soon(other)  # ready to run from now on
                async for event in stream.subscribe():
                    received.append(event)
            assert turns == [len(expected)]  # it never ran while events were waiting

    assert received == expected
    await assert_nothing_left(client, server)


# --- 4. clone() and closing ---------------------------------------------------------------------


async def test_clones_share_one_position(server: MockServer, client: AsyncAnthropic) -> None:
    reply = Reply.stream(MIXED)
    expected = events_of(reply)
    server.enqueue(reply)

    with trio.fail_after(10):
        async with streaming(client) as stream:
            await stream.until_done()
            first = stream.subscribe()
            second = first.clone()
            assert isinstance(second, Subscription)
            assert second is not first
            assert (
                first.statistics()
                == second.statistics()
                == stats(len(expected), DEFAULT_MAX_LAG, 2)
            )

            taken = await take(first, 3)
            assert await second.receive() == expected[3]  # where first left off
            assert await first.receive() == expected[4]
            assert second.statistics() == stats(len(expected) - 5, DEFAULT_MAX_LAG, 2)

            # Closing one handle leaves the other working, from the shared position.
            first.close()
            assert second.statistics().open_receive_channels == 1
            with pytest.raises(trio.ClosedResourceError):
                await first.receive()
            with pytest.raises(trio.ClosedResourceError):
                first.receive_nowait()
            with pytest.raises(trio.ClosedResourceError):
                first.clone()
            first.close()  # idempotent: the count of open handles does not move again
            await first.aclose()
            assert second.statistics().open_receive_channels == 1
            rest = [event async for event in second]
            with pytest.raises(trio.EndOfChannel):
                await second.receive()

    assert [*taken, expected[3], expected[4], *rest] == expected
    await assert_nothing_left(client, server)


async def test_clones_read_concurrently_see_each_event_once_in_order(
    server: MockServer, client: AsyncAnthropic
) -> None:
    reply = Reply.stream(LONG)  # one network chunk per event
    expected = events_of(reply)
    server.enqueue(reply)
    taken: list[tuple[str, MessageStreamEvent]] = []

    async def reader(name: str, channel: Subscription) -> None:
        async for event in channel:
            taken.append((name, event))

    with trio.fail_after(10):
        async with streaming(client) as stream:
            channel = stream.subscribe()
            async with trio.open_nursery() as readers:
                readers.start_soon(reader, "first", channel)
                readers.start_soon(reader, "clone", channel.clone())
            await stream.until_done()

    # Each event went to exactly one handle, and together they saw the stream in order.
    assert [event for _, event in taken] == expected
    counts = Counter(name for name, _ in taken)
    assert counts["first"] + counts["clone"] == len(expected)
    await assert_nothing_left(client, server)


async def test_closing_a_handle_wakes_the_task_waiting_on_it_only(
    server: MockServer, client: AsyncAnthropic
) -> None:
    server.enqueue(stalled())
    outcomes: dict[str, type[BaseException]] = {}

    async def wait_on(name: str, channel: Subscription) -> None:
        try:
            await channel.receive()
        except trio.ClosedResourceError as exc:
            outcomes[name] = type(exc)

    with trio.fail_after(10):
        async with streaming(client) as stream:
            channel = stream.subscribe()
            twin = channel.clone()
            assert [event.type for event in await take(channel, STALL_AFTER)] == BEFORE_STALL
            async with trio.open_nursery() as waiters:
                waiters.start_soon(wait_on, "channel", channel)
                waiters.start_soon(wait_on, "twin", twin)
                await trio.testing.wait_all_tasks_blocked()
                assert outcomes == {}
                assert channel.statistics() == stats(0, DEFAULT_MAX_LAG, handles=2, waiting=2)

                channel.close()
                await trio.testing.wait_all_tasks_blocked()
                assert outcomes == {"channel": trio.ClosedResourceError}
                assert twin.statistics() == stats(
                    0, DEFAULT_MAX_LAG, handles=1, waiting=1
                )  # still waiting

                await twin.aclose()
            assert outcomes == {
                "channel": trio.ClosedResourceError,
                "twin": trio.ClosedResourceError,
            }
            assert twin.statistics() == stats(0, DEFAULT_MAX_LAG, handles=0, waiting=0)

    await assert_nothing_left(client, server)


async def test_async_with_closes_the_subscription(
    server: MockServer, client: AsyncAnthropic
) -> None:
    reply = Reply.stream(MIXED)
    expected = events_of(reply)
    server.enqueue(reply)

    with trio.fail_after(10):
        async with streaming(client) as stream:
            async with stream.subscribe() as channel:
                first = await channel.receive()
                assert channel.statistics().open_receive_channels == 1
            assert channel.statistics().open_receive_channels == 0
            with pytest.raises(trio.ClosedResourceError):
                await channel.receive()
            with pytest.raises(trio.ClosedResourceError):
                channel.receive_nowait()
            await channel.aclose()  # closing again is harmless
            channel.close()
            assert channel.statistics().open_receive_channels == 0
            await stream.until_done()

    assert first == expected[0]
    await assert_nothing_left(client, server)


# --- 5. backpressure and statistics() -----------------------------------------------------------


async def test_an_unread_subscription_holds_the_stream_and_reading_releases_it(
    server: MockServer, client: AsyncAnthropic
) -> None:
    reply = Reply.stream(text_stream(HELD), chunking=16384)
    expected = events_of(reply)
    server.enqueue(reply)

    with trio.fail_after(10):
        async with streaming(client) as stream:
            channel = stream.subscribe(max_buffer_size=2)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            held_at = deltas_so_far(stream)
            assert 0 < held_at < len(HELD) // 2
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            assert deltas_so_far(stream) == held_at  # and it stays there
            assert channel.statistics() == stats(events_for(held_at), 2)

            received = [event async for event in channel]
            message = await stream.get_final_message()
            assert channel.statistics() == stats(0, 2)

    assert received == expected  # everything, in order, nothing lost
    assert text_of(message) == "".join(HELD)
    await assert_nothing_left(client, server)


RELEASES = ["close", "aclose", "del"]


@pytest.mark.parametrize("how", RELEASES)
async def test_closing_or_dropping_an_unread_subscription_releases_the_stream(
    how: str, server: MockServer, client: AsyncAnthropic
) -> None:
    server.enqueue(Reply.stream(text_stream(HELD), chunking=16384))

    with trio.fail_after(10):
        async with streaming(client) as stream:
            channel = stream.subscribe(max_buffer_size=2)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            held_at = deltas_so_far(stream)
            assert 0 < held_at < len(HELD) // 2
            if how == "close":
                channel.close()
            elif how == "aclose":
                await channel.aclose()
            else:
                del channel
                gc.collect()
            # Released, the stream runs to its end with nobody waiting on it.
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            released = deltas_so_far(stream) == len(HELD)
            snapshot = stream.current_message_snapshot

    assert released, f"the stream stayed at {deltas_so_far(stream)} of {len(HELD)} deltas"
    assert snapshot is not None
    assert snapshot.stop_reason == "end_turn"
    await assert_nothing_left(client, server)


async def test_catching_up_with_receive_nowait_releases_the_stream(
    server: MockServer, client: AsyncAnthropic
) -> None:
    """Like a memory channel, whose receive_nowait() wakes a sender waiting for room."""
    server.enqueue(Reply.stream(text_stream(HELD), chunking=16384))

    with trio.fail_after(10):
        async with streaming(client) as stream:
            channel = stream.subscribe(max_buffer_size=2)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            held_at = deltas_so_far(stream)
            assert 0 < held_at < len(HELD) // 2
            taken, ended = take_waiting(channel)  # caught up: nothing is waiting
            assert (len(taken), ended) == (events_for(held_at), False)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            moved_on = deltas_so_far(stream)

    assert moved_on > held_at, "the stream stayed where the subscriber had held it"
    await assert_nothing_left(client, server)


async def test_an_unbounded_subscription_never_holds_the_stream(
    server: MockServer, client: AsyncAnthropic
) -> None:
    reply = Reply.stream(text_stream(HELD), chunking=16384)
    expected = events_of(reply)
    server.enqueue(reply)

    with trio.fail_after(10):
        async with streaming(client) as stream:
            channel = stream.subscribe(max_buffer_size=math.inf)
            message = await stream.get_final_message()  # nobody has read anything
            assert channel.statistics() == stats(len(expected), math.inf)
            received = [event async for event in channel]
            assert channel.statistics() == stats(0, math.inf)

    assert received == expected
    assert text_of(message) == "".join(HELD)
    await assert_nothing_left(client, server)


# --- 6. max_buffer_size -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "error"),
    [(-1, ValueError), (1.5, TypeError), (-math.inf, TypeError), (math.nan, TypeError)],
)
async def test_a_bad_max_buffer_size_is_refused_like_a_memory_channels(
    size: float, error: type[Exception], server: MockServer, client: AsyncAnthropic
) -> None:
    with pytest.raises(error):
        trio.open_memory_channel[object](size)  # the reference behaviour
    reply = Reply.stream(text_stream(HELD), chunking=16384)
    server.enqueue(reply)

    with trio.fail_after(10):
        async with streaming(client) as stream:
            with pytest.raises(error, match="max_buffer_size"):
                stream.subscribe(max_buffer_size=size)
            # The refused subscription left nothing behind that could hold the stream back.
            message = await stream.get_final_message()

    assert text_of(message) == "".join(HELD)
    await assert_nothing_left(client, server)


async def test_max_buffer_size_zero_holds_the_stream_until_the_subscriber_caught_up(
    server: MockServer, client: AsyncAnthropic
) -> None:
    reply = Reply.stream(text_stream(HELD), chunking=16384)
    expected = events_of(reply)
    server.enqueue(reply)

    with trio.fail_after(10):
        async with streaming(client) as stream:
            channel = stream.subscribe(max_buffer_size=0)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            held_at = deltas_so_far(stream)
            assert 0 < held_at < len(HELD) // 2
            waiting = events_for(held_at)
            assert channel.statistics() == stats(waiting, 0)

            # One event short of caught up: the stream still waits.
            received = await take(channel, waiting - 1)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            assert deltas_so_far(stream) == held_at
            assert channel.statistics() == stats(1, 0)

            received += [event async for event in channel]
            await stream.until_done()

    assert received == expected
    await assert_nothing_left(client, server)


# --- 7. how a subscription ends -------------------------------------------------------------------


async def test_a_failed_stream_ends_the_subscription_after_the_events_before_the_failure(
    server: MockServer, client: AsyncAnthropic, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0.01  # the chunks come 1 s apart on this clock
    before = events_of(Reply.stream(HELLO_THEN))
    assert [event.type for event in before] == [*BEFORE_STALL, "content_block_delta", "text"]
    server.enqueue(Reply.stream([*HELLO_THEN, OVERLOADED], delay=1.0))
    waiting_subscriber: list[MessageStreamEvent] = []
    ends: list[str] = []

    async def subscriber(channel: Subscription) -> None:
        while True:
            try:
                waiting_subscriber.append(await channel.receive())
            except trio.EndOfChannel:
                ends.append("EndOfChannel")
                return

    with trio.fail_after(1000):
        async with streaming(client) as stream:
            async with trio.open_nursery() as subscribers:
                subscribers.start_soon(subscriber, stream.subscribe())
                with pytest.raises(OverloadedError) as raised:
                    await stream.until_done()
            assert ends == ["EndOfChannel"]  # the channel just ended; until_done() told how
            late = stream.subscribe()
            replayed = [event async for event in late]
            with pytest.raises(trio.EndOfChannel):
                await late.receive()
            with pytest.raises(OverloadedError):
                await stream.get_final_message()

    assert raised.value.message == "Overloaded"
    assert waiting_subscriber == before
    assert replayed == before
    await assert_nothing_left(client, server, wait=1000)


async def test_aclose_while_a_subscriber_waits_ends_its_channel(
    server: MockServer, client: AsyncAnthropic
) -> None:
    server.enqueue(stalled())
    received: list[MessageStreamEvent] = []
    outcomes: list[str] = []

    async def subscriber(channel: Subscription) -> None:
        async for event in channel:
            received.append(event)
        outcomes.append("ended")

    with trio.fail_after(10):
        async with streaming(client) as stream:
            channel = stream.subscribe()
            async with trio.open_nursery() as subscribers:
                subscribers.start_soon(subscriber, channel)
                while len(received) < STALL_AFTER:
                    await trio.testing.wait_all_tasks_blocked()
                assert channel.statistics() == stats(0, DEFAULT_MAX_LAG, waiting=1)
                assert outcomes == []  # waiting for the stalled server
                await stream.aclose()
            assert outcomes == ["ended"]  # an end, not an error
            assert channel.statistics() == stats(0, DEFAULT_MAX_LAG, waiting=0)
            with pytest.raises(trio.EndOfChannel):
                await channel.receive()
            with pytest.raises(trio.ClosedResourceError):
                await stream.until_done()  # the stream tells how it ended
            replayed = [event.type async for event in stream.subscribe()]

    assert [event.type for event in received] == BEFORE_STALL
    assert replayed == BEFORE_STALL
    await assert_nothing_left(client, server)


async def test_a_cancelled_receive_loses_nothing(
    server: MockServer, client: AsyncAnthropic, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0.01  # the chunks come 1 s apart on this clock
    reply = Reply.stream(text_stream(STALLED_PIECES), delay=1.0)
    expected = events_of(reply)
    server.enqueue(reply)
    raised: list[BaseException] = []

    with trio.fail_after(1000):
        async with streaming(client) as stream:
            channel = stream.subscribe()
            # Everything sent so far has arrived; the next chunk is a second away.
            await trio.testing.wait_all_tasks_blocked()
            first, ended = take_waiting(channel)
            assert not ended
            assert first == expected[: len(first)]
            assert len(first) >= 1

            with trio.move_on_after(0.5) as scope:
                try:
                    await channel.receive()
                except BaseException as exc:
                    raised.append(exc)
                    raise
            assert scope.cancelled_caught
            assert channel.statistics().tasks_waiting_receive == 0

            rest = [event async for event in channel]
            await stream.until_done()  # the stream itself was not affected

    assert [type(exc) for exc in raised] == [trio.Cancelled]
    assert first + rest == expected
    await assert_nothing_left(client, server, wait=1000)


# --- 8. the cost: task steps per network chunk, not per event -------------------------------------


async def test_subscribers_take_task_steps_per_network_chunk_not_per_event(
    server: MockServer, client: AsyncAnthropic
) -> None:
    reply = Reply.stream(text_stream(HELD), chunking=16384)
    expected = events_of(reply)
    chunks = len(reply.chunks)
    assert len(expected) > 4000
    assert chunks < 20
    server.enqueue(reply)
    received: dict[str, list[MessageStreamEvent]] = {}
    tasks: dict[str, trio.lowlevel.Task] = {}

    async def consumer(name: str, source: Any, counter: StepCounter) -> None:
        task = trio.lowlevel.current_task()
        counter.watched.add(task)
        tasks[name] = task
        await collect(source, received.setdefault(name, []))

    with trio.fail_after(10), counting_steps() as counter:
        async with streaming(client) as stream:
            async with trio.open_nursery() as consumers:
                for i in range(3):
                    consumers.start_soon(consumer, f"subscriber {i}", stream.subscribe(), counter)
                consumers.start_soon(consumer, "async for", stream, counter)
            await stream.until_done()

    steps = {name: counter.steps[task] for name, task in tasks.items()}
    assert len(steps) == 4
    for name, got in received.items():
        assert got == expected, name
    for name, count in steps.items():
        # Measured: one step per network chunk, plus one (19-20 steps for 19 chunks).
        assert 0 < count < len(expected) / 10, (name, count, chunks)
        assert count <= 3 * chunks, (name, count, chunks)
    await assert_nothing_left(client, server)


@pytest.mark.parametrize("reader", ["async for", "text_stream"])
async def test_a_lagging_loop_that_breaks_releases_the_stream(
    reader: str, server: MockServer, client: AsyncAnthropic
) -> None:
    """A loop that fell more than max_lag events behind holds the stream; leaving it lets go."""
    server.enqueue(Reply.stream(text_stream(HELD), chunking=16384))

    with trio.fail_after(10):
        async with streaming(client) as stream:
            iterator = aiter(stream) if reader == "async for" else aiter(stream.text_stream)
            await anext(iterator)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            held_at = deltas_so_far(stream)
            assert 0 < held_at < len(HELD) // 2  # held by the loop that stopped reading
            del iterator  # the loop breaks and drops its iterator
            gc.collect()
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            released = deltas_so_far(stream)
            message = await stream.get_final_message()

    assert released == len(HELD)
    assert text_of(message) == "".join(HELD)
    await assert_nothing_left(client, server)
