"""A stream's life over real HTTP: order and completeness, backpressure, connection reuse,
the accessors, and the recorded fixtures against the official SDK.

Every test ends by checking that nothing is left: no triostream task anywhere in
the run (and none in the nursery the stream ran in), and, once the client is
closed, every connection the server saw is closed.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio
import trio.testing

import triostream
from tests.conftest import PARAMS, RECORDED, RECORDED_FILES
from tests.faults import assert_nothing_left, library_tasks
from tests.sansio.sdk_oracle import sdk_final_message
from tests.streams import PING, TOOLS, text_stream
from triostream import (
    APIResponseValidationError,
    AsyncAnthropic,
    Message,
    MessageAccumulator,
    MessageStopEvent,
    MessageStreamEvent,
    TextBlock,
    TextEvent,
    ToolUseBlock,
)
from triostream._fanout import DEFAULT_MAX_LAG
from triostream._stream import DRAIN_TIMEOUT, AsyncMessageStream
from triostream.sse import SSEDecoder
from triostream.testing import Chunking, MockServer, Reply
from triostream.types import decode_raw_event

CHUNKINGS: list[Chunking] = ["event", 16384, 7]
CHUNKING_IDS = ["event", "16k", "7"]
BASIC = (RECORDED / "basic_response.txt").read_bytes()
# Text, two tool calls, a server tool and its result, with a ping after message_start.
MIXED = [TOOLS[0], PING, *TOOLS[1:]]


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect at the end of each test, so a resource warning is charged to the test."""
    yield
    gc.collect()


# --- helpers ---------------------------------------------------------------------------------


def reference(body: bytes) -> tuple[list[MessageStreamEvent], MessageAccumulator]:
    """What MessageAccumulator makes of these bytes: the events to hand on, and itself."""
    decoder = SSEDecoder()
    accumulator = MessageAccumulator()
    events: list[MessageStreamEvent] = []
    for sse in [*decoder.feed(body), *decoder.close()]:
        if sse.event != "ping":
            events += accumulator.feed(decode_raw_event(sse.data))
    return events, accumulator


def texts_of(events: list[MessageStreamEvent]) -> list[str]:
    """The text pieces ``text_stream`` hands out for these events."""
    return [event.text for event in events if isinstance(event, TextEvent)]


def without_nulls(value: Any) -> Any:
    """The official SDK cannot tell an absent field from a null one; compare modulo that."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def as_data(message: Message) -> Any:
    """A Message as plain data, nulls dropped."""
    return without_nulls(msgspec.to_builtins(message))


def text_of(message: Message | None) -> str:
    """All the text blocks of a message (or of no message), joined."""
    if message is None:
        return ""
    return "".join(block.text for block in message.content if isinstance(block, TextBlock))


def pool_connections(client: AsyncAnthropic) -> list[Any]:
    """The connections in the client's httpx pool (httpx has no public view of them)."""
    transport: Any = client.http_client._transport
    connections: list[Any] = transport._pool.connections
    return connections


async def collect(source: Any, into: list[Any]) -> None:
    """Append everything an async iterable (a stream, text_stream, a channel) yields."""
    async for item in source:
        into.append(item)


# --- order and completeness (promise 1) ------------------------------------------------------


@pytest.mark.parametrize("chunking", CHUNKINGS, ids=CHUNKING_IDS)
@pytest.mark.parametrize("consumers", [1, 3, 10])
async def test_every_consumer_sees_the_same_events_in_wire_order(
    consumers: int, chunking: Chunking, server: MockServer, client: AsyncAnthropic
) -> None:
    reply = Reply.stream(MIXED, chunking=chunking)
    expected, accumulator = reference(reply.body)
    assert len(expected) > 40
    assert texts_of(expected)
    server.enqueue(reply)
    seen: dict[str, list[Any]] = {}

    with trio.fail_after(10):
        async with trio.open_nursery() as stream_nursery:
            async with triostream.open_message_stream(
                stream_nursery, client=client, **PARAMS
            ) as stream:
                async with trio.open_nursery() as readers:
                    for i in range(consumers):
                        readers.start_soon(collect, stream, seen.setdefault(f"iterate {i}", []))
                        readers.start_soon(
                            collect, stream.text_stream, seen.setdefault(f"text {i}", [])
                        )
                        readers.start_soon(
                            collect, stream.subscribe(), seen.setdefault(f"subscribe {i}", [])
                        )
                message = await stream.get_final_message()
                # Late joiners, after the stream finished: replayed from message_start.
                seen["late iterate"] = [event async for event in stream]
                seen["late text"] = [text async for text in stream.text_stream]
                seen["late subscribe"] = [event async for event in stream.subscribe()]
            assert not stream_nursery.child_tasks

    assert len(seen) == 3 * consumers + 3
    for name, got in seen.items():
        want = texts_of(expected) if "text" in name else expected
        assert got == want, name
    assert message == accumulator.final_message()
    await assert_nothing_left(client, server, wait=1000)


WINDING_DOWN_STREAMS = 8


@pytest.mark.parametrize("chunking", CHUNKINGS, ids=CHUNKING_IDS)
async def test_subscribing_while_the_streams_tasks_wind_down_replays_everything(
    chunking: Chunking, server: MockServer, client: AsyncAnthropic
) -> None:
    """A late subscriber in the moment the stream's last task has ended but the stream
    has not noticed yet (only its supervisor task left) is replayed too, not refused.

    That moment lasts one scheduling round, and whether the test task runs in it is up
    to trio's scheduling order, so the test looks for it in several streams.
    """
    reply = Reply.stream(MIXED, chunking=chunking)
    expected, _ = reference(reply.body)
    replayed: list[list[MessageStreamEvent]] = []
    for _ in range(WINDING_DOWN_STREAMS):
        server.enqueue(reply)
        with trio.fail_after(5):
            async with trio.open_nursery() as stream_nursery:
                async with triostream.open_message_stream(
                    stream_nursery, client=client, **PARAMS
                ) as stream:
                    await stream.until_done()
                    while tasks := library_tasks():
                        if tasks == ["triostream.stream"]:
                            channel = stream.subscribe()
                            replayed.append([event async for event in channel])
                        await trio.lowlevel.checkpoint()
                    replayed.append([event async for event in stream.subscribe()])
                assert not stream_nursery.child_tasks
    assert len(replayed) >= WINDING_DOWN_STREAMS
    assert all(events == expected for events in replayed)
    await assert_nothing_left(client, server, wait=1000)


LONG_PIECES = [f"w{i:04d} " for i in range(1500)]


@pytest.mark.parametrize("chunking", CHUNKINGS, ids=CHUNKING_IDS)
async def test_joiners_half_way_are_replayed_everything_from_message_start(
    chunking: Chunking, server: MockServer, client: AsyncAnthropic
) -> None:
    """Readers that join while the stream is half-way through miss nothing.

    The first reader is the only one until it has seen half the events; the
    stream cannot run more than DEFAULT_MAX_LAG events (and one network chunk)
    ahead of it, and there are more events than that left, so the stream is
    still going when the others join.
    """
    reply = Reply.stream(text_stream(LONG_PIECES), chunking=chunking)
    expected, _ = reference(reply.body)
    half = len(expected) // 2
    # A 16 KB chunk holds fewer than 16384 // 100 of these events (each is over 100 bytes),
    # and each gives at most two events to hand on.
    assert len(expected) - half > DEFAULT_MAX_LAG + 2 * (16384 // 100)
    server.enqueue(reply)
    first: list[MessageStreamEvent] = []
    late: dict[str, list[Any]] = {"iterate": [], "text": [], "subscribe": []}
    text_at_join = ""

    with trio.fail_after(20):
        async with trio.open_nursery() as stream_nursery:
            async with triostream.open_message_stream(
                stream_nursery, client=client, **PARAMS
            ) as stream:
                async with trio.open_nursery() as readers:
                    async for event in stream:
                        first.append(event)
                        if len(first) == half:
                            snapshot = stream.current_message_snapshot
                            assert snapshot is not None
                            assert snapshot.stop_reason is None  # not finished
                            text_at_join = text_of(snapshot)
                            readers.start_soon(collect, stream, late["iterate"])
                            readers.start_soon(collect, stream.text_stream, late["text"])
                            readers.start_soon(collect, stream.subscribe(), late["subscribe"])
                await stream.until_done()
            assert not stream_nursery.child_tasks

    assert 0 < len(text_at_join) < len("".join(LONG_PIECES))
    assert first == expected
    assert late["iterate"] == expected
    assert late["subscribe"] == expected
    assert late["text"] == LONG_PIECES
    await assert_nothing_left(client, server, wait=1000)


# --- backpressure (promise 2) ----------------------------------------------------------------

PIECE = 40


async def test_a_subscriber_that_does_not_read_holds_the_stream_back_and_loses_nothing(
    server: MockServer, client: AsyncAnthropic
) -> None:
    pieces = [f"{i:05d}".ljust(PIECE, ".") for i in range(2000)]
    reply = Reply.stream(text_stream(pieces), chunking=16384)
    expected, _ = reference(reply.body)
    server.enqueue(reply)

    def deltas_so_far(stream: AsyncMessageStream) -> int:
        return len(text_of(stream.current_message_snapshot)) // PIECE

    with trio.fail_after(10):
        async with trio.open_nursery() as stream_nursery:
            async with triostream.open_message_stream(
                stream_nursery, client=client, **PARAMS
            ) as stream:
                channel = stream.subscribe(max_buffer_size=2)
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                held_at = deltas_so_far(stream)
                # The stream stops DEFAULT_MAX_LAG events (plus one network chunk) past the
                # subscriber: each delta is two events (itself and its TextEvent), and a
                # 16 KB chunk holds fewer than 16384 // PIECE of them.
                assert 0 < held_at <= DEFAULT_MAX_LAG // 2 + 16384 // PIECE < len(pieces) // 2
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                assert deltas_so_far(stream) == held_at  # and it stays there
                assert len(server.connections) == 1
                assert server.connections[0].is_open

                received = [event async for event in channel]
                message = await stream.get_final_message()
            assert not stream_nursery.child_tasks

    assert received == expected  # everything, in order, nothing lost
    assert text_of(message) == "".join(pieces)
    await assert_nothing_left(client, server, wait=1000)


# --- drain and connection reuse (promise 8) ----------------------------------------------------


async def stream_once(client: AsyncAnthropic) -> tuple[Message, float]:
    """One complete stream; the message and how long leaving its block took."""
    async with trio.open_nursery() as stream_nursery:
        async with triostream.open_message_stream(
            stream_nursery, client=client, **PARAMS
        ) as stream:
            message = await stream.get_final_message()
            left_at = trio.current_time()
        exit_took = trio.current_time() - left_at
        assert not stream_nursery.child_tasks
    return message, exit_took


@pytest.mark.parametrize("end_delay", [0.0, DRAIN_TIMEOUT / 2])
async def test_sequential_streams_reuse_one_connection(
    end_delay: float,
    server: MockServer,
    client: AsyncAnthropic,
    mock_clock: trio.testing.MockClock,
) -> None:
    # Autojump after 10 ms of real time with every task blocked: loopback bytes are readable
    # as soon as they are sent, so the clock only jumps for the server's end_delay.
    mock_clock.autojump_threshold = 0.01
    pieces = ["Hello", " there", "!"]
    # A body whose message_stop ends with a blank line: the chunked terminator comes after it.
    reply = Reply.stream(text_stream(pieces), end_delay=end_delay)
    server.enqueue(reply, reply)

    with trio.fail_after(1000):
        for _ in range(2):
            message, exit_took = await stream_once(client)
            assert text_of(message) == "Hello there!"
            assert exit_took <= end_delay  # the drain waited for the terminator, no longer
            assert library_tasks() == []

    assert len(server.requests) == 2
    assert len(server.connections) == 1
    assert server.connections[0].requests == 2
    assert server.connections[0].is_open
    connections = pool_connections(client)
    assert len(connections) == 1
    assert connections[0].is_idle()
    await assert_nothing_left(client, server, wait=1000)
    assert server.connections[0].closed_by == "client"


async def test_a_terminator_later_than_the_drain_deadline_closes_the_response(
    server: MockServer, client: AsyncAnthropic, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0.01  # see test_sequential_streams_reuse_one_connection
    reply = Reply.stream(text_stream(["Hello", " there", "!"]), end_delay=10 * DRAIN_TIMEOUT)
    server.enqueue(reply, reply)

    with trio.fail_after(1000):
        message, exit_took = await stream_once(client)
        assert text_of(message) == "Hello there!"
        assert exit_took == pytest.approx(DRAIN_TIMEOUT)  # gave up at the deadline: no hang
        await server.wait_idle()
    assert server.connections[0].closed_by == "client"  # dropped, not left half-read

    with trio.fail_after(1000):
        message, exit_took = await stream_once(client)
    assert text_of(message) == "Hello there!"
    assert len(server.connections) == 2
    assert [record.requests for record in server.connections] == [1, 1]
    assert len(pool_connections(client)) == 0  # the second one was dropped the same way
    await assert_nothing_left(client, server, wait=1000)


# --- the accessors ------------------------------------------------------------------------------


async def test_accessors_during_and_after_the_stream(
    server: MockServer, client: AsyncAnthropic, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0.01  # the server's chunks come 1 s apart on this clock
    pieces = ["One", " two", " three"]
    server.enqueue(Reply.stream(text_stream(pieces), delay=1.0))

    with trio.fail_after(1000):
        async with trio.open_nursery() as stream_nursery:
            async with triostream.open_message_stream(
                stream_nursery, client=client, **PARAMS
            ) as stream:
                assert stream.request_id == "req_0"
                assert isinstance(stream.response, httpx.Response)
                assert stream.response.status_code == 200
                assert stream.response.headers["content-type"] == "text/event-stream"

                async for event in stream:
                    if isinstance(event, TextEvent):
                        break
                during = stream.current_message_snapshot
                assert during is not None
                assert text_of(during) == "One"
                assert during.stop_reason is None
                # The get_* calls wait for the end (the next chunk is a second away).
                with trio.move_on_after(0.5) as waiting:
                    await stream.get_final_message()
                assert waiting.cancelled_caught
                with trio.move_on_after(0.1) as waiting:
                    await stream.get_final_text()
                assert waiting.cancelled_caught
                with trio.move_on_after(0.1) as waiting:
                    await stream.until_done()
                assert waiting.cancelled_caught

                await stream.until_done()
                message = await stream.get_final_message()
                assert await stream.get_final_text() == "One two three"
                assert stream.current_message_snapshot == message
            assert not stream_nursery.child_tasks

    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 42
    assert [type(block) for block in message.content] == [TextBlock]
    # After the block: everything still answers, and the same.
    assert await stream.get_final_message() == message
    assert await stream.get_final_text() == "One two three"
    assert stream.current_message_snapshot == message
    assert stream.request_id == "req_0"
    assert stream.response.status_code == 200
    await assert_nothing_left(client, server, wait=1000)


@pytest.mark.parametrize("chunking", CHUNKINGS, ids=CHUNKING_IDS)
async def test_a_body_ending_without_a_blank_line_is_complete(
    chunking: Chunking, server: MockServer, client: AsyncAnthropic
) -> None:
    assert BASIC.endswith(b'data: {"type":"message_stop"}')  # no line break, no blank line
    server.enqueue(Reply.sse(BASIC, chunking=chunking), Reply.sse(BASIC, chunking=chunking))
    expected, _ = reference(BASIC)
    for _ in range(2):
        with trio.fail_after(5):
            async with trio.open_nursery() as stream_nursery:
                async with triostream.open_message_stream(
                    stream_nursery, client=client, **PARAMS
                ) as stream:
                    events = [event async for event in stream]
                    await stream.until_done()
                    assert await stream.get_final_text() == "Hello there!"
                assert not stream_nursery.child_tasks
        assert events == expected
        assert isinstance(events[-1], MessageStopEvent)
    # The body was read to its end, so the connection went back to the pool both times.
    assert [record.requests for record in server.connections] == [2]
    await assert_nothing_left(client, server, wait=1000)


# --- the recorded fixtures against the official SDK ----------------------------------------------

INVALID_JSON = "tool_use_invalid_json_response"


@pytest.mark.parametrize("chunking", CHUNKINGS, ids=CHUNKING_IDS)
@pytest.mark.parametrize("path", RECORDED_FILES, ids=[p.stem for p in RECORDED_FILES])
async def test_recorded_fixtures_give_the_official_sdks_final_message(
    path: Path, chunking: Chunking, server: MockServer, client: AsyncAnthropic
) -> None:
    body = path.read_bytes()
    reply = Reply.sse(body, chunking=chunking)
    server.enqueue(reply)
    expected_events, _ = reference(body)

    with trio.fail_after(5):
        async with trio.open_nursery() as stream_nursery:
            async with triostream.open_message_stream(
                stream_nursery, client=client, **PARAMS
            ) as stream:
                events = [event async for event in stream]
                await stream.until_done()  # the stream itself completes, even with bad input
                if path.stem == INVALID_JSON:
                    with pytest.raises(APIResponseValidationError, match="never became valid"):
                        await stream.get_final_message()
                    message = None
                else:
                    message = await stream.get_final_message()
            assert not stream_nursery.child_tasks

    assert events == expected_events
    assert isinstance(events[-1], MessageStopEvent)
    if message is not None:
        assert as_data(message) == without_nulls(sdk_final_message(reply.chunks))
    else:
        snapshot = stream.current_message_snapshot
        assert snapshot is not None
        tool = snapshot.content[-1]
        assert isinstance(tool, ToolUseBlock)
        assert tool.input_json == '{"location": "Paris", "unit": celsius}'  # the raw text, kept
    await assert_nothing_left(client, server, wait=1000)
