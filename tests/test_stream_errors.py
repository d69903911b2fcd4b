"""Errors through the trio layer: statuses, ``event: error``, truncation, bad data, timeouts,
retries and the raw ``AsyncStream`` (DESIGN promises 3, 6, 7 and the "Bad input" table).

Every failing stream is checked the same way: the right single exception from every
consumer call, the snapshot holding exactly what arrived, nothing left running, every
connection closed, and the API key in no exception.
"""

from __future__ import annotations

import email.utils
import itertools
import math
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest
import trio
import trio.testing

import triostream
from tests.conftest import API_KEY, PARAMS, RECORDED
from tests.streams import (
    TOOLS,
    block_start,
    message_end,
    message_start,
    text_delta,
    text_stream,
)
from triostream import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncMessageStream,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    IncompleteStreamError,
    InternalServerError,
    MessageAccumulator,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    UnprocessableEntityError,
)
from triostream._http import INITIAL_RETRY_DELAY, MAX_RETRY_DELAY
from triostream.sse import SSEDecoder
from triostream.testing import MockServer, Reply, split_sse_events, sse_body
from triostream.types import Message, TextBlock, ToolUseBlock, decode_raw_event

BASIC = (RECORDED / "basic_response.txt").read_bytes()
INVALID_TOOL_JSON = (RECORDED / "tool_use_invalid_json_response.txt").read_bytes()
NO_WAIT = {"retry-after-ms": "0"}
"""Headers that make a retried error reply retry at once."""

ENTRIES = ["open_message_stream", "messages.stream"]

Consumer = Callable[[AsyncMessageStream], Awaitable[object]]


async def _iterate(stream: AsyncMessageStream) -> object:
    return [event async for event in stream]


async def _text_stream(stream: AsyncMessageStream) -> object:
    return [text async for text in stream.text_stream]


async def _get_final_message(stream: AsyncMessageStream) -> object:
    return await stream.get_final_message()


async def _get_final_text(stream: AsyncMessageStream) -> object:
    return await stream.get_final_text()


async def _until_done(stream: AsyncMessageStream) -> object:
    await stream.until_done()
    return None


CONSUMERS: dict[str, Consumer] = {
    "async-for": _iterate,
    "text_stream": _text_stream,
    "get_final_message": _get_final_message,
    "get_final_text": _get_final_text,
    "until_done": _until_done,
}


# --- helpers ----------------------------------------------------------------------------------


def assert_secret_free(exc: BaseException) -> None:
    """The API key is in neither str, repr nor the formatted traceback of ``exc``."""
    assert API_KEY not in str(exc)
    assert API_KEY not in repr(exc)
    assert API_KEY not in "".join(traceback.format_exception(exc))
    assert all(API_KEY not in repr(arg) for arg in exc.args)


ClientFactory = Callable[..., triostream.AsyncAnthropic]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """``make_client(server, **options)``: a client for ``server``, closed after the test
    (under MockClock pass ``timeout=httpx.Timeout(None)``)."""
    made: list[triostream.AsyncAnthropic] = []

    def make(server: MockServer, **options: Any) -> triostream.AsyncAnthropic:
        client = triostream.AsyncAnthropic(api_key=API_KEY, base_url=server.base_url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def assert_all_closed(client: triostream.AsyncAnthropic, server: MockServer) -> None:
    """Close the client, then every connection the server saw must be closed."""
    await client.aclose()
    with trio.fail_after(5):
        await server.wait_idle()
    assert server.connections, "no connection was made"
    assert all(record.closed_at is not None for record in server.connections)


@asynccontextmanager
async def streaming(
    entry: str, client: triostream.AsyncAnthropic, **params: Any
) -> AsyncIterator[AsyncMessageStream]:
    """The stream through either entry point; for ``open_message_stream`` in a nursery of
    ours, which must have no task left once the stream's block is over."""
    arguments = {**PARAMS, **params}
    if entry == "open_message_stream":
        async with trio.open_nursery() as nursery:
            async with triostream.open_message_stream(
                nursery, client=client, **arguments
            ) as stream:
                yield stream
            assert not nursery.child_tasks
    else:
        async with client.messages.stream(**arguments) as stream:
            yield stream


async def error_from_enter(
    entry: str, client: triostream.AsyncAnthropic, cls: type[BaseException], **params: Any
) -> BaseException:
    """Enter a stream that must fail in ``__aenter__`` with exactly ``cls`` (no group)."""
    arguments = {**PARAMS, **params}
    with trio.fail_after(5):
        if entry == "open_message_stream":
            async with trio.open_nursery() as nursery:
                with pytest.raises(cls) as info:
                    async with triostream.open_message_stream(nursery, client=client, **arguments):
                        pytest.fail("the stream opened")
                assert not nursery.child_tasks
        else:
            with pytest.raises(cls) as info:
                async with client.messages.stream(**arguments):
                    pytest.fail("the stream opened")
    assert type(info.value) is cls
    assert_secret_free(info.value)
    return info.value


async def assert_every_consumer_raises(
    stream: AsyncMessageStream, cls: type[BaseException]
) -> list[BaseException]:
    """Each consumer call raises exactly ``cls``; returns the exceptions."""
    raised = []
    for name, consume in CONSUMERS.items():
        with trio.fail_after(5), pytest.raises(cls) as info:
            await consume(stream)
        assert type(info.value) is cls, name
        assert_secret_free(info.value)
        raised.append(info.value)
    return raised


def snapshot_of(raw: bytes, *, body_ended: bool = False) -> Message | None:
    """What MessageAccumulator makes of an SSE body's bytes (the reference snapshot)."""
    decoder = SSEDecoder()
    sses = decoder.feed(raw) + (decoder.close() if body_ended else [])
    accumulator = MessageAccumulator()
    for sse in sses:
        if sse.event != "ping":
            accumulator.feed(decode_raw_event(sse.data))
    return accumulator.snapshot


def assert_same_message(actual: Message | None, expected: Message | None) -> None:
    """Two snapshots hold the same message (as Structs and as the API's JSON)."""
    assert actual == expected
    assert msgspec.json.encode(actual) == msgspec.json.encode(expected)


def text_of(message: Message | None) -> str:
    """The text blocks of a snapshot, joined."""
    assert message is not None
    return "".join(block.text for block in message.content if isinstance(block, TextBlock))


def error_event(error_type: str, message: str = "Overloaded") -> dict[str, Any]:
    """An ``event: error`` as the API sends it inside a 200 stream."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


HELLO_THEN = [
    message_start(),
    block_start(0, {"type": "text", "text": ""}),
    text_delta(0, "Hello"),
    text_delta(0, " wor"),
]
"""The start of a stream: a text block holding ``"Hello wor"`` so far."""


# --- HTTP error statuses, from __aenter__ -----------------------------------------------------

STATUS_CLASSES: list[tuple[int, type[APIStatusError]]] = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (403, PermissionDeniedError),
    (404, NotFoundError),
    (409, ConflictError),
    (413, RequestTooLargeError),
    (422, UnprocessableEntityError),
    (429, RateLimitError),
    (500, InternalServerError),
    (529, OverloadedError),
]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES, ids=[str(s) for s, _ in STATUS_CLASSES])
async def test_error_status_raises_its_class_from_aenter(
    server: MockServer,
    client: triostream.AsyncAnthropic,
    entry: str,
    status: int,
    cls: type[APIStatusError],
) -> None:
    reply = Reply.error(status, message=f"went wrong {status}", headers={"request-id": "req_e1"})
    server.enqueue(reply)
    error = await error_from_enter(entry, client, cls, max_retries=0)
    assert isinstance(error, APIStatusError)
    body = msgspec.json.decode(reply.body)
    assert error.status_code == status
    assert error.type == body["error"]["type"]
    assert error.message == f"went wrong {status}"
    assert error.body == body
    assert error.request_id == "req_e1"
    assert isinstance(error.response, httpx.Response)
    assert error.response.status_code == status
    assert len(server.requests) == 1
    await assert_all_closed(client, server)


@pytest.mark.parametrize("entry", ENTRIES)
async def test_non_json_error_body_gives_the_status_class_and_the_text(
    server: MockServer, client: triostream.AsyncAnthropic, entry: str
) -> None:
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    server.enqueue(Reply.error_text(502, page + "\n"))
    error = await error_from_enter(entry, client, InternalServerError, max_retries=0)
    assert isinstance(error, InternalServerError)
    assert error.status_code == 502
    assert error.message == page
    assert error.type is None
    assert error.request_id == "req_0"
    assert error.response is not None
    assert error.response.status_code == 502
    await assert_all_closed(client, server)


# --- event: error mid-stream ------------------------------------------------------------------

EVENT_ERRORS: list[tuple[str, type[APIStatusError]]] = [
    ("overloaded_error", OverloadedError),
    ("rate_limit_error", RateLimitError),
    ("api_error", InternalServerError),
    ("teapot_error", APIStatusError),
]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(("error_type", "cls"), EVENT_ERRORS, ids=[t for t, _ in EVENT_ERRORS])
async def test_event_error_reaches_every_consumer(
    server: MockServer,
    client: triostream.AsyncAnthropic,
    entry: str,
    error_type: str,
    cls: type[APIStatusError],
) -> None:
    server.enqueue(Reply.stream([*HELLO_THEN, error_event(error_type, "it broke")]))
    async with streaming(entry, client) as stream:
        errors = await assert_every_consumer_raises(stream, cls)
        for error in errors:
            assert isinstance(error, APIStatusError)
            assert error.status_code == 200
            assert error.type == error_type
            assert error.message == "it broke"
            assert error.request_id == "req_0"
            assert error.response is stream.response
        assert text_of(stream.current_message_snapshot) == "Hello wor"
    assert len(server.requests) == 1  # never retried once events arrived
    await assert_all_closed(client, server)


@pytest.mark.parametrize("consumer", list(CONSUMERS))
@pytest.mark.parametrize(("error_type", "cls"), EVENT_ERRORS, ids=[t for t, _ in EVENT_ERRORS])
async def test_event_error_reaches_a_consumer_already_waiting(
    make_client: ClientFactory,
    server: MockServer,
    mock_clock: trio.testing.MockClock,
    consumer: str,
    error_type: str,
    cls: type[APIStatusError],
) -> None:
    """The consumer is parked waiting for events when the error arrives (a second later)."""
    mock_clock.autojump_threshold = 0.01
    client = make_client(server, timeout=httpx.Timeout(None))
    server.enqueue(Reply.stream([*HELLO_THEN, error_event(error_type)], delay=1.0))
    async with streaming("open_message_stream", client) as stream:
        with trio.fail_after(100), pytest.raises(cls) as info:
            await CONSUMERS[consumer](stream)
        assert type(info.value) is cls
        assert text_of(stream.current_message_snapshot) == "Hello wor"
    await assert_all_closed(client, server)


@pytest.mark.parametrize("entry", ENTRIES)
async def test_event_error_reaches_three_concurrent_consumers(
    make_client: ClientFactory, server: MockServer, mock_clock: trio.testing.MockClock, entry: str
) -> None:
    mock_clock.autojump_threshold = 0.01
    client = make_client(server, timeout=httpx.Timeout(None))
    server.enqueue(Reply.stream([*HELLO_THEN, error_event("overloaded_error")], delay=1.0))
    caught: dict[str, BaseException] = {}

    async def consume(name: str, stream: AsyncMessageStream) -> None:
        try:
            await CONSUMERS[name](stream)
        except triostream.APIError as exc:
            caught[name] = exc

    async with streaming(entry, client) as stream:
        with trio.fail_after(100):
            async with trio.open_nursery() as consumers:
                for name in ("async-for", "text_stream", "get_final_message"):
                    consumers.start_soon(consume, name, stream)
        assert text_of(stream.current_message_snapshot) == "Hello wor"
    assert sorted(caught) == ["async-for", "get_final_message", "text_stream"]
    assert all(type(exc) is OverloadedError for exc in caught.values())
    await assert_all_closed(client, server)


FAILURES: dict[str, list[Any]] = {
    "event-error": [*HELLO_THEN, error_event("overloaded_error")],
    "bad-json": [*HELLO_THEN, b"event: content_block_delta\ndata: {not json\n\n"],
    "out-of-order": [*HELLO_THEN, text_delta(5, "x")],
}


@pytest.mark.parametrize("failure", [*FAILURES, "truncated"])
async def test_a_failed_stream_does_not_cancel_its_nursery(
    server: MockServer, client: triostream.AsyncAnthropic, failure: str
) -> None:
    if failure == "truncated":
        body = sse_body(text_stream(["Hello", " wor", "ld"]))
        server.enqueue(Reply.sse(body, disconnect_after=len(body) // 2))
    else:
        server.enqueue(Reply.stream(FAILURES[failure]))
    release = trio.Event()
    sibling_finished: list[bool] = []

    async def sibling() -> None:
        await release.wait()
        sibling_finished.append(True)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sibling)
            async with triostream.open_message_stream(nursery, client=client, **PARAMS) as stream:
                with pytest.raises(triostream.APIError):
                    await stream.until_done()
                await trio.testing.wait_all_tasks_blocked()
                assert not nursery.cancel_scope.cancel_called
            assert not sibling_finished
            release.set()
    assert sibling_finished == [True]
    await assert_all_closed(client, server)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("failure", list(FAILURES))
async def test_a_failure_is_raised_without_waiting_for_the_body_to_end(
    server: MockServer, client: triostream.AsyncAnthropic, entry: str, failure: str
) -> None:
    """The server sends the failure, then nothing (no end of body): consumers get it now."""
    events = FAILURES[failure]
    server.enqueue(Reply.stream(events, stall_after=len(events)))
    async with streaming(entry, client) as stream:
        with trio.fail_after(5), pytest.raises(triostream.APIError):
            await stream.get_final_message()
        assert text_of(stream.current_message_snapshot) == "Hello wor"
    await assert_all_closed(client, server)
    assert server.connections[0].closed_by == "client"


# --- truncation ------------------------------------------------------------------------------

TRUNCATED_BODIES = {"recorded-basic": BASIC, "synthetic-tools": sse_body(TOOLS)}


def cut_points(body: bytes) -> list[int]:
    """Nine byte counts spread over the body, from none to all but the last byte."""
    size = len(body)
    return sorted({0, 1, *(size * i // 8 for i in range(1, 8)), size - 1})


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(
    ("name", "cut"),
    [(name, cut) for name, body in TRUNCATED_BODIES.items() for cut in cut_points(body)],
)
async def test_connection_dropped_mid_body(
    server: MockServer, client: triostream.AsyncAnthropic, entry: str, name: str, cut: int
) -> None:
    body = TRUNCATED_BODIES[name]
    server.enqueue(Reply.sse(body, disconnect_after=cut))
    async with streaming(entry, client) as stream:
        errors = await assert_every_consumer_raises(stream, IncompleteStreamError)
        assert isinstance(errors[0], APIConnectionError)
        assert_same_message(stream.current_message_snapshot, snapshot_of(body[:cut]))
    assert len(server.requests) == 1
    await assert_all_closed(client, server)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("name", list(TRUNCATED_BODIES))
@pytest.mark.parametrize("dropped", [1, 2, 4])
async def test_body_ends_cleanly_before_message_stop(
    server: MockServer, client: triostream.AsyncAnthropic, entry: str, name: str, dropped: int
) -> None:
    """The chunked body is properly terminated, but the last events never came."""
    body = b"".join(split_sse_events(TRUNCATED_BODIES[name])[:-dropped])
    assert b"message_stop" not in body
    server.enqueue(Reply.sse(body))
    async with streaming(entry, client) as stream:
        await assert_every_consumer_raises(stream, IncompleteStreamError)
        expected = snapshot_of(body, body_ended=True)
        assert expected is not None
        assert expected.content
        assert_same_message(stream.current_message_snapshot, expected)
    await assert_all_closed(client, server)


# --- bad data ---------------------------------------------------------------------------------

BAD_DATA: dict[str, list[Any]] = {
    "invalid-json": [*HELLO_THEN, b"event: content_block_delta\ndata: {not json\n\n"],
    "json-not-an-event": [*HELLO_THEN, b"event: content_block_delta\ndata: [1, 2, 3]\n\n"],
    "event-without-type": [*HELLO_THEN, b'event: content_block_delta\ndata: {"index": 0}\n\n'],
    "wrong-field-type": [*HELLO_THEN, b'data: {"type": "content_block_stop", "index": "0"}\n\n'],
    "delta-for-missing-block": [*HELLO_THEN, text_delta(3, "x")],
    "second-message-start": [*HELLO_THEN, message_start()],
}


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("bad", list(BAD_DATA))
async def test_bad_data_raises_validation_error_and_keeps_the_snapshot(
    server: MockServer, client: triostream.AsyncAnthropic, entry: str, bad: str
) -> None:
    tail = [text_delta(0, "ld"), *message_end()]
    server.enqueue(Reply.stream([*BAD_DATA[bad], *tail]))
    async with streaming(entry, client) as stream:
        await assert_every_consumer_raises(stream, APIResponseValidationError)
        assert text_of(stream.current_message_snapshot) == "Hello wor"
    await assert_all_closed(client, server)


@pytest.mark.parametrize("bad", list(BAD_DATA))
async def test_bad_data_in_one_network_chunk_keeps_what_came_before_it(
    server: MockServer, client: triostream.AsyncAnthropic, bad: str
) -> None:
    """The whole body arrives as one chunk: the good events before the bad one still count."""
    body = sse_body([*BAD_DATA[bad], text_delta(0, "ld"), *message_end()])
    server.enqueue(Reply.sse(body, chunking=len(body)))
    async with streaming("open_message_stream", client) as stream:
        await assert_every_consumer_raises(stream, APIResponseValidationError)
        assert text_of(stream.current_message_snapshot) == "Hello wor"
    await assert_all_closed(client, server)


@pytest.mark.parametrize("entry", ENTRIES)
async def test_delta_before_message_start(
    server: MockServer, client: triostream.AsyncAnthropic, entry: str
) -> None:
    server.enqueue(Reply.stream([text_delta(0, "x"), *text_stream(["Hi"])]))
    async with streaming(entry, client) as stream:
        await assert_every_consumer_raises(stream, APIResponseValidationError)
        assert stream.current_message_snapshot is None
    await assert_all_closed(client, server)


@pytest.mark.parametrize("entry", ENTRIES)
async def test_invalid_tool_input_fails_only_get_final_message(
    server: MockServer, client: triostream.AsyncAnthropic, entry: str
) -> None:
    server.enqueue(Reply.sse(INVALID_TOOL_JSON))
    async with streaming(entry, client) as stream:
        with trio.fail_after(5):
            events = [event async for event in stream]
            texts = [text async for text in stream.text_stream]
            await stream.until_done()
        assert events[-1].type == "message_stop"
        assert "".join(texts) == "I'll check the current weather in Paris for you."
        for consume in (_get_final_message, _get_final_text):
            with pytest.raises(APIResponseValidationError) as info:
                await consume(stream)
            assert "get_weather" in info.value.message
            assert_secret_free(info.value)
        snapshot = stream.current_message_snapshot
        assert snapshot is not None
        block = snapshot.content[1]
        assert isinstance(block, ToolUseBlock)
        assert block.input_json == '{"location": "Paris", "unit": celsius}'
        assert snapshot.stop_reason == "tool_use"
    await assert_all_closed(client, server)


# --- idle_timeout and read timeouts (MockClock) -----------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES)
async def test_idle_timeout_a_server_that_only_pings(
    make_client: ClientFactory, server: MockServer, mock_clock: trio.testing.MockClock, entry: str
) -> None:
    mock_clock.autojump_threshold = 0.01
    client = make_client(server, idle_timeout=5.0, timeout=httpx.Timeout(None))
    server.enqueue(Reply.stream([message_start()], stall_after=1, pings_while_stalled=1.0))
    async with streaming(entry, client) as stream:
        start = trio.current_time()
        with trio.fail_after(100), pytest.raises(APITimeoutError) as info:
            await stream.until_done()
        assert trio.current_time() - start == pytest.approx(5.0, abs=0.01)
        assert "idle_timeout" in info.value.message
        await assert_every_consumer_raises(stream, APITimeoutError)
        snapshot = stream.current_message_snapshot
        assert snapshot is not None
        assert snapshot.id == "msg_test"
        assert snapshot.content == []
    await assert_all_closed(client, server)
    assert server.connections[0].closed_by == "client"


async def test_idle_timeout_counts_from_the_last_content_event(
    make_client: ClientFactory, server: MockServer, mock_clock: trio.testing.MockClock
) -> None:
    """Content every 3 s then only pings every second: the timeout is 5 s after the last
    content event, not after the first event nor after the last ping."""
    mock_clock.autojump_threshold = 0.01
    client = make_client(server, idle_timeout=5.0, timeout=httpx.Timeout(None))
    events = [*HELLO_THEN, text_delta(0, "ld")]
    server.enqueue(Reply.stream(events, delay=3.0, stall_after=5, pings_while_stalled=1.0))
    async with streaming("open_message_stream", client) as stream:
        start = trio.current_time()
        with trio.fail_after(100), pytest.raises(APITimeoutError):
            await stream.until_done()
        assert trio.current_time() - start == pytest.approx(4 * 3.0 + 5.0, abs=0.01)
        assert text_of(stream.current_message_snapshot) == "Hello world"
    await assert_all_closed(client, server)


async def test_slow_content_within_idle_timeout_completes(
    make_client: ClientFactory, server: MockServer, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0.01
    client = make_client(server, idle_timeout=5.0, timeout=httpx.Timeout(None))
    events = [event for event in text_stream(["a", "b", "c", "d"]) if event["type"] != "ping"]
    server.enqueue(Reply.stream(events, delay=4.0))
    async with streaming("messages.stream", client) as stream:
        start = trio.current_time()
        with trio.fail_after(100):
            text = await stream.get_final_text()
        assert text == "abcd"
        assert trio.current_time() - start == pytest.approx(4.0 * (len(events) - 1), abs=0.01)
    await assert_all_closed(client, server)


@pytest.mark.parametrize("entry", ENTRIES)
async def test_read_timeout_mid_body(
    make_client: ClientFactory, server: MockServer, mock_clock: trio.testing.MockClock, entry: str
) -> None:
    mock_clock.autojump_threshold = 0.01
    client = make_client(server, timeout=httpx.Timeout(2.0))
    server.enqueue(Reply.stream(HELLO_THEN, stall_after=3))
    async with streaming(entry, client) as stream:
        start = trio.current_time()
        with trio.fail_after(100), pytest.raises(APITimeoutError):
            await stream.until_done()
        assert trio.current_time() - start == pytest.approx(2.0, abs=0.01)
        await assert_every_consumer_raises(stream, APITimeoutError)
        assert text_of(stream.current_message_snapshot) == "Hello"
    assert len(server.requests) == 1
    await assert_all_closed(client, server)


@pytest.mark.parametrize("entry", ENTRIES)
async def test_read_timeout_before_the_headers(
    make_client: ClientFactory, server: MockServer, mock_clock: trio.testing.MockClock, entry: str
) -> None:
    mock_clock.autojump_threshold = 0.01
    client = make_client(server, timeout=httpx.Timeout(2.0), max_retries=0)
    server.enqueue(Reply.stream(HELLO_THEN, head_delay=math.inf))
    start = trio.current_time()
    await error_from_enter(entry, client, APITimeoutError)
    assert trio.current_time() - start == pytest.approx(2.0, abs=0.01)
    await assert_all_closed(client, server)


async def test_a_timeout_before_the_headers_is_retried(
    make_client: ClientFactory, server: MockServer, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0.01
    client = make_client(server, timeout=httpx.Timeout(2.0), max_retries=1)
    server.enqueue(Reply.stream(HELLO_THEN, head_delay=math.inf), Reply.sse(BASIC))
    async with streaming("messages.stream", client) as stream:
        with trio.fail_after(100):
            assert await stream.get_final_text() == "Hello there!"
    assert len(server.requests) == 2
    await assert_all_closed(client, server)


# --- retries (DESIGN 6) -----------------------------------------------------------------------


def request_gaps(server: MockServer) -> list[float]:
    """Virtual seconds between consecutive requests' arrivals."""
    times = [request.received_at for request in server.requests]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


@pytest.mark.parametrize("entry", ENTRIES)
async def test_overloaded_then_success(
    server: MockServer, client: triostream.AsyncAnthropic, entry: str
) -> None:
    server.enqueue(Reply.error(529, headers=NO_WAIT), Reply.sse(BASIC))
    async with streaming(entry, client) as stream:
        with trio.fail_after(5):
            assert await stream.get_final_text() == "Hello there!"
        assert stream.request_id == "req_1"
    assert len(server.requests) == 2
    assert server.requests[0].json == server.requests[1].json
    assert server.requests[0].body == server.requests[1].body
    await assert_all_closed(client, server)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "250", "retry-after": "30"}, 0.25),
    ],
    ids=["retry-after-ms", "retry-after-seconds", "retry-after-fraction", "ms-wins"],
)
async def test_rate_limited_retry_waits_as_asked(
    make_client: ClientFactory,
    server: MockServer,
    mock_clock: trio.testing.MockClock,
    headers: dict[str, str],
    expected: float,
) -> None:
    mock_clock.autojump_threshold = 0.01
    client = make_client(server, timeout=httpx.Timeout(None))
    server.enqueue(Reply.error(429, headers=headers), Reply.sse(BASIC))
    async with streaming("messages.stream", client) as stream:
        with trio.fail_after(100):
            assert await stream.get_final_text() == "Hello there!"
    assert len(server.requests) == 2
    assert request_gaps(server) == [pytest.approx(expected, abs=1e-6)]
    await assert_all_closed(client, server)


async def test_retry_after_http_date(
    make_client: ClientFactory, server: MockServer, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0.01
    client = make_client(server, timeout=httpx.Timeout(None))
    when = math.floor(time.time()) + 5  # HTTP dates have whole seconds: 4 to 5 s from now
    date = email.utils.formatdate(when, usegmt=True)
    server.enqueue(Reply.error(429, headers={"retry-after": date}), Reply.sse(BASIC))
    async with streaming("messages.stream", client) as stream:
        with trio.fail_after(100):
            await stream.until_done()
    [gap] = request_gaps(server)
    assert 3.5 <= gap <= 5.0
    await assert_all_closed(client, server)


async def test_x_should_retry_false_on_a_500_is_not_retried(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    server.enqueue(
        Reply.error(500, headers={"x-should-retry": "false", **NO_WAIT}), Reply.sse(BASIC)
    )
    await error_from_enter("messages.stream", client, InternalServerError)
    assert len(server.requests) == 1
    assert server.queued == 1
    await assert_all_closed(client, server)


async def test_x_should_retry_true_on_a_400_is_retried(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    server.enqueue(
        Reply.error(400, headers={"x-should-retry": "true", **NO_WAIT}), Reply.sse(BASIC)
    )
    async with streaming("open_message_stream", client) as stream:
        with trio.fail_after(5):
            assert await stream.get_final_text() == "Hello there!"
    assert len(server.requests) == 2
    await assert_all_closed(client, server)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_client_errors_are_not_retried(
    server: MockServer, client: triostream.AsyncAnthropic, status: int
) -> None:
    server.enqueue(Reply.error(status, headers=NO_WAIT), Reply.sse(BASIC))
    with trio.fail_after(5), pytest.raises(APIStatusError):
        async with client.messages.stream(**PARAMS):
            pass
    assert len(server.requests) == 1
    await assert_all_closed(client, server)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 529])
async def test_retryable_statuses_are_retried(
    server: MockServer, client: triostream.AsyncAnthropic, status: int
) -> None:
    server.enqueue(Reply.error(status, headers=NO_WAIT), Reply.sse(BASIC))
    async with streaming("messages.stream", client) as stream:
        with trio.fail_after(5):
            await stream.until_done()
    assert len(server.requests) == 2
    await assert_all_closed(client, server)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("max_retries", [0, 1, 3])
async def test_max_retries_limit(
    make_client: ClientFactory, server: MockServer, entry: str, max_retries: int
) -> None:
    client = make_client(server, max_retries=max_retries)
    server.enqueue(*[Reply.error(529, headers=NO_WAIT)] * 5, Reply.sse(BASIC))
    error = await error_from_enter(entry, client, OverloadedError)
    assert isinstance(error, OverloadedError)
    assert len(server.requests) == max_retries + 1
    assert error.request_id == f"req_{max_retries}"
    assert server.queued == 6 - (max_retries + 1)
    await assert_all_closed(client, server)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("per_call", [0, 1, 4])
async def test_per_call_max_retries_override(
    make_client: ClientFactory, server: MockServer, entry: str, per_call: int
) -> None:
    client = make_client(server, max_retries=2)
    server.enqueue(*[Reply.error(503, headers=NO_WAIT)] * 6)
    await error_from_enter(entry, client, InternalServerError, max_retries=per_call)
    assert len(server.requests) == per_call + 1
    await assert_all_closed(client, server)


class RefusingTransport(httpx.AsyncBaseTransport):
    """Sends the first ``refusals`` requests to a port where nothing listens, the rest on."""

    def __init__(self, dead_port: int, refusals: int) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._dead_port = dead_port
        self.refusals = refusals
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Forward the request, to the dead port while refusals remain."""
        self.attempts += 1
        if self.attempts <= self.refusals:
            request = httpx.Request(
                request.method,
                request.url.copy_with(port=self._dead_port),
                headers=request.headers,
                content=request.content,
                extensions=request.extensions,
            )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the pool."""
        await self._inner.aclose()


async def dead_port() -> int:
    """A loopback port with no listener (bound, then closed at once)."""
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.parametrize(("refusals", "succeeds"), [(2, True), (3, False)])
async def test_connection_refused_is_retried(
    make_client: ClientFactory,
    server: MockServer,
    mock_clock: trio.testing.MockClock,
    refusals: int,
    succeeds: bool,
) -> None:
    mock_clock.autojump_threshold = 0.01
    transport = RefusingTransport(await dead_port(), refusals)
    async with httpx.AsyncClient(transport=transport, timeout=None) as http:
        client = make_client(server, http_client=http, max_retries=2)
        server.enqueue(Reply.sse(BASIC))
        if succeeds:
            async with streaming("messages.stream", client) as stream:
                with trio.fail_after(100):
                    assert await stream.get_final_text() == "Hello there!"
            assert len(server.requests) == 1
        else:
            error = await error_from_enter("messages.stream", client, APIConnectionError)
            assert "ConnectError" in str(error)
            assert not server.requests
        assert transport.attempts == 3
    await client.aclose()
    with trio.fail_after(100):
        await server.wait_idle()


@asynccontextmanager
async def dropping_server(body: bytes, drops: int) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A raw HTTP server: the first ``drops`` connections read the request and hang up
    without a response; later ones answer with ``body`` as an SSE stream.  Yields the port
    and the requests' heads."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    heads: list[bytes] = []

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some()
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            heads.append(head)
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(rest) < length:
                rest += await stream.receive_some()
            if len(heads) <= drops:
                return
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body
            )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        yield port, heads
        nursery.cancel_scope.cancel()


async def test_connection_dropped_before_the_headers_is_retried(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    async with dropping_server(BASIC, drops=2) as (port, heads):
        async with (
            triostream.AsyncAnthropic(
                api_key=API_KEY, base_url=f"http://127.0.0.1:{port}", timeout=httpx.Timeout(None)
            ) as client,
            streaming("open_message_stream", client) as stream,
        ):
            with trio.fail_after(100):
                assert await stream.get_final_text() == "Hello there!"
        assert len(heads) == 3


async def test_connection_dropped_every_time_raises_connection_error(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01
    async with dropping_server(BASIC, drops=10) as (port, heads):
        async with triostream.AsyncAnthropic(
            api_key=API_KEY,
            base_url=f"http://127.0.0.1:{port}",
            timeout=httpx.Timeout(None),
            max_retries=1,
        ) as client:
            error = await error_from_enter("open_message_stream", client, APIConnectionError)
        assert not isinstance(error, IncompleteStreamError)
        assert len(heads) == 2


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("after_event", [1, 3, 5])
async def test_never_retried_after_the_first_event(
    server: MockServer, client: triostream.AsyncAnthropic, entry: str, after_event: int
) -> None:
    events = text_stream(["Hello", " wor", "ld"])
    pieces = [sse_body([event]) for event in events]
    cut = sum(map(len, pieces[:after_event])) + 3  # a few bytes into the next event
    server.enqueue(Reply.stream(events, disconnect_after=cut), Reply.sse(BASIC))
    async with streaming(entry, client, max_retries=3) as stream:
        await assert_every_consumer_raises(stream, IncompleteStreamError)
    assert len(server.requests) == 1
    assert server.queued == 1
    await assert_all_closed(client, server)


async def test_event_error_is_never_retried(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    server.enqueue(Reply.stream([*HELLO_THEN, error_event("overloaded_error")]), Reply.sse(BASIC))
    async with streaming("messages.stream", client, max_retries=3) as stream:
        await assert_every_consumer_raises(stream, OverloadedError)
    assert len(server.requests) == 1
    await assert_all_closed(client, server)


async def test_backoff_grows_exponentially_with_jitter(
    make_client: ClientFactory, server: MockServer, mock_clock: trio.testing.MockClock
) -> None:
    """Without retry-after: delays 0.5, 1, 2, 4, 8, 8 s (capped), each less up to 25%."""
    mock_clock.autojump_threshold = 0.01
    retries = 6
    client = make_client(server, timeout=httpx.Timeout(None), max_retries=retries)
    gaps: list[float] = []
    for _ in range(2):
        first = len(server.requests)
        server.enqueue(*[Reply.error(500)] * retries, Reply.sse(BASIC))
        async with streaming("messages.stream", client) as stream:
            with trio.fail_after(1000):
                await stream.until_done()
        assert len(server.requests) == first + retries + 1
        times = [request.received_at for request in server.requests[first:]]
        gaps += [later - earlier for earlier, later in itertools.pairwise(times)]
    bases = [min(INITIAL_RETRY_DELAY * 2**attempt, MAX_RETRY_DELAY) for attempt in range(retries)]
    factors = [gap / base for gap, base in zip(gaps, bases * 2, strict=True)]
    assert all(0.75 - 1e-9 <= factor <= 1.0 + 1e-9 for factor in factors), gaps
    assert gaps[:4] == sorted(gaps[:4])
    assert len(set(gaps[:4])) == 4
    assert max(gaps) <= MAX_RETRY_DELAY + 1e-9
    assert len({round(factor, 6) for factor in factors}) > 1, "no jitter"
    await assert_all_closed(client, server)


# --- messages.create(stream=True): the raw AsyncStream -------------------------------------


def active_connections(client: triostream.AsyncAnthropic) -> list[Any]:
    """The pool's connections that are in the middle of a request (neither idle nor closed)."""
    pool = client.http_client._transport._pool  # type: ignore[attr-defined]
    return [c for c in pool.connections if not (c.is_idle() or c.is_closed())]


async def collect(raw: triostream.AsyncStream, received: list[Any]) -> None:
    """Append a raw stream's events to ``received`` until it ends or fails."""
    async for event in raw:
        received.append(event)


async def test_raw_stream_yields_raw_events_without_ping(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    server.enqueue(Reply.sse(BASIC), Reply.sse(BASIC))
    with trio.fail_after(5):
        raw = await client.messages.create(**PARAMS, stream=True)
        assert isinstance(raw, triostream.AsyncStream)
        assert isinstance(raw.response, httpx.Response)
        assert raw.response.status_code == 200
        assert raw.request_id == "req_0"
        async with raw:
            events = [event async for event in raw]
    decoder = SSEDecoder()
    wire = [sse for sse in decoder.feed(BASIC) + decoder.close() if sse.event != "ping"]
    assert [event.type for event in events] == [
        msgspec.json.decode(sse.data)["type"] for sse in wire
    ]
    assert [event.type for event in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert type(events[0]).__name__ == "RawMessageStartEvent"
    assert raw.response.is_closed
    assert not active_connections(client)
    # the connection went back to the pool: the next request reuses it
    raw = await client.messages.create(**PARAMS, stream=True)
    async with raw:
        assert len([event async for event in raw]) == 8
    assert [request.connection for request in server.requests] == [0, 0]
    await assert_all_closed(client, server)


async def test_raw_stream_event_error(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    server.enqueue(Reply.stream([*HELLO_THEN, error_event("overloaded_error")]), Reply.sse(BASIC))
    received: list[Any] = []
    with trio.fail_after(5):
        raw = await client.messages.create(**PARAMS, stream=True, max_retries=3)
        async with raw:
            with pytest.raises(OverloadedError) as info:
                await collect(raw, received)
            assert raw.response.is_closed
            assert not active_connections(client)
    assert [event.type for event in received] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
    ]
    error = info.value
    assert type(error) is OverloadedError
    assert error.status_code == 200
    assert error.type == "overloaded_error"
    assert error.request_id == "req_0"
    assert error.response is raw.response
    assert_secret_free(error)
    assert len(server.requests) == 1
    await assert_all_closed(client, server)


@pytest.mark.parametrize("cut", [0, 200, 600, len(BASIC) - 1])
async def test_raw_stream_truncated(
    server: MockServer, client: triostream.AsyncAnthropic, cut: int
) -> None:
    server.enqueue(Reply.sse(BASIC, disconnect_after=cut))
    with trio.fail_after(5):
        raw = await client.messages.create(**PARAMS, stream=True)
        received: list[Any] = []
        with pytest.raises(IncompleteStreamError) as info:
            await collect(raw, received)
    assert raw.response.is_closed
    assert not active_connections(client)
    decoder = SSEDecoder()
    expected = [sse for sse in decoder.feed(BASIC[:cut]) if sse.event != "ping"]
    assert len(received) == len(expected)
    assert_secret_free(info.value)
    await assert_all_closed(client, server)


async def test_raw_stream_clean_end_before_message_stop(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    server.enqueue(Reply.sse(b"".join(split_sse_events(BASIC)[:-2])))
    with trio.fail_after(5):
        raw = await client.messages.create(**PARAMS, stream=True)
        with pytest.raises(IncompleteStreamError):
            async for _ in raw:
                pass
    assert raw.response.is_closed
    assert not active_connections(client)
    await assert_all_closed(client, server)


async def test_raw_stream_bad_data(server: MockServer, client: triostream.AsyncAnthropic) -> None:
    server.enqueue(Reply.stream(BAD_DATA["invalid-json"]))
    with trio.fail_after(5):
        raw = await client.messages.create(**PARAMS, stream=True)
        with pytest.raises(APIResponseValidationError):
            async for _ in raw:
                pass
    assert raw.response.is_closed
    assert not active_connections(client)
    await assert_all_closed(client, server)


@pytest.mark.parametrize(
    ("failure", "cls"),
    [("event-error", OverloadedError), ("bad-json", APIResponseValidationError)],
)
@pytest.mark.parametrize("one_chunk", [False, True], ids=["chunk-per-event", "one-chunk"])
async def test_raw_stream_yields_the_events_before_a_failure(
    server: MockServer,
    client: triostream.AsyncAnthropic,
    failure: str,
    cls: type[Exception],
    one_chunk: bool,
) -> None:
    body = sse_body([*FAILURES[failure], *text_stream(["more"])[1:]])
    server.enqueue(Reply.sse(body, chunking=len(body) if one_chunk else "event"))
    received: list[Any] = []
    with trio.fail_after(5):
        raw = await client.messages.create(**PARAMS, stream=True)
        with pytest.raises(cls):
            await collect(raw, received)
    assert [event.type for event in received] == [event["type"] for event in HELLO_THEN]
    assert raw.response.is_closed
    assert not active_connections(client)
    await assert_all_closed(client, server)


@pytest.mark.parametrize("failure", ["event-error", "bad-json"])
async def test_raw_stream_raises_a_failure_without_waiting_for_more_bytes(
    server: MockServer, client: triostream.AsyncAnthropic, failure: str
) -> None:
    """Everything up to the failure arrives in one chunk, then the server stalls."""
    body = sse_body(FAILURES[failure])
    server.enqueue(Reply.sse(body, chunking=len(body), stall_after=1))
    received: list[Any] = []
    with trio.fail_after(5):
        raw = await client.messages.create(**PARAMS, stream=True)
        with pytest.raises(triostream.APIError):
            await collect(raw, received)
    assert len(received) == len(HELLO_THEN)
    assert raw.response.is_closed
    await assert_all_closed(client, server)


async def test_raw_stream_left_early_is_closed(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    server.enqueue(Reply.stream(HELLO_THEN, stall_after=2))
    with trio.fail_after(5):
        raw = await client.messages.create(**PARAMS, stream=True)
        async with raw:
            async for event in raw:
                assert event.type == "message_start"
                break
    assert raw.response.is_closed
    assert not active_connections(client)
    with trio.fail_after(5):
        await server.wait_idle()
    assert server.connections[0].closed_by == "client"
    await assert_all_closed(client, server)


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES, ids=[str(s) for s, _ in STATUS_CLASSES])
async def test_raw_stream_error_status(
    server: MockServer, client: triostream.AsyncAnthropic, status: int, cls: type[APIStatusError]
) -> None:
    server.enqueue(Reply.error(status, message="nope"))
    with trio.fail_after(5), pytest.raises(cls) as info:
        await client.messages.create(**PARAMS, stream=True, max_retries=0)
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert info.value.message == "nope"
    assert not active_connections(client)
    await assert_all_closed(client, server)


@pytest.mark.parametrize("entry", ENTRIES)
async def test_a_body_that_ends_inside_an_event_is_incomplete(
    server: MockServer, client: triostream.AsyncAnthropic, entry: str
) -> None:
    """A clean end of the body in the middle of an event's JSON: cut off, not invalid."""
    body = sse_body(text_stream(["Hello", " world"]))
    cut = body.index(b'" world"')  # inside the second delta's data line
    server.enqueue(Reply.sse(body[:cut], chunking="event"))
    async with streaming(entry, client) as stream:
        await assert_every_consumer_raises(stream, triostream.IncompleteStreamError)
        assert text_of(stream.current_message_snapshot) == "Hello"
    await assert_all_closed(client, server)
