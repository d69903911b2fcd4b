"""The sync twin: triostream.Anthropic and MessageStream over httpx.Client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

import triostream
from tests.conftest import API_KEY, PARAMS, RECORDED
from tests.sansio.test_accumulator import as_data, run
from tests.streams import sse_encode, text_stream
from triostream import MessageAccumulator
from triostream._wire import decode_sse_events
from triostream.sse import SSEDecoder
from triostream.testing import Reply, ThreadedMockServer, serve_in_thread


@pytest.fixture
def sync_server() -> Iterator[ThreadedMockServer]:
    with serve_in_thread() as server:
        yield server


@pytest.fixture
def sync_client(sync_server: ThreadedMockServer) -> Iterator[triostream.Anthropic]:
    with triostream.Anthropic(api_key=API_KEY, base_url=sync_server.base_url) as client:
        yield client


def pool_connections(client: triostream.Anthropic) -> list[Any]:
    return list(client.http_client._transport._pool.connections)  # type: ignore[attr-defined]


@pytest.mark.parametrize("chunking", ["event", 7, 16384])
@pytest.mark.parametrize(
    "name", ["basic_response", "tool_use_response", "message_delta_fields_response"]
)
def test_same_final_message_as_the_sans_io_core(
    sync_server: ThreadedMockServer, sync_client: triostream.Anthropic, name: str, chunking: Any
) -> None:
    body = (RECORDED / f"{name}.txt").read_bytes()
    sync_server.enqueue(Reply.sse(body, chunking=chunking))
    with sync_client.messages.stream(**PARAMS) as stream:
        events = list(stream)
        message = stream.get_final_message()
    expected_acc, expected_events = run([body])
    assert as_data(message) == as_data(expected_acc.final_message())
    assert [e.type for e in events] == [e.type for e in expected_events]


def test_text_stream_and_final_text(
    sync_server: ThreadedMockServer, sync_client: triostream.Anthropic
) -> None:
    sync_server.enqueue(Reply.stream(text_stream(["Hello", " ", "world"]), chunking="event"))
    with sync_client.messages.stream(**PARAMS) as stream:
        assert list(stream.text_stream) == ["Hello", " ", "world"]
        # A second loop replays from message_start.
        assert [e.type for e in stream][:2] == ["message_start", "content_block_start"]
        assert stream.get_final_text() == "Hello world"
        assert stream.request_id == "req_0"
        assert stream.response.status_code == 200


def test_error_status_raised_from_enter(
    sync_server: ThreadedMockServer, sync_client: triostream.Anthropic
) -> None:
    sync_server.enqueue(Reply.error(401, type="authentication_error", message="bad key"))
    with (
        pytest.raises(triostream.AuthenticationError, match="bad key") as info,
        sync_client.messages.stream(**PARAMS),
    ):
        pass
    assert info.value.status_code == 401
    assert info.value.request_id == "req_0"


def test_retries_then_success(
    sync_server: ThreadedMockServer, sync_client: triostream.Anthropic
) -> None:
    retry_now = {"retry-after-ms": "0"}
    sync_server.enqueue(
        Reply.error(529, headers=retry_now),
        Reply.error(500, type="api_error", headers=retry_now),
        Reply.stream(text_stream(["ok"])),
    )
    with sync_client.messages.stream(**PARAMS) as stream:
        assert stream.get_final_text() == "ok"
    assert len(sync_server.requests) == 3


def test_error_event_reaches_every_consumer_and_keeps_the_snapshot(
    sync_server: ThreadedMockServer, sync_client: triostream.Anthropic
) -> None:
    events = text_stream(["partial"])[:4]
    events.append({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    sync_server.enqueue(Reply.stream(events, chunking="event"))
    with sync_client.messages.stream(**PARAMS) as stream:
        with pytest.raises(triostream.OverloadedError):
            list(stream)
        with pytest.raises(triostream.OverloadedError):
            list(stream.text_stream)
        with pytest.raises(triostream.OverloadedError):
            stream.get_final_message()
        with pytest.raises(triostream.OverloadedError) as info:
            stream.until_done()
        assert info.value.status_code == 200
        snapshot = stream.current_message_snapshot
        assert snapshot is not None
        assert snapshot.content[0].text == "partial"  # type: ignore[union-attr]


@pytest.mark.parametrize("cut", [30, 200, 400])
def test_truncation_is_an_incomplete_stream(
    sync_server: ThreadedMockServer, sync_client: triostream.Anthropic, cut: int
) -> None:
    sync_server.enqueue(Reply.stream(text_stream(["a", "b", "c"]), disconnect_after=cut))
    with sync_client.messages.stream(**PARAMS) as stream:
        with pytest.raises(triostream.IncompleteStreamError):
            stream.get_final_message()
        snapshot = stream.current_message_snapshot
    # The snapshot holds exactly the events that arrived whole.
    arrived = SSEDecoder().feed(sse_encode(text_stream(["a", "b", "c"]))[:cut])
    expected = MessageAccumulator()
    for event in decode_sse_events(arrived, []):
        expected.feed(event)
    if expected.snapshot is None:
        assert snapshot is None
    else:
        assert snapshot is not None
        assert as_data(snapshot) == as_data(expected.snapshot)


def test_idle_timeout_with_a_server_that_only_pings(sync_server: ThreadedMockServer) -> None:
    sync_server.enqueue(
        Reply.stream(text_stream(["x"])[:2], stall_after=2, pings_while_stalled=0.02)
    )
    with (
        triostream.Anthropic(
            api_key=API_KEY, base_url=sync_server.base_url, idle_timeout=0.3
        ) as client,
        client.messages.stream(**PARAMS) as stream,
    ):
        with pytest.raises(triostream.APITimeoutError, match="idle_timeout"):
            stream.until_done()
        assert stream.current_message_snapshot is not None


def test_a_complete_stream_returns_its_connection_to_the_pool(
    sync_server: ThreadedMockServer, sync_client: triostream.Anthropic
) -> None:
    for _ in range(2):
        sync_server.enqueue(Reply.stream(text_stream(["x"]), end_delay=0.05))
    for _ in range(2):
        with sync_client.messages.stream(**PARAMS) as stream:
            assert stream.get_final_text() == "x"
    assert len(sync_server.connections) == 1
    assert sync_server.connections[0].requests == 2
    assert len(pool_connections(sync_client)) == 1
    assert pool_connections(sync_client)[0].is_idle()


def test_breaking_out_then_leaving_the_block_releases_the_connection(
    sync_server: ThreadedMockServer, sync_client: triostream.Anthropic
) -> None:
    sync_server.enqueue(Reply.stream(text_stream(["a", "b"]), stall_after=3))
    with sync_client.messages.stream(**PARAMS) as stream:
        for event in stream:
            if event.type == "content_block_start":
                break
    sync_server.wait_idle()
    assert sync_server.connections[0].closed_by == "client"
    assert pool_connections(sync_client) == []
    with pytest.raises(RuntimeError, match="closed"):
        stream.get_final_message()


def test_raw_stream_and_create(
    sync_server: ThreadedMockServer, sync_client: triostream.Anthropic
) -> None:
    body = (RECORDED / "tool_use_response.txt").read_bytes()
    sync_server.enqueue(Reply.sse(body, chunking=7))
    raw = sync_client.messages.create(**PARAMS, stream=True)
    with raw:
        types = [event.type for event in raw]
        assert raw.response.status_code == 200
    assert "ping" not in types
    assert types[0] == "message_start"
    assert types[-1] == "message_stop"
    assert sync_server.requests[0].json["stream"] is True

    acc, _ = run([body])
    message_json = msgspec.json.encode(acc.final_message())
    sync_server.enqueue(Reply.json(msgspec.json.decode(message_json)))
    message = sync_client.messages.create(**PARAMS)
    assert message == acc.final_message()
    assert "stream" not in sync_server.requests[1].json


def test_http_client_given_is_not_closed(sync_server: ThreadedMockServer) -> None:
    http = httpx.Client()
    with triostream.Anthropic(api_key=API_KEY, base_url=sync_server.base_url, http_client=http):
        pass
    assert not http.is_closed
    http.close()
