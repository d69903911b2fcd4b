"""triostream.testing: the loopback Messages API server, driven by plain httpx clients."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import msgspec
import pytest
import trio
import trio.testing

from tests.conftest import RECORDED
from triostream.testing import (
    PING_EVENT,
    MockServer,
    RecordedRequest,
    Reply,
    open_mock_server,
    serve_in_thread,
    split_sse_events,
    sse_body,
    sse_event,
)

BASIC = (RECORDED / "basic_response.txt").read_bytes()
REQUEST = {"model": "claude-sonnet-4-5", "max_tokens": 16, "stream": True, "messages": []}


@pytest.fixture
async def server() -> AsyncIterator[MockServer]:
    async with open_mock_server() as server:
        yield server


@pytest.fixture
async def client(server: MockServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, trust_env=False) as client:
        yield client


async def raw_pieces(client: httpx.AsyncClient) -> list[bytes]:
    """The body of one streamed POST /v1/messages, one item per piece httpx yields."""
    async with client.stream("POST", "/v1/messages", json=REQUEST) as response:
        return [piece async for piece in response.aiter_raw()]


async def read_into(
    client: httpx.AsyncClient, received: list[bytes], arrived: trio.Event | None = None
) -> None:
    """Stream one POST /v1/messages, appending each piece of the body as it arrives."""
    async with client.stream("POST", "/v1/messages", json=REQUEST) as response:
        async for piece in response.aiter_raw():
            received.append(piece)
            if arrived is not None:
                arrived.set()


def closable(pieces: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """httpx's ``aiter_raw()``, typed as the async generator it is so it can be closed."""
    assert isinstance(pieces, AsyncGenerator)
    return pieces


async def exchange(server: MockServer, raw: bytes) -> bytes:
    """Send raw bytes on a fresh connection and read until the server closes it."""
    stream = await trio.open_tcp_stream(server.host, server.port)
    async with stream:
        await stream.send_all(raw)
        received = b""
        with trio.fail_after(5):
            while data := await stream.receive_some():
                received += data
    return received


def events(count: int) -> list[dict[str, Any]]:
    """``count`` small text deltas."""
    return [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": str(i)}}
        for i in range(count)
    ]


# -- SSE helpers ---------------------------------------------------------------


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_split_sse_events_understands_every_line_end(end: str) -> None:
    first = f"event: a{end}data: 1{end}{end}"
    second = f"event: b{end}data: 2{end}{end}{end}"  # a run of blank lines stays with its event
    last = "event: c" + end + "data: 3"  # no blank line at the end
    body = (first + second + last).encode()
    assert split_sse_events(body) == [first.encode(), second.encode(), last.encode()]


def test_split_sse_events_does_not_cut_inside_crlf() -> None:
    body = b"data: a\r\ndata: b\r\n\r\ndata: c\r\n"
    assert split_sse_events(body) == [b"data: a\r\ndata: b\r\n\r\n", b"data: c\r\n"]


def test_sse_event_and_body() -> None:
    assert sse_event({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert sse_event({"x": "é"}, event="odd") == 'event: odd\ndata: {"x":"é"}\n\n'.encode()
    assert sse_body([{"type": "ping"}, b": comment\n\n"]) == (
        b'event: ping\ndata: {"type":"ping"}\n\n: comment\n\n'
    )
    with pytest.raises(ValueError, match="no string 'type'"):
        sse_event({"data": 1})
    with pytest.raises(ValueError, match="line break"):
        sse_event({"type": "a\nb"})
    with pytest.raises(TypeError, match="cannot encode"):
        sse_event({"type": "x", "bad": object()})


# -- streaming replies -----------------------------------------------------------


async def test_event_chunking_sends_one_http_chunk_per_event(
    server: MockServer, client: httpx.AsyncClient, recorded_body: bytes
) -> None:
    body = recorded_body
    parts = body.split(b"\n\n")  # the recordings use LF and no runs of blank lines
    expected = [part + b"\n\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    server.enqueue(Reply.sse(body, chunking="event"))

    async with client.stream("POST", "/v1/messages", json=REQUEST) as response:
        pieces = [piece async for piece in response.aiter_raw()]

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    assert pieces == expected


async def test_fixed_size_chunking_replays_the_body(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    body = BASIC * 100
    reply = Reply.sse(body, chunking=16384)
    assert [len(chunk) for chunk in reply.chunks] == [16384] * 6 + [len(body) - 6 * 16384]
    server.enqueue(reply)
    assert b"".join(await raw_pieces(client)) == body


async def test_explicit_chunks_are_sent_as_given(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    chunks = [b"event: ping\nda", b'ta: {"type": "ping"}\n', b"\n"]
    server.enqueue(Reply.sse(b"".join(chunks), chunking=chunks))
    assert await raw_pieces(client) == chunks


async def test_stream_builds_one_chunk_per_item(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    items: list[Any] = [{"type": "message_start", "n": 1}, b": a comment\n\n", {"type": "x"}]
    server.enqueue(Reply.stream(items))
    assert await raw_pieces(client) == [
        b'event: message_start\ndata: {"type":"message_start","n":1}\n\n',
        b": a comment\n\n",
        b'event: x\ndata: {"type":"x"}\n\n',
    ]


# -- recording -------------------------------------------------------------------


async def test_request_is_recorded_before_the_reply(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    release = trio.Event()
    seen: list[RecordedRequest] = []

    async def handler(request: RecordedRequest) -> Reply:
        seen.append(request)
        await release.wait()
        return Reply.json({"ok": True})

    server.handler = handler
    responses: list[httpx.Response] = []

    async def post() -> None:
        responses.append(
            await client.post(
                "/v1/messages?beta=true", json=REQUEST, headers={"X-Api-Key": "sk-test"}
            )
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(post)
        with trio.fail_after(5):
            await server.wait_for_requests(1)
        assert responses == []
        request = server.requests[0]
        assert seen == [request]
        assert (request.index, request.connection, request.method) == (0, 0, "POST")
        assert (request.path, request.query) == ("/v1/messages", "beta=true")
        assert request.json == REQUEST
        assert request.body == httpx.Request("POST", "/", json=REQUEST).content
        assert request.header("x-api-key") == request.header("X-API-KEY") == "sk-test"
        assert request.header("absent") is None
        assert all(name == name.lower() for name, _ in request.headers)
        assert ("content-type", "application/json") in request.headers
        release.set()

    assert responses[0].json() == {"ok": True}


async def test_keep_alive_uses_one_connection_until_the_client_closes(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    server.enqueue(Reply.sse(BASIC), Reply.json({"n": 2}))
    assert b"".join(await raw_pieces(client)) == BASIC
    assert (await client.post("/v1/messages", json=REQUEST)).json() == {"n": 2}

    assert len(server.connections) == 1
    record = server.connections[0]
    assert (record.requests, record.closed_by, record.is_open) == (2, None, True)
    assert server.open_connections == 1

    await client.aclose()
    with trio.fail_after(5):
        await server.wait_idle()
    assert record.closed_by == "client"
    assert record.closed_at is not None
    assert record.closed_at >= record.opened_at
    assert server.open_connections == 0


# -- failures ---------------------------------------------------------------------


@pytest.mark.parametrize("cut", [0, 17, "first event", "all"])
async def test_disconnect_after_sends_exactly_k_body_bytes(
    server: MockServer, client: httpx.AsyncClient, cut: int | str
) -> None:
    first = split_sse_events(BASIC)[0]
    k = cut if isinstance(cut, int) else {"first event": len(first), "all": len(BASIC)}[cut]
    server.enqueue(Reply.sse(BASIC, disconnect_after=k))
    received: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError):
        await read_into(client, received)
    assert b"".join(received) == BASIC[:k]
    with trio.fail_after(5):
        await server.wait_idle()
    assert server.connections[0].closed_by == "server"


async def test_server_notices_a_client_leaving_a_stall(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    server.enqueue(Reply.stream(events(5), stall_after=2))
    async with (
        client.stream("POST", "/v1/messages", json=REQUEST) as response,
        aclosing(closable(response.aiter_raw())) as pieces,
    ):
        received = [await anext(pieces), await anext(pieces)]
    assert received == [sse_event(event) for event in events(2)]
    with trio.fail_after(5):
        await server.wait_idle()
    assert server.connections[0].closed_by == "client"


async def test_pings_while_stalled(server: MockServer, mock_clock: trio.testing.MockClock) -> None:
    """A server that only pings, on a virtual clock.

    Autojump moves the clock only after 10 ms of real time in which every task
    is blocked and no socket became readable. Loopback bytes are readable as
    soon as the sender's send() returns, so the clock never jumps while a ping
    is in flight; and httpx's timeouts are off, so the only deadlines are the
    server's ping timer and the far-away fail_after.
    """
    mock_clock.autojump_threshold = 0.01
    server.enqueue(Reply.stream(events(1), stall_after=1, pings_while_stalled=10.0))
    arrivals: list[tuple[float, bytes]] = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=None, trust_env=False) as c:
        start = trio.current_time()
        with trio.fail_after(1000):
            async with (
                c.stream("POST", "/v1/messages", json=REQUEST) as response,
                aclosing(closable(response.aiter_raw())) as pieces,
            ):
                async for piece in pieces:
                    arrivals.append((trio.current_time() - start, piece))
                    if len(arrivals) == 4:
                        break
    assert arrivals == [
        (0.0, sse_event(events(1)[0])),
        (pytest.approx(10.0), PING_EVENT),
        (pytest.approx(20.0), PING_EVENT),
        (pytest.approx(30.0), PING_EVENT),
    ]
    with trio.fail_after(1000):
        await server.wait_idle()
    assert server.connections[0].closed_by == "client"


async def test_delay_and_end_delay_follow_the_trio_clock(
    server: MockServer, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0.01  # see test_pings_while_stalled
    server.enqueue(Reply.stream(events(3), delay=2.0, end_delay=5.0), Reply.json({}))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=None, trust_env=False) as c:
        start = trio.current_time()
        with trio.fail_after(1000):
            async with c.stream("POST", "/v1/messages", json=REQUEST) as response:
                times = [trio.current_time() - start async for _ in response.aiter_raw()]
                body_ended = trio.current_time() - start
            await c.post("/v1/messages", json=REQUEST)
    assert times == [0.0, pytest.approx(2.0), pytest.approx(4.0)]
    assert body_ended == pytest.approx(9.0)
    # httpx read the terminator, so the second request reused the connection.
    assert [c.requests for c in server.connections] == [2]


async def test_head_delay_forever_until_the_client_times_out(
    server: MockServer, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.autojump_threshold = 0.01  # see test_pings_while_stalled
    server.enqueue(Reply.json({}, head_delay=math.inf))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=3.0, trust_env=False) as c:
        start = trio.current_time()
        with pytest.raises(httpx.ReadTimeout):
            await c.post("/v1/messages", json=REQUEST)
        assert trio.current_time() - start == pytest.approx(3.0)
    with trio.fail_after(1000):
        await server.wait_idle()
    assert server.connections[0].closed_by == "client"


async def test_aclose_closes_a_stalled_connection(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    server.enqueue(Reply.stream(events(2), stall_after=1))
    received: list[bytes] = []
    first_piece = trio.Event()

    async def read() -> None:
        with pytest.raises(httpx.RemoteProtocolError):
            await read_into(client, received, first_piece)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        with trio.fail_after(5):
            await first_piece.wait()
            await server.aclose()
    assert received == [sse_event(events(1)[0])]
    assert server.connections[0].closed_by == "server"
    await server.aclose()  # again: a no-op


# -- non-streaming replies, scripting, headers ----------------------------------------


async def test_error_replies(server: MockServer, client: httpx.AsyncClient) -> None:
    retry = {"retry-after": "2", "retry-after-ms": "1500", "x-should-retry": "true"}
    server.enqueue(
        Reply.error(529),
        Reply.error(429, message="slow down", headers=retry),
        Reply.error(500, type="overloaded_error", message="busy"),
        Reply.error_text(502, "<html><body>Bad gateway</body></html>"),
    )
    overloaded = await client.post("/v1/messages", json=REQUEST)
    limited = await client.post("/v1/messages", json=REQUEST)
    typed = await client.post("/v1/messages", json=REQUEST)
    gateway = await client.post("/v1/messages", json=REQUEST)

    assert overloaded.status_code == 529
    assert overloaded.headers["content-type"] == "application/json"
    assert overloaded.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert limited.status_code == 429
    assert limited.json()["error"] == {"type": "rate_limit_error", "message": "slow down"}
    assert {name: limited.headers[name] for name in retry} == retry
    assert typed.json()["error"] == {"type": "overloaded_error", "message": "busy"}
    assert gateway.status_code == 502
    assert gateway.headers["content-type"] == "text/html; charset=utf-8"
    assert gateway.text == "<html><body>Bad gateway</body></html>"
    assert len(server.connections) == 1  # error replies keep the connection alive


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, {"type": "invalid_request_error", "message": "Bad Request"}),
        (409, {"type": "conflict_error", "message": "Conflict"}),
        (429, {"type": "rate_limit_error", "message": "Too Many Requests"}),
        (500, {"type": "api_error", "message": "Internal Server Error"}),
        (503, {"type": "service_unavailable_error", "message": "Service Unavailable"}),
        (529, {"type": "overloaded_error", "message": "Overloaded"}),
    ],
)
def test_error_type_and_message_default_from_the_status(status: int, error: dict[str, str]) -> None:
    assert msgspec.json.decode(Reply.error(status).body) == {"type": "error", "error": error}


async def test_json_reply(server: MockServer, client: httpx.AsyncClient) -> None:
    message = {"id": "msg_1", "type": "message", "content": [{"type": "text", "text": "hé"}]}
    server.enqueue(Reply.json(message, status=201))
    response = await client.post("/v1/messages", json=REQUEST)
    assert response.status_code == 201
    assert response.json() == message
    assert response.headers["content-length"] == str(len(response.content))
    assert "transfer-encoding" not in response.headers


async def test_queue_first_then_handler_then_no_scripted_reply(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    server.enqueue(Reply.json({"n": 1}), Reply.json({"n": 2}))
    assert server.queued == 2
    server.handler = lambda request: Reply.json({"from": "handler", "i": request.index})

    bodies = [(await client.post("/v1/messages", json=REQUEST)).json() for _ in range(4)]
    assert bodies == [{"n": 1}, {"n": 2}, {"from": "handler", "i": 2}, {"from": "handler", "i": 3}]
    assert server.queued == 0

    server.handler = None
    response = await client.post("/v1/messages", json=REQUEST)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "api_error"
    assert "no scripted reply" in response.json()["error"]["message"]


async def test_other_paths_get_404_and_leave_the_queue_alone(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    server.enqueue(Reply.json({"n": 1}))
    wrong_path = await client.post("/v1/message", json=REQUEST)
    wrong_method = await client.get("/v1/messages")
    assert (wrong_path.status_code, wrong_method.status_code) == (404, 404)
    assert wrong_path.json()["error"]["type"] == "not_found_error"
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/v1/message"),
        ("GET", "/v1/messages"),
    ]
    assert (await client.post("/v1/messages", json=REQUEST)).json() == {"n": 1}


async def test_request_ids_and_header_overrides(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    server.enqueue(
        Reply.sse(BASIC),
        Reply.json({}, headers=[("request-id", "req_custom"), ("x-extra", "a"), ("x-extra", "b")]),
    )
    async with client.stream("POST", "/v1/messages", json=REQUEST) as first:
        await first.aread()
    second = await client.post("/v1/messages", json=REQUEST)
    assert first.headers["request-id"] == server.requests[0].request_id == "req_0"
    assert second.headers.get_list("request-id") == ["req_custom"]
    assert second.headers.get_list("x-extra") == ["a", "b"]


async def test_close_connection_and_client_connection_close(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    server.enqueue(Reply.json({"n": 1}, close_connection=True), Reply.json({"n": 2}))
    first = await client.post("/v1/messages", json=REQUEST)
    assert first.headers["connection"] == "close"
    second = await client.post("/v1/messages", json=REQUEST, headers={"connection": "close"})
    assert second.headers["connection"] == "close"
    with trio.fail_after(5):
        await server.wait_idle()
    assert [(c.requests, c.closed_by) for c in server.connections] == [(1, "server"), (1, "server")]


async def test_many_concurrent_streams_share_one_handler_reply(server: MockServer) -> None:
    reply = Reply.sse(BASIC)
    server.handler = lambda request: reply
    bodies: list[bytes] = []
    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, trust_env=False) as c:

        async def one() -> None:
            bodies.append(b"".join(await raw_pieces(c)))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(100):
                    nursery.start_soon(one)
    assert bodies == [BASIC] * 100
    assert len(server.requests) == 100
    with trio.fail_after(5):
        await server.wait_idle()
    assert {c.closed_by for c in server.connections} == {"client"}


# -- raw HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n", 400),
        (b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n folded\r\n\r\n", 400),
        (b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: ten\r\n\r\n", 400),
        (b"POST v1/messages HTTP/1.1\r\nhost: x\r\n\r\n", 400),
        (b"POST /v1/messages HTTP/1.1\r\n\r\n", 400),
        (
            b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n"
            b"transfer-encoding: chunked\r\n\r\n",
            400,
        ),
        (b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\n\r\n", 501),
        (b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET / HTTP/1.0\r\n\r\n", 505),
    ],
)
async def test_malformed_request_gets_an_error_and_the_server_goes_on(
    server: MockServer, client: httpx.AsyncClient, raw: bytes, status: int
) -> None:
    response = await exchange(server, raw)
    assert response.startswith(b"HTTP/1.1 %d " % status)
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"\r\nconnection: close\r\n" in head + b"\r\n"
    assert b'"type":"error"' in body
    assert server.requests == []
    with trio.fail_after(5):
        await server.wait_idle()
    assert server.connections[0].closed_by == "server"

    server.enqueue(Reply.json({"still": "serving"}))
    assert (await client.post("/v1/messages", json=REQUEST)).json() == {"still": "serving"}


async def test_chunked_pipelined_and_expect_continue_requests(server: MockServer) -> None:
    server.handler = lambda request: Reply.json({"got": request.json})
    stream = await trio.open_tcp_stream(server.host, server.port)
    async with stream:
        chunked = (
            b"\r\nPOST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'4;ext=1\r\n{"a"\r\n3\r\n:1}\r\n0\r\nx-trailer: t\r\n\r\n'
        )
        plain = b'POST /v1/messages HTTP/1.1\nHost: x\nContent-Length: 7\n\n{"b":2}'
        await stream.send_all(chunked + plain)  # two requests in one write; LF-only head
        continuing = (
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        await stream.send_all(continuing)
        received = b""
        with trio.fail_after(5):
            while b"100 Continue" not in received:
                received += await stream.receive_some()
            await stream.send_all(b'{"c":3}')
            while data := await stream.receive_some():
                received += data
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert received.count(b"HTTP/1.1 100 Continue\r\n\r\n") == 1
    assert [r.json for r in server.requests] == [{"a": 1}, {"b": 2}, {"c": 3}]
    assert [r.body for r in server.requests] == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    assert server.connections[0].requests == 3


async def test_client_vanishing_mid_request_is_recorded(server: MockServer) -> None:
    stream = await trio.open_tcp_stream(server.host, server.port)
    async with stream:
        await stream.send_all(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"
        )
    with trio.fail_after(5):
        await server.wait_idle()
    assert server.requests == []
    assert (server.connections[0].closed_by, server.connections[0].requests) == ("client", 0)


# -- the server's own life -----------------------------------------------------------------


async def test_open_mock_server_raises_a_handler_error_as_itself() -> None:
    def handler(request: RecordedRequest) -> Reply:
        raise LookupError("a bug in the test's handler")

    async def post_once() -> None:
        async with open_mock_server() as server:
            server.handler = handler
            async with httpx.AsyncClient(base_url=server.base_url, trust_env=False) as c:
                await c.post("/v1/messages", json=REQUEST)

    with pytest.raises(LookupError, match="a bug in the test's handler"):
        await post_once()


async def test_server_in_the_callers_nursery_stops_with_it() -> None:
    async with trio.open_nursery() as nursery:
        server = await MockServer.start(nursery)
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        nursery.cancel_scope.cancel()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(trust_env=False) as c:
            await c.post(server.base_url + "/v1/messages", json=REQUEST)


def test_serve_in_thread_with_a_sync_client() -> None:
    with serve_in_thread() as server:
        server.enqueue(Reply.sse(BASIC), Reply.error(529))
        with httpx.Client(base_url=server.base_url, trust_env=False) as client:
            with client.stream("POST", "/v1/messages", json=REQUEST) as response:
                pieces = list(response.iter_raw())
            overloaded = client.post("/v1/messages", json=REQUEST)
            server.handler = lambda request: Reply.json({"i": request.index})
            handled = client.post("/v1/messages", json=REQUEST)
        server.wait_for_requests(3, timeout=5)
        server.wait_idle(timeout=5)
        assert pieces == split_sse_events(BASIC)
        assert overloaded.status_code == 529
        assert handled.json() == {"i": 2}
        assert [r.json for r in server.requests] == [REQUEST] * 3
        assert [(c.requests, c.closed_by) for c in server.connections] == [(3, "client")]
        assert server.queued == 0


def test_serve_in_thread_raises_a_handler_error_on_exit() -> None:
    def handler(request: RecordedRequest) -> Reply:
        raise LookupError("a bug in the test's handler")

    def post_once() -> None:
        with serve_in_thread() as server:
            server.handler = handler
            with (
                httpx.Client(base_url=server.base_url, trust_env=False) as client,
                pytest.raises(httpx.RemoteProtocolError),
            ):
                client.post("/v1/messages", json=REQUEST)

    with pytest.raises(LookupError, match="a bug in the test's handler"):
        post_once()


# -- bad scripts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Reply.sse(BASIC, chunking=0), ValueError, "chunk size"),
        (lambda: Reply.sse(BASIC, chunking="line"), ValueError, "chunking"),  # type: ignore[arg-type]
        (lambda: Reply.sse(BASIC, chunking=[b"x"]), ValueError, "do not join"),
        (lambda: Reply.stream([b"", {"type": "x"}]), ValueError, "empty item"),
        (lambda: Reply.stream([1]), TypeError, "stream item"),  # type: ignore[list-item]
        (lambda: Reply.sse(BASIC, disconnect_after=len(BASIC) + 1), ValueError, "never reached"),
        (lambda: Reply.stream(events(3), stall_after=4), ValueError, "stall_after"),
        (lambda: Reply.stream(events(3), pings_while_stalled=1.0), ValueError, "needs stall"),
        (lambda: Reply.sse(BASIC, delay=-1), ValueError, "delay"),
        (lambda: Reply.json({}, headers={"x-bad": "a\r\nb"}), ValueError, "control character"),
        (lambda: Reply.json({}, headers={"Content-Length": "3"}), ValueError, "sets content"),
        (lambda: Reply.json({}, status=99), ValueError, "200-599"),
        (lambda: Reply.json(object()), TypeError, "cannot encode"),
    ],
)
def test_bad_scripts_raise_clear_errors(make: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


async def test_enqueue_takes_only_replies(server: MockServer) -> None:
    with pytest.raises(TypeError, match="Reply objects"):
        server.enqueue({"type": "message"})  # type: ignore[arg-type]


def test_reply_repr_shows_the_options_that_are_set() -> None:
    size = len(sse_body(events(2)))
    assert repr(Reply.stream(events(2), stall_after=0, headers={"X-A": "1"})) == (
        f"Reply(status=200, content_type='text/event-stream', 2 chunks, {size} bytes, "
        "headers=(('x-a', '1'),), stall_after=0)"
    )
    assert repr(Reply.error(529)) == (
        "Reply(status=529, content_type='application/json', content-length, 75 bytes)"
    )
