"""Cancellation is clean (promise 4): stopping a stream, at any stage, leaves nothing behind.

Every test ends by checking that nothing is left: no triostream task anywhere in
the run (and none in the nursery the stream ran in), and, once the client is
closed, every connection the server saw is closed. Where a test cancels a
stream, it also checks that the next stream on the same client still works.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Literal

import pytest
import trio
import trio.testing

import triostream
from tests.conftest import PARAMS, RECORDED
from tests.faults import assert_nothing_left, library_tasks
from tests.streams import message_start, text_stream
from triostream import (
    AsyncAnthropic,
    Message,
    MessageStreamEvent,
    OverloadedError,
    TextBlock,
    TextEvent,
)
from triostream._stream import AsyncMessageStream
from triostream.testing import MockServer, Reply

API = Literal["open_message_stream", "messages.stream"]
APIS: list[API] = ["open_message_stream", "messages.stream"]

BASIC = (RECORDED / "basic_response.txt").read_bytes()
PIECES = ["Hello", " there", "!"]
# message_start, content_block_start, ping, "Hello" | stall: the rest never comes.
STALL_AFTER = 4
SEEN_BEFORE_STALL = 4  # message_start, content_block_start, the delta, its TextEvent
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect at the end of each test, so a resource warning is charged to the test."""
    yield
    gc.collect()


def stalled() -> Reply:
    """A stream that sends its first text delta, then nothing more (not even the terminator)."""
    return Reply.stream(text_stream(PIECES), stall_after=STALL_AFTER)


def open_stream(
    api: API, client: AsyncAnthropic, nursery: trio.Nursery
) -> AbstractAsyncContextManager[AsyncMessageStream]:
    """The stream's ``async with`` manager (not wrapped), through either entry point."""
    if api == "open_message_stream":
        return triostream.open_message_stream(nursery, client=client, **PARAMS)
    return client.messages.stream(**PARAMS)


async def assert_next_stream_works(client: AsyncAnthropic, server: MockServer) -> None:
    """A fresh stream on the same client completes."""
    server.enqueue(Reply.sse(BASIC))
    with trio.fail_after(5):
        async with client.messages.stream(**PARAMS) as stream:
            assert await stream.get_final_text() == "Hello there!"
    assert library_tasks() == []


def block_texts(message: Message | None) -> list[str]:
    """The text of each block of a message that has only text blocks."""
    assert message is not None
    assert all(isinstance(block, TextBlock) for block in message.content)
    return [block.text for block in message.content if isinstance(block, TextBlock)]


async def reach_text(stream: AsyncMessageStream, text: str) -> None:
    """Return once the stream has handed out a TextEvent whose snapshot is ``text``."""
    with trio.fail_after(5):
        async for event in stream:
            if isinstance(event, TextEvent) and event.snapshot == text:
                return
    raise AssertionError(f"the stream ended before its text was {text!r}")


# --- (a) before the response headers arrive ---------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_cancel_before_the_response_headers(
    api: API, server: MockServer, client: AsyncAnthropic
) -> None:
    server.enqueue(Reply.sse(BASIC, head_delay=math.inf))
    escaped: list[BaseException] = []
    entered = False

    async def cancel_once_the_request_is_in(scope: trio.CancelScope) -> None:
        await server.wait_for_requests(1)
        scope.cancel()

    with trio.fail_after(5):
        async with trio.open_nursery() as stream_nursery:
            with trio.CancelScope() as scope:
                stream_nursery.start_soon(cancel_once_the_request_is_in, scope)
                try:
                    async with open_stream(api, client, stream_nursery):
                        entered = True
                except BaseException as exc:
                    escaped.append(exc)
                    raise
            assert not stream_nursery.child_tasks

    assert scope.cancelled_caught
    assert not entered
    assert [type(exc) for exc in escaped] == [trio.Cancelled]
    assert len(server.requests) == 1
    with trio.fail_after(5):
        await server.wait_idle()  # the abandoned request's connection is dropped at once
    assert server.connections[0].closed_by == "client"
    await assert_next_stream_works(client, server)
    await assert_nothing_left(client, server)


# --- (b) mid-body, the block busy with something else ------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_cancel_mid_body(api: API, server: MockServer, client: AsyncAnthropic) -> None:
    server.enqueue(stalled())
    escaped: list[BaseException] = []

    with trio.fail_after(5):
        async with trio.open_nursery() as stream_nursery:
            with trio.CancelScope() as scope:
                try:
                    async with open_stream(api, client, stream_nursery) as stream:
                        await reach_text(stream, "Hello")
                        scope.cancel()
                        await trio.sleep_forever()
                except BaseException as exc:
                    escaped.append(exc)
                    raise
            assert not stream_nursery.child_tasks

    assert scope.cancelled_caught
    assert [type(exc) for exc in escaped] == [trio.Cancelled]
    assert block_texts(stream.current_message_snapshot) == ["Hello"]  # what arrived is kept
    with trio.fail_after(5):
        await server.wait_idle()  # the stalled response was closed, not returned to the pool
    assert server.connections[0].closed_by == "client"
    await assert_next_stream_works(client, server)
    await assert_nothing_left(client, server)


async def test_cancel_the_streams_own_nursery_mid_body(
    server: MockServer, client: AsyncAnthropic
) -> None:
    """Cancelling the nursery the stream runs in stops it; the block sees ClosedResourceError."""
    server.enqueue(stalled())
    with trio.fail_after(5):
        async with trio.open_nursery() as stream_nursery:
            async with triostream.open_message_stream(
                stream_nursery, client=client, **PARAMS
            ) as stream:
                await reach_text(stream, "Hello")
                stream_nursery.cancel_scope.cancel()
                with pytest.raises(trio.ClosedResourceError):
                    await stream.get_final_message()
            assert not stream_nursery.child_tasks
    with trio.fail_after(5):
        await server.wait_idle()
    assert server.connections[0].closed_by == "client"
    await assert_next_stream_works(client, server)
    await assert_nothing_left(client, server)


async def test_subscribing_while_a_cancelled_streams_tasks_wind_down(
    server: MockServer, client: AsyncAnthropic
) -> None:
    """subscribe() once per scheduling round after the stream's nursery was cancelled.

    Some round falls between the stream's last task ending and the stream noticing it
    (only its supervisor task left); a subscriber there must get a channel that ends
    after what arrived, not an error. Whether the test task runs in that round is up
    to trio's scheduling order, so the test looks for it in several streams.
    """
    channels: list[triostream.Subscription] = []
    for _ in range(8):
        server.enqueue(stalled())
        with trio.fail_after(5):
            async with trio.open_nursery() as stream_nursery:
                async with triostream.open_message_stream(
                    stream_nursery, client=client, **PARAMS
                ) as stream:
                    await reach_text(stream, "Hello")
                    stream_nursery.cancel_scope.cancel()
                    with trio.CancelScope(shield=True):
                        while tasks := library_tasks():
                            if tasks == ["triostream.stream"]:
                                channels.append(stream.subscribe())
                            await trio.lowlevel.checkpoint()
                    channels.append(stream.subscribe())
                assert not stream_nursery.child_tasks
    assert len(channels) >= 8
    for channel in channels:
        received = [event.type async for event in channel]
        assert received == ["message_start", "content_block_start", "content_block_delta", "text"]
    await assert_next_stream_works(client, server)
    await assert_nothing_left(client, server)


# --- (c) during a retry sleep --------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_cancel_during_the_retry_sleep(
    api: API, server: MockServer, client: AsyncAnthropic, mock_clock: trio.testing.MockClock
) -> None:
    # Autojump after 10 ms of real time with every task blocked: loopback bytes are readable
    # as soon as they are sent, so the clock only jumps while the client sleeps before retrying.
    mock_clock.autojump_threshold = 0.01
    server.enqueue(Reply.error(529, headers={"retry-after": "30"}), Reply.sse(BASIC))
    start = trio.current_time()
    with trio.fail_after(1000):
        async with trio.open_nursery() as stream_nursery:
            with trio.move_on_after(10) as scope:
                async with open_stream(api, client, stream_nursery):
                    raise AssertionError("the 529 must be retried, not streamed")
            assert not stream_nursery.child_tasks

    assert scope.cancelled_caught
    assert trio.current_time() - start == pytest.approx(10)  # cancelled in the 30 s sleep
    assert len(server.requests) == 1  # the retry never went out
    assert server.queued == 1
    with trio.fail_after(1000):
        await assert_next_stream_works(client, server)
    assert len(server.requests) == 2
    with trio.fail_after(1000):
        await assert_nothing_left(client, server)


# --- (d) a consumer blocked, waiting for a stalled server ----------------------------------------

Consumer = Literal["iterate", "text_stream", "get_final_message", "get_final_text", "until_done"]
CONSUMERS: list[Consumer] = [
    "iterate",
    "text_stream",
    "get_final_message",
    "get_final_text",
    "until_done",
]


async def consume(stream: AsyncMessageStream, how: Consumer) -> object:
    """Consume the stream one way, to its end."""
    if how == "iterate":
        return [event async for event in stream]
    if how == "text_stream":
        return [text async for text in stream.text_stream]
    if how == "get_final_message":
        return await stream.get_final_message()
    if how == "get_final_text":
        return await stream.get_final_text()
    await stream.until_done()
    return None


@pytest.mark.parametrize("how", CONSUMERS)
@pytest.mark.parametrize("api", APIS)
async def test_cancel_while_a_consumer_waits_for_a_stalled_server(
    api: API, how: Consumer, server: MockServer, client: AsyncAnthropic
) -> None:
    server.enqueue(stalled())
    escaped: list[BaseException] = []
    blocked = trio.Event()

    async def cancel_when_blocked(scope: trio.CancelScope) -> None:
        await blocked.wait()
        await trio.testing.wait_all_tasks_blocked()
        scope.cancel()

    with trio.fail_after(5):
        async with trio.open_nursery() as stream_nursery:
            with trio.CancelScope() as scope:
                stream_nursery.start_soon(cancel_when_blocked, scope)
                async with open_stream(api, client, stream_nursery) as stream:
                    await reach_text(stream, "Hello")
                    blocked.set()
                    try:
                        await consume(stream, how)
                    except BaseException as exc:
                        escaped.append(exc)
                        raise
            assert not stream_nursery.child_tasks

    assert scope.cancelled_caught
    assert [type(exc) for exc in escaped] == [trio.Cancelled]
    with trio.fail_after(5):
        await server.wait_idle()
    assert server.connections[0].closed_by == "client"
    await assert_next_stream_works(client, server)
    await assert_nothing_left(client, server)


# --- (e) aclose() from another task ---------------------------------------------------------------


@pytest.mark.parametrize("how", CONSUMERS)
@pytest.mark.parametrize("api", APIS)
async def test_aclose_from_another_task_while_a_consumer_waits(
    api: API, how: Consumer, server: MockServer, client: AsyncAnthropic
) -> None:
    server.enqueue(stalled())
    outcomes: list[BaseException] = []
    subscribed: list[MessageStreamEvent] = []

    async def consumer(stream: AsyncMessageStream) -> None:
        try:
            await consume(stream, how)
        except BaseException as exc:
            outcomes.append(exc)
            if not isinstance(exc, trio.ClosedResourceError):
                raise

    async def subscriber(channel: triostream.Subscription) -> None:
        async for event in channel:
            subscribed.append(event)

    with trio.fail_after(5):
        async with trio.open_nursery() as stream_nursery:
            async with open_stream(api, client, stream_nursery) as stream:
                async with trio.open_nursery() as consumers:
                    consumers.start_soon(consumer, stream)
                    consumers.start_soon(subscriber, stream.subscribe())
                    await reach_text(stream, "Hello")
                    await trio.testing.wait_all_tasks_blocked()
                    assert outcomes == []  # still waiting for the stalled server
                    await stream.aclose()
                    assert library_tasks() == []  # aclose() returns once the tasks are gone
                # the consumer and the subscriber have ended
                assert len(outcomes) == 1
                assert isinstance(outcomes[0], trio.ClosedResourceError)  # not Cancelled
                assert len(subscribed) == SEEN_BEFORE_STALL  # the channel ended after what came
                with pytest.raises(trio.ClosedResourceError):
                    await stream.get_final_message()  # and stays closed
                await stream.aclose()  # a second aclose() is harmless
            assert not stream_nursery.child_tasks

    assert block_texts(stream.current_message_snapshot) == ["Hello"]
    with trio.fail_after(5):
        await server.wait_idle()
    assert server.connections[0].closed_by == "client"
    await assert_next_stream_works(client, server)
    await assert_nothing_left(client, server)


# --- (f) leaving the block early ---------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_leaving_the_block_early_closes_the_response_at_once(
    api: API, server: MockServer, client: AsyncAnthropic, mock_clock: trio.testing.MockClock
) -> None:
    # With autojump, any timer the exit waited on (a drain deadline, a close deadline) would
    # move the clock; a prompt exit leaves it where it was.
    mock_clock.autojump_threshold = 0.01
    server.enqueue(stalled())
    seen: list[MessageStreamEvent] = []
    with trio.fail_after(1000):
        async with trio.open_nursery() as stream_nursery:
            async with open_stream(api, client, stream_nursery) as stream:
                channel = stream.subscribe()
                async for event in stream:
                    seen.append(event)
                    if len(seen) == 2:
                        break
                left_at = trio.current_time()
            exit_took = trio.current_time() - left_at
            assert not stream_nursery.child_tasks
            assert library_tasks() == []
            await server.wait_idle()

    assert [event.type for event in seen] == ["message_start", "content_block_start"]
    assert exit_took == 0  # no timer was waited on (a drain deadline would show here)
    assert server.connections[0].closed_by == "client"
    # The subscriber channel was closed (it ends); whatever reached it before is still there.
    with trio.fail_after(1000):
        buffered = [event.type async for event in channel]
    everything = ["message_start", "content_block_start", "content_block_delta", "text"]
    assert buffered == everything[: len(buffered)]
    with trio.fail_after(1000):
        await assert_next_stream_works(client, server)
        await assert_nothing_left(client, server)


@pytest.mark.parametrize("api", APIS)
async def test_leaving_a_stream_held_back_by_a_slow_subscriber_closes_the_response(
    api: API, server: MockServer, client: AsyncAnthropic
) -> None:
    """The parser is waiting for room in its channel, not reading the socket, when the block
    ends: the half-read response must still be closed at once (not left to the GC)."""
    pieces = [f"{i:05d}".ljust(40, ".") for i in range(3000)]
    server.enqueue(Reply.stream(text_stream(pieces), chunking=16384))
    with trio.fail_after(5):
        async with trio.open_nursery() as stream_nursery:
            async with open_stream(api, client, stream_nursery) as stream:
                channel = stream.subscribe(max_buffer_size=2)
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                snapshot = stream.current_message_snapshot
                assert snapshot is not None
                assert snapshot.stop_reason is None  # held back, far from the end
            assert not stream_nursery.child_tasks
            assert library_tasks() == []
            await server.wait_idle()
    assert server.connections[0].closed_by == "client"
    with trio.fail_after(5):
        received = [event.type async for event in channel]  # the channel ended
    assert received[:2] == ["message_start", "content_block_start"]
    await assert_next_stream_works(client, server)
    await assert_nothing_left(client, server)


# --- the caller's own exceptions pass through as themselves ---------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_the_callers_cancelled_passes_through_untouched(
    api: API, server: MockServer, client: AsyncAnthropic
) -> None:
    server.enqueue(stalled())
    raised: list[BaseException] = []
    escaped: list[BaseException] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as stream_nursery:
            with trio.CancelScope() as scope:
                try:
                    async with open_stream(api, client, stream_nursery) as stream:
                        await reach_text(stream, "Hello")
                        scope.cancel()
                        try:
                            await stream.get_final_message()
                        except BaseException as exc:
                            raised.append(exc)
                            raise
                except BaseException as exc:
                    escaped.append(exc)
                    raise
            assert not stream_nursery.child_tasks
    assert scope.cancelled_caught
    assert [type(exc) for exc in raised] == [trio.Cancelled]
    assert len(escaped) == 1
    assert escaped[0] is raised[0]  # the very Cancelled raised in the block, not a group
    await assert_next_stream_works(client, server)
    await assert_nothing_left(client, server)


class UserError(Exception):
    """An exception of the user's own, raised inside the stream's block."""


@pytest.mark.parametrize("stream_state", ["live", "completed", "failed"])
@pytest.mark.parametrize("api", APIS)
async def test_a_user_exception_in_the_block_propagates_as_itself(
    api: API, stream_state: str, server: MockServer, client: AsyncAnthropic
) -> None:
    if stream_state == "live":
        server.enqueue(stalled())
    elif stream_state == "completed":
        server.enqueue(Reply.sse(BASIC))
    else:
        server.enqueue(Reply.stream([message_start(), OVERLOADED]))
    error = UserError("mine")

    async def use_the_stream_then_fail(stream_nursery: trio.Nursery) -> None:
        async with open_stream(api, client, stream_nursery) as stream:
            if stream_state == "live":
                await reach_text(stream, "Hello")
            elif stream_state == "completed":
                await stream.until_done()
            else:
                with pytest.raises(OverloadedError):
                    await stream.until_done()
            raise error

    with trio.fail_after(5):
        async with trio.open_nursery() as stream_nursery:
            with pytest.raises(UserError) as info:
                await use_the_stream_then_fail(stream_nursery)
            assert not stream_nursery.child_tasks
    assert info.value is error
    assert type(info.value) is UserError
    await assert_next_stream_works(client, server)
    await assert_nothing_left(client, server)


@pytest.mark.parametrize("api", APIS)
async def test_an_error_status_comes_out_of_aenter_as_itself(
    api: API, server: MockServer, client: AsyncAnthropic
) -> None:
    server.enqueue(Reply.error(529, headers={"x-should-retry": "false"}))
    with trio.fail_after(5):
        async with trio.open_nursery() as stream_nursery:
            with pytest.raises(OverloadedError) as info:
                async with open_stream(api, client, stream_nursery):
                    raise AssertionError("a 529 must not open a stream")
            assert not stream_nursery.child_tasks
    assert type(info.value) is OverloadedError
    assert info.value.status_code == 529
    await assert_next_stream_works(client, server)
    await assert_nothing_left(client, server)


# --- cancelling one consumer's call does not stop the stream ------------------------------------


async def test_cancelling_one_call_leaves_the_stream_and_other_consumers_alone(
    server: MockServer, client: AsyncAnthropic, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0.01  # the server's chunks come 1 s apart on this clock
    pieces = [f"piece{i} " for i in range(6)]
    server.enqueue(Reply.stream(text_stream(pieces), delay=1.0))
    other_texts: list[str] = []
    resumed: list[MessageStreamEvent] = []

    async def other_consumer(stream: AsyncMessageStream) -> None:
        other_texts.extend([text async for text in stream.text_stream])

    with trio.fail_after(1000):
        async with trio.open_nursery() as stream_nursery:
            async with triostream.open_message_stream(
                stream_nursery, client=client, **PARAMS
            ) as stream:
                async with trio.open_nursery() as consumers:
                    consumers.start_soon(other_consumer, stream)

                    with trio.move_on_after(2.5) as final_call:
                        await stream.get_final_message()
                    assert final_call.cancelled_caught

                    events = aiter(stream)
                    with trio.move_on_after(1.0) as iteration:
                        async for event in events:
                            resumed.append(event)
                    assert iteration.cancelled_caught
                    snapshot = stream.current_message_snapshot
                    assert snapshot is not None
                    assert snapshot.stop_reason is None  # the stream was still going
                    resumed.extend([event async for event in events])  # the same iterator

                    message = await stream.get_final_message()  # the same call, again
                assert other_texts == pieces
            assert not stream_nursery.child_tasks

    assert block_texts(message) == ["".join(pieces)]
    # The cancelled iteration lost nothing: the resumed iterator saw every event once.
    assert resumed == [event async for event in stream]
    assert resumed[0].type == "message_start"
    assert resumed[-1].type == "message_stop"
    with trio.fail_after(1000):
        await assert_nothing_left(client, server)


# --- the nursery given to open_message_stream -----------------------------------------------------


@pytest.mark.parametrize("failure", ["error_event", "disconnect"])
async def test_a_stream_failure_does_not_cancel_its_nurserys_other_tasks(
    failure: str, server: MockServer, client: AsyncAnthropic
) -> None:
    if failure == "error_event":
        server.enqueue(Reply.stream([message_start(), OVERLOADED]))
        expected: type[Exception] = OverloadedError
    else:
        reply = Reply.stream(text_stream(PIECES))
        server.enqueue(Reply.stream(text_stream(PIECES), disconnect_after=len(reply.chunks[0])))
        expected = triostream.IncompleteStreamError
    release = trio.Event()
    sibling_started = trio.Event()
    sibling_outcome: list[str] = []

    async def sibling() -> None:
        sibling_started.set()
        try:
            await release.wait()
        except trio.Cancelled:
            sibling_outcome.append("cancelled")
            raise
        sibling_outcome.append("finished")

    with trio.fail_after(5):
        async with trio.open_nursery() as stream_nursery:
            stream_nursery.start_soon(sibling)
            await sibling_started.wait()
            async with triostream.open_message_stream(
                stream_nursery, client=client, **PARAMS
            ) as stream:
                with pytest.raises(expected):
                    await stream.get_final_message()
                await trio.testing.wait_all_tasks_blocked()
                assert sibling_outcome == []
            assert sibling_outcome == []
            assert not stream_nursery.cancel_scope.cancel_called
            assert len(stream_nursery.child_tasks) == 1  # the sibling, still waiting
            release.set()
    assert sibling_outcome == ["finished"]
    assert stream.current_message_snapshot is not None  # the message_start is kept
    await assert_next_stream_works(client, server)
    await assert_nothing_left(client, server)
